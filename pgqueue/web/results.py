"""A job's result as tables a person can read, whatever the format wrote.

Each top-level key of the result becomes a section: a list of objects becomes a table (columns
in first-seen order), an object becomes a two-column table, anything else a line of text. Long
lists are cut to a page, and the page says how many rows there were.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX_ROWS = 200
MAX_CELL = 300


@dataclass
class Section:
    title: str
    text: str | None = None
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    total: int = 0


def cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        shown = value
    elif isinstance(value, (int, float, bool)):
        shown = str(value)
    else:
        shown = json.dumps(value, ensure_ascii=False, default=str)
    return shown if len(shown) <= MAX_CELL else shown[: MAX_CELL - 1] + "…"


def sections(result: dict[str, Any] | None) -> list[Section]:
    if not result:
        return []
    found: list[Section] = []
    for key, value in result.items():
        title = key.replace("_", " ")
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            columns: list[str] = []
            for item in value[:MAX_ROWS]:
                columns.extend(name for name in item if name not in columns)
            rows = [[cell(item.get(name)) for name in columns] for item in value[:MAX_ROWS]]
            found.append(Section(title, columns=columns, rows=rows, total=len(value)))
        elif isinstance(value, list):
            rows = [[cell(item)] for item in value[:MAX_ROWS]]
            found.append(Section(title, columns=["value"], rows=rows, total=len(value)))
        elif isinstance(value, dict):
            rows = [[cell(name), cell(item)] for name, item in list(value.items())[:MAX_ROWS]]
            found.append(Section(title, columns=["field", "value"], rows=rows, total=len(value)))
        else:
            found.append(Section(title, text=cell(value)))
    return found


def pretty(result: dict[str, Any] | None) -> str:
    return json.dumps(result, indent=2, ensure_ascii=False, default=str) if result is not None else ""

"""Ruled tables of a PDF, read with pdfplumber, only when a job asks for them.

pdfplumber interprets every character, line and curve of a page in Python, which takes
seconds on a dense vector drawing. So it runs page by page against a deadline, skips pages
whose object count (known from PDFium) promises minutes of work, and says in warnings which
pages it left out, never silently.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pgqueue.extractors.results import Table

if TYPE_CHECKING:
    from pdfplumber.page import Page

# Characters plus drawing objects on one page above which pdfplumber is not started there.
MAX_TABLE_OBJECTS = 200_000
_MINIMUM_ROWS = 2
_MINIMUM_COLUMNS = 2
_MINIMUM_FILLED_SHARE = 0.25


@dataclass
class TableRun:
    tables: list[Table] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_tables(
    path: Path, page_numbers: Sequence[int], deadline: float, object_counts: Mapping[int, int]
) -> TableRun:
    """Tables of the given pages (1-based), stopping at ``deadline`` (``time.monotonic()``)."""
    import pdfplumber

    run = TableRun()
    out_of_time: list[int] = []
    too_dense: list[int] = []
    try:
        document = pdfplumber.open(path, pages=list(page_numbers))
    except Exception as exc:  # pdfplumber refusing a file PDFium read: tables are optional
        run.warnings.append(f"tables could not be read: {type(exc).__name__}: {exc}")
        return run
    with document:
        for page in document.pages:
            number = page.page_number
            if object_counts.get(number, 0) > MAX_TABLE_OBJECTS:
                too_dense.append(number)
                continue
            if time.monotonic() >= deadline:
                out_of_time.append(number)
                continue
            try:
                run.tables.extend(_page_tables(page, number))
            except Exception as exc:  # one unreadable page must not cost the others
                run.warnings.append(
                    f"tables on page {number} could not be read: {type(exc).__name__}: {exc}"
                )
            finally:
                page.close()
    if too_dense:
        run.warnings.append(
            f"tables not searched on page(s) {_pages(too_dense)}: more than "
            f"{MAX_TABLE_OBJECTS:,} characters and drawing objects on the page"
        )
    if out_of_time:
        run.warnings.append(
            f"tables not searched on page(s) {_pages(out_of_time)}: the time budget for "
            "table extraction ran out"
        )
    return run


def _page_tables(page: Page, number: int) -> list[Table]:
    tables: list[Table] = []
    height = float(page.height)
    for found in page.find_tables():
        rows = [[(cell or "").strip() for cell in row] for row in found.extract()]
        if not _is_table(rows):
            continue
        left, top, right, bottom = (float(value) for value in found.bbox)
        tables.append(
            Table(
                headers=rows[0],
                rows=rows[1:],
                page=number,
                num_rows=len(rows) - 1,
                num_columns=max(len(row) for row in rows),
                # pdfplumber measures from the top; results use PDF's bottom-left origin
                bbox=[round(left, 3), round(height - bottom, 3), round(right, 3), round(height - top, 3)],
            )
        )
    return tables


def _is_table(rows: Sequence[Sequence[str]]) -> bool:
    """Ruled boxes that are mostly empty (frames, GD&T feature frames) are not tables."""
    cells = [cell for row in rows for cell in row]
    filled = sum(1 for cell in cells if cell)
    return (
        len(rows) >= _MINIMUM_ROWS
        and max(len(row) for row in rows) >= _MINIMUM_COLUMNS
        and filled >= len(cells) * _MINIMUM_FILLED_SHARE
    )


def _pages(numbers: Sequence[int]) -> str:
    return ", ".join(str(number) for number in numbers)

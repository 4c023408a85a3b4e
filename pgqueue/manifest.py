"""Manifests for bulk back-fills: one job per line, as CSV (with a header) or JSON lines.

Columns / keys: ``filename``, ``file_url``, ``file_size``, ``format`` (required) and
``options`` (a JSON object), ``record_id``, ``field_id``, ``attachment_id``, ``max_retries``
(optional). A manifest is read twice, streaming: once to check every line, once to feed COPY,
so a back-fill of a million lines never sits in memory.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgqueue.enqueue import InvalidJob, JobRequest

REQUIRED = ("filename", "file_url", "file_size", "format")
OPTIONAL = ("options", "record_id", "field_id", "attachment_id", "max_retries")
MAX_ERRORS_KEPT = 1000


class ManifestUnreadable(ValueError):
    """The manifest as a whole cannot be read (missing, empty, bad header)."""


class ManifestMissing(ManifestUnreadable):
    """There is no manifest file at the path given."""


@dataclass(frozen=True)
class BadLine:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ManifestCheck:
    good: int = 0
    bad: int = 0
    errors: list[BadLine] = field(default_factory=list)
    """The first ``MAX_ERRORS_KEPT`` bad lines."""


def kind_of(path: Path) -> str:
    """``csv`` or ``jsonl``: by extension, else by the first character."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    with open(path, encoding="utf-8-sig") as file:
        start = file.read(4096).lstrip()
    return "jsonl" if start.startswith("{") else "csv"


def entries(path: Path) -> Iterator[tuple[int, JobRequest | BadLine]]:
    """Each job line's number and its request, or what is wrong with it."""
    if not path.is_file():
        raise ManifestMissing(f"manifest {path}: no such file")
    if kind_of(path) == "csv":
        yield from _csv_entries(path)
    else:
        yield from _jsonl_entries(path)


def check(path: Path) -> ManifestCheck:
    result = ManifestCheck()
    for _, entry in entries(path):
        if isinstance(entry, BadLine):
            result.bad += 1
            if len(result.errors) < MAX_ERRORS_KEPT:
                result.errors.append(entry)
        else:
            result.good += 1
    if result.good == 0 and result.bad == 0:
        raise ManifestUnreadable(f"manifest {path} holds no jobs")
    return result


def requests(path: Path) -> Iterator[JobRequest]:
    """The good lines' requests (bad lines are skipped: check first)."""
    for _, entry in entries(path):
        if isinstance(entry, JobRequest):
            yield entry


def _csv_entries(path: Path) -> Iterator[tuple[int, JobRequest | BadLine]]:
    with open(path, newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise ManifestUnreadable(f"manifest {path} is empty") from None
        except csv.Error as exc:
            raise ManifestUnreadable(f"manifest {path} line 1: {exc}") from None
        _check_header(path, header)
        line = reader.line_num + 1
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield line, BadLine(line, f"not valid CSV: {exc}")
                line = reader.line_num + 1
                continue
            if any(value.strip() for value in values):
                if len(values) != len(header):
                    yield line, BadLine(
                        line, f"{len(values)} values for {len(header)} columns ({', '.join(header)})"
                    )
                else:
                    yield line, _entry(line, dict(zip(header, values, strict=True)), from_text=True)
            line = reader.line_num + 1


def _jsonl_entries(path: Path) -> Iterator[tuple[int, JobRequest | BadLine]]:
    with open(path, encoding="utf-8-sig") as file:
        for line, text in enumerate(file, start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield line, BadLine(line, f"not valid JSON: {exc.msg} (column {exc.colno})")
                continue
            if not isinstance(value, dict):
                yield line, BadLine(line, f"expected a JSON object, got {type(value).__name__}")
                continue
            unknown = sorted(set(value) - set(REQUIRED) - set(OPTIONAL))
            if unknown:
                yield line, BadLine(line, f"unknown keys {_quoted(unknown)}; {_expected()}")
                continue
            yield line, _entry(line, value, from_text=False)


def _check_header(path: Path, header: list[str]) -> None:
    missing = [name for name in REQUIRED if name not in header]
    unknown = [name for name in header if name not in REQUIRED and name not in OPTIONAL]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    problems = []
    if missing:
        problems.append(f"missing columns {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown columns {_quoted(unknown)}")
    if duplicated:
        problems.append(f"repeated columns {_quoted(duplicated)}")
    if problems:
        raise ManifestUnreadable(
            f"manifest {path} line 1 (the header): {'; '.join(problems)}; {_expected()}"
        )


def _quoted(names: list[str]) -> str:
    """Names taken from the file, quoted, so that what the file holds is told apart."""
    return ", ".join(repr(name) for name in names)


def _expected() -> str:
    return f"expected {', '.join(REQUIRED)} and optionally {', '.join(OPTIONAL)}"


def _entry(line: int, values: Mapping[str, Any], from_text: bool) -> JobRequest | BadLine:
    """A request from one line's values. CSV gives every value as text; JSON gives types."""
    missing = [name for name in REQUIRED if _blank(values.get(name))]
    if missing:
        return BadLine(line, f"missing {', '.join(missing)}")
    fields: dict[str, Any] = {
        "filename": _text(values["filename"]),
        "file_url": _text(values["file_url"]),
        "format": _text(values["format"]).lower(),
    }
    try:
        fields["file_size"] = _integer(values["file_size"], "file_size", from_text)
        if not _blank(values.get("max_retries")):
            fields["max_retries"] = _integer(values["max_retries"], "max_retries", from_text)
        fields["options"] = _options(values.get("options"))
    except ValueError as exc:
        return BadLine(line, str(exc))
    for name in ("record_id", "field_id", "attachment_id"):
        if not _blank(values.get(name)):
            fields[name] = _text(values[name])
    try:
        return JobRequest(**fields)
    except InvalidJob as exc:
        return BadLine(line, str(exc))


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else str(value)


def _integer(value: Any, name: str, from_text: bool) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if from_text and isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _options(value: Any) -> dict[str, Any]:
    if _blank(value):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"options are not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise ValueError(f"options must be a JSON object, got {type(value).__name__}")
    return value

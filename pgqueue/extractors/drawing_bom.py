"""Bills of materials: a header row (POS, PART NO, DESCRIPTION, QTY...) and the rows under it.

Three sources: rows of positioned text (a PDF parts list), the rows of an extracted table, and
tagged values (one DXF block reference per BOM row). Items are keyed by the headers as the
drawing spells them. A row repeated on a later sheet is listed once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from pgqueue.extractors.drawing_text import Row, Segment, normalise_label
from pgqueue.extractors.results import Bom

POSITION_HEADERS = frozenset(("POS", "POSITION", "ITEM", "ITEM NO", "FIND NO"))
QUANTITY_HEADERS = frozenset(("QTY", "QUANTITY", "QTY REQD", "NO REQD", "PCS", "PIECES"))
IDENTITY_HEADERS = POSITION_HEADERS | frozenset(
    ("PART", "PART NO", "PART NUMBER", "DESCRIPTION", "DESC", "NAME", "DESIGNATION")
)
OTHER_HEADERS = frozenset(("MATERIAL", "REMARKS", "NOTES", "STANDARD", "WEIGHT", "SUPPLIER", "UNIT"))
_MINIMUM_HEADERS = 3
# How far the next row may sit below the last one, in row pitches, before the list has ended.
_ROW_GAP_PITCHES = 2.5


def header_kind(text: str) -> str | None:
    name = normalise_label(text)
    if name in QUANTITY_HEADERS:
        return "quantity"
    if name in IDENTITY_HEADERS:
        return "identity"
    if name in OTHER_HEADERS:
        return "other"
    return None


def is_bom_header(texts: Iterable[str]) -> bool:
    """A quantity column, an identifying column, and at least three known headers."""
    kinds = [header_kind(text) for text in texts]
    return (
        "quantity" in kinds
        and "identity" in kinds
        and sum(kind is not None for kind in kinds) >= _MINIMUM_HEADERS
    )


class BomBuilder:
    """Collects items from one or more sources under the first header seen."""

    def __init__(self) -> None:
        self.headers: list[str] = []
        self.items: list[dict[str, str]] = []
        self._seen: set[tuple[tuple[str, str], ...]] = set()

    def add(self, headers: Sequence[str], values: Sequence[str]) -> None:
        if not self.headers:
            self.headers = list(headers)
        item = {header: value.strip() for header, value in zip(headers, values, strict=False)}
        if not any(item.values()):
            return
        key = tuple(sorted(item.items()))
        if key not in self._seen:
            self._seen.add(key)
            self.items.append(item)

    def result(self) -> Bom | None:
        if not self.items:
            return None
        return Bom(headers=self.headers, items=self.items, total_items=len(self.items))


def add_from_table(builder: BomBuilder, rows: Sequence[Sequence[str]]) -> bool:
    """Add a table whose first row is a BOM header; False when it is not a BOM."""
    if len(rows) < 2 or not is_bom_header(rows[0]):
        return False
    headers = [cell.strip() for cell in rows[0]]
    for row in rows[1:]:
        builder.add(headers, row)
    return True


@dataclass(frozen=True)
class _Columns:
    headers: list[Segment]
    boundaries: list[float]  # left edge of each column after the first
    left: float
    right: float

    @classmethod
    def from_header(cls, row: Row) -> _Columns:
        known = [index for index, segment in enumerate(row) if header_kind(segment.text)]
        headers = row[known[0]: known[-1] + 1]
        boundaries = [(before.x1 + after.x0) / 2 for before, after in pairwise(headers)]
        reach = max(segment.height for segment in headers) * 3
        return cls(headers, boundaries, headers[0].x0 - reach, headers[-1].x1 + reach * 10)

    def cells(self, row: Row) -> list[str] | None:
        """The row's text per column, or None when fewer than two columns hold text."""
        cells: list[list[str]] = [[] for _ in self.headers]
        for segment in row:
            if not self.left <= segment.x0 <= self.right:
                continue
            column = sum(1 for boundary in self.boundaries if segment.x0 >= boundary)
            cells[column].append(segment.text.strip())
        if sum(1 for cell in cells if cell) < 2:
            return None
        return [" ".join(cell) for cell in cells]


def add_from_rows(builder: BomBuilder, rows: Sequence[Row]) -> set[int]:
    """Add every parts list found in rows of one page; returns the ids of the segments used."""
    used: set[int] = set()
    for index, row in enumerate(rows):
        if not is_bom_header(segment.text for segment in row):
            continue
        columns = _Columns.from_header(row)
        names = [segment.text.strip() for segment in columns.headers]
        body = _walk(rows, index, columns, step=1) or _walk(rows, index, columns, step=-1)
        if not body:
            continue
        used.update(id(segment) for segment in row)
        for body_row, cells in body:
            builder.add(names, cells)
            used.update(id(segment) for segment in body_row)
    return used


def _walk(rows: Sequence[Row], start: int, columns: _Columns, step: int) -> list[tuple[Row, list[str]]]:
    """Rows under (step 1) or above (step -1) a header, while they stay close and aligned."""
    found: list[tuple[Row, list[str]]] = []
    previous_y = rows[start][0].center_y
    pitch = max(segment.height for segment in columns.headers) * 3
    position = start + step
    while 0 <= position < len(rows):
        row = rows[position]
        gap = abs(row[0].center_y - previous_y)
        if gap > pitch * _ROW_GAP_PITCHES or is_bom_header(segment.text for segment in row):
            break
        cells = columns.cells(row)
        if cells is not None:
            if found:
                pitch = min(pitch, gap)
            found.append((row, cells))
            previous_y = row[0].center_y
        position += step
    return found


def add_from_records(builder: BomBuilder, records: Iterable[Sequence[tuple[str, str]]]) -> None:
    """Add tagged rows (one block reference each), ordered by position number where all have one."""
    rows = [list(record) for record in records if is_bom_header(tag for tag, _ in record)]
    if not rows:
        return

    def position(record: list[tuple[str, str]]) -> tuple[int, float]:
        for tag, value in record:
            if normalise_label(tag) in POSITION_HEADERS and value.strip().isdigit():
                return 0, float(value)
        return 1, 0.0

    if all(position(record)[0] == 0 for record in rows):
        rows.sort(key=position)
    for record in rows:
        builder.add([tag for tag, _ in record], [value for _, value in record])

"""Title blocks: drawing number, title, revision, date... read from labelled text.

Two sources feed the same mapping of labels to fields: ``label -> value`` pairs (DXF block
attributes, ``DRAWING_NO = DWG-1001``) and rows of positioned text (a PDF title block, where the
value is the cell right of its label, or ``MATERIAL: S235JR`` written inline). A title block is
reported when two of its standard fields were found, or one that names the sheet on its own
(drawing number, revision, sheet: ``Rev D`` in a corner); a lone ``DATE`` in a note does not
make one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pgqueue.extractors.drawing_text import Row, Segment, normalise_label
from pgqueue.extractors.results import TitleBlock, empty_title_block

FIELD_LABELS: dict[str, str] = {
    **dict.fromkeys(
        ("DRAWING NO", "DRAWING NUMBER", "DRAWING NR", "DWG NO", "DWG NUMBER", "DWG NR",
         "DOCUMENT NO", "DOCUMENT NUMBER", "DOC NO"),
        "drawing_number",
    ),
    **dict.fromkeys(("TITLE", "DRAWING TITLE", "PART NAME"), "title"),
    **dict.fromkeys(("REV", "REVISION", "REV NO"), "revision"),
    **dict.fromkeys(("DATE", "DRAWN DATE", "ISSUE DATE"), "date"),
    **dict.fromkeys(
        ("AUTHOR", "DRAWN", "DRAWN BY", "DESIGNER", "DESIGNED BY", "CREATED BY"), "author"
    ),
    **dict.fromkeys(("COMPANY", "COMPANY NAME", "ORGANISATION", "ORGANIZATION"), "company"),
    "SCALE": "scale",
    **dict.fromkeys(("SHEET", "SHEET NO"), "sheet"),
    "MATERIAL": "material",
}

# Labels that belong in a title block but have no field of their own: kept in custom_fields.
EXTRA_LABELS = frozenset(
    ("CHECKED", "CHECKED BY", "APPROVED", "APPROVED BY", "SIZE", "WEIGHT", "PROJECT", "FINISH",
     "TOLERANCE", "UNITS", "FORMAT", "CUSTOMER", "PART NO", "PART NUMBER")
)

# Labels whose short value may follow in the same text without a colon: "REV B", "SHEET 1/2".
_SHORT_VALUE_LABELS = ("REVISION", "REV", "SHEET", "SCALE", "DATE")
_SHORT_VALUE = re.compile(
    rf"^({'|'.join(_SHORT_VALUE_LABELS)})\.?\s*:?\s+(\S.{{0,11}})$", re.IGNORECASE
)
_INLINE_PAIR = re.compile(r"(?<![\w-])([A-Z][A-Z#./ ]{0,30}?[A-Z#.])\s*:\s*")
_MONTH = (
    r"(?:JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|SEPT|OCT|NOV|DEC)[A-Z]*\.?"
)
_DATE = re.compile(
    rf"""^(?:
        \d{{4}}-\d{{1,2}}-\d{{1,2}}
      | \d{{1,2}}[./-]\d{{1,2}}[./-]\d{{2,4}}
      | \d{{1,2}}[\s./-]*{_MONTH}[\s./-]*\d{{2,4}}
      | {_MONTH}\s*\d{{1,2}},?\s*\d{{4}}
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
_MINIMUM_FIELDS = 2
# Fields that name a drawing sheet on their own: one of them is a title block.
_SELF_STANDING = frozenset(("drawing_number", "revision", "sheet"))
_MAXIMUM_CUSTOM = 50
_CELL_GAP = 3.0  # text heights between a cell and the next text in its row
_REVISION = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,5}$", re.IGNORECASE)


def field_of(label: str) -> str | None:
    """The standard field a label names, matching its longest known ending (``NOTES MATERIAL``)."""
    words = normalise_label(label).split(" ")
    for start in range(len(words)):
        field = FIELD_LABELS.get(" ".join(words[start:]))
        if field:
            return field
    return None


class _Collector:
    """Fields in the order found: the first value of a field wins."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.custom: dict[str, str] = {}
        self.standing: set[str] = set()  # fields found where only a title block puts them

    def add(self, label: str, value: str, *, keep_unknown: bool, standing: bool = False) -> bool:
        value = value.strip()
        if not value:
            return False
        field = field_of(label)
        if field is not None:
            if field == "revision" and not _REVISION.match(value):
                return False
            if field not in self.fields and standing:
                self.standing.add(field)
            self.fields.setdefault(field, value)
            return True
        name = normalise_label(label)
        if name and (keep_unknown or name in EXTRA_LABELS) and len(self.custom) < _MAXIMUM_CUSTOM:
            self.custom.setdefault(name, value)
            return True
        return False

    def result(self) -> TitleBlock | None:
        if len(self.fields) < _MINIMUM_FIELDS and not _SELF_STANDING & self.standing:
            return None
        block = empty_title_block()
        block.update(self.fields)  # type: ignore[typeddict-item]
        block["custom_fields"] = dict(self.custom)
        return block


def read_title_block(
    pairs: Iterable[tuple[str, str]] = (), rows: Sequence[Row] = ()
) -> TitleBlock | None:
    """A title block from tagged values (DXF attributes) first, then rows of positioned text.

    Unknown attribute tags, and unknown ``KEY: value`` pairs in text, go to custom_fields.
    """
    collector = _Collector()
    for label, value in pairs:
        collector.add(label, value, keep_unknown=True, standing=True)
    labelled_rows = [row for row in rows if _read_row(row, collector)]
    if "date" not in collector.fields:
        _date_near_labels(labelled_rows, collector)
    return collector.result()


def _is_label(text: str) -> bool:
    name = normalise_label(text)
    return name in FIELD_LABELS or name in EXTRA_LABELS


def _read_row(row: Row, collector: _Collector) -> bool:
    """Read the labelled values of one row; True when the row held any."""
    found = False
    index = 0
    while index < len(row):
        text = row[index].text.strip()
        index += 1
        if _is_label(text):
            value = _right_neighbour(row, index - 1)
            if value is not None and collector.add(text, value.text, keep_unknown=False, standing=True):
                found = True
                index += 1
            continue
        short = _SHORT_VALUE.match(text)
        standing = _stands_alone(row, index - 1)
        if short and collector.add(short.group(1), short.group(2), keep_unknown=False, standing=standing):
            found = True
            continue
        found = _read_inline_pairs(text, collector) or found
    return found


def _stands_alone(row: Row, index: int) -> bool:
    """Whether a text stands apart in its row, as in a title block's cell, not in a sentence."""
    segment = row[index]
    reach = max(segment.height, 1.0) * _CELL_GAP
    neighbours = [row[position] for position in (index - 1, index + 1) if 0 <= position < len(row)]
    return all(
        other.x0 - segment.x1 > reach or segment.x0 - other.x1 > reach for other in neighbours
    )


def _right_neighbour(row: Row, index: int) -> Segment | None:
    """The cell right of a label, when it is close and not itself a label."""
    if index + 1 >= len(row):
        return None
    label, candidate = row[index], row[index + 1]
    reach = max(label.height, 1.0) * 25
    if candidate.x0 - label.x1 > reach or _is_label(candidate.text):
        return None
    return candidate


def _read_inline_pairs(text: str, collector: _Collector) -> bool:
    """``KEY: value`` pairs inside one text; a value runs to the next key or a wide gap."""
    found = False
    for chunk in re.split(r"\s{2,}|\n", text):
        matches = list(_INLINE_PAIR.finditer(chunk))
        for position, match in enumerate(matches):
            end = matches[position + 1].start() if position + 1 < len(matches) else len(chunk)
            label = match.group(1)
            if len(normalise_label(label).split(" ")) > 3 and field_of(label) is None:
                continue
            found = collector.add(label, chunk[match.end():end], keep_unknown=True) or found
    return found


def _date_near_labels(rows: Iterable[Row], collector: _Collector) -> None:
    """A title block often shows the date without a label, in a row with other labels."""
    for row in rows:
        for segment in row:
            if _DATE.match(segment.text.strip()):
                collector.add("DATE", segment.text, keep_unknown=False)
                return

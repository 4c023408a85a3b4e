"""What a DXF drawing says: dimensions, text, title block, bill of materials, tables.

Title block and BOM come first from block attributes (a ``TITLE_BLOCK`` insert with
``DRAWING_NO``, ``REV``... attributes; one insert per BOM row with ``POS``, ``PART_NO``, ``QTY``),
then from plain text for what the attributes did not say (``MATERIAL: S235JR``). Label
spellings are shared with the PDF extractor (``drawing_title_block``, ``drawing_bom``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from pgqueue.extractors import dxf_measurements as measurements
from pgqueue.extractors.drawing_bom import BomBuilder, add_from_records, add_from_table
from pgqueue.extractors.drawing_dimensions import normalise_symbols, tolerance_in
from pgqueue.extractors.drawing_text import Segment, group_rows, normalise_label
from pgqueue.extractors.drawing_title_block import field_of, read_title_block
from pgqueue.extractors.dxf_encoding import decoded, entity_text
from pgqueue.extractors.dxf_numbers import number
from pgqueue.extractors.dxf_placements import DIMENSION_KINDS
from pgqueue.extractors.results import Bom, Dimension, Table, TitleBlock

MAX_TEXT_BLOCKS = 5_000
_DIMENSION_TYPES = {
    0: "linear", 1: "linear", 2: "angular", 3: "diameter", 4: "radius", 5: "angular", 6: "ordinate",
}
_SHOWN_TEXT_KINDS = frozenset(("TEXT", "MTEXT", "ATTRIB", "ATTDEF", "MULTILEADER"))
MAX_DIMENSION_WARNINGS = 50
_MEASURED_TEXT = ("", "<>")  # the override that means "show the measured value"
_TITLE_BLOCK_NAMES = ("TITLE", "SCHRIFTFELD", "CARTOUCHE")


def dimension(entity: Any, unit: str | None) -> tuple[Dimension, measurements.Reading]:
    """A dimension's value, type, tolerance and text, and how its value was read (the value
    is None when its readings disagree; see ``dxf_measurements``)."""
    kind = entity.dxftype()
    if kind == "LARGE_RADIAL_DIMENSION":
        dimension_type = "radius"
    elif kind == "ARC_DIMENSION":
        dimension_type = "linear"  # an arc length is a length
    else:
        dimension_type = _DIMENSION_TYPES.get(entity.dimtype, "unknown")
    reading = measurements.read(entity)
    override = decoded(entity.dxf.get("text", "") or "")
    if reading.value is None:
        label = reading.shown
    else:
        label = None if override.strip() in _MEASURED_TEXT else normalise_symbols(override)
    return Dimension(
        value=reading.value,
        unit="deg" if dimension_type == "angular" else unit,
        tolerance=tolerance_in(override) or _style_tolerance(entity),
        dimension_type=dimension_type,
        label=label,
        page=None,
    ), reading


def _style_tolerance(entity: Any) -> str | None:
    """The tolerance a dimension style adds (DIMTOL on: ``+DIMTP/-DIMTM``); None also when
    the style is missing or broken, which costs the tolerance, not the value."""
    try:
        style = entity.override()
        if not style.get("dimtol", 0):
            return None
        plus, minus = number(style.get("dimtp", 0.0)), number(style.get("dimtm", 0.0))
    except Exception:  # a DIMSTYLE the table lacks, or one with unreadable values
        return None
    if plus is None or minus is None:
        return None
    if plus == minus:
        return f"±{plus:g}"
    return f"+{plus:g}/-{minus:g}"


def dimensions(
    entities: Iterable[Any], unit: str | None, errors: list[str], warnings: list[str]
) -> list[Dimension]:
    """Every dimension among ``entities``; one that cannot be read with certainty is kept as
    the text it shows, with value None and a warning."""
    found: list[Dimension] = []
    uncertain = 0
    scales: Counter[float] = Counter()
    for entity in entities:
        if entity.dxftype() not in DIMENSION_KINDS:
            continue
        handle = entity.dxf.get("handle") or "(in a block reference)"
        try:
            measured, reading = dimension(entity, unit)
        except Exception as exc:  # a damaged dimension costs itself only, said in errors
            errors.append(f"dimension {handle} cannot be read: {type(exc).__name__}: {exc}")
            continue
        if measured["value"] == 0 or (measured["value"] is None and measured["label"] is None):
            errors.append(f"dimension {handle} has no measurement (its definition points are missing)")
            continue
        if reading.problem is not None:
            uncertain += 1
            if uncertain <= MAX_DIMENSION_WARNINGS:
                warnings.append(f"dimension {handle} has no certain value: {reading.problem}")
        if reading.shown_scale is not None:
            scales[reading.shown_scale] += 1
        found.append(measured)
    if uncertain > MAX_DIMENSION_WARNINGS:
        warnings.append(f"{uncertain - MAX_DIMENSION_WARNINGS:,} more dimensions have no certain value")
    for scale, count in sorted(scales.items()):
        warnings.append(
            f"{count} dimension(s) show their measurement multiplied by DIMLFAC {scale:g}; "
            "values are the measured lengths in drawing units"
        )
    return found


def text_segments(entities: Iterable[Any]) -> list[Segment]:
    """TEXT, MTEXT and attributes as positioned segments (boxes estimated by ezdxf from font
    metrics), decoded (code pages, ``\\U+`` escapes, MTEXT formatting codes)."""
    boxes = _TextBoxes()
    segments: list[Segment] = []
    for entity in entities:
        kind = entity.dxftype()
        if kind not in _SHOWN_TEXT_KINDS or (kind == "ATTDEF" and not entity.is_const):
            continue
        text = entity_text(entity).strip()
        if not text:
            continue
        if kind == "MULTILEADER":
            height, box = _leader_text_box(entity)
        else:
            height = number(entity.dxf.get("char_height") if kind == "MTEXT" else entity.dxf.get("height"))
            box = boxes.box(entity, height or 0.0)
        if box is not None:
            segments.append(Segment(text, *box, font_size=height))
    return segments


class _TextBoxes:
    """Text boxes from font metrics (ezdxf), each shape measured once.

    Sizing a text costs ezdxf a font lookup and an outline; a drawing repeats the same text in
    the same style many times (every cell of a MINSERT, a label on each hole), and those boxes
    differ only by where they are. Single-line texts in the drawing plane are measured once per
    shape and moved to each insertion point.
    """

    def __init__(self) -> None:
        self._offsets: dict[tuple[Any, ...], tuple[float, float, float, float] | None] = {}

    def box(self, entity: Any, height: float) -> tuple[float, float, float, float] | None:
        key = _shape(entity)
        if key is None:
            return _text_box(entity, height)
        x, y = entity.dxf.insert.x, entity.dxf.insert.y
        if key not in self._offsets:
            measured = _text_box(entity, height)
            self._offsets[key] = None if measured is None else (
                measured[0] - x, measured[1] - y, measured[2] - x, measured[3] - y
            )
        offset = self._offsets[key]
        if offset is None:
            return None
        return x + offset[0], y + offset[1], x + offset[2], y + offset[3]


_SHAPE_ATTRIBUTES = ("text", "style", "height", "width", "rotation", "oblique", "halign", "valign",
                     "text_generation_flag")


def _shape(entity: Any) -> tuple[Any, ...] | None:
    """What a single-line text's box depends on besides its position; None where the box is
    not simply moved with the insertion point (MTEXT, multi-line attributes, tilted planes)."""
    kind = entity.dxftype()
    if kind not in ("TEXT", "ATTRIB", "ATTDEF") or (kind != "TEXT" and entity.has_embedded_mtext_entity):
        return None
    dxf = entity.dxf
    insert = dxf.get("insert")
    if insert is None or tuple(dxf.get("extrusion", (0.0, 0.0, 1.0))) != (0.0, 0.0, 1.0):
        return None
    align = dxf.get("align_point")
    aligned = dxf.get("halign", 0) or dxf.get("valign", 0)  # left/baseline: the point is unused
    to_align = None if align is None or not aligned else tuple(round(value, 9) for value in (align - insert))
    return (kind, to_align, *(dxf.get(name) for name in _SHAPE_ATTRIBUTES))


def _text_box(entity: Any, height: float) -> tuple[float, float, float, float] | None:
    """The text's box from font metrics, else a box of its height at its insertion point."""
    from ezdxf import bbox

    try:
        box = bbox.extents([entity], fast=True)
        if box.has_data:
            return box.extmin.x, box.extmin.y, box.extmax.x, box.extmax.y
    except Exception:  # ezdxf cannot size some damaged or exotic texts; the point still places it
        pass
    insert = entity.dxf.get("insert")
    if insert is None:
        return None
    x, y = number(insert[0]), number(insert[1])
    if x is None or y is None:
        return None
    return x, y, x, y + height


def _leader_text_box(leader: Any) -> tuple[float | None, tuple[float, float, float, float] | None]:
    """A MULTILEADER's text height and a box of that height at the text's insertion point."""
    content = leader.context.mtext
    height = number(leader.context.char_height)
    x, y = number(content.insert.x), number(content.insert.y)
    if x is None or y is None:
        return height, None
    return height, (x, y, x, y + (height or 0.0))


def title_block(inserts: list[Any], segments: list[Segment]) -> TitleBlock | None:
    """From the attributes of a title-block insert, completed from positioned text."""
    chosen = _title_block_insert(inserts)
    pairs = [] if chosen is None else _attributes(chosen)
    return read_title_block(pairs=pairs, rows=group_rows(segments))


def _title_block_insert(inserts: list[Any]) -> Any | None:
    """An insert named like a title block, else the one whose tags name the most fields."""
    for insert in inserts:
        name = normalise_label(insert.dxf.get("name", ""))
        if any(word in name for word in _TITLE_BLOCK_NAMES) and insert.attribs:
            return insert
    best, best_fields = None, 1
    for insert in inserts:
        fields = {field_of(attribute.dxf.tag) for attribute in insert.attribs} - {None}
        if len(fields) > best_fields:
            best, best_fields = insert, len(fields)
    return best


def _attributes(insert: Any) -> list[tuple[str, str]]:
    return [
        (decoded(attribute.dxf.tag), normalise_symbols(entity_text(attribute))) for attribute in insert.attribs
    ]


def bill_of_materials(inserts: list[Any], tables: list[Table]) -> Bom | None:
    builder = BomBuilder()
    add_from_records(builder, (_attributes(insert) for insert in inserts if insert.attribs))
    if builder.result() is None:
        for table in tables:
            add_from_table(builder, [table["headers"], *table["rows"]])
    return builder.result()


def acad_tables(document: Any, entities: Iterable[Any], errors: list[str]) -> list[Table]:
    """ACAD_TABLE content: from the entity's cell data, else from the MTEXT of its block."""
    from ezdxf.entities.acad_table import read_acad_table_content

    found: list[Table] = []
    for entity in entities:
        if entity.dxftype() != "ACAD_TABLE":
            continue
        try:
            rows = [[normalise_symbols(cell) for cell in row] for row in read_acad_table_content(entity)]
        except Exception as exc:  # cell data is loosely specified; the block holds the same text
            errors.append(f"table {entity.dxf.get('handle')} cells cannot be read: {exc}")
            rows = []
        if not any(cell for row in rows for cell in row):
            rows = _rows_from_block(document, entity.dxf.get("geometry", ""))
        if rows:
            found.append(
                Table(
                    headers=rows[0], rows=rows[1:], page=None, num_rows=len(rows) - 1,
                    num_columns=max(len(row) for row in rows), bbox=None,
                )
            )
    return found


def _rows_from_block(document: Any, name: str) -> list[list[str]]:
    block = document.blocks.get(name) if name else None
    if block is None:
        return []
    segments = text_segments(block)
    return [[segment.text for segment in row] for row in group_rows(segments)]

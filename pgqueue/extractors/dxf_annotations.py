"""What a DXF drawing says: dimensions, text, title block, bill of materials, tables.

Title block and BOM come first from block attributes (a ``TITLE_BLOCK`` insert with
``DRAWING_NO``, ``REV``... attributes; one insert per BOM row with ``POS``, ``PART_NO``, ``QTY``),
then from plain text for what the attributes did not say (``MATERIAL: S235JR``). Label
spellings are shared with the PDF extractor (``drawing_title_block``, ``drawing_bom``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pgqueue.extractors.drawing_bom import BomBuilder, add_from_records, add_from_table
from pgqueue.extractors.drawing_dimensions import normalise_symbols, tolerance_in
from pgqueue.extractors.drawing_text import Segment, group_rows, normalise_label
from pgqueue.extractors.drawing_title_block import field_of, read_title_block
from pgqueue.extractors.dxf_entities import number
from pgqueue.extractors.results import Bom, Dimension, Table, TitleBlock

MAX_TEXT_BLOCKS = 5_000
_DIMENSION_TYPES = {
    0: "linear", 1: "linear", 2: "angular", 3: "diameter", 4: "radius", 5: "angular", 6: "ordinate",
}
_DIMENSION_KINDS = frozenset(("DIMENSION", "ARC_DIMENSION", "LARGE_RADIAL_DIMENSION"))
_MEASURED_TEXT = ("", "<>")  # the override that means "show the measured value"
_TITLE_BLOCK_NAMES = ("TITLE", "SCHRIFTFELD", "CARTOUCHE")


def dimension(entity: Any, unit: str | None) -> Dimension | None:
    """A DIMENSION's measured value, type and text override; None when it has no measurement."""
    kind = entity.dxftype()
    measurement = entity.get_measurement()
    value = number(measurement) if not hasattr(measurement, "x") else None
    if value is None:
        value = number(entity.dxf.get("actual_measurement"))
    if value is None:
        return None
    if kind == "LARGE_RADIAL_DIMENSION":
        dimension_type = "radius"
    elif kind == "ARC_DIMENSION":
        dimension_type = "linear"  # an arc length is a length
    else:
        dimension_type = _DIMENSION_TYPES.get(entity.dimtype, "unknown")
    override = entity.dxf.get("text", "")
    label = None if override.strip() in _MEASURED_TEXT else normalise_symbols(override)
    return Dimension(
        value=value,
        unit="deg" if dimension_type == "angular" else unit,
        tolerance=tolerance_in(override) or _style_tolerance(entity),
        dimension_type=dimension_type,
        label=label,
        page=None,
    )


def _style_tolerance(entity: Any) -> str | None:
    """The tolerance a dimension style adds (DIMTOL on: ``+DIMTP/-DIMTM``)."""
    style = entity.override()
    if not style.get("dimtol", 0):
        return None
    plus, minus = number(style.get("dimtp", 0.0)), number(style.get("dimtm", 0.0))
    if plus is None or minus is None:
        return None
    if plus == minus:
        return f"±{plus:g}"
    return f"+{plus:g}/-{minus:g}"


def dimensions(entities: Iterable[Any], unit: str | None, errors: list[str]) -> list[Dimension]:
    found: list[Dimension] = []
    for entity in entities:
        if entity.dxftype() not in _DIMENSION_KINDS:
            continue
        try:
            measured = dimension(entity, unit)
        except Exception as exc:  # a damaged dimension costs itself only, said in errors
            errors.append(f"dimension {entity.dxf.get('handle')} cannot be measured: {exc}")
            continue
        if measured is None or measured["value"] == 0:
            errors.append(
                f"dimension {entity.dxf.get('handle')} has no measurement "
                "(its definition points are missing)"
            )
            continue
        found.append(measured)
    return found


def text_segments(entities: Iterable[Any]) -> list[Segment]:
    """TEXT and MTEXT as positioned segments (boxes estimated by ezdxf from font metrics)."""
    from ezdxf import bbox

    segments: list[Segment] = []
    for entity in entities:
        kind = entity.dxftype()
        if kind not in ("TEXT", "MTEXT"):
            continue
        text = entity.plain_text().strip()
        if not text:
            continue
        height = number(entity.dxf.get("height") if kind == "TEXT" else entity.dxf.get("char_height"))
        box = _text_box(bbox, entity, height or 0.0)
        if box is not None:
            segments.append(Segment(text, *box, font_size=height))
    return segments


def _text_box(bbox: Any, entity: Any, height: float) -> tuple[float, float, float, float] | None:
    """The text's box from font metrics, else a box of its height at its insertion point."""
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
    return [(attribute.dxf.tag, normalise_symbols(attribute.dxf.text)) for attribute in insert.attribs]


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

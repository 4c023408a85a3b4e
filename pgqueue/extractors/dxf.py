"""DXF drawings: layers, blocks, dimensions, text, title block, BOM, tables and entities.

The file is checked before ezdxf reads it (``dxf_checks``): DWG is refused, and so is any file
that is not a whole DXF. ``layer_filter`` narrows what is read from the drawing's entities
(``entities``, ``geometry_summary``, ``dimensions``, ``text_blocks``, tables); the layer table,
block definitions, title block, BOM and metadata describe the whole drawing and ignore it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field

from pgqueue.extractors.drawing_text import Segment
from pgqueue.extractors.options import OptionsModel, parse_options
from pgqueue.extractors.results import Block, Layer, Table, cad_result, geometry_summary

T = TypeVar("T")


class Options(OptionsModel):
    """Options of a ``dxf`` job."""

    layers: bool = Field(True, description="List the layer table with entity counts.")
    blocks: bool = Field(True, description="List named block definitions with insert counts.")
    dimensions: bool = Field(True, description="Read DIMENSION entities and their measurements.")
    text: bool = Field(True, description="Return TEXT and MTEXT as text_blocks.")
    title_block: bool = Field(True, description="Read the title block (attributes, then text).")
    layer_filter: list[str] | None = Field(
        None, min_length=1, description="Only entities on these layers (names, any case)."
    )


def extract(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    chosen = parse_options(Options, options)
    from pgqueue.extractors import dxf_annotations as annotations
    from pgqueue.extractors import dxf_document as drawing
    from pgqueue.extractors.dxf_checks import open_drawing
    from pgqueue.extractors.dxf_entities import MAX_ENTITIES, layer_key, layout_entities, scan
    from pgqueue.extractors.dxf_placements import Placements

    opened = open_drawing(path)
    document = opened.document
    errors, warnings = opened.errors, opened.warnings
    if not opened.has_header:
        warnings.append("the DXF has no HEADER section: its version and units are not stated")
    wanted = _wanted_layers(document, chosen.layer_filter, warnings)

    every = list(layout_entities(document, None))
    chosen_pairs = every if wanted is None else [
        (layout, entity) for layout, entity in every if layer_key(entity) in wanted
    ]
    graphics = [entity for _, entity in chosen_pairs]
    scanned = scan(chosen_pairs)
    if scanned.total > MAX_ENTITIES:
        warnings.append(f"entities lists the first {MAX_ENTITIES:,} of {scanned.total:,} entities")

    guard = _Guard(errors)
    placements = Placements(document, warnings)
    all_shown: list[Any] = guard(
        "block references", lambda: list(placements.annotations(entity for _, entity in every)), []
    )
    shown = all_shown if wanted is None else guard(
        "block references", lambda: list(placements.annotations(graphics)), []
    )
    all_text: list[Segment] = guard("text", lambda: annotations.text_segments(all_shown), [])
    text: list[Segment] = all_text if wanted is None else guard(
        "text", lambda: annotations.text_segments(shown), []
    )
    if chosen.text and len(text) > annotations.MAX_TEXT_BLOCKS:
        warnings.append(
            f"text_blocks holds the first {annotations.MAX_TEXT_BLOCKS:,} of {len(text):,} texts"
        )
    inserts = [entity for _, entity in every if entity.dxftype() == "INSERT"]
    tables: list[Table] = guard(
        "tables", lambda: annotations.acad_tables(document, graphics, errors), []
    )
    layer_counts = Counter(layer_key(entity) for _, entity in every)
    unit = drawing.unit_of(document, opened.has_header)
    layers: list[Layer] = (
        guard("layers", lambda: drawing.layers(document, layer_counts), []) if chosen.layers else []
    )
    blocks: list[Block] = (
        guard("blocks", lambda: drawing.blocks(document, drawing.insert_counts(document)), [])
        if chosen.blocks else []
    )

    result = cad_result()
    result.update(
        layers=layers,
        blocks=blocks,
        dimensions=annotations.dimensions(shown, unit, errors, warnings) if chosen.dimensions else [],
        text_blocks=[segment.text_block() for segment in text[: annotations.MAX_TEXT_BLOCKS]]
        if chosen.text else [],
        title_block=guard("title block", lambda: annotations.title_block(inserts, all_text), None)
        if chosen.title_block else None,
        bom=guard("bill of materials", lambda: annotations.bill_of_materials(inserts, tables), None),
        tables=tables,
        geometry_summary=geometry_summary(dict(scanned.counts)),
        entities=scanned.entities,
        metadata=drawing.metadata(document, len(every), opened.has_header, warnings, opened.encoding),
        errors=errors,
        warnings=warnings,
    )
    return result


class _Guard:
    """Runs one part of the extraction; a part that fails costs that part, said in ``errors``.

    ezdxf reads drawings from many writers, and some lack what a part needs (a DIMENSION
    without its block, a table without cells). The rest of the drawing is still worth having.
    """

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors

    def __call__(self, part: str, read: Callable[[], T], default: T) -> T:
        try:
            return read()
        except Exception as exc:  # any library failure on one part; see the class docstring
            self.errors.append(f"{part} could not be read: {type(exc).__name__}: {exc}")
            return default


def _wanted_layers(document: Any, names: list[str] | None, warnings: list[str]) -> frozenset[str] | None:
    if names is None:
        return None
    from pgqueue.extractors.dxf_encoding import decoded

    wanted = frozenset(name.upper() for name in names)
    known = {decoded(layer.dxf.name).upper() for layer in document.layers}
    missing = sorted(wanted - known)
    if missing:
        warnings.append("layer_filter names layers the drawing does not have: " + ", ".join(missing))
    return wanted

"""Shapes of extraction results, following PyBase's extraction schemas.

Results are plain dicts (they go straight into a ``jsonb`` column); these TypedDicts say what
keys each item has, so every extractor builds the same shapes and the web app can show them
without translation. Coordinates are in the file's own units; ``bbox`` is ``[x0, y0, x1, y1]``.
"""

from __future__ import annotations

from typing import Any, TypedDict


class Table(TypedDict):
    headers: list[str]
    rows: list[list[str]]
    page: int | None
    num_rows: int
    num_columns: int
    bbox: list[float] | None


class Dimension(TypedDict):
    value: float | None  # None: the text is shown but cannot be read with certainty
    unit: str | None
    tolerance: str | None
    dimension_type: str  # linear, diameter, radius, angular, ordinate, unknown
    label: str | None
    page: int | None


class TextBlock(TypedDict):
    text: str
    page: int | None
    bbox: list[float] | None
    font_size: float | None


class TitleBlock(TypedDict):
    drawing_number: str | None
    title: str | None
    revision: str | None
    date: str | None
    author: str | None
    company: str | None
    scale: str | None
    sheet: str | None
    material: str | None
    custom_fields: dict[str, str]


class Layer(TypedDict):
    name: str
    color: int | None
    linetype: str | None
    is_on: bool
    is_frozen: bool
    is_locked: bool
    entity_count: int


class Block(TypedDict):
    name: str
    insert_count: int
    attributes: list[str]
    entity_count: int


class Bom(TypedDict):
    headers: list[str]
    items: list[dict[str, str]]
    total_items: int


class GeometrySummary(TypedDict):
    counts: dict[str, int]  # entity counts by kind
    total: int


def empty_title_block() -> TitleBlock:
    return TitleBlock(
        drawing_number=None, title=None, revision=None, date=None, author=None, company=None,
        scale=None, sheet=None, material=None, custom_fields={},
    )


def geometry_summary(counts: dict[str, int]) -> GeometrySummary:
    return GeometrySummary(counts=dict(sorted(counts.items())), total=sum(counts.values()))


def cad_result() -> dict[str, Any]:
    """The keys every dxf, ifc and step result has, empty."""
    return {
        "layers": [], "blocks": [], "dimensions": [], "text_blocks": [],
        "title_block": None, "geometry_summary": geometry_summary({}), "entities": [],
        "metadata": {}, "errors": [], "warnings": [],
    }

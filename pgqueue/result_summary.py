"""One line on what an extraction found, for the demo's table and ``pgqueue jobs show``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _count(number: int, word: str, plural: str | None = None) -> str:
    return f"{number} {word}" if number == 1 else f"{number} {plural or word + 's'}"


def summarize(result: Mapping[str, Any]) -> str:
    """One line on what an extraction found, e.g. ``2 pages, 2 tables, 3 dimensions``."""
    parts: list[str] = []
    metadata = result.get("metadata") or {}
    if isinstance(metadata.get("pages"), int):
        parts.append(_count(metadata["pages"], "page"))
    if isinstance(result.get("schema"), str):
        parts.append(result["schema"])
    for key, word in (("tables", "table"), ("dimensions", "dimension"), ("layers", "layer"),
                      ("products", "product")):
        items = result.get(key)
        if isinstance(items, list) and items:
            parts.append(_count(len(items), word))
    elements = result.get("element_counts")
    if isinstance(elements, dict) and elements:
        parts.append(_count(sum(elements.values()), "building element"))
    geometry = result.get("geometry_summary")
    if "element_counts" not in result and "products" not in result and isinstance(geometry, dict) \
            and geometry.get("total"):
        parts.append(_count(int(geometry["total"]), "entity", "entities"))
    title = result.get("title_block")
    if isinstance(title, dict) and title.get("drawing_number"):
        parts.append(f"drawing {title['drawing_number']}")
    bom = result.get("bom")
    if isinstance(bom, dict) and bom.get("total_items"):
        parts.append(f"BOM of {_count(int(bom['total_items']), 'item')}")
    warnings = result.get("warnings")
    if isinstance(warnings, list) and warnings:
        parts.append(_count(len(warnings), "warning"))
    return ", ".join(parts) or "nothing found"

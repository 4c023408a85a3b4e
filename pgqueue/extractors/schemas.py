"""The options and results of each built-in format, in forms programs can check.

``options_schema(fmt)`` is the JSON Schema of a format's options (from its pydantic model);
``options_problem(fmt, options)`` checks options the way the extractor will, so enqueue can
refuse bad options before anything is written. ``RESULT_KEYS`` lists the top-level keys of each
format's result. ``docs/extraction-schemas.json`` holds all of it; a test keeps it current.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from pgqueue.errors import InvalidOptions
from pgqueue.extractors.options import OptionsModel, parse_options

OPTIONS_MODELS: dict[str, str] = {
    "pdf": "pgqueue.extractors.pdf:Options",
    "dxf": "pgqueue.extractors.dxf:Options",
    "ifc": "pgqueue.extractors.ifc:Options",
    "step": "pgqueue.extractors.step:Options",
    "werk24": "pgqueue.extractors.werk24:Options",
}

_CAD = ["layers", "blocks", "dimensions", "text_blocks", "title_block", "geometry_summary",
        "entities", "metadata", "errors", "warnings"]
RESULT_KEYS: dict[str, list[str]] = {
    "pdf": ["tables", "dimensions", "text_blocks", "title_block", "bom", "metadata", "errors",
            "warnings"],
    "dxf": [*_CAD, "bom", "tables"],
    "ifc": [*_CAD, "schema", "units", "spatial_structure", "element_counts", "property_sets",
            "quantities"],
    "step": [*_CAD, "schema", "header", "products", "assembly", "units", "entity_counts",
             "geometry"],
    "werk24": ["dimensions", "gdt_annotations", "threads", "surface_finishes", "materials",
               "title_block", "metadata", "errors", "warnings"],
}


def options_model(fmt: str) -> type[OptionsModel] | None:
    target = OPTIONS_MODELS.get(fmt)
    if target is None:
        return None
    module_name, _, attribute = target.partition(":")
    model: type[OptionsModel] = getattr(importlib.import_module(module_name), attribute)
    return model


def options_problem(fmt: str, options: Mapping[str, Any]) -> str | None:
    """Why ``options`` are invalid for ``fmt``, or None (also for formats without a model)."""
    model = options_model(fmt)
    if model is None:
        return None
    try:
        parse_options(model, options)
    except InvalidOptions as exc:
        return str(exc)
    return None


def options_schema(fmt: str) -> dict[str, Any]:
    model = options_model(fmt)
    if model is None:
        raise KeyError(f"no options model for format {fmt!r}")
    return model.model_json_schema()


def all_schemas() -> dict[str, Any]:
    return {
        fmt: {"options": options_schema(fmt), "result_keys": RESULT_KEYS[fmt]}
        for fmt in OPTIONS_MODELS
    }

"""The drawing's graphic entities: where they are, what they are, how many of each.

Entities are read from the model space and every paper space layout. The ``entities`` list is
bounded (a drawing can hold millions); counts are not. Coordinates that are not finite numbers
(a damaged file can hold NaN or 1e999) are reported as None rather than breaking the result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pgqueue.extractors.dxf_encoding import decoded, entity_text
from pgqueue.extractors.dxf_measurements import read as read_dimension
from pgqueue.extractors.dxf_numbers import number, point

MAX_ENTITIES = 1_000
MAX_POINTS = 200


@dataclass
class EntityScan:
    entities: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    total: int = 0


def layout_entities(document: Any, layers: frozenset[str] | None) -> Iterator[tuple[str, Any]]:
    """``(layout name, entity)`` over model and paper space, only on ``layers`` (upper case) if set."""
    for layout in document.layouts:
        for entity in layout:
            if layers is None or layer_key(entity) in layers:
                yield decoded(layout.name), entity


def layer_key(entity: Any) -> str:
    """The entity's layer name as decoded text in upper case (layer names ignore case)."""
    return decoded(entity.dxf.get("layer", "0")).upper()


def scan(entities: Iterable[tuple[str, Any]]) -> EntityScan:
    result = EntityScan()
    for layout, entity in entities:
        kind = entity.dxftype()
        result.counts[kind] += 1
        result.total += 1
        if len(result.entities) < MAX_ENTITIES:
            record: dict[str, Any] = {
                "type": kind,
                "layer": decoded(entity.dxf.get("layer", "0")),
                "handle": entity.dxf.get("handle"),
                "layout": layout,
            }
            describe = _GEOMETRY.get(kind)
            if describe is not None:
                try:
                    record.update(describe(entity))
                except Exception:  # damaged entity data: the entity is listed, not described
                    record["geometry_error"] = True
            result.entities.append(record)
    return result


def _line(entity: Any) -> dict[str, Any]:
    return {"start": point(entity.dxf.get("start")), "end": point(entity.dxf.get("end"))}


def _circle(entity: Any) -> dict[str, Any]:
    return {"center": point(entity.dxf.get("center")), "radius": number(entity.dxf.get("radius"))}


def _arc(entity: Any) -> dict[str, Any]:
    return {
        **_circle(entity),
        "start_angle": number(entity.dxf.get("start_angle")),
        "end_angle": number(entity.dxf.get("end_angle")),
    }


def _lwpolyline(entity: Any) -> dict[str, Any]:
    points = list(entity.get_points("xy"))
    return {
        "points": [point(vertex) for vertex in points[:MAX_POINTS]],
        "point_count": len(points),
        "closed": bool(entity.closed),
    }


def _polyline(entity: Any) -> dict[str, Any]:
    vertices = [vertex.dxf.location for vertex in entity.vertices]
    return {
        "points": [point(vertex) for vertex in vertices[:MAX_POINTS]],
        "point_count": len(vertices),
        "closed": bool(entity.is_closed),
    }


def _text(entity: Any) -> dict[str, Any]:
    return {
        "text": entity_text(entity),
        "insert": point(entity.dxf.get("insert")),
        "height": number(entity.dxf.get("height") or entity.dxf.get("char_height")),
    }


def _insert(entity: Any) -> dict[str, Any]:
    return {
        "name": decoded(entity.dxf.get("name", "")),
        "insert": point(entity.dxf.get("insert")),
        "rotation": number(entity.dxf.get("rotation", 0.0)),
        "scale": [
            number(entity.dxf.get(name, 1.0)) for name in ("xscale", "yscale", "zscale")
        ],
    }


def _point_entity(entity: Any) -> dict[str, Any]:
    return {"location": point(entity.dxf.get("location"))}


def _ellipse(entity: Any) -> dict[str, Any]:
    return {
        "center": point(entity.dxf.get("center")),
        "major_axis": point(entity.dxf.get("major_axis")),
        "ratio": number(entity.dxf.get("ratio")),
    }


def _spline(entity: Any) -> dict[str, Any]:
    return {"degree": entity.dxf.get("degree"), "control_point_count": len(entity.control_points)}


def _hatch(entity: Any) -> dict[str, Any]:
    return {"pattern": entity.dxf.get("pattern_name"), "solid": bool(entity.dxf.get("solid_fill"))}


def _dimension(entity: Any) -> dict[str, Any]:
    reading = read_dimension(entity)
    return {"measurement": reading.value, "shown": reading.shown}


_GEOMETRY: dict[str, Callable[[Any], dict[str, Any]]] = {
    "LINE": _line, "CIRCLE": _circle, "ARC": _arc, "LWPOLYLINE": _lwpolyline,
    "POLYLINE": _polyline, "TEXT": _text, "MTEXT": _text, "INSERT": _insert,
    "POINT": _point_entity, "ELLIPSE": _ellipse, "SPLINE": _spline, "HATCH": _hatch,
    "DIMENSION": _dimension, "ARC_DIMENSION": _dimension, "LARGE_RADIAL_DIMENSION": _dimension,
}

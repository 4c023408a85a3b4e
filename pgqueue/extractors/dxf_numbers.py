"""Numbers and points read from a DXF, as finite floats or None.

A damaged file can hold NaN or 1e999 where a coordinate belongs; results carry None there
rather than breaking JSON or comparisons.
"""

from __future__ import annotations

import math
from typing import Any


def number(value: Any) -> float | None:
    try:
        converted = float(value)
    except (TypeError, ValueError):
        return None
    return round(converted, 6) if math.isfinite(converted) else None


def point(value: Any) -> list[float | None] | None:
    if value is None:
        return None
    return [number(coordinate) for coordinate in tuple(value)[:3]]

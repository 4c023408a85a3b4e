"""A DIMENSION's value, taken only when three readings of it agree.

A dimension says its value three ways: the geometry of its definition points (measured by
ezdxf), the ``actual_measurement`` the writing CAD program stored (group 42, radians for
angles) and the text the drawing displays (in the dimension's ``*D`` block, or the override).
ezdxf measures some kinds wrongly (an angle's other side: 270° for 90°; an ARC_DIMENSION's
angle for its length) and cannot measure others (LARGE_RADIAL_DIMENSION). So the value is the
measured one, else the stored one, and only when the others that exist agree with it; when
they disagree the value is None and the reading says what the drawing shows and why.
A text that shows the value times the style's DIMLFAC agrees too (a drawing in metres dimensioned
in centimetres, a detail drawn at 2:1); the value stays the measured length, as ezdxf gives it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from pgqueue.extractors.dxf_encoding import entity_text, mtext_plain
from pgqueue.extractors.dxf_numbers import number

_ANGULAR_TYPES = frozenset((2, 5))  # 2-line and 3-point angular: group 42 in radians
_MEASURED_PLACEHOLDER = "<>"
_SAME = 1e-6  # relative difference between two readings of one value that still agrees
# The first number a dimension text shows: "Ø6.1788", "R3.0894", "90°", ".30", "12,5", "1 1/2"
_SHOWN_NUMBER = re.compile(
    r"(?P<whole>\d+)[ -](?P<numerator>\d+)/(?P<denominator>\d+)"
    r"|(?P<fraction_numerator>\d+)/(?P<fraction_denominator>\d+)"
    r"|(?P<decimal>\d*[.,]\d+|\d+)"
)
_FEET = re.compile(r"\d\s*'")  # architectural feet-inch text: not compared
_COUNT_PREFIX = re.compile(r"^\s*\d+\s*[xX]\s*")  # "4X Ø10": four holes, not the number 4


@dataclass(frozen=True)
class Reading:
    """A dimension's value (None when not certain), the text it shows, and why it is None."""

    value: float | None
    shown: str | None
    problem: str | None = None
    shown_scale: float | None = None  # the DIMLFAC the text shows the value multiplied by


def read(entity: Any) -> Reading:
    measured, measure_problem = _measured(entity)
    stored = _stored(entity)
    shown = shown_text(entity)
    value = measured if measured is not None else stored
    if value is None:
        return Reading(None, shown, measure_problem or "it states no measurement")
    if measured is not None and stored is not None and not _agree(measured, stored):
        return Reading(
            None, shown,
            f"ezdxf measures {measured:g} but the file stores {stored:g}"
            + (f" and the drawing shows {shown!r}" if shown else ""),
        )
    if shown is None or shows(shown, value):
        return Reading(value, shown)
    scale = _length_factor(entity)
    if scale != 1.0 and shows(shown, value * scale):
        return Reading(value, shown, shown_scale=scale)
    return Reading(None, shown, f"the drawing shows {shown!r} but the dimension measures {value:g}")


def _length_factor(entity: Any) -> float:
    """DIMLFAC, by which the text shows a length (not an angle) multiplied; 1 when the
    dimension style is missing or broken."""
    if entity.dxftype() == "DIMENSION" and entity.dimtype in _ANGULAR_TYPES:
        return 1.0
    try:
        factor = number(entity.override().get("dimlfac", 1.0))
    except Exception:  # a DIMSTYLE the table lacks: the text is compared unscaled
        return 1.0
    return factor if factor else 1.0


def _measured(entity: Any) -> tuple[float | None, str | None]:
    try:
        measurement = entity.get_measurement()
    except Exception as exc:  # unknown dimension types, missing definition points
        return None, f"ezdxf cannot measure it ({type(exc).__name__}: {exc})"
    if hasattr(measurement, "x"):  # ordinate: a vector to the feature, the value is stored
        return None, None
    return number(measurement), None


def _stored(entity: Any) -> float | None:
    stored = number(entity.dxf.get("actual_measurement"))
    if stored is None:
        return None
    if entity.dxftype() == "DIMENSION" and entity.dimtype in _ANGULAR_TYPES:
        return number(math.degrees(stored))
    return stored


def _agree(first: float, second: float) -> bool:
    return abs(first - second) <= _SAME * max(abs(first), abs(second), 1.0)


def shown_text(entity: Any) -> str | None:
    """The text the dimension displays: its override, else the text of its ``*D`` block."""
    override = entity.dxf.get("text", "") or ""
    if override.strip() and _MEASURED_PLACEHOLDER not in override:
        return mtext_plain(override).strip() or None
    block_name = entity.dxf.get("geometry")
    block = entity.doc.blocks.get(block_name) if block_name and entity.doc else None
    # a dimension placed out of a block reference is a copy holding its block's content
    content = block if block is not None else entity.virtual_entities()
    texts = [entity_text(item).strip() for item in content if item.dxftype() in ("MTEXT", "TEXT")]
    joined = " ".join(text for text in texts if text)
    return joined or None


def shown_number(shown: str) -> tuple[float, float] | None:
    """The first number in a dimension text and half a unit of its last shown digit."""
    if _FEET.search(shown):
        return None
    match = _SHOWN_NUMBER.search(_COUNT_PREFIX.sub("", shown))
    if match is None:
        return None
    if match["whole"] is not None:
        denominator = int(match["denominator"])
        if denominator == 0:
            return None
        return int(match["whole"]) + int(match["numerator"]) / denominator, 0.5 / denominator
    if match["fraction_numerator"] is not None:
        denominator = int(match["fraction_denominator"])
        if denominator == 0:
            return None
        return int(match["fraction_numerator"]) / denominator, 0.5 / denominator
    digits = match["decimal"].replace(",", ".")
    decimals = len(digits.partition(".")[2])
    return float(digits), 0.5 * 10.0 ** -decimals


def shows(shown: str, value: float) -> bool:
    """Whether a dimension text shows ``value`` (rounded to the digits it shows); a text
    without a number to compare (``TYP``, feet and inches) does not contradict it."""
    found = shown_number(shown)
    if found is None:
        return True
    number_shown, half_unit = found
    return abs(abs(value) - number_shown) <= half_unit + 1e-9 * max(1.0, abs(value))

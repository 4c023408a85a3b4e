"""Dimension callouts read from drawing text: ``Ø12``, ``R5``, ``45°``, ``120 ±0.1``, ``25 mm``.

A text counts as a dimension only when the whole text is one callout and it carries a marker
(a diameter, radius or thread symbol, a degree sign, a unit or a tolerance). A bare number is
left alone: on a drawing it is as often a quantity, a position or a sheet number.
"""

from __future__ import annotations

import re

from pgqueue.extractors.results import Dimension

# AutoCAD control codes and look-alike glyphs, folded into one spelling before matching.
_SYMBOLS = (
    ("%%c", "Ø"), ("%%C", "Ø"), ("%%d", "°"), ("%%D", "°"), ("%%p", "±"), ("%%P", "±"),
    ("⌀", "Ø"), ("∅", "Ø"), ("ø", "Ø"), ("+/-", "±"), ("+-", "±"), ("\u2212", "-"), ("\u2013", "-"),
    ("\u00a0", " "),
)

_NUMBER = r"(?:\d+(?:[.,]\d+)?|[.,]\d+)"
_UNIT = r"(?:mm|cm|µm|μm|um|m|in|\")"
_CALLOUT = re.compile(
    rf"""
    ^\(?\s*
    (?:(?P<count>\d+)\s*[xX\u00d7]\s*)?
    (?P<symbol>SØ|SR|Ø|R|M)?\s*
    (?P<value>{_NUMBER})
    \s*(?P<degree>°)?
    \s*(?P<unit>{_UNIT})?
    \s*(?P<tolerance>
        ±\s*{_NUMBER}°?
      | \+\s*{_NUMBER}°?\s*/?\s*-\s*{_NUMBER}°?
      | [A-Za-z]{{1,2}}\d{{1,2}}(?:/[A-Za-z]{{1,2}}\d{{1,2}})?
    )?
    \s*(?P<unit_after>{_UNIT})?
    \s*\)?$
    """,
    re.VERBOSE,
)

_TOLERANCE = re.compile(rf"±\s*{_NUMBER}|\+\s*{_NUMBER}\s*/?\s*-\s*{_NUMBER}")
_SPACES = re.compile(r"\s+")

_TYPE_BY_SYMBOL = {"Ø": "diameter", "SØ": "diameter", "M": "diameter", "R": "radius", "SR": "radius"}
_UNIT_NAMES = {"μm": "µm", "um": "µm", '"': "in"}


def normalise_symbols(text: str) -> str:
    for code, symbol in _SYMBOLS:
        text = text.replace(code, symbol)
    return text.strip()


def parse_callout(text: str, page: int | None = None, default_unit: str | None = None) -> Dimension | None:
    """The dimension ``text`` states, or None when it is not a dimension callout."""
    cleaned = _SPACES.sub(" ", normalise_symbols(text))
    if not cleaned or len(cleaned) > 40:
        return None
    match = _CALLOUT.match(cleaned)
    if match is None:
        return None
    symbol, degree, tolerance = match["symbol"], match["degree"], match["tolerance"]
    unit = match["unit"] or match["unit_after"]
    if not (symbol or degree or unit or tolerance):
        return None
    if degree:
        dimension_type, unit = "angular", "deg"
    else:
        dimension_type = _TYPE_BY_SYMBOL.get(symbol or "", "linear")
        unit = _UNIT_NAMES.get(unit, unit) if unit else default_unit
    return Dimension(
        value=float(match["value"].replace(",", ".")),
        unit=unit,
        tolerance=_SPACES.sub("", tolerance) if tolerance else None,
        dimension_type=dimension_type,
        label=cleaned,
        page=page,
    )


def tolerance_in(text: str) -> str | None:
    """The tolerance written in a dimension's text override, e.g. ``'<> ±0.1'`` -> ``'±0.1'``."""
    found = _TOLERANCE.search(normalise_symbols(text))
    return _SPACES.sub("", found.group(0)) if found else None

"""Dimension callouts read from drawing text: ``Ø12``, ``R5``, ``45°``, ``120 ±0.1``, ``25 mm``.

A callout counts as a dimension only when it carries a marker (a diameter, radius or thread
symbol, a degree sign, a unit or a tolerance). A bare number is left alone: on a drawing it is
as often a quantity, a position or a sheet number. ``parse_callout`` reads a text that is one
callout; ``find_callouts`` finds each callout in a line of text (``4X Ø.173 +.005 -.001``,
two callouts side by side).

Never a wrong value: a number is read only whole, from its first digit to its last (``.875``
is never ``.8``, ``.173`` never ``3``). A callout whose reading is not certain (joined to other
letters, a comma that may group thousands) is reported with ``value: None`` and the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgqueue.extractors.results import Dimension

# AutoCAD control codes and look-alike glyphs, folded into one spelling before matching.
_SYMBOLS = (
    ("%%c", "Ø"), ("%%C", "Ø"), ("%%d", "°"), ("%%D", "°"), ("%%p", "±"), ("%%P", "±"),
    ("⌀", "Ø"), ("∅", "Ø"), ("ø", "Ø"), ("+/-", "±"), ("+-", "±"), ("\u2212", "-"), ("\u2013", "-"),
    ("\u00a0", " "),
)

_NUMBER = r"(?:\d+(?:[.,]\d+)?|[.,]\d+)(?![.,]?\d)"
_UNIT = r"(?:mm|cm|µm|μm|um|m|in|\")"
# ISO 286 fit letters (H7, g6, JS9): I, L, O, Q and W are not used; x is read as "times".
_FIT = r"[A-HJKMNPR-VYZa-hjkmnpr-vyz]"
_CALLOUT_BODY = rf"""
    (?:(?P<count>\d+)\s*[xX\u00d7]\s*)?
    (?P<symbol>SØ|SR|Ø|R|M)?\s*
    (?P<value>{_NUMBER})
    \s*(?P<degree>°)?
    \s*(?P<unit>{_UNIT})?
    \s*(?P<tolerance>
        ±\s*{_NUMBER}°?
      | \+\s*{_NUMBER}°?\s*/?\s*-\s*{_NUMBER}°?
      | {_FIT}{{1,2}}\d{{1,2}}(?:/{_FIT}{{1,2}}\d{{1,2}})?
    )?
    \s*(?P<unit_after>{_UNIT}(?![A-Za-z]))?
    """
_CALLOUT = re.compile(rf"^\(?\s*{_CALLOUT_BODY}\s*\)?$", re.VERBOSE)
# In a line: a callout ends where its word ends; where it starts is checked in code.
_CALLOUT_IN_LINE = re.compile(rf"{_CALLOUT_BODY}(?![A-Za-z0-9])", re.VERBOSE)
_JOINABLE = re.compile(r"[^\s(]")
# A sign drawn in a symbol font may come out as one or two letters joined to the number
# (a depth or counterbore sign read as 'x' or 'v'); more than that is a word.
_MAXIMUM_JOINED = 2
# A comma before exactly three digits may group thousands (1,250) or mark decimals.
_THOUSANDS = re.compile(r"^\d{1,3},\d{3}$")

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
    if match is None or not _has_marker(match):
        return None
    dimension = _dimension(match, cleaned, page, default_unit)
    return None if dimension["value"] is None else dimension


@dataclass(frozen=True)
class Callout:
    """A callout found in a line: its dimension, and why its value is None when it is."""

    dimension: Dimension
    doubt: str | None = None


def find_callouts(text: str, page: int | None = None, default_unit: str | None = None) -> list[Callout]:
    """Every callout in a line of text, left to right."""
    line = _SPACES.sub(" ", normalise_symbols(text))
    found: list[Callout] = []
    position = 0
    while position < len(line):
        match = _CALLOUT_IN_LINE.search(line, position)
        if match is None:
            break
        position = max(match.end(), match.start() + 1)
        if not _has_marker(match):
            continue
        begin = start = match.start() + len(match.group()) - len(match.group().lstrip())
        while start > 0 and _JOINABLE.match(line[start - 1]):
            start -= 1
        if start < begin and not _may_be_joined(match, begin - start):
            continue  # inside a word or a part number (ISO4762-M6x16, 85 FR 63561)
        label = line[start:match.end()].strip()
        dimension = _dimension(match, label, page, default_unit)
        doubt = None
        if start < begin:
            doubt = f"the number is joined to '{line[start:begin]}', which is not a known sign"
        elif dimension["value"] is None:
            doubt = "its comma may separate decimals or group thousands"
        if doubt:
            dimension["value"] = None
        found.append(Callout(dimension, doubt))
    return found


def _may_be_joined(match: re.Match[str], joined: int) -> bool:
    """Whether a callout with ``joined`` characters run into it from the left may still be
    one: its own sign or number must start it (not a letter such as R or M, which would then
    be the end of a word), and more than a fit class must mark it."""
    if joined > _MAXIMUM_JOINED or match["count"] is not None or match["symbol"] in ("R", "M", "SR"):
        return False
    return any(match[name] for name in ("symbol", "degree", "unit", "unit_after")) or (
        match["tolerance"] is not None and match["tolerance"][0] in "±+"
    )


def _has_marker(match: re.Match[str]) -> bool:
    return any(match[name] for name in ("symbol", "degree", "unit", "tolerance", "unit_after"))


def _dimension(match: re.Match[str], label: str, page: int | None, default_unit: str | None) -> Dimension:
    symbol, degree, tolerance = match["symbol"], match["degree"], match["tolerance"]
    unit = match["unit"] or match["unit_after"]
    if degree:
        dimension_type, unit = "angular", "deg"
    else:
        dimension_type = _TYPE_BY_SYMBOL.get(symbol or "", "linear")
        unit = _UNIT_NAMES.get(unit, unit) if unit else default_unit
    number = match["value"]
    return Dimension(
        value=None if _THOUSANDS.match(number) else float(number.replace(",", ".")),
        unit=unit,
        tolerance=_SPACES.sub("", tolerance) if tolerance else None,
        dimension_type=dimension_type,
        label=label,
        page=page,
    )


def tolerance_in(text: str) -> str | None:
    """The tolerance written in a dimension's text override, e.g. ``'<> ±0.1'`` -> ``'±0.1'``."""
    found = _TOLERANCE.search(normalise_symbols(text))
    return _SPACES.sub("", found.group(0)) if found else None

"""Dimension callouts of a PDF page, put together from the text runs that show them.

A callout is often written in pieces: ``.750`` | ``±`` | ``.008`` drawn one after another,
or a stacked tolerance (``+.005`` over ``-.001``). Runs that follow each other on one line, in
one direction, a short gap apart, are read as one phrase; a tolerance's lower half, right
below its upper half, is added to it. Each phrase is then searched for callouts
(``drawing_dimensions.find_callouts``), so a run holding two callouts gives two.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pgqueue.extractors.drawing_dimensions import Callout, find_callouts
from pgqueue.extractors.drawing_text import Segment

# Pieces of one callout stand at most this many text heights apart.
_PHRASE_GAP = 1.5
_LINE_SHIFT = 0.5
_DIGIT = re.compile(r"\d")
_UPPER_HALF = re.compile(r"\+\s*\.?\d[\d.]*\s*-?$")
_LOWER_HALF = re.compile(r"^-?\s*\.?\d[\d.]*$")


@dataclass
class _Phrase:
    segments: list[Segment]
    start: float
    end: float
    across: float
    height: float
    lower: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        text = " ".join(segment.text for segment in self.segments)
        return text + "".join(segment.text for segment in self.lower)


def page_callouts(segments: Sequence[Segment], page: int, unit: str | None) -> list[Callout]:
    """The callouts on one page's runs, phrase by phrase."""
    found: list[Callout] = []
    for phrase in _phrases(segments):
        text = phrase.text
        if _DIGIT.search(text):
            found.extend(find_callouts(text, page, unit))
    return found


def _axes(segment: Segment) -> tuple[float, float, float, float]:
    """Where a run starts and ends along its direction, its middle across it, and its height."""
    angle = math.radians(segment.angle)
    cosine, sine = math.cos(angle), math.sin(angle)
    corners = ((segment.x0, segment.y0), (segment.x0, segment.y1), (segment.x1, segment.y0), (segment.x1, segment.y1))
    along = [x * cosine + y * sine for x, y in corners]
    across = [y * cosine - x * sine for x, y in corners]
    height = segment.font_size or (max(across) - min(across))
    return min(along), max(along), (min(across) + max(across)) / 2, max(height, 0.1)


Placed = tuple[tuple[float, float, float, float], Segment]  # (start, end, across, height), run


def _phrases(segments: Sequence[Segment]) -> list[_Phrase]:
    by_direction: dict[float, list[Placed]] = {}
    for segment in segments:
        by_direction.setdefault(round(segment.angle) % 360, []).append((_axes(segment), segment))
    phrases: list[_Phrase] = []
    for placed in by_direction.values():
        for line in _lines(placed):
            phrases.extend(_join_along(line))
    _stack_tolerances(phrases)
    return phrases


def _lines(placed: list[Placed]) -> list[list[Placed]]:
    """Runs of one direction grouped into lines: going across, a run whose middle is within
    a share of its height of the previous run's joins its line."""
    lines: list[list[Placed]] = []
    previous: tuple[float, float] | None = None
    for item in sorted(placed, key=lambda item: -item[0][2]):
        _, _, across, height = item[0]
        if previous is not None and previous[0] - across <= _LINE_SHIFT * max(previous[1], height):
            lines[-1].append(item)
        else:
            lines.append([item])
        previous = (across, height)
    return lines


def _join_along(line: list[Placed]) -> list[_Phrase]:
    """Runs of one line joined into phrases where a short gap separates them."""
    phrases: list[_Phrase] = []
    for (start, end, across, height), segment in sorted(line, key=lambda item: item[0][0]):
        last = phrases[-1] if phrases else None
        if last is not None and start - last.end <= _PHRASE_GAP * max(last.height, height):
            last.segments.append(segment)
            last.end = max(last.end, end)
        else:
            phrases.append(_Phrase([segment], start, end, across, height))
    return phrases


def _stack_tolerances(phrases: list[_Phrase]) -> None:
    """A phrase ending in an upper tolerance (``+.005``) takes the lower one (``-.001``) that
    stands right below its end; the lower phrase is then read only as part of it."""
    lowers = [phrase for phrase in phrases if _LOWER_HALF.match(phrase.text)]
    for upper in phrases:
        if upper.lower or not upper.segments or not _UPPER_HALF.search(upper.text):
            continue
        for lower in lowers:
            if lower is upper or not lower.segments:
                continue
            drop = upper.across - lower.across
            if 0.6 * upper.height <= drop <= 1.8 * upper.height and upper.start < lower.start < upper.end + upper.height:
                upper.lower = lower.segments
                lower.segments = []
                break
    phrases[:] = [phrase for phrase in phrases if phrase.segments]

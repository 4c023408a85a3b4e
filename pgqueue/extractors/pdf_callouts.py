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
        found.extend(find_callouts(phrase.text, page, unit))
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


def _phrases(segments: Sequence[Segment]) -> list[_Phrase]:
    by_direction: dict[float, list[tuple[tuple[float, float, float, float], Segment]]] = {}
    for segment in segments:
        if "\n" in segment.text:
            continue
        by_direction.setdefault(round(segment.angle) % 360, []).append((_axes(segment), segment))
    phrases: list[_Phrase] = []
    for placed in by_direction.values():
        open_phrases: list[_Phrase] = []
        for (start, end, across, height), segment in sorted(placed, key=lambda item: item[0][0]):
            phrase = _joining(open_phrases, start, across, height)
            if phrase is None:
                phrase = _Phrase([segment], start, end, across, height)
                open_phrases.append(phrase)
                phrases.append(phrase)
            else:
                phrase.segments.append(segment)
                phrase.end = max(phrase.end, end)
    _stack_tolerances(phrases)
    return phrases


def _joining(phrases: list[_Phrase], start: float, across: float, height: float) -> _Phrase | None:
    """The phrase a run continues: same line, starting a short gap after the phrase ends."""
    for phrase in reversed(phrases):
        scale = max(phrase.height, height)
        if abs(phrase.across - across) <= _LINE_SHIFT * scale and -_LINE_SHIFT * scale <= start - phrase.end <= _PHRASE_GAP * scale:
            return phrase
    return None


def _stack_tolerances(phrases: list[_Phrase]) -> None:
    """A phrase ending in an upper tolerance (``+.005``) takes the lower one (``-.001``) that
    stands right below its end; the lower phrase is then read only as part of it."""
    for upper in phrases:
        if upper.lower or not _UPPER_HALF.search(upper.text):
            continue
        for lower in phrases:
            if lower is upper or not lower.segments or not _LOWER_HALF.match(lower.text):
                continue
            drop = upper.across - lower.across
            if 0.6 * upper.height <= drop <= 1.8 * upper.height and upper.start < lower.start < upper.end + upper.height:
                upper.lower = lower.segments
                lower.segments = []
                break
    phrases[:] = [phrase for phrase in phrases if phrase.segments]

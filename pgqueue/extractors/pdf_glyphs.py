"""Characters placed on a page, and the runs of text they make.

A page's text is read once, character by character, in the order the reading library gives
(PDFium's or pdfminer's reading order), and cut into runs where the writing stops going on:
a line break, a turn of direction, a jump backwards or across, or a gap wider than a letter.
Reading every character exactly once is what keeps overlapping text boxes (rotated callouts)
from being read twice.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from typing import NamedTuple

from pgqueue.extractors.drawing_text import Segment

Box = tuple[float, float, float, float]
Turn = Callable[[float, float, float, float], Box]

# A gap wider than this many font heights ends a run; a word space is about a third of one.
_RUN_GAP = 1.0
# A character further across the line than this share of its height starts a new line.
LINE_SHIFT = 0.5
_WORD_GAP = 0.2
_ANGLE_TOLERANCE = 0.02  # radians


class Glyph(NamedTuple):
    """One character: its box in page space and the direction its line runs in (radians,
    counter-clockwise from the x axis). Whitespace carries no box. ``position`` is the
    character's place in the reading library's text, for facts looked up later."""

    text: str
    box: Box | None
    angle: float = 0.0
    size: float | None = None
    position: int = -1


SPACE = Glyph(" ", None)
LINE_BREAK = Glyph("\n", None)


class _Run:
    __slots__ = ("across", "angle", "end", "glyphs", "height", "start")

    def __init__(self, glyph: Glyph, start: float, end: float, across: float, height: float) -> None:
        self.glyphs = [glyph]
        self.angle, self.start, self.end, self.across, self.height = (
            glyph.angle, start, end, across, height
        )


@functools.lru_cache(maxsize=256)
def _turning(angle: float) -> tuple[float, float]:
    return math.cos(angle), math.sin(angle)


def _place(glyph: Glyph, box: Box) -> tuple[float, float, float, float]:
    """Where a glyph starts and ends along its line, the middle across it, and its height."""
    left, bottom, right, top = box
    if glyph.angle == 0.0:
        return left, right, (bottom + top) / 2, max(top - bottom, glyph.size or 0.0, 0.1)
    cosine, sine = _turning(glyph.angle)
    corners = ((left, bottom), (left, top), (right, bottom), (right, top))
    along = [x * cosine + y * sine for x, y in corners]
    across = [y * cosine - x * sine for x, y in corners]
    height = max(max(across) - min(across), glyph.size or 0.0, 0.1)
    return min(along), max(along), (min(across) + max(across)) / 2, height


def build_runs(
    glyphs: Iterable[Glyph], page: int, turn: Turn, rotation: int = 0,
    font_size: Callable[[int], float | None] | None = None, spaces_from_gaps: bool = False,
) -> list[Segment]:
    """The runs of text ``glyphs`` make, as segments placed on the page as shown.

    ``rotation`` is the page's ``/Rotate`` (it turns the text clockwise); ``font_size`` gives
    the size of a glyph by its position when the glyphs do not carry one; ``spaces_from_gaps``
    puts a space where glyphs stand a word space apart (for readers that do not, as PDFium
    does).
    """
    runs: list[_Run] = []
    current: _Run | None = None
    pending_space = False
    for glyph in glyphs:
        box = glyph.box
        if box is None:
            if glyph.text in "\r\n":
                current, pending_space = None, False
            else:
                pending_space = current is not None
            continue
        start, end, across, height = _place(glyph, box)
        if current is not None and _continues(current, glyph.angle, start, end, across, height):
            if spaces_from_gaps and start - current.end > _WORD_GAP * max(current.height, height):
                pending_space = True
            if pending_space:
                current.glyphs.append(SPACE)
            current.glyphs.append(glyph)
            current.start, current.end = min(current.start, start), max(current.end, end)
        else:
            current = _Run(glyph, start, end, across, height)
            runs.append(current)
        pending_space = False
    found = (_segment(run, page, turn, rotation, font_size) for run in runs)
    return [segment for segment in found if segment is not None]


def _continues(run: _Run, angle: float, start: float, end: float, across: float, height: float) -> bool:
    """Whether a glyph goes on with a run: same direction, same line, close to either end
    (right-to-left scripts grow a run leftwards)."""
    if angle != run.angle and abs(run.angle - angle) > _ANGLE_TOLERANCE:
        return False
    scale = max(run.height, height)
    if abs(across - run.across) > LINE_SHIFT * scale:
        return False
    return max(start - run.end, run.start - end) <= _RUN_GAP * scale


def _segment(
    run: _Run, page: int, turn: Turn, rotation: int, font_size: Callable[[int], float | None] | None
) -> Segment | None:
    text = "".join(glyph.text for glyph in run.glyphs).strip()
    boxes = [glyph.box for glyph in run.glyphs if glyph.box is not None]
    if not text or not boxes:
        return None
    lefts, bottoms, rights, tops = zip(*boxes, strict=True)
    x0, y0, x1, y1 = turn(min(lefts), min(bottoms), max(rights), max(tops))
    first = run.glyphs[0]
    size = first.size if first.size is not None or font_size is None else font_size(first.position)
    return Segment(
        text, x0, y0, x1, y1, page=page, font_size=size,
        angle=round((math.degrees(run.angle) - rotation) % 360, 1),
    )


def visible_characters(text: str) -> int:
    """Characters that are not whitespace: what page text is compared by."""
    return sum(1 for character in text if not character.isspace())

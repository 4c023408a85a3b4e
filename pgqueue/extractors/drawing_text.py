"""Positioned text of a drawing, shared by the PDF and DXF extractors.

A drawing's facts (title block, bill of materials) are read from where text sits, not only from
what it says: a label's value is the cell to its right, a BOM row is a line below its header.
Both extractors turn their text into ``Segment`` objects and group them into rows here, so the
rules that read title blocks and BOMs are written once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from pgqueue.extractors.results import TextBlock


@dataclass(frozen=True)
class Segment:
    """One run of text on one line, with its box (``y`` grows upwards, as in PDF and DXF)."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    page: int | None = None
    font_size: float | None = None
    angle: float = 0.0  # degrees, counter-clockwise: the direction the text runs on the page

    @property
    def height(self) -> float:
        return max(self.y1 - self.y0, 0.0)

    @property
    def center_y(self) -> float:
        return (self.y0 + self.y1) / 2

    def text_block(self) -> TextBlock:
        return TextBlock(
            text=self.text,
            page=self.page,
            bbox=[round(self.x0, 3), round(self.y0, 3), round(self.x1, 3), round(self.y1, 3)],
            font_size=None if self.font_size is None else round(self.font_size, 3),
        )


Row = list[Segment]

_LINE_TOLERANCE = 0.4
_MINIMUM_HEIGHT = 1.0
_SEPARATORS = re.compile(r"[_.#:]+")
_SPACES = re.compile(r"\s+")


def normalise_label(text: str) -> str:
    """``'Drawing_No.:'`` -> ``'DRAWING NO'``: how labels and attribute tags are compared."""
    return _SPACES.sub(" ", _SEPARATORS.sub(" ", text.upper())).strip()


def group_rows(segments: Iterable[Segment]) -> list[Row]:
    """Segments of one page grouped into lines, top line first, each line left to right.

    Going down the page, a segment starts a new line when its middle is further below the
    previous segment's middle than a fraction of the smaller of their heights. Comparing
    neighbours (not a line's first segment) keeps a line whole when a note above it almost
    touches it, and keeps small and large text on one baseline together.
    """
    ordered = sorted(segments, key=lambda segment: -segment.center_y)
    rows: list[Row] = []
    previous: Segment | None = None
    for segment in ordered:
        if previous is not None and previous.center_y - segment.center_y <= _LINE_TOLERANCE * max(
            min(previous.height, segment.height), _MINIMUM_HEIGHT
        ):
            rows[-1].append(segment)
        else:
            rows.append([segment])
        previous = segment
    for row in rows:
        row.sort(key=lambda segment: segment.x0)
    return rows

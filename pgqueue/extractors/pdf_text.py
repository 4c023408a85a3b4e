"""Positioned text of one PDF page, read with PDFium.

PDFium's text page splits a page into rectangles, one per run of text on a line; each becomes
a ``Segment``. Boxes are turned into the page's displayed orientation (``/Rotate`` applied), so
that a title block on a page stored sideways still reads left to right, top to bottom.
Callers hold the PDFium lock (PDFium is not thread-safe).
"""

from __future__ import annotations

import ctypes
import math
import re
from dataclasses import dataclass
from typing import Any

from pgqueue.extractors.drawing_text import Segment


@dataclass(frozen=True)
class PageText:
    segments: list[Segment]
    characters: int
    truncated: bool  # more runs than the limit: the rest were left out


def read_page_text(page: Any, number: int, limit: int) -> PageText:
    """Text runs of a loaded ``pypdfium2.PdfPage``, at most ``limit`` of them."""
    import pypdfium2.raw as pdfium_api

    textpage = page.get_textpage()
    try:
        characters = textpage.count_chars()
        if characters <= 0:
            return PageText([], 0, False)
        rotate = _rotation(page)
        count = textpage.count_rects()
        segments: list[Segment] = []
        for index in range(min(count, limit)):
            left, bottom, right, top = textpage.get_rect(index)
            text = _clean(textpage.get_text_bounded(left, bottom, right, top))
            if not text:
                continue
            size = _font_size(pdfium_api, textpage, left, bottom, right, top)
            x0, y0, x1, y1 = rotate(left, bottom, right, top)
            segments.append(Segment(text, x0, y0, x1, y1, page=number, font_size=size))
        return PageText(segments, characters, count > limit)
    finally:
        textpage.close()


Box = tuple[float, float, float, float]

# PDFium marks a hyphen it generated at a line break with \x02; other control characters in
# a text layer are noise from broken font encodings.
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x02", "-")
    return _CONTROL.sub("", text).strip()


def _rotation(page: Any) -> Any:
    """A function mapping a box in page space to the displayed (rotated) page."""
    media_left, media_bottom, media_right, media_top = page.get_mediabox()
    width, height = media_right - media_left, media_top - media_bottom
    degrees = page.get_rotation() % 360

    def rotate(left: float, bottom: float, right: float, top: float) -> Box:
        corners = [
            _turn(x - media_left, y - media_bottom, width, height, degrees)
            for x, y in ((left, bottom), (right, top))
        ]
        xs, ys = [x for x, _ in corners], [y for _, y in corners]
        return min(xs), min(ys), max(xs), max(ys)

    return rotate


def _turn(x: float, y: float, width: float, height: float, degrees: int) -> tuple[float, float]:
    """A point of the stored page on the page as shown (``/Rotate`` turns it clockwise)."""
    if degrees == 90:
        return y, width - x
    if degrees == 180:
        return width - x, height - y
    if degrees == 270:
        return height - y, x
    return x, y


def _font_size(
    pdfium_api: Any, textpage: Any, left: float, bottom: float, right: float, top: float
) -> float | None:
    """The size text is drawn at: the font's size times the text matrix's vertical scale."""
    reach = min(right - left, top - bottom) / 2
    index = textpage.get_index(left + reach, (bottom + top) / 2, reach + 1, reach + 1)
    if index is None or index < 0:
        return None
    size = pdfium_api.FPDFText_GetFontSize(textpage, index)
    matrix = pdfium_api.FS_MATRIX()
    if not pdfium_api.FPDFText_GetMatrix(textpage, index, ctypes.byref(matrix)):
        return float(size) if size > 0 else None
    scaled = float(size) * math.hypot(matrix.c, matrix.d)
    return scaled if math.isfinite(scaled) and scaled > 0 else None

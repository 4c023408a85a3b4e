"""Positioned text of one PDF page, read with PDFium, character by character.

Each character is read once, in PDFium's reading order, with its box and direction, and the
characters are cut into runs (``pdf_glyphs.build_runs``); each run becomes a ``Segment``.
Boxes are turned into the page's displayed orientation (``/Rotate`` applied), so that a title
block on a page stored sideways still reads left to right, top to bottom.

PDFium drops characters of fonts that carry no Unicode map (CJK CMaps such as GBK-EUC-H): the
text object is there, its text is empty. ``unmapped`` counts such text objects, so that the
caller can read the page again with pdfminer. Callers hold the PDFium lock.
"""

from __future__ import annotations

import ctypes
import functools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from pgqueue.extractors.drawing_text import Segment
from pgqueue.extractors.pdf_glyphs import (
    LINE_BREAK,
    SPACE,
    Box,
    Glyph,
    Turn,
    build_runs,
    visible_characters,
)
from pgqueue.extractors.pdf_glyphs import (
    LINE_SHIFT as _LINE_SHIFT,
)

_REPLACEMENT = "\ufffd"
_REPLACEMENT_CODE = 0xFFFD
_PIECES = re.compile(r"[^\s\ufffd]+|[\r\n]+|[^\S\r\n]+|\ufffd+")


@dataclass(frozen=True)
class PageText:
    segments: list[Segment]
    characters: int  # visible characters read
    truncated: bool  # more characters than the limit: the rest were left out
    text_objects: int = 0
    unmapped: int = 0  # text objects whose characters PDFium could not map to Unicode


def read_page_text(page: Any, number: int, limit: int) -> PageText:
    """Text runs of a loaded ``pypdfium2.PdfPage``, from at most ``limit`` characters."""
    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        text = textpage.get_text_range(0, min(count, limit)) if count > 0 else ""
        reader = _GlyphReader(textpage)
        glyphs = list(reader.glyphs(text))
        segments = build_runs(
            glyphs, number, page_turn(page), page.get_rotation() % 360, reader.font_size
        )
        text_objects, unmapped = _text_objects_without_text(page, textpage, reader.owners)
        visible = sum(visible_characters(segment.text) for segment in segments)
        return PageText(segments, visible, count > limit, text_objects, unmapped)
    finally:
        textpage.close()


def _prototype(function: Any, restype: Any, *argtypes: Any) -> Any:
    """``function`` with plain C types: handles passed and returned as ints are far cheaper
    per call than pypdfium2's typed pointers, and a page is read one call per character."""
    return ctypes.CFUNCTYPE(restype, *argtypes)(_address(function))


@functools.cache
def _calls() -> SimpleNamespace:
    """The PDFium functions read per character or object, made once per process."""
    import pypdfium2.raw as pdfium_api

    pointer, integer = ctypes.c_void_p, ctypes.c_int
    return SimpleNamespace(
        owner=_prototype(pdfium_api.FPDFText_GetTextObject, pointer, pointer, integer),
        box=_prototype(
            pdfium_api.FPDFText_GetCharBox, integer, pointer, integer, pointer, pointer, pointer, pointer
        ),
        angle=_prototype(pdfium_api.FPDFText_GetCharAngle, ctypes.c_float, pointer, integer),
        object_at=_prototype(pdfium_api.FPDFPage_GetObject, pointer, pointer, integer),
        type_of=_prototype(pdfium_api.FPDFPageObj_GetType, integer, pointer),
        text_of=_prototype(
            pdfium_api.FPDFTextObj_GetText, ctypes.c_ulong, pointer, pointer, pointer, ctypes.c_ulong
        ),
    )


def _address(handle: Any) -> int:
    return ctypes.cast(handle, ctypes.c_void_p).value or 0


class _GlyphReader:
    """Characters of one text page, with the text objects that own them."""

    def __init__(self, textpage: Any) -> None:
        import pypdfium2.raw as pdfium_api

        self.api = pdfium_api
        self.textpage = textpage
        self.raw = _address(textpage.raw)
        self.owners: set[int] = set()
        calls = _calls()
        self._owner, self._box, self._angle = calls.owner, calls.box, calls.angle
        self._values = [ctypes.c_double() for _ in range(4)]  # left, right, bottom, top
        self._addresses = [ctypes.addressof(value) for value in self._values]
        self._sizes: dict[int, float | None] = {}

    def glyphs(self, text: str) -> Iterator[Glyph]:
        """Words of the page text as glyphs. PDFium already put a space or a line break
        wherever the writing jumps, so a word's first and last characters give its box; a
        character is looked at alone only where they disagree (a word that turns a corner)."""
        for match in _PIECES.finditer(text):
            piece = match.group()
            if piece[0] in "\r\n":
                yield LINE_BREAK
            elif piece[0].isspace() or piece[0] == _REPLACEMENT:
                yield SPACE
            else:
                yield from self._word(piece.replace("\x02", "-"), match.start())

    def _word(self, word: str, start: int) -> Iterator[Glyph]:
        end = start + len(word) - 1
        first = self._char_box(start)
        last = first if end == start else self._char_box(end)
        angle = self._angle_at(start)
        if first is None or last is None or not _one_word(first, last, angle, self._angle_at(end)):
            for offset, character in enumerate(word):
                box = self._char_box(start + offset)
                if box is not None:
                    yield self._glyph(character, box, start + offset, self._angle_at(start + offset))
            return
        box = (min(first[0], last[0]), min(first[1], last[1]), max(first[2], last[2]), max(first[3], last[3]))
        yield self._glyph(word, box, start, angle)

    def _angle_at(self, index: int) -> float:
        # PDFium measures the angle clockwise; glyphs measure it counter-clockwise.
        return _normal_angle(-self._angle(self.raw, index))

    def _char_box(self, index: int) -> Box | None:
        values = self._values
        if not self._box(self.raw, index, *self._addresses):
            return None
        return values[0].value, values[2].value, values[1].value, values[3].value

    def _glyph(self, text: str, box: Box, index: int, angle: float) -> Glyph:
        self.owners.add(self._owner(self.raw, index) or 0)
        return Glyph(text, box, angle, None, index)

    def font_size(self, index: int) -> float | None:
        """The size text is drawn at: the font's size times the text matrix's vertical scale,
        worked out once per text object (a page holds far fewer objects than characters)."""
        key = self._owner(self.raw, index) or 0
        if key not in self._sizes:
            self._sizes[key] = self._measure(index)
        return self._sizes[key]

    def _measure(self, index: int) -> float | None:
        api = self.api
        size = float(api.FPDFText_GetFontSize(self.textpage, index))
        matrix = api.FS_MATRIX()
        if not api.FPDFText_GetMatrix(self.textpage, index, ctypes.byref(matrix)):
            return size if size > 0 else None
        scaled = size * math.hypot(matrix.c, matrix.d)
        return scaled if math.isfinite(scaled) and scaled > 0 else None


def _one_word(first: Box, last: Box, first_angle: float, last_angle: float) -> bool:
    """Whether a word's first and last characters bound it: both turned alike and, for
    upright text, on one line (either way round: right-to-left words end on the left).
    PDFium breaks a word where the writing jumps; this catches a word left whole across one."""
    if first_angle != last_angle:
        return False
    if first_angle != 0.0:
        return True
    height = max(first[3] - first[1], last[3] - last[1], 0.1)
    return abs((first[1] + first[3]) - (last[1] + last[3])) / 2 <= _LINE_SHIFT * height


def _normal_angle(angle: float) -> float:
    """An angle in (-pi, pi], rounded so that glyphs of one line compare equal."""
    if angle == 0:
        return 0.0
    return round(math.atan2(math.sin(angle), math.cos(angle)), 3)


def _text_objects_without_text(page: Any, textpage: Any, owners: set[int]) -> tuple[int, int]:
    """How many text objects the page has, and how many of them PDFium reads no text from:
    it could not map their codes to Unicode. Only objects that own no word's first
    character are asked for their text (asking is slow)."""
    import pypdfium2.raw as pdfium_api

    calls = _calls()
    object_at, type_of, text_of = calls.object_at, calls.type_of, calls.text_of
    raw, raw_textpage = _address(page.raw), _address(textpage.raw)
    total = unmapped = 0
    for index in range(pdfium_api.FPDFPage_CountObjects(page)):
        handle = object_at(raw, index) or 0
        if type_of(handle) != pdfium_api.FPDF_PAGEOBJ_TEXT:
            continue
        total += 1
        if handle in owners:
            continue
        length = text_of(handle, raw_textpage, None, 0)
        buffer = (ctypes.c_ushort * max(length // 2, 1))()
        text_of(handle, raw_textpage, ctypes.addressof(buffer), length)
        if length <= 2 or _REPLACEMENT_CODE in buffer:  # only the terminating NUL: no text
            unmapped += 1
    return total, unmapped


def page_turn(page: Any) -> Turn:
    """A function mapping a box in page space to the displayed (rotated) page."""
    media_left, media_bottom, media_right, media_top = page.get_mediabox()
    return turn_for(
        media_left, media_bottom, media_right - media_left, media_top - media_bottom,
        page.get_rotation() % 360,
    )


def turn_for(left_edge: float, bottom_edge: float, width: float, height: float, degrees: int) -> Turn:
    def turn(left: float, bottom: float, right: float, top: float) -> Box:
        corners = [
            _turn(x - left_edge, y - bottom_edge, width, height, degrees)
            for x, y in ((left, bottom), (right, top))
        ]
        xs, ys = [x for x, _ in corners], [y for _, y in corners]
        return min(xs), min(ys), max(xs), max(ys)

    return turn


def _turn(x: float, y: float, width: float, height: float, degrees: int) -> tuple[float, float]:
    """A point of the stored page on the page as shown (``/Rotate`` turns it clockwise)."""
    if degrees == 90:
        return y, width - x
    if degrees == 180:
        return width - x, height - y
    if degrees == 270:
        return height - y, x
    return x, y

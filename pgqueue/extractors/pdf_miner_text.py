"""Page text read with pdfminer, for pages whose fonts PDFium cannot map to Unicode.

PDFium drops the characters of a font that has no ToUnicode map when its CMap is one PDFium
does not decode (CJK CMaps such as GBK-EUC-H); pdfminer decodes them through the CMap's
character collection. It is slower, so it reads only the pages PDFium failed on.

pdfminer places characters on the page as shown (``/Rotate`` applied), so no turn is needed.
A character neither library can map is shown by pdfminer as ``(cid:N)``: it is counted, not
invented.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgqueue.extractors.drawing_text import Segment
from pgqueue.extractors.pdf_glyphs import SPACE, Glyph, build_runs, visible_characters


@dataclass(frozen=True)
class MinerPage:
    segments: list[Segment]
    characters: int  # visible characters read
    unmapped: int  # characters pdfminer could not map either


def read_pages(path: Path, numbers: Sequence[int], limit: int) -> dict[int, MinerPage]:
    """Text runs of the given pages (1-based), from at most ``limit`` characters each."""
    from pdfminer.high_level import extract_pages

    found: dict[int, MinerPage] = {}
    wanted = sorted(set(numbers))
    for number, layout in zip(wanted, extract_pages(path, page_numbers=[n - 1 for n in wanted], laparams=None), strict=False):
        glyphs, unmapped = _glyphs(_characters(layout), limit)
        segments = build_runs(glyphs, number, _unturned, spaces_from_gaps=True)
        visible = sum(visible_characters(segment.text) for segment in segments)
        found[number] = MinerPage(segments, visible, unmapped)
    return found


def _unturned(left: float, bottom: float, right: float, top: float) -> tuple[float, float, float, float]:
    return left, bottom, right, top


def _characters(item: Any) -> Iterator[Any]:
    from pdfminer.layout import LTChar

    if isinstance(item, LTChar):
        yield item
    elif isinstance(item, Iterable):
        for child in item:
            yield from _characters(child)


def _glyphs(characters: Iterable[Any], limit: int) -> tuple[list[Glyph], int]:
    glyphs: list[Glyph] = []
    unmapped = 0
    for character in characters:
        if len(glyphs) >= limit:
            break
        text = character.get_text()
        if text.startswith("(cid:"):
            unmapped += 1
            continue
        if not text.strip():
            glyphs.append(SPACE)
            continue
        a, b = character.matrix[0], character.matrix[1]
        angle = round(math.atan2(b, a), 3) if b else 0.0
        glyphs.append(Glyph(text, (character.x0, character.y0, character.x1, character.y1), angle, character.size))
    return glyphs, unmapped

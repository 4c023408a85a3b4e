"""PDF drawings: page facts, text, dimension callouts, title block, BOM and (when asked) tables.

Order of work, cheapest first, so a hostile file is refused before it costs anything:
the file's first and last bytes (``pdf_checks.check_envelope``), the page count against
``pdf_max_pages``, the page tree and the inflated size of each page to be read
(``pdf_checks.check_pages``), and only then the pages themselves, one at a time.

PDFium (pypdfium2) reads pages, metadata and text; pdfplumber looks for ruled tables only when
the ``tables`` option is set, within half the job's time budget.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from pgqueue.errors import (
    CorruptFile,
    ExtractionTimeout,
    FileTooLarge,
    InvalidOptions,
    UnsupportedFormat,
)
from pgqueue.extractors import context
from pgqueue.extractors.drawing_bom import BomBuilder, add_from_rows, add_from_table
from pgqueue.extractors.drawing_text import Segment, group_rows
from pgqueue.extractors.drawing_title_block import read_title_block
from pgqueue.extractors.options import OptionsModel, parse_options
from pgqueue.extractors.results import Dimension, TitleBlock

MAX_CHARACTERS_PER_PAGE = 200_000
# Past the page limit, pages are skipped with a warning; a document of more than this many
# times the limit is refused: checking its page tree alone would take minutes.
PAGE_CEILING_FACTOR = 100
MAX_TEXT_BLOCKS = 5_000
TABLE_SHARE_OF_BUDGET = 0.5  # tables are optional: they may use half the job's time
TEXT_SHARE_OF_BUDGET = 0.8  # past this, pages still unread are reported, not read

# A page is read again with pdfminer when at least this share of its text objects gave PDFium
# no text (fonts without a Unicode map); one stray empty object in a long text does not.
UNMAPPED_SHARE = 0.01

# PDFium may not be entered by two threads at once, even for different documents.
PDFIUM_LOCK = threading.Lock()
_PASSWORD_ERROR = 4  # FPDF_ERR_PASSWORD
_UNITS_NOTE = re.compile(r"\bUNITS?\s*:\s*(MM|MILLIMET(?:ER|RE)S?|INCH(?:ES)?|IN)\b", re.IGNORECASE)


class Options(OptionsModel):
    """Options of a ``pdf`` job."""

    tables: bool = Field(False, description="Look for ruled tables with pdfplumber (slower).")
    text: bool = Field(True, description="Return the text runs of each page as text_blocks.")
    dimensions: bool = Field(True, description="Parse dimension callouts from the text.")
    pages: list[Annotated[int, Field(ge=1)]] | None = Field(
        None, min_length=1, description="Only these pages (1-based). Unset: every page."
    )


@dataclass
class _Reading:
    """What PDFium gave, before the drawing's facts are worked out of it."""

    page_count: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    pages: list[dict[str, Any]] = field(default_factory=list)
    segments: dict[int, list[Segment]] = field(default_factory=dict)
    unmapped_pages: list[int] = field(default_factory=list)  # fonts PDFium could not map
    object_counts: dict[int, int] = field(default_factory=dict)
    empty_pages: list[int] = field(default_factory=list)
    scanned_pages: list[int] = field(default_factory=list)  # no text, but images
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def extract(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    chosen = parse_options(Options, options)
    started = time.monotonic()
    limits = context.current()
    from pgqueue.extractors.pdf_checks import check_envelope

    check_envelope(path)
    with PDFIUM_LOCK:
        reading = _read(path, chosen, limits, started)
    if reading.unmapped_pages:
        _read_unmapped_pages(path, reading)
    segments = [segment for number in sorted(reading.segments) for segment in reading.segments[number]]
    warnings = list(reading.warnings)
    tables: list[Any] = []
    if chosen.tables:
        from pgqueue.extractors.pdf_tables import read_tables

        run = read_tables(
            path, [page["page"] for page in reading.pages],
            started + limits.time_budget * TABLE_SHARE_OF_BUDGET, reading.object_counts,
        )
        tables, warnings = run.tables, warnings + run.warnings
    title_block, bom = _title_block_and_bom(reading.segments, tables)
    dimensions, doubts = _dimensions(reading.segments) if chosen.dimensions else ([], [])
    if len(segments) > MAX_TEXT_BLOCKS and chosen.text:
        warnings.append(
            f"text_blocks holds the first {MAX_TEXT_BLOCKS:,} of {len(segments):,} text runs"
        )
    return {
        "tables": tables,
        "dimensions": dimensions,
        "text_blocks": [segment.text_block() for segment in segments[:MAX_TEXT_BLOCKS]]
        if chosen.text else [],
        "title_block": title_block,
        "bom": bom,
        "metadata": {**reading.metadata, "pages": reading.page_count, "page_info": reading.pages},
        "errors": reading.errors,
        "warnings": warnings + doubts + _scan_warnings(reading),
    }


def _read(path: Path, chosen: Options, limits: context.ExtractionContext, started: float) -> _Reading:
    import pypdfium2 as pdfium

    from pgqueue.extractors.pdf_checks import check_pages
    from pgqueue.extractors.pdf_metadata import document_metadata

    try:
        document = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == _PASSWORD_ERROR:
            raise UnsupportedFormat(
                "the PDF is password-protected; remove the password and upload it again"
            ) from None
        raise CorruptFile(f"the PDF cannot be read: {exc}") from None
    try:
        reading = _Reading(page_count=len(document))
        if reading.page_count == 0:
            raise CorruptFile("the PDF has no pages")
        ceiling = limits.pdf_max_pages * PAGE_CEILING_FACTOR
        if reading.page_count > ceiling:
            raise FileTooLarge(
                f"the PDF has {reading.page_count:,} pages; at most {ceiling:,} are accepted "
                f"({PAGE_CEILING_FACTOR} times the page limit of {limits.pdf_max_pages:,})"
            )
        numbers = _page_numbers(chosen.pages, reading.page_count)
        if len(numbers) > limits.pdf_max_pages:
            skipped = numbers[limits.pdf_max_pages:]
            numbers = numbers[: limits.pdf_max_pages]
            reading.warnings.append(
                f"only the first {limits.pdf_max_pages:,} of {len(skipped) + len(numbers):,} pages "
                f"to read were read (the page limit); page(s) {_ranges(skipped)} skipped"
            )
        reading.warnings.extend(check_pages(path, reading.page_count, numbers))
        reading.metadata = document_metadata(document)
        _read_pages(document, numbers, reading, started + limits.time_budget * TEXT_SHARE_OF_BUDGET)
    finally:
        document.close()
    if reading.errors and not reading.pages:
        raise CorruptFile("no page of the PDF can be read: " + "; ".join(reading.errors[:3]))
    return reading


def _page_numbers(pages: Sequence[int] | None, page_count: int) -> list[int]:
    if pages is None:
        return list(range(1, page_count + 1))
    missing = sorted(number for number in set(pages) if number > page_count)
    if missing:
        raise InvalidOptions(
            f"option 'pages': page {missing[0]} does not exist; the PDF has {page_count} page(s)"
        )
    return sorted(set(pages))


def _read_pages(document: Any, numbers: list[int], reading: _Reading, deadline: float) -> None:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_api

    from pgqueue.extractors.pdf_text import read_page_text

    unread: list[int] = []
    for number in numbers:
        if time.monotonic() >= deadline:
            unread.append(number)
            continue
        try:
            page = document[number - 1]
        except pdfium.PdfiumError as exc:
            reading.errors.append(f"page {number} cannot be read: {exc}")
            continue
        try:
            width, height = page.get_size()
            reading.pages.append({
                "page": number, "width": round(width, 3), "height": round(height, 3),
                "rotation": page.get_rotation(),
            })
            text = read_page_text(page, number, MAX_CHARACTERS_PER_PAGE)
            reading.pages[-1]["characters"] = text.characters
            reading.object_counts[number] = text.characters + pdfium_api.FPDFPage_CountObjects(page)
            if text.unmapped and text.unmapped >= UNMAPPED_SHARE * text.text_objects:
                reading.unmapped_pages.append(number)
            elif text.characters == 0:
                reading.empty_pages.append(number)
                if _has_images(pdfium_api, page):
                    reading.scanned_pages.append(number)
        finally:
            page.close()
        reading.segments[number] = text.segments
        if text.truncated:
            reading.warnings.append(
                f"page {number}: only the first {MAX_CHARACTERS_PER_PAGE:,} characters were read"
            )
    if unread and not reading.pages:
        raise ExtractionTimeout("the job's time budget ran out before any page was read")
    if unread:
        reading.warnings.append(
            "page(s) " + ", ".join(map(str, unread)) + " not read: the job's time budget ran out"
        )


def _read_unmapped_pages(path: Path, reading: _Reading) -> None:
    """Pages where PDFium could not map a font's codes to Unicode, read again with pdfminer;
    the reading that shows more characters is kept."""
    from pgqueue.extractors.pdf_miner_text import read_pages

    try:
        again = read_pages(path, reading.unmapped_pages, MAX_CHARACTERS_PER_PAGE)
    except Exception as exc:  # pdfminer is the second opinion: its failure is not the job's
        reading.warnings.append(f"page(s) {_ranges(reading.unmapped_pages)}: text in fonts without "
                                f"a Unicode map could not be read ({type(exc).__name__}: {exc})")
        return
    improved: list[int] = []
    lost = 0
    for info in reading.pages:
        number = info["page"]
        page = again.get(number)
        lost += page.unmapped if page else 0
        if page is None or page.characters <= info["characters"]:
            continue
        reading.segments[number] = page.segments
        info["characters"] = page.characters
        improved.append(number)
    for number in reading.unmapped_pages:
        if not reading.segments.get(number):
            reading.empty_pages.append(number)
    if improved:
        reading.warnings.append(
            f"page(s) {_ranges(improved)}: PDFium could not map some fonts to Unicode "
            "(no ToUnicode map); their text was read with pdfminer"
        )
    if lost:
        reading.warnings.append(
            f"{lost:,} character(s) of page(s) {_ranges(reading.unmapped_pages)} have no Unicode "
            "mapping in either PDFium or pdfminer and were left out"
        )


def _ranges(numbers: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``'1-3, 7'``."""
    parts: list[str] = []
    start = previous = None
    for number in sorted(numbers):
        if previous is not None and number == previous + 1:
            previous = number
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = number
    if start is not None:
        parts.append(str(start) if start == previous else f"{start}-{previous}")
    return ", ".join(parts)


def _title_block_and_bom(
    segments: Mapping[int, list[Segment]], tables: Sequence[Any]
) -> tuple[TitleBlock | None, Any]:
    """The BOM is read first, and its cells kept out of the title block (both have MATERIAL)."""
    builder = BomBuilder()
    title_block: TitleBlock | None = None
    for number in sorted(segments):
        rows = group_rows(segments[number])
        used = add_from_rows(builder, rows)
        if title_block is None:
            rest = [[segment for segment in row if id(segment) not in used] for row in rows]
            title_block = read_title_block(rows=[row for row in rest if row])
    if builder.result() is None:
        for table in tables:
            add_from_table(builder, [table["headers"], *table["rows"]])
    return title_block, builder.result()


def _dimensions(segments: Mapping[int, list[Segment]]) -> tuple[list[Dimension], list[str]]:
    """Callouts of every page, and a warning for each one shown as text only."""
    from pgqueue.extractors.pdf_callouts import page_callouts

    unit = _drawing_unit([segment for number in segments for segment in segments[number]])
    dimensions: list[Dimension] = []
    warnings: list[str] = []
    for number in sorted(segments):
        for callout in page_callouts(segments[number], number, unit):
            dimensions.append(callout.dimension)
            if callout.doubt:
                warnings.append(
                    f"page {number}: dimension '{callout.dimension['label']}' is given as text "
                    f"only (value null): {callout.doubt}"
                )
    return dimensions, warnings


def _drawing_unit(segments: Sequence[Segment]) -> str | None:
    """The unit a note declares (``UNITS: mm``), for callouts that do not name one."""
    for segment in segments:
        match = _UNITS_NOTE.search(segment.text)
        if match:
            return "in" if match.group(1).upper().startswith("IN") else "mm"
    return None


def _has_images(pdfium_api: Any, page: Any) -> bool:
    count = min(pdfium_api.FPDFPage_CountObjects(page), MAX_CHARACTERS_PER_PAGE)
    return any(
        pdfium_api.FPDFPageObj_GetType(pdfium_api.FPDFPage_GetObject(page, index))
        == pdfium_api.FPDF_PAGEOBJ_IMAGE
        for index in range(count)
    )


def _scan_warnings(reading: _Reading) -> list[str]:
    warnings: list[str] = []
    scanned = reading.scanned_pages
    if scanned and len(scanned) == len(reading.pages):
        warnings.append(
            "no page has a text layer, only images: this looks like a scanned drawing; "
            "OCR is needed to read its text"
        )
    elif scanned:
        pages = ", ".join(map(str, scanned))
        warnings.append(f"page(s) {pages} have no text layer, only images (scanned?); OCR is needed to read them")
    textless = [number for number in reading.empty_pages if number not in scanned]
    if textless:
        warnings.append("page(s) " + ", ".join(map(str, textless)) + " have no text at all")
    return warnings

"""PDF extraction checked against PDFium (pypdfium2) and pdfminer, read at check time.

For each real PDF, the reference for a page is PDFium's text; on a page where PDFium reads no
text from some of the text objects (a font it cannot map to Unicode), pdfminer reads the page
too and the library that reads more visible (non-whitespace) characters is the reference.
pdfminer's ``(cid:N)`` placeholders are characters neither library can read; they are not
counted. The checks (each one line in the score):

- the file opens when the reference opens it, and is refused with a clear error when not;
- pages past the page limit are skipped with a warning, not refused;
- per page read: the characters read are those of the reference, within 1 % (the difference
  of the two character multisets, so doubled and lost text both count), and the count the
  result gives per page agrees with its text;
- per page: no duplicated run (the same text twice in overlapping boxes);
- each callout the reference text shows (a number before ``±n``, ``+n -n`` or ``°``, or after
  ``Ø``) is among the dimensions with that number and its value, or with value null and a
  warning naming it;
- each dimension with a value: its number stands whole in the reference text and the value
  is that number (never ``3`` out of ``.173``);
- a page with no text and an image: a warning that OCR is needed, and no invented text.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from bench.quality import Score

TOLERANCE = 0.01  # share of a page's characters that may differ from the reference
_SPACES = re.compile(r"\s+")
# Callouts as the reference text shows them; written apart from the extractor's parser.
_REFERENCE_CALLOUT = re.compile(
    r"(?<![\d.,])(\d*\.\d+|\d+)(?![\d])(?=\s?(?:±\s?\.?\d|\+\.?\d[\d.]*\s?-\s?\.?\d|°))"
    r"|Ø\s?(\d*\.\d+|\d+)(?![\d])"
)
_LABEL_NUMBER = re.compile(r"^[A-Za-z]{0,2}(?:\d+\s*[xX\u00d7]\s*)?(?:SØ|SR|Ø|R|M)?\s*(\d*[.,]?\d+)")


@dataclass
class Check:
    what: str
    passed: bool


@dataclass
class FileReport:
    """The checks made on one file, and how long its extraction took."""

    name: str
    seconds: float = math.nan
    checks: list[Check] = field(default_factory=list)

    def check(self, passed: bool, what: str) -> None:
        self.checks.append(Check(f"{self.name}: {what}", bool(passed)))

    @property
    def failures(self) -> list[str]:
        return [check.what for check in self.checks if not check.passed]


@dataclass(frozen=True)
class ReferencePage:
    number: int
    library: str
    text: str
    characters: Counter[str]
    has_images: bool


def run(real_dir: Path) -> list[Score]:
    score = Score("pdf")
    for path in sorted(real_dir.glob("*.pdf")):
        report = check_file(path)
        score.files += 1
        score.seconds.append(report.seconds)
        for item in report.checks:
            score.check(item.passed, item.what)
    return [score]


def check_file(path: Path, page_limit: int = 100) -> FileReport:
    """Extract ``path`` with pgqueue and make every check against the reference libraries."""
    from pgqueue.errors import PermanentError
    from pgqueue.extractors.context import ExtractionContext, using
    from pgqueue.extractors.pdf import extract

    report = FileReport(path.name)
    opens, page_count = reference_opens(path)
    started = time.perf_counter()
    try:
        with using(ExtractionContext(pdf_max_pages=page_limit)):
            result = extract(path, {})
    except PermanentError as exc:
        report.seconds = time.perf_counter() - started
        report.check(not opens and "password" in str(exc), f"refused ({exc}) though the reference opens it" if opens else "refused with a clear reason")
        return report
    report.seconds = time.perf_counter() - started
    report.check(opens, "read though the reference cannot open it")
    if not opens:
        return report
    read = [page["page"] for page in result["metadata"]["page_info"]]
    if page_count > page_limit:
        report.check(
            len(read) == page_limit and any("page limit" in warning for warning in result["warnings"]),
            f"{page_count} pages: the first {page_limit} read and the rest skipped with a warning",
        )
    references = reference_pages(path, tuple(read))
    for number in read:
        _check_page(report, result, references[number])
    _check_dimensions(report, result, references)
    return report


def _check_page(report: FileReport, result: dict[str, Any], reference: ReferencePage) -> None:
    number = reference.number
    info = next(page for page in result["metadata"]["page_info"] if page["page"] == number)
    blocks = [block for block in result["text_blocks"] if block["page"] == number]
    ours = Counter(character for block in blocks for character in block["text"] if not character.isspace())
    expected = sum(reference.characters.values())
    counted = info.get("characters", -1)
    report.check(
        abs(counted - expected) <= TOLERANCE * expected,
        f"page {number}: {counted} characters read, the reference ({reference.library}) reads {expected}",
    )
    if sum(ours.values()) == counted:  # the page's runs were all returned (not cut by the cap)
        differ = sum(((ours - reference.characters) + (reference.characters - ours)).values())
        report.check(
            differ <= TOLERANCE * expected,
            f"page {number}: {differ} characters differ from the reference's {expected} ({reference.library})",
        )
    doubled = duplicated_runs(blocks)
    report.check(not doubled, f"page {number}: duplicated runs {doubled[:3]}")
    if expected == 0 and reference.has_images:
        report.check(
            not blocks and any("OCR" in warning for warning in result["warnings"]),
            f"page {number}: image only, reported as needing OCR with no text",
        )


def duplicated_runs(blocks: Iterable[dict[str, Any]]) -> list[str]:
    """Texts that stand twice in boxes covering each other by more than half."""
    seen: dict[str, list[list[float]]] = {}
    doubled: list[str] = []
    for block in blocks:
        text, box = block["text"], block["bbox"]
        if len(text.strip()) < 2 or box is None:
            continue
        if any(_overlap(box, other) > 0.5 for other in seen.get(text, [])):
            doubled.append(text)
        seen.setdefault(text, []).append(box)
    return doubled


def _overlap(first: list[float], second: list[float]) -> float:
    width = min(first[2], second[2]) - max(first[0], second[0])
    height = min(first[3], second[3]) - max(first[1], second[1])
    if width <= 0 or height <= 0:
        return 0.0
    smaller = min((first[2] - first[0]) * (first[3] - first[1]), (second[2] - second[0]) * (second[3] - second[1]))
    return width * height / smaller if smaller > 0 else 0.0


def _check_dimensions(report: FileReport, result: dict[str, Any], references: dict[int, ReferencePage]) -> None:
    for number, reference in references.items():
        ours = [item for item in result["dimensions"] if item["page"] == number]
        unused = list(ours)
        for wanted in reference_callouts(reference.text):
            found = next((item for item in unused if _shows(item, wanted)), None)
            if found is not None:
                unused.remove(found)
            warned = found is not None and (
                found["value"] is not None
                or any(f"'{found['label']}'" in warning for warning in result["warnings"])
            )
            report.check(
                warned, f"page {number}: callout {wanted} found with its value, or null and a warning"
            )
        flat = _SPACES.sub(" ", reference.text)
        for item in ours:
            if item["value"] is None:
                continue
            number_text = label_number(item["label"] or "")
            report.check(
                number_text is not None
                and _whole_in(number_text, flat)
                and float(number_text.replace(",", ".")) == item["value"],
                f"page {number}: dimension {item['label']!r} = {item['value']} agrees with the text",
            )


def reference_callouts(text: str) -> list[str]:
    """The numbers of the callouts a page's reference text shows."""
    flat = _SPACES.sub(" ", text)
    return [match.group(1) or match.group(2) for match in _REFERENCE_CALLOUT.finditer(flat)]


def label_number(label: str) -> str | None:
    """The main number a callout's label shows (after a count prefix and a symbol)."""
    match = _LABEL_NUMBER.match(label.strip())
    return match.group(1) if match else None


def _shows(item: dict[str, Any], number: str) -> bool:
    label = item["label"] or ""
    return _whole_in(number, label) and (item["value"] is None or item["value"] == float(number))


def _whole_in(number: str, text: str) -> bool:
    """Whether ``number`` stands in ``text`` as a whole number (not part of a longer one)."""
    return re.search(rf"(?<![\d.,]){re.escape(number)}(?![\d]|[.,]\d)", text) is not None


def reference_opens(path: Path) -> tuple[bool, int]:
    """Whether PDFium opens the file (with no password, as a user would), and its page count."""
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError:
        return False, 0
    try:
        return True, len(document)
    finally:
        document.close()


@cache
def reference_pages(path: Path, numbers: tuple[int, ...]) -> dict[int, ReferencePage]:
    """Each page's text as PDFium reads it, or as pdfminer does where PDFium loses text
    objects and pdfminer reads more."""
    pdfium_pages = _pdfium_pages(path, numbers)
    doubtful = tuple(number for number in numbers if pdfium_pages[number][2])
    miner_pages = _pdfminer_pages(path, doubtful) if doubtful else {}
    pages: dict[int, ReferencePage] = {}
    for number in numbers:
        text, has_images, _ = pdfium_pages[number]
        miner = miner_pages.get(number, "")
        library = "pdfminer" if _visible(miner) > _visible(text) else "pypdfium2"
        chosen = miner if library == "pdfminer" else text
        pages[number] = ReferencePage(
            number, library, chosen, Counter(c for c in chosen if not c.isspace()), has_images
        )
    return pages


def _visible(text: str) -> int:
    return sum(1 for character in text if not character.isspace())


def _pdfium_pages(path: Path, numbers: tuple[int, ...]) -> dict[int, tuple[str, bool, bool]]:
    """Per page: PDFium's text, whether it shows an image, and whether a text object on it
    gives PDFium no text."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_api

    document = pdfium.PdfDocument(str(path))
    pages: dict[int, tuple[str, bool, bool]] = {}
    try:
        for number in numbers:
            page = document[number - 1]
            textpage = page.get_textpage()
            objects = list(page.get_objects(max_depth=1))
            images = any(item.type == pdfium_api.FPDF_PAGEOBJ_IMAGE for item in objects)
            silent = any(
                item.type == pdfium_api.FPDF_PAGEOBJ_TEXT
                and pdfium_api.FPDFTextObj_GetText(item.raw, textpage.raw, None, 0) <= 2
                for item in objects
            )
            pages[number] = (textpage.get_text_range(), images, silent)
            textpage.close()
            page.close()
    finally:
        document.close()
    return pages


def _pdfminer_pages(path: Path, numbers: tuple[int, ...]) -> dict[int, str]:
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTChar

    def characters(item: Any) -> Iterable[str]:
        if isinstance(item, LTChar):
            text = item.get_text()
            if not text.startswith("(cid:"):
                yield text
        elif isinstance(item, Iterable):
            for child in item:
                yield from characters(child)

    pages: dict[int, str] = {}
    wanted = sorted(numbers)
    try:
        layouts = extract_pages(path, page_numbers=[number - 1 for number in wanted], laparams=None)
        for number, layout in zip(wanted, layouts, strict=False):
            pages[number] = "".join(characters(layout))
    except Exception:  # pdfminer is the second opinion; PDFium's reading stands alone then
        return pages
    return pages

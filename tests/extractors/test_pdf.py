"""The PDF extractor: drawings written here with known facts, hostile files, and the corpus."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

import pytest

from bench.quality.pdf import check_file, duplicated_runs
from pgqueue.errors import (
    CorruptFile,
    ExtractionTimeout,
    FileTooLarge,
    InvalidOptions,
    PermanentError,
    UnsupportedFormat,
)
from pgqueue.extractors import get, pdf
from pgqueue.extractors.context import ExtractionContext, using
from pgqueue.extractors.drawing_dimensions import find_callouts, parse_callout
from pgqueue.extractors.drawing_text import Segment
from pgqueue.extractors.drawing_title_block import read_title_block
from pgqueue.extractors.pdf import PDFIUM_LOCK, extract
from pgqueue.extractors.pdf_tables import MAX_TABLE_OBJECTS, read_tables
from tests.extractors import pdf_fixtures

if TYPE_CHECKING:
    from conftest import PdfDrawing, PdfMaker

# A hostile file must be refused quickly; the worst seen here takes 0.2 s.
REFUSAL_SECONDS = 5.0


def by_page(result: dict[str, Any], page: int) -> list[dict[str, Any]]:
    return [item for item in result["dimensions"] if item["page"] == page]


# --- a drawing written here ----------------------------------------------------------------


def test_registry_points_at_this_extractor() -> None:
    assert get("pdf") is extract


def test_title_block_is_read_from_its_ruled_cells(drawing_pdf: PdfDrawing) -> None:
    result = extract(drawing_pdf.path, {})

    block = result["title_block"]
    assert block is not None
    assert {name: block[name] for name in drawing_pdf.title_block} == drawing_pdf.title_block
    assert block["sheet"] == f"1/{len(drawing_pdf.rotations)}"
    assert block["custom_fields"] == drawing_pdf.custom_fields


def test_bom_rows_are_the_rows_written(drawing_pdf: PdfDrawing) -> None:
    bom = extract(drawing_pdf.path, {})["bom"]

    assert bom["headers"] == drawing_pdf.bom_headers
    assert bom["items"] == [dict(zip(drawing_pdf.bom_headers, row, strict=True)) for row in drawing_pdf.bom_rows]
    assert bom["total_items"] == len(drawing_pdf.bom_rows)


def test_each_callout_is_one_dimension_and_no_other_text_is(drawing_pdf: PdfDrawing) -> None:
    result = extract(drawing_pdf.path, {})

    for page in range(1, len(drawing_pdf.rotations) + 1):
        found = by_page(result, page)
        stated = {(item["value"], item["dimension_type"], item["tolerance"], item["unit"]) for item in found}
        assert stated == drawing_pdf.dimensions
        assert len(found) == len(drawing_pdf.dimensions)  # BOM numbers, dates, notes: none


def test_metadata_holds_document_info_and_every_page(drawing_pdf: PdfDrawing) -> None:
    result = extract(drawing_pdf.path, {})
    metadata = result["metadata"]

    assert {name: metadata[name] for name in drawing_pdf.info} == drawing_pdf.info
    assert metadata["producer"].startswith("ReportLab")
    assert metadata["creation_date"][:2] == "20"
    assert metadata["pages"] == len(drawing_pdf.rotations)
    width, height = drawing_pdf.display_size
    assert [{key: value for key, value in page.items() if key != "characters"} for page in metadata["page_info"]] == [
        {"page": number, "width": width, "height": height, "rotation": rotation}
        for number, rotation in enumerate(drawing_pdf.rotations, start=1)
    ]
    for page in metadata["page_info"]:
        shown = "".join(block["text"] for block in result["text_blocks"] if block["page"] == page["page"])
        assert page["characters"] == len("".join(shown.split())) > 0


@pytest.mark.parametrize("page", [1, 2, 3, 4])
def test_text_is_placed_as_the_page_is_shown_whatever_its_rotation(
    drawing_pdf: PdfDrawing, page: int
) -> None:
    result = extract(drawing_pdf.path, {"pages": [page]})

    text, x, y = drawing_pdf.mark
    (box,) = [block["bbox"] for block in result["text_blocks"] if block["text"] == text]
    assert abs(box[0] - x) < 2 and y - 3 < box[1] < y + 2
    assert result["title_block"]["sheet"] == f"{page}/{len(drawing_pdf.rotations)}"
    assert [item["rotation"] for item in result["metadata"]["page_info"]] == [drawing_pdf.rotations[page - 1]]


def test_tables_are_read_only_when_asked(drawing_pdf: PdfDrawing) -> None:
    plain = extract(drawing_pdf.path, {})
    with_tables = extract(drawing_pdf.path, {"tables": True, "pages": [1]})

    assert plain["tables"] == []
    headers = [table["headers"] for table in with_tables["tables"]]
    assert drawing_pdf.bom_headers in headers
    bom_table = with_tables["tables"][headers.index(drawing_pdf.bom_headers)]
    assert bom_table["rows"] == drawing_pdf.bom_rows
    assert bom_table["page"] == 1 and bom_table["num_columns"] == len(drawing_pdf.bom_headers)
    title_table = next(table for table in with_tables["tables"] if table["headers"][0] == "TITLE")
    assert title_table["num_rows"] == 4
    assert with_tables["bom"] == plain["bom"]


def test_options_turn_parts_off(drawing_pdf: PdfDrawing) -> None:
    result = extract(drawing_pdf.path, {"text": False, "dimensions": False, "pages": [3, 1]})

    assert result["text_blocks"] == [] and result["dimensions"] == []
    assert result["title_block"]["drawing_number"] == drawing_pdf.title_block["drawing_number"]
    assert [item["page"] for item in result["metadata"]["page_info"]] == [1, 3]


def test_pdfium_waits_for_a_thread_already_inside_it(drawing_pdf: PdfDrawing) -> None:
    """Inline isolation runs extractors in threads; PDFium crashes when entered concurrently.

    While the lock is held (as by another extraction), an extraction must wait, not run; it
    takes 0.05 s here, so still running after a second means it waits.
    """
    results: list[dict[str, Any]] = []
    worker = threading.Thread(target=lambda: results.append(extract(drawing_pdf.path, {})))
    with PDFIUM_LOCK:
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive() and results == []
    worker.join()
    assert results[0]["title_block"]["drawing_number"] == drawing_pdf.title_block["drawing_number"]


# --- options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"colour": True}, "unknown option 'colour'"),
        ({"tables": "yes"}, "'tables'"),
        ({"text": 1}, "'text'"),
        ({"pages": [0]}, "'pages.0'"),
        ({"pages": []}, "'pages'"),
        ({"pages": "1"}, "'pages'"),
        ({"pages": [2, 9]}, "option 'pages': page 9 does not exist"),
    ],
)
def test_bad_options_are_refused_by_name(drawing_pdf: PdfDrawing, options: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidOptions, match=named):
        extract(drawing_pdf.path, options)


# --- limits and hostile files --------------------------------------------------------------


def test_pages_past_the_limit_are_skipped_with_a_warning(pdf_maker: PdfMaker) -> None:
    path = pdf_maker.blank(5)

    with using(ExtractionContext(pdf_max_pages=3)):
        result = extract(path, {})
        chosen = extract(path, {"pages": [5, 2, 4, 1]})
    with using(ExtractionContext(pdf_max_pages=5)):
        whole = extract(path, {})

    assert result["metadata"]["pages"] == 5
    assert [page["page"] for page in result["metadata"]["page_info"]] == [1, 2, 3]
    assert "only the first 3 of 5 pages to read were read (the page limit); page(s) 4-5 skipped" in result["warnings"]
    # the pages option picks first, then the limit applies to what it picked
    assert [page["page"] for page in chosen["metadata"]["page_info"]] == [1, 2, 4]
    assert "only the first 3 of 4 pages to read were read (the page limit); page(s) 5 skipped" in chosen["warnings"]
    assert [page["page"] for page in whole["metadata"]["page_info"]] == [1, 2, 3, 4, 5]
    assert not any("page limit" in warning for warning in whole["warnings"])


def test_a_page_count_far_past_the_limit_is_refused_before_pages_are_read(pdf_maker: PdfMaker) -> None:
    path = pdf_maker.blank(3)

    with using(ExtractionContext(pdf_max_pages=1)), patch.object(pdf, "PAGE_CEILING_FACTOR", 2), \
            pytest.raises(FileTooLarge, match="3 pages; at most 2 are accepted"):
        extract(path, {})


def test_a_scanned_page_is_reported_as_needing_ocr(pdf_maker: PdfMaker) -> None:
    result = extract(pdf_maker.scanned(), {})

    assert any("OCR" in warning for warning in result["warnings"])
    assert result["text_blocks"] == [] and result["title_block"] is None


def test_password_protected_pdf_is_refused(pdf_maker: PdfMaker) -> None:
    with pytest.raises(UnsupportedFormat, match="password"):
        extract(pdf_maker.encrypted(), {})


def test_content_that_inflates_moderately_is_read(pdf_maker: PdfMaker) -> None:
    content = pdf_maker.deflate_twice_spaces(4)
    path = pdf_maker.one_page("deflated.pdf", content, filters=b"/Filter [/FlateDecode /FlateDecode]")

    result = extract(path, {})

    assert result["metadata"]["pages"] == 1
    assert result["warnings"] == ["page(s) 1 have no text at all"]


def _truncated(maker: PdfMaker) -> Path:
    whole = maker.drawing().path.read_bytes()
    return maker.file("half.pdf", whole[: len(whole) // 2])


HOSTILE: list[tuple[str, Any, type[PermanentError], str]] = [
    ("empty", lambda maker: maker.file("empty.pdf", b""), CorruptFile, "empty"),
    ("png", lambda maker: maker.file("image.pdf", b"\x89PNG\r\n\x1a\n" + bytes(500)), CorruptFile, "PNG image"),
    ("dwg", lambda maker: maker.file("drawing.pdf", b"AC1032" + bytes(500)), CorruptFile, "DWG"),
    ("text", lambda maker: maker.file("notes.pdf", b"just some notes\n" * 20), CorruptFile, "%PDF- header"),
    ("truncated", _truncated, CorruptFile, "truncated"),
    ("xref past the end", lambda maker: maker.one_page("past.pdf", startxref=10**9), CorruptFile,
     "startxref points to byte 1,000,000,000"),
    ("xref at no table", lambda maker: maker.one_page("nowhere.pdf", startxref=3), CorruptFile,
     "cross-reference table is broken"),
    ("lying page count", lambda maker: maker.one_page("lying.pdf", count=2**31 - 1), CorruptFile,
     "declares 2,147,483,647 pages but holds 1"),
    ("flate bomb", lambda maker: maker.one_page(
        "bomb.pdf", maker.deflate_twice_spaces(80), filters=b"/Filter [/FlateDecode /FlateDecode]"
    ), FileTooLarge, "inflates to more than 64 MiB"),
]


@pytest.mark.parametrize(("builder", "error", "says"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_hostile_files_are_refused_quickly_and_clearly(
    pdf_maker: PdfMaker, builder: Any, error: type[PermanentError], says: str
) -> None:
    path = builder(pdf_maker)
    started = time.monotonic()

    with pytest.raises(error, match=says):
        extract(path, {})
    assert time.monotonic() - started < REFUSAL_SECONDS


def test_no_page_read_within_the_time_budget_is_a_timeout(drawing_pdf: PdfDrawing) -> None:
    with using(ExtractionContext(time_budget=0.0)), pytest.raises(ExtractionTimeout):
        extract(drawing_pdf.path, {})


def test_tables_stop_at_their_deadline_and_say_so(drawing_pdf: PdfDrawing) -> None:
    run = read_tables(drawing_pdf.path, [1, 2], time.monotonic() - 1, {})

    assert run.tables == []
    assert run.warnings == ["tables not searched on page(s) 1, 2: the time budget for table extraction ran out"]


def test_tables_skip_pages_too_dense_to_search(drawing_pdf: PdfDrawing) -> None:
    run = read_tables(drawing_pdf.path, [1, 2], time.monotonic() + 60, {1: MAX_TABLE_OBJECTS + 1})

    assert all(table["page"] != 1 for table in run.tables)
    assert run.warnings == [
        f"tables not searched on page(s) 1: more than {MAX_TABLE_OBJECTS:,} characters and "
        "drawing objects on the page"
    ]


# --- dimension callouts --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ø12", (12.0, "diameter", None, None)),
        ("%%c8.5", (8.5, "diameter", None, None)),
        ("⌀ 20 h6", (20.0, "diameter", "h6", None)),
        ("R5", (5.0, "radius", None, None)),
        ("SR 12,5", (12.5, "radius", None, None)),
        ("45°", (45.0, "angular", None, "deg")),
        ("30%%d", (30.0, "angular", None, "deg")),
        ("120 ±0.1", (120.0, "linear", "±0.1", None)),
        ("120 +/-0.05 mm", (120.0, "linear", "±0.05", "mm")),
        ("10 +0.2/-0.1", (10.0, "linear", "+0.2/-0.1", None)),
        ("25 mm", (25.0, "linear", None, "mm")),
        ('1.5"', (1.5, "linear", None, "in")),
        ("4X Ø7 ±0.25", (7.0, "diameter", "±0.25", None)),
        ("M8", (8.0, "diameter", None, None)),
        ("(42 mm)", (42.0, "linear", None, "mm")),
    ],
)
def test_callouts_are_parsed(text: str, expected: tuple[Any, ...]) -> None:
    found = parse_callout(text)

    assert found is not None
    assert (found["value"], found["dimension_type"], found["tolerance"], found["unit"]) == expected


@pytest.mark.parametrize(
    "text",
    ["12", "8.8", "2024-01-01", "1:1", "SHEET 1/2", "Ra 3.2", "S235JR", "200HV", "A3", "ISO 2768-m",
     "PLATE 120x80x10", "REV B", ""],
)
def test_other_text_is_not_a_dimension(text: str) -> None:
    assert parse_callout(text) is None


# --- defects seen on real drawings, one generated file each -------------------------------


def _pdfium_characters(path: Path) -> list[int]:
    """Visible characters PDFium reads on each page: the reference, read at test time."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(path))
    try:
        return [len("".join(document[index].get_textpage().get_text_range().split())) for index in range(len(document))]
    finally:
        document.close()


def _values(result: dict[str, Any]) -> set[tuple[Any, ...]]:
    return {(item["value"], item["dimension_type"], item["tolerance"]) for item in result["dimensions"]}


def test_rotated_text_whose_boxes_overlap_is_read_once(tmp_path: Path) -> None:
    written = pdf_fixtures.rotated_callouts(tmp_path)

    result = extract(written.path, {})

    texts = [block["text"] for block in result["text_blocks"]]
    assert sorted(text for text in texts if text in written.texts) == sorted(written.texts)
    assert [page["characters"] for page in result["metadata"]["page_info"]] == _pdfium_characters(written.path)
    assert duplicated_runs(result["text_blocks"]) == []
    assert _values(result) == {
        (0.25, "diameter", "+.003-.000"), (0.173, "diameter", "±.005"), (0.30, "linear", "±.02")
    }
    assert check_file(written.path).failures == []


def test_callouts_split_across_runs_are_put_together(tmp_path: Path) -> None:
    written = pdf_fixtures.split_callouts(tmp_path)

    result = extract(written.path, {})

    assert _values(result) == {
        (0.75, "linear", "±.008"),
        (12.0, "diameter", "±0.1"),
        (5.0, "radius", None),
        (0.173, "diameter", "+.005-.001"),
    }
    assert {item["unit"] for item in result["dimensions"]} == {"in"}


def test_inch_decimals_are_read_whole_and_a_doubtful_one_is_text_only(tmp_path: Path) -> None:
    written = pdf_fixtures.inch_callouts(tmp_path)

    result = extract(written.path, {})

    read = {(item["label"], item["value"], item["dimension_type"], item["tolerance"]) for item in result["dimensions"]}
    assert read == {
        *pdf_fixtures.INCH_CALLOUTS,
        (pdf_fixtures.UNCERTAIN_CALLOUT, None, "linear", "±.02"),
    }
    assert [warning for warning in result["warnings"] if pdf_fixtures.UNCERTAIN_CALLOUT in warning] == [
        f"page 1: dimension '{pdf_fixtures.UNCERTAIN_CALLOUT}' is given as text only (value null): "
        "the number is joined to 'x', which is not a known sign"
    ]
    assert check_file(written.path).failures == []


def test_text_in_a_font_without_unicode_map_is_read_with_pdfminer(tmp_path: Path) -> None:
    from tests.extractors.conftest import _raw_pdf

    written = pdf_fixtures.unmapped_font(tmp_path, _raw_pdf)

    result = extract(written.path, {})

    assert _pdfium_characters(written.path) == [len("REVB")]  # PDFium loses the CJK text
    assert sorted(block["text"] for block in result["text_blocks"]) == sorted(written.texts)
    assert result["metadata"]["page_info"][0]["characters"] == len("REVB") + len(pdf_fixtures.GBK_TEXT)
    assert any("read with pdfminer" in warning for warning in result["warnings"])
    assert check_file(written.path).failures == []


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (("Rev D",), {"revision": "D"}),
        (("Rev. D",), {"revision": "D"}),
        (("Sheet 1 of 2",), {"sheet": "1 of 2"}),
        (("Sheet 2 of 2", "REV: C", "DATE 8 Dec 2016"), {"sheet": "2 of 2", "revision": "C", "date": "8 Dec 2016"}),
    ],
)
def test_a_title_block_of_one_field_is_kept(tmp_path: Path, texts: tuple[str, ...], expected: dict[str, str]) -> None:
    written = pdf_fixtures.title_corner(tmp_path, texts)

    block = extract(written.path, {})["title_block"]

    assert block is not None
    assert {name: value for name, value in block.items() if value and name != "custom_fields"} == expected


def test_a_revision_named_in_a_sentence_is_no_title_block(tmp_path: Path) -> None:
    written = pdf_fixtures.title_corner(tmp_path, ())

    assert extract(written.path, {})["title_block"] is None


@pytest.mark.parametrize("date", ["2016-12-08", "08-DEC-2016", "Dec 8, 2016", "12/8/2016", "8 December 2016"])
def test_dates_beside_title_block_labels_are_recognised(date: str) -> None:
    row = [Segment("REV", 0, 0, 20, 10), Segment("C", 40, 0, 50, 10), Segment(date, 300, 0, 360, 10)]

    block = read_title_block(rows=[row])

    assert block is not None and (block["revision"], block["date"]) == ("C", date)


def test_a_pdf_that_opens_without_a_password_is_read(tmp_path: Path) -> None:
    written = pdf_fixtures.empty_password(tmp_path)

    result = extract(written.path, {})

    assert [block["text"] for block in result["text_blocks"]] == list(written.texts)
    assert _values(result) == {(12.0, "diameter", "±0.1")}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("4X Ø.173 +.005 -.001", [("4X Ø.173 +.005 -.001", 0.173)]),
        ("Ø12 ±0.1   R5", [("Ø12 ±0.1", 12.0), ("R5", 5.0)]),
        ("Ø.875", [("Ø.875", 0.875)]),
        ("vØ.438 ±.010", [("vØ.438 ±.010", None)]),
        ("1,250 mm", [("1,250 mm", None)]),
        ("2x Ø16 H7", [("2x Ø16 H7", 16.0)]),
        ("85 FR 63561", []),
        ("ISO4762-M6x16", []),
        ("14 CFR 39.13", []),
        ("EP06AU20", []),
        ("Y14.5M-1994", []),
    ],
)
def test_callouts_are_found_in_a_line(line: str, expected: list[tuple[str, float | None]]) -> None:
    found = find_callouts(line)

    assert [(callout.dimension["label"], callout.dimension["value"]) for callout in found] == expected
    assert all((callout.doubt is None) == (callout.dimension["value"] is not None) for callout in found)


# --- the sample corpus ---------------------------------------------------------------------


def test_corpus_drawing_title_block_and_bom(corpus: Path) -> None:
    result = extract(corpus / "pdf" / "drawing_a3_titleblock_bom.pdf", {})

    block = result["title_block"]
    assert (block["drawing_number"], block["title"], block["revision"], block["scale"]) == (
        "DWG-1001", "MOUNTING PLATE", "B", "1:1"
    )
    assert (block["sheet"], block["author"], block["date"], block["material"]) == (
        "1/2", "CORPUS", "2024-01-01", "S235JR"
    )
    bom = result["bom"]
    assert bom["headers"] == ["POS", "PART NO", "DESCRIPTION", "QTY", "MATERIAL"]
    assert bom["items"][:3] == [
        {"POS": "1", "PART NO": "PLT-120-80", "DESCRIPTION": "PLATE 120x80x10", "QTY": "1", "MATERIAL": "S235JR"},
        {"POS": "2", "PART NO": "ISO4762-M8x25", "DESCRIPTION": "SOCKET HEAD CAP SCREW", "QTY": "2",
         "MATERIAL": "8.8"},
        {"POS": "3", "PART NO": "ISO7089-8", "DESCRIPTION": "WASHER", "QTY": "2", "MATERIAL": "200HV"},
    ]
    # sheet 2 repeats rows 1-3 and adds spares 4-15: each row is listed once
    assert [item["POS"] for item in bom["items"]] == [str(number) for number in range(1, 16)]
    assert bom["items"][14]["PART NO"] == "SPARE-015"
    assert {(item["label"], item["page"]) for item in result["dimensions"]} == {
        (label, page) for label in ("120 ±0.1", "80 ±0.1", "2x Ø16 H7") for page in (1, 2)
    }
    assert result["metadata"]["title"] == "DWG-1001 Mounting plate"
    assert result["metadata"]["pages"] == 2


def test_corpus_drawing_tables(corpus: Path) -> None:
    result = extract(corpus / "pdf" / "drawing_a3_titleblock_bom.pdf", {"tables": True})

    sizes = sorted((table["page"], table["headers"][0], table["num_rows"]) for table in result["tables"])
    assert sizes == [(1, "POS", 3), (1, "TITLE", 3), (2, "POS", 15), (2, "TITLE", 3)]


def test_corpus_scanned_drawing_needs_ocr(corpus: Path) -> None:
    result = extract(corpus / "pdf" / "scanned_drawing_no_text.pdf", {})

    assert any("OCR" in warning for warning in result["warnings"])
    assert result["text_blocks"] == []


def test_corpus_nist_drawings(corpus: Path) -> None:
    rotated = extract(corpus / "pdf" / "nist_ftc_11_asme1_rb.pdf", {})
    dense = extract(corpus / "pdf" / "nist_ftc_10_asme1_rb.pdf", {})

    assert [page["rotation"] for page in rotated["metadata"]["page_info"]] == [270, 270]
    assert rotated["metadata"]["author"] == "NIST"
    assert "5. UNITS: MILLIMETERS" in [block["text"] for block in rotated["text_blocks"]]
    assert dense["metadata"]["pages"] == 5
    callouts = {(item["label"], item["value"], item["dimension_type"], item["tolerance"], item["unit"])
                for item in dense["dimensions"]}
    assert ("4X Ø7 ±0.25", 7.0, "diameter", "±0.25", "mm") in callouts


# What each file of corpus/bad must be refused with; a file added later must at least be
# refused as a PermanentError that names the PDF.
CORPUS_REFUSALS: dict[str, tuple[type[PermanentError], str]] = {
    "broken_xref.pdf": (CorruptFile, "cross-reference table is broken"),
    "flate_bomb_1gib.pdf": (FileTooLarge, "inflates to more than 64 MiB"),
    "lying_page_count.pdf": (CorruptFile, "declares 2,147,483,647 pages but holds 1"),
    "many_pages_100k.pdf": (FileTooLarge, "100,000 pages; at most 10,000 are accepted"),
    "png_named_as.pdf": (CorruptFile, "not a PDF: the file is a PNG image"),
    "truncated_half.pdf": (CorruptFile, "truncated"),
    "zero_byte.pdf": (CorruptFile, "empty"),
}


def test_corpus_bad_pdfs_are_refused_quickly(bad_pdf: Path) -> None:
    error, says = CORPUS_REFUSALS.get(bad_pdf.name, (PermanentError, "PDF"))
    started = time.monotonic()

    with pytest.raises(error, match=says):
        extract(bad_pdf, {})
    elapsed = time.monotonic() - started
    assert elapsed < REFUSAL_SECONDS, f"{bad_pdf.name} took {elapsed:.1f} s"

"""PDF and DXF drawings made by the tests, holding known facts, and the shared sample corpus.

Each generated drawing comes with the facts written into it (title block, BOM rows, dimension
callouts), so the tests compare what the extractors report with what was written.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


# --- the sample corpus -----------------------------------------------------------------------


def corpus_root() -> Path | None:
    """``$PGQUEUE_CORPUS``, else ``../shared/corpus`` beside the repository, when present."""
    path = Path(os.environ.get("PGQUEUE_CORPUS", ROOT.parent / "shared" / "corpus"))
    return path if path.is_dir() else None


@pytest.fixture
def corpus() -> Path:
    root = corpus_root()
    if root is None:
        pytest.skip("sample corpus not found (set PGQUEUE_CORPUS)")
    return root


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``bad_pdf`` and ``bad_dxf`` arguments run once per file in the corpus's ``bad/``."""
    for argument, pattern in (("bad_pdf", "*.pdf"), ("bad_dxf", "*.dxf")):
        if argument not in metafunc.fixturenames:
            continue
        root = corpus_root()
        files = sorted((root / "bad").glob(pattern)) if root else []
        if files:
            metafunc.parametrize(argument, files, ids=[path.name for path in files])
        else:
            skip = pytest.mark.skip(reason="sample corpus not found (set PGQUEUE_CORPUS)")
            metafunc.parametrize(argument, [pytest.param(None, marks=skip)], ids=["no-corpus"])


# --- PDF -------------------------------------------------------------------------------------

DISPLAY_WIDTH, DISPLAY_HEIGHT = 842.0, 595.0  # A4 landscape, as every page is shown
MARK_TEXT, MARK_X, MARK_Y = "ORIENTATION MARK", 100.0, 200.0
PAGE_ROTATIONS = (0, 90, 180, 270)


@dataclass(frozen=True)
class PdfDrawing:
    path: Path
    title_block: dict[str, str]
    custom_fields: dict[str, str]
    bom_headers: list[str]
    bom_rows: list[list[str]]
    dimensions: set[tuple[float, str, str | None, str | None]]  # value, type, tolerance, unit
    info: dict[str, str]
    rotations: tuple[int, ...]
    mark: tuple[str, float, float]  # a text and where it shows, on every sheet
    display_size: tuple[float, float]


PDF_TITLE_BLOCK = {
    "title": "BEARING COVER", "drawing_number": "PGQ-2001", "revision": "C",
    "scale": "2:1", "date": "2025-03-14", "author": "J. DOE", "company": "PGQUEUE WORKS",
    "material": "AlMg3",
}
PDF_BOM_HEADERS = ["ITEM", "PART NUMBER", "DESCRIPTION", "QTY"]
PDF_BOM_ROWS = [
    ["1", "PGQ-2001-01", "COVER", "1"],
    ["2", "ISO4762-M6x16", "SOCKET HEAD CAP SCREW", "4"],
    ["3", "DIN471-30", "RETAINING RING", "1"],
]
# Callout text, and what it states. Every other text on the page must not read as a dimension.
PDF_CALLOUTS = {
    "Ø12": (12.0, "diameter", None, "mm"),
    "R5": (5.0, "radius", None, "mm"),
    "45°": (45.0, "angular", None, "deg"),
    "120 ±0.1": (120.0, "linear", "±0.1", "mm"),
    "10 +0.2/-0.1": (10.0, "linear", "+0.2/-0.1", "mm"),
    "25.4 in": (25.4, "linear", None, "in"),
    "2x Ø6.6 H12": (6.6, "diameter", "H12", "mm"),
}
PDF_NOTES = ["UNITS: mm", "GENERAL TOLERANCES ISO 2768-mK", "Ra 1.6", "DO NOT SCALE"]
PDF_INFO = {"title": "PGQ-2001 Bearing cover", "author": "pgqueue tests",
            "subject": "generated drawing", "keywords": "drawing, bom"}

_UPRIGHT = {  # page-space transform that makes display coordinates land upright after /Rotate
    0: lambda width, height: (1, 0, 0, 1, 0, 0),
    90: lambda width, height: (0, 1, -1, 0, width, 0),
    180: lambda width, height: (-1, 0, 0, -1, width, height),
    270: lambda width, height: (0, -1, 1, 0, 0, height),
}


def _ruled_table(
    canvas: Any, left: float, top: float, widths: list[float], row_height: float,
    rows: list[list[str]], size: float,
) -> None:
    right = left + sum(widths)
    for index in range(len(rows) + 1):
        canvas.line(left, top - index * row_height, right, top - index * row_height)
    x = left
    for width in [*widths, 0.0]:
        canvas.line(x, top, x, top - len(rows) * row_height)
        x += width
    canvas.setFont("Helvetica", size)
    for index, row in enumerate(rows):
        x = left
        for width, cell in zip(widths, row, strict=True):
            canvas.drawString(x + 3, top - (index + 1) * row_height + 5, cell)
            x += width


def _draw_sheet(canvas: Any, sheet: int, sheets: int, with_bom: bool) -> None:
    """One sheet in display coordinates: border, callouts, notes, title block, BOM."""
    canvas.rect(15, 15, DISPLAY_WIDTH - 30, DISPLAY_HEIGHT - 30)
    canvas.setFont("Helvetica", 10)
    for index, text in enumerate(PDF_CALLOUTS):
        canvas.drawString(60 + 45 * index, 480 - 18 * index, text)
    for index, text in enumerate(PDF_NOTES):
        canvas.drawString(40, 120 - 14 * index, text)
    canvas.drawString(MARK_X, MARK_Y, MARK_TEXT)
    block = PDF_TITLE_BLOCK
    _ruled_table(canvas, 392, 120, [90, 120, 70, 145], 18, [
        ["TITLE", block["title"], "SHEET", f"{sheet}/{sheets}"],
        ["DRAWING NO", block["drawing_number"], "REV", block["revision"]],
        ["SCALE", block["scale"], "DATE", block["date"]],
        ["DRAWN BY", block["author"], "COMPANY", block["company"]],
        ["MATERIAL", block["material"], "CHECKED", "A. SMITH"],
    ], 8)
    if with_bom:
        _ruled_table(canvas, 427, 280, [40, 130, 180, 40], 16, [PDF_BOM_HEADERS, *PDF_BOM_ROWS], 8)


def write_drawing_pdf(path: Path, rotations: tuple[int, ...] = PAGE_ROTATIONS) -> PdfDrawing:
    """One sheet per rotation, each shown as A4 landscape; the BOM is on sheet 1 only."""
    from reportlab.pdfgen.canvas import Canvas

    canvas = Canvas(str(path))
    canvas.setTitle(PDF_INFO["title"])
    canvas.setAuthor(PDF_INFO["author"])
    canvas.setSubject(PDF_INFO["subject"])
    canvas.setKeywords(PDF_INFO["keywords"])
    for sheet, rotation in enumerate(rotations, start=1):
        # reportlab takes the size as shown and stores the MediaBox turned for 90 and 270
        canvas.setPageSize((DISPLAY_WIDTH, DISPLAY_HEIGHT))
        canvas.setPageRotation(rotation)
        turned = rotation in (90, 270)
        width, height = (DISPLAY_HEIGHT, DISPLAY_WIDTH) if turned else (DISPLAY_WIDTH, DISPLAY_HEIGHT)
        canvas.saveState()
        canvas.transform(*_UPRIGHT[rotation](width, height))
        _draw_sheet(canvas, sheet, len(rotations), with_bom=sheet == 1)
        canvas.restoreState()
        canvas.showPage()
    canvas.save()
    return PdfDrawing(
        path=path,
        title_block=dict(PDF_TITLE_BLOCK),
        custom_fields={"CHECKED": "A. SMITH", "UNITS": "mm"},
        bom_headers=PDF_BOM_HEADERS,
        bom_rows=PDF_BOM_ROWS,
        dimensions=set(PDF_CALLOUTS.values()),
        info=dict(PDF_INFO),
        rotations=rotations,
        mark=(MARK_TEXT, MARK_X, MARK_Y),
        display_size=(DISPLAY_WIDTH, DISPLAY_HEIGHT),
    )


def _raw_pdf(objects: dict[int, bytes], startxref: int | None) -> bytes:
    """A PDF written object by object with a classic xref table (``startxref`` may lie)."""
    out = bytearray(b"%PDF-1.4\n")
    offsets: dict[int, int] = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    table_offset = len(out)
    size = max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for number in range(1, size):
        out += b"%010d 00000 n \n" % offsets[number]
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % size
    out += b"startxref\n%d\n%%%%EOF\n" % (table_offset if startxref is None else startxref)
    return bytes(out)


class PdfMaker:
    """Writes small PDFs, good and bad, into one test's temporary folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def drawing(self, rotations: tuple[int, ...] = PAGE_ROTATIONS) -> PdfDrawing:
        return write_drawing_pdf(self.folder / "drawing.pdf", rotations)

    def file(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path

    def blank(self, pages: int) -> Path:
        from reportlab.pdfgen.canvas import Canvas

        path = self.folder / f"blank_{pages}.pdf"
        canvas = Canvas(str(path))
        for number in range(1, pages + 1):
            canvas.drawString(72, 720, f"page {number}")
            canvas.showPage()
        canvas.save()
        return path

    def scanned(self) -> Path:
        """A page holding only a picture of a drawing: no text layer."""
        from PIL import Image, ImageDraw
        from reportlab.lib.utils import ImageReader
        from reportlab.pdfgen.canvas import Canvas

        picture = Image.new("L", (400, 280), 255)
        pen = ImageDraw.Draw(picture)
        pen.rectangle((20, 20, 380, 260), outline=0, width=3)
        pen.text((40, 40), "DRAWING NO PGQ-2001", fill=0)
        path = self.folder / "scanned.pdf"
        canvas = Canvas(str(path), pagesize=(DISPLAY_WIDTH, DISPLAY_HEIGHT))
        canvas.drawImage(ImageReader(picture), 0, 0, DISPLAY_WIDTH, DISPLAY_HEIGHT)
        canvas.showPage()
        canvas.save()
        return path

    def encrypted(self) -> Path:
        from reportlab.lib.pdfencrypt import StandardEncryption
        from reportlab.pdfgen.canvas import Canvas

        path = self.folder / "encrypted.pdf"
        canvas = Canvas(str(path), encrypt=StandardEncryption("user-secret", "owner-secret"))
        canvas.drawString(72, 720, "secret drawing")
        canvas.showPage()
        canvas.save()
        return path

    def one_page(
        self, name: str, content: bytes = b"BT /F1 12 Tf 72 720 Td (Hello) Tj ET", *,
        filters: bytes = b"", count: int = 1, startxref: int | None = None,
    ) -> Path:
        """A hand-written one-page PDF whose page tree declares ``count`` pages."""
        objects = {
            1: b"<< /Type /Catalog /Pages 2 0 R >>",
            2: b"<< /Type /Pages /Kids [3 0 R] /Count %d >>" % count,
            3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
            4: b"<< /Length %d %s >>\nstream\n" % (len(content), filters) + content + b"\nendstream",
            5: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        }
        return self.file(name, _raw_pdf(objects, startxref))

    @staticmethod
    def deflate_twice_spaces(mebibytes: int) -> bytes:
        """``mebibytes`` MiB of spaces (an empty content stream), deflated twice: a few KB."""
        inner = zlib.compressobj(9)
        chunk = b" " * (1 << 20)
        once = b"".join(inner.compress(chunk) for _ in range(mebibytes)) + inner.flush()
        return zlib.compress(once, 9)


@pytest.fixture(scope="session")
def drawing_pdf(tmp_path_factory: pytest.TempPathFactory) -> PdfDrawing:
    return PdfMaker(tmp_path_factory.mktemp("pdf")).drawing()


@pytest.fixture
def pdf_maker(tmp_path: Path) -> PdfMaker:
    return PdfMaker(tmp_path)


# --- DXF -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DxfDrawing:
    path: Path
    version: str
    layers: dict[str, dict[str, Any]]  # name -> color, is_on, is_frozen, is_locked, entity_count
    dimensions: set[tuple[float, str, str | None]]  # value, type, tolerance
    title_block: dict[str, str]
    custom_fields: dict[str, str]
    bom_rows: list[dict[str, str]]
    insert_counts: dict[str, int]
    texts: list[str]


DXF_TITLE_ATTRIBUTES = {
    "DWG_NO": "PGQ-3001", "TITLE": "FLANGE PLATE", "REV": "D", "DATE": "2025-04-01",
    "SCALE": "1:2", "SHEET": "1/1", "DRAWN": "R. ROE", "COMPANY": "PGQUEUE WORKS",
    "CHECKED_BY": "A. SMITH",
}
DXF_TITLE_BLOCK = {
    "drawing_number": "PGQ-3001", "title": "FLANGE PLATE", "revision": "D", "date": "2025-04-01",
    "scale": "1:2", "sheet": "1/1", "author": "R. ROE", "company": "PGQUEUE WORKS",
    "material": "AlMg3",  # from the text "MATERIAL: AlMg3", not from an attribute
}
DXF_BOM_ROWS = [  # inserted out of order; the BOM lists them by position
    {"POS": "3", "PART_NO": "ISO7089-6", "DESC": "WASHER", "QTY": "8"},
    {"POS": "1", "PART_NO": "PGQ-3001-01", "DESC": "FLANGE", "QTY": "1"},
    {"POS": "2", "PART_NO": "ISO4017-M6x20", "DESC": "HEX SCREW", "QTY": "8"},
]


def write_drawing_dxf(path: Path, version: str = "R2018", binary: bool = False) -> DxfDrawing:
    import ezdxf
    from ezdxf import units

    document = ezdxf.new(version, setup=True)
    document.units = units.MM
    for name, color in (("OUTLINE", 7), ("HIDDEN", 1), ("DIMENSIONS", 3), ("NOTES", 2),
                        ("TITLE", 5), ("BOM", 6), ("PARKED", 4), ("ARCHIVE", 8), ("GRID", 9)):
        document.layers.add(name, color=color)
    document.layers.get("PARKED").off()
    document.layers.get("ARCHIVE").freeze()
    document.layers.get("GRID").lock()
    modelspace = document.modelspace()
    outline = {"layer": "OUTLINE"}
    if version == "R12":
        modelspace.add_polyline2d([(0, 0), (100, 0), (100, 60), (0, 60)], close=True, dxfattribs=outline)
    else:
        modelspace.add_lwpolyline([(0, 0), (100, 0), (100, 60), (0, 60)], close=True, dxfattribs=outline)
    modelspace.add_circle((30, 30), 6, dxfattribs=outline)
    modelspace.add_arc((70, 30), 5, 0, 180, dxfattribs=outline)
    modelspace.add_line((0, 10), (100, 10), dxfattribs={"layer": "HIDDEN"})
    modelspace.add_circle((200, 200), 3, dxfattribs={"layer": "PARKED"})
    modelspace.add_line((200, 0), (210, 0), dxfattribs={"layer": "ARCHIVE"})

    on_dimensions = {"layer": "DIMENSIONS"}
    modelspace.add_linear_dim(base=(0, -10), p1=(0, 0), p2=(100, 0), text="<> ±0.1",
                              dxfattribs=on_dimensions).render()
    modelspace.add_linear_dim(base=(-10, 0), p1=(0, 0), p2=(0, 60), angle=90,
                              override={"dimtol": 1, "dimtp": 0.2, "dimtm": 0.1},
                              dxfattribs=on_dimensions).render()
    modelspace.add_diameter_dim(center=(30, 30), radius=6, angle=45, dxfattribs=on_dimensions).render()
    modelspace.add_radius_dim(center=(70, 30), radius=5, angle=60, dxfattribs=on_dimensions).render()
    modelspace.add_angular_dim_cra(center=(70, 30), radius=12, start_angle=0, end_angle=45,
                                   distance=4, dxfattribs=on_dimensions).render()

    texts = ["MATERIAL: AlMg3", "GENERAL TOLERANCES ISO 2768-mK"]
    modelspace.add_text(texts[0], height=3.5, dxfattribs={"layer": "NOTES"}).set_placement((0, 80))
    modelspace.add_text(texts[1], height=3.5, dxfattribs={"layer": "NOTES"}).set_placement((0, 72))
    if version != "R12":
        modelspace.add_mtext("NOTES:\\P1. DEBURR", dxfattribs={"layer": "NOTES", "char_height": 3}
                             ).set_location((120, 80))
        texts.append("NOTES:\n1. DEBURR")

    title = document.blocks.new("TITLE_BLOCK")
    title.add_line((0, 0), (180, 0))
    for index, tag in enumerate(DXF_TITLE_ATTRIBUTES):
        title.add_attdef(tag, (2, 2 + 4 * index), dxfattribs={"height": 2.5})
    modelspace.add_blockref("TITLE_BLOCK", (150, -80), dxfattribs={"layer": "TITLE"}).add_auto_attribs(
        DXF_TITLE_ATTRIBUTES
    )

    row_block = document.blocks.new("PARTS_ROW")
    for index, tag in enumerate(("POS", "PART_NO", "DESC", "QTY")):
        row_block.add_attdef(tag, (2 + 40 * index, 1.5), dxfattribs={"height": 2.5})
    for index, row in enumerate(DXF_BOM_ROWS):
        modelspace.add_blockref("PARTS_ROW", (150, -40 + 6 * index), dxfattribs={"layer": "BOM"}
                                ).add_auto_attribs(row)

    bolt = document.blocks.new("BOLT")
    bolt.add_circle((0, 0), 3)
    assembly = document.blocks.new("BOLT_PAIR")
    assembly.add_blockref("BOLT", (0, 0))
    modelspace.add_blockref("BOLT", (10, 50), dxfattribs={"layer": "OUTLINE"})
    modelspace.add_blockref("BOLT", (90, 50), dxfattribs={"layer": "OUTLINE"})
    modelspace.add_blockref("BOLT_PAIR", (50, 50), dxfattribs={"layer": "OUTLINE"})

    document.saveas(path, fmt="bin" if binary else "asc")
    return DxfDrawing(
        path=path,
        version=version,
        layers={
            "OUTLINE": {"color": 7, "is_on": True, "is_frozen": False, "is_locked": False, "entity_count": 6},
            "HIDDEN": {"color": 1, "is_on": True, "is_frozen": False, "is_locked": False, "entity_count": 1},
            "DIMENSIONS": {"color": 3, "is_on": True, "is_frozen": False, "is_locked": False, "entity_count": 5},
            "NOTES": {"color": 2, "is_on": True, "is_frozen": False, "is_locked": False,
                      "entity_count": len(texts)},
            "PARKED": {"color": 4, "is_on": False, "is_frozen": False, "is_locked": False, "entity_count": 1},
            "ARCHIVE": {"color": 8, "is_on": True, "is_frozen": True, "is_locked": False, "entity_count": 1},
            "GRID": {"color": 9, "is_on": True, "is_frozen": False, "is_locked": True, "entity_count": 0},
        },
        dimensions={
            (100.0, "linear", "±0.1"), (60.0, "linear", "+0.2/-0.1"), (12.0, "diameter", None),
            (5.0, "radius", None), (45.0, "angular", None),
        },
        title_block=dict(DXF_TITLE_BLOCK),
        custom_fields={"CHECKED BY": "A. SMITH"},
        bom_rows=sorted(DXF_BOM_ROWS, key=lambda row: int(row["POS"])),
        insert_counts={"TITLE_BLOCK": 1, "PARTS_ROW": 3, "BOLT": 3, "BOLT_PAIR": 1},
        texts=texts,
    )


class DxfMaker:
    """Writes small DXF files, good and bad, into one test's temporary folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def drawing(self, version: str = "R2018", binary: bool = False) -> DxfDrawing:
        suffix = "_binary" if binary else ""
        return write_drawing_dxf(self.folder / f"drawing_{version}{suffix}.dxf", version, binary)

    def file(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path

    def points(self, count: int) -> Path:
        """A drawing of ``count`` POINT entities on layer GRID."""
        import ezdxf

        document = ezdxf.new("R2018")
        document.layers.add("GRID")
        modelspace = document.modelspace()
        for index in range(count):
            modelspace.add_point((index, index % 7), dxfattribs={"layer": "GRID"})
        path = self.folder / f"points_{count}.dxf"
        document.saveas(path)
        return path


@pytest.fixture(scope="session")
def drawing_dxf(tmp_path_factory: pytest.TempPathFactory) -> DxfDrawing:
    return DxfMaker(tmp_path_factory.mktemp("dxf")).drawing()


@pytest.fixture
def dxf_maker(tmp_path: Path) -> DxfMaker:
    return DxfMaker(tmp_path)

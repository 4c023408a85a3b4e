"""Small PDFs, one per class of defect seen on real drawings, written with reportlab or by hand.

Each builder returns the path and what it wrote, so that tests compare the extraction with
what is on the page (and with PDFium's own reading of it, at test time).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# (text, x, y): callouts turned 60 degrees and drawn close together, as on NIST drawings, so
# that the boxes around their text overlap.
ROTATED_ANGLE = 60
ROTATED_CALLOUTS = (
    ("2X Ø.250 +.003 -.000", 300.0, 300.0),
    ("4X Ø.173 ±.005", 312.0, 296.0),
    (".30 ±.02", 324.0, 292.0),
)

# Pieces of one callout drawn apart, in an order other than left to right, and a line holding
# two callouts: each (text, x, y).
SPLIT_PIECES = ((".750", 100.0, 500.0), (".008", 126.0, 500.0), ("±", 119.0, 500.0))
TWO_CALLOUTS = ("Ø12 ±0.1        R5", 100.0, 450.0)
STACKED_UPPER = ("4X Ø.173 +.005", 100.0, 400.0)
STACKED_LOWER = ("-.001", 161.0, 391.0)

# Inch decimals without a leading zero, count prefixes and signs; and one joined to a letter
# from a symbol font, whose value cannot be read with certainty.
INCH_CALLOUTS = (
    (".30 ±.02", 0.30, "linear", "±.02"),
    ("Ø.875", 0.875, "diameter", None),
    ("3X Ø.875 ±.010", 0.875, "diameter", "±.010"),
    ("R.06", 0.06, "radius", None),
    ("30°", 30.0, "angular", None),
)
UNCERTAIN_CALLOUT = "x.30 ±.02"

GBK_TEXT = "刚性连接"


@dataclass(frozen=True)
class Written:
    path: Path
    texts: tuple[str, ...]


def rotated_callouts(folder: Path) -> Written:
    from reportlab.pdfgen.canvas import Canvas

    path = folder / "rotated.pdf"
    canvas = Canvas(str(path), pagesize=(842, 595))
    canvas.setFont("Helvetica", 10)
    canvas.drawString(40, 40, "UNITS: INCHES")
    for text, x, y in ROTATED_CALLOUTS:
        canvas.saveState()
        canvas.translate(x, y)
        canvas.rotate(-ROTATED_ANGLE)
        canvas.drawString(0, 0, text)
        canvas.restoreState()
    canvas.showPage()
    canvas.save()
    return Written(path, tuple(text for text, _, _ in ROTATED_CALLOUTS))


def split_callouts(folder: Path) -> Written:
    from reportlab.pdfgen.canvas import Canvas

    path = folder / "split.pdf"
    canvas = Canvas(str(path), pagesize=(842, 595))
    canvas.setFont("Helvetica", 10)
    canvas.drawString(40, 40, "UNITS: INCHES")
    for text, x, y in (*SPLIT_PIECES, TWO_CALLOUTS, STACKED_UPPER, STACKED_LOWER):
        canvas.drawString(x, y, text)
    canvas.showPage()
    canvas.save()
    return Written(path, ())


def inch_callouts(folder: Path) -> Written:
    from reportlab.pdfgen.canvas import Canvas

    path = folder / "inch.pdf"
    canvas = Canvas(str(path), pagesize=(842, 595))
    canvas.setFont("Helvetica", 10)
    canvas.drawString(40, 40, "UNITS: INCHES")
    texts = [text for text, *_ in INCH_CALLOUTS] + [UNCERTAIN_CALLOUT]
    for row, text in enumerate(texts):
        canvas.drawString(100, 500 - 30 * row, text)
    canvas.showPage()
    canvas.save()
    return Written(path, tuple(texts))


def title_corner(folder: Path, texts: tuple[str, ...], name: str = "corner.pdf") -> Written:
    """A drawing whose only title block fields are the ``texts`` in its lower right corner;
    the notes hold a sentence that names a revision, which is not a title block."""
    from reportlab.pdfgen.canvas import Canvas

    path = folder / name
    canvas = Canvas(str(path), pagesize=(842, 595))
    canvas.setFont("Helvetica", 10)
    canvas.drawString(40, 300, "SEE THE SUPPLIER MANUAL, REVISION 1 FOR THE PROCEDURE")
    for row, text in enumerate(texts):
        canvas.drawString(740, 20 + 14 * row, text)
    canvas.showPage()
    canvas.save()
    return Written(path, texts)


def unmapped_font(folder: Path, raw_pdf: object) -> Written:
    """CJK text in a GBK-EUC-H font without a ToUnicode map (PDFium reads no text from it),
    one character per text object as an OCR layer writes it, beside Helvetica text."""
    parts = [b"BT /F2 10 Tf 100 600 Td (REV B) Tj ET"]
    for position, character in enumerate(GBK_TEXT):
        code = character.encode("gbk").hex().encode()
        parts.append(b"BT /F1 17 Tf %d 644 Td <%s> Tj ET" % (100 + 18 * position, code))
    content = b"\n".join(parts)
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
           b"/Resources << /Font << /F1 5 0 R /F2 8 0 R >> >> >>",
        4: b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        5: b"<< /Type /Font /Subtype /Type0 /BaseFont /SimSun-GBK-EUC-H /Encoding /GBK-EUC-H "
           b"/DescendantFonts [6 0 R] >>",
        6: b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /SimSun /CIDSystemInfo "
           b"<< /Registry (Adobe) /Ordering (GB1) /Supplement 2 >> /DW 1000 /FontDescriptor 7 0 R >>",
        7: b"<< /Type /FontDescriptor /FontBBox [-8 -145 1000 859] /FontName /SimSun /Flags 32 "
           b"/StemV 88 /StemH 0 /CapHeight 684 /XHeight 453 /Ascent 859 /Descent -141 /ItalicAngle 0 >>",
        8: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    path = folder / "gbk.pdf"
    path.write_bytes(raw_pdf(objects, None))  # type: ignore[operator]
    return Written(path, (GBK_TEXT, "REV B"))


def empty_password(folder: Path) -> Written:
    """Encrypted with an owner password only: it opens without a password, as in a viewer."""
    from reportlab.lib.pdfencrypt import StandardEncryption
    from reportlab.pdfgen.canvas import Canvas

    path = folder / "owner_only.pdf"
    canvas = Canvas(str(path), encrypt=StandardEncryption("", "owner-secret"))
    canvas.drawString(72, 720, "Ø12 ±0.1")
    canvas.showPage()
    canvas.save()
    return Written(path, ("Ø12 ±0.1",))

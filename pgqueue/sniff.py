"""Which format a file is, from its first bytes: file names are missing or lie.

- PDF: ``%PDF-`` within the first kilobyte (the standard allows a little junk before it);
- DWG: ``AC10`` and two digits (``AC1032`` is AutoCAD 2018). pgqueue refuses DWG: it reads DXF;
- DXF: the binary sentinel, or ASCII group-code pairs opening with ``0 / SECTION``;
- IFC and STEP: both are ISO 10303-21 (``ISO-10303-21;``); ``FILE_SCHEMA`` tells them apart:
  ``IFC2X3``, ``IFC4``... are IFC, anything else (``AUTOMOTIVE_DESIGN``, ``AP242_...``) is STEP.

Nothing else is guessed: werk24 jobs (drawings sent to the Werk24 API) and formats added by
plugins are chosen with ``--format``.
"""

from __future__ import annotations

import re
from pathlib import Path

HEAD_BYTES = 64 * 1024

PDF = "pdf"
DXF = "dxf"
IFC = "ifc"
STEP = "step"
DWG = "dwg"

EXTENSIONS = {
    ".pdf": PDF,
    ".dxf": DXF,
    ".ifc": IFC,
    ".step": STEP,
    ".stp": STEP,
    ".p21": STEP,
    ".dwg": DWG,
}

_DWG = re.compile(rb"^AC10\d\d")
_BINARY_DXF = b"AutoCAD Binary DXF\r\n\x1a\x00"
_ISO_10303_21 = re.compile(rb"^\s*ISO-10303-21\s*;")
_FILE_SCHEMA = re.compile(rb"FILE_SCHEMA\s*\(\s*\(\s*'([^']*)'", re.IGNORECASE)
_DXF_SECTIONS = {"HEADER", "CLASSES", "TABLES", "BLOCKS", "ENTITIES", "OBJECTS", "THUMBNAILIMAGE"}


def sniff(head: bytes) -> str | None:
    """``pdf``, ``dxf``, ``ifc``, ``step``, ``dwg``, or None when the bytes say nothing we know."""
    head = head.removeprefix(b"\xef\xbb\xbf")
    if b"%PDF-" in head[:1024]:
        return PDF
    if _DWG.match(head):
        return DWG
    if head.startswith(_BINARY_DXF) or _looks_like_ascii_dxf(head):
        return DXF
    if _ISO_10303_21.match(head):
        schema = _FILE_SCHEMA.search(head)
        if schema and schema.group(1).strip().upper().startswith(b"IFC"):
            return IFC
        return STEP
    return None


def sniff_file(path: Path) -> str | None:
    with open(path, "rb") as file:
        return sniff(file.read(HEAD_BYTES))


def from_name(name: str) -> str | None:
    """The format a file name or URL path claims, by its extension."""
    cleaned = name.split("?", 1)[0].split("#", 1)[0].lower()
    return EXTENSIONS.get(Path(cleaned).suffix)


def _looks_like_ascii_dxf(head: bytes) -> bool:
    """Group-code text: a code line (an integer) and a value line, in pairs. Comments (999)
    may come first; the first real pair is ``0 / SECTION``, followed by ``2 / <section name>``."""
    text = head[:4096].decode("latin-1")
    lines = [line.strip() for line in text.splitlines()]
    if text and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the last line may be cut in the middle
    pairs = list(zip(lines[0::2], lines[1::2], strict=False))
    while pairs and pairs[0][0] == "999":
        pairs.pop(0)
    if not pairs or pairs[0] != ("0", "SECTION"):
        return False
    if len(pairs) == 1:
        return True
    code, value = pairs[1]
    return code == "2" and value.upper() in _DXF_SECTIONS

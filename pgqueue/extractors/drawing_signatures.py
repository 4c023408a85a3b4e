"""What a file really is, from its first bytes: for errors that say more than "corrupt"."""

from __future__ import annotations

_SIGNATURES = (
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"AC10", "an AutoCAD DWG drawing"),
    (b"ISO-10303-21", "a STEP or IFC model"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office document"),
)


def describe(head: bytes) -> str | None:
    """``'a PNG image'`` when the bytes start with a known signature, else None."""
    head = head.removeprefix(b"\xef\xbb\xbf")
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    stripped = head.lstrip()
    if stripped.startswith((b"0\r\n", b"0\n")) and b"SECTION" in head[:200]:
        return "a DXF drawing"
    return None

"""Opening a DXF file, and refusing what is not a whole DXF file.

ezdxf's recovery mode reads almost anything: a DXF cut in half, or zero bytes, opens as a
nearly empty drawing without complaint. So the file's first and last bytes are checked before
ezdxf sees it: DWG (refused by its ``AC10xx`` signature), other formats, data that does not
start like a DXF, and a file that does not end with the ``0/EOF`` marker every DXF writer puts
last. Only then is the file read, strictly first, in recovery mode if the strict reader fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgqueue.errors import CorruptFile, UnsupportedFormat
from pgqueue.extractors.drawing_signatures import describe
from pgqueue.extractors.dxf_encoding import legacy_encoding

_BINARY_SENTINEL = b"AutoCAD Binary DXF\r\n\x1a\x00"
_HEAD_BYTES = 512
_TAIL_BYTES = 512
_MAX_AUDIT_MESSAGES = 50


@dataclass
class OpenedDrawing:
    document: Any  # ezdxf.document.Drawing
    has_header: bool = True  # False: ezdxf filled in a default header (units, version)
    encoding: str | None = None  # the codec a legacy code page was read with, where not ezdxf's
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_envelope(path: Path) -> bool:
    """Refuse empty files, DWG, other formats, non-DXF data and truncated DXF.

    Returns whether the file starts with a HEADER section (a minimal DXF may hold only
    ENTITIES, and then it states no units and no version).
    """
    size = path.stat().st_size
    if size == 0:
        raise CorruptFile("the file is empty (0 bytes), not a DXF")
    with path.open("rb") as file:
        head = file.read(_HEAD_BYTES)
        file.seek(max(size - _TAIL_BYTES, 0))
        tail = file.read()
    if head.startswith(b"AC10"):
        version = head[:6].decode("ascii", "replace")
        raise UnsupportedFormat(
            f"DWG is not supported; convert to DXF (this file is a DWG drawing, version {version})"
        )
    if head.startswith(_BINARY_SENTINEL):
        if b"EOF\x00" not in tail:
            raise CorruptFile("the binary DXF is truncated: it does not end with the EOF marker")
        return b"HEADER\x00" in head
    kind = describe(head)
    if kind is not None and kind != "a DXF drawing":
        raise CorruptFile(f"not a DXF: the file is {kind}")
    first_section = _first_section(head)
    if first_section is None:
        raise CorruptFile(
            "not a DXF: the file does not start with a DXF group code and section "
            "(random or binary data?)"
        )
    if not _ends_with_eof(tail):
        raise CorruptFile(
            "the DXF is truncated or damaged: it does not end with the 0/EOF marker"
        )
    return first_section == "HEADER"


def _is_binary(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(len(_BINARY_SENTINEL)) == _BINARY_SENTINEL


def _lines(data: bytes) -> list[str]:
    return [line.strip() for line in data.decode("latin-1").splitlines()]


def _first_section(head: bytes) -> str | None:
    """The name of the first section (``0/SECTION, 2/name``, after any ``999`` comments),
    or None when the data does not open like a DXF."""
    lines = _lines(head.removeprefix(b"\xef\xbb\xbf").lstrip())
    for position in range(0, len(lines) - 3, 2):
        code, value = lines[position], lines[position + 1]
        if code == "999":
            continue
        if code == "0" and value.upper() == "SECTION" and lines[position + 2] == "2":
            return lines[position + 3].upper()
        return None
    return None


def _ends_with_eof(tail: bytes) -> bool:
    lines = [line for line in _lines(tail) if line]
    return len(lines) >= 2 and lines[-2] == "0" and lines[-1].upper() == "EOF"


def open_drawing(path: Path) -> OpenedDrawing:
    """The checked file read by ezdxf; CorruptFile when neither reader can make sense of it."""
    has_header = check_envelope(path)  # before importing ezdxf: a refused file costs nothing
    import ezdxf
    from ezdxf import recover
    from ezdxf.lldxf.const import DXFError

    encoding = legacy_encoding(path) if has_header and not _is_binary(path) else None
    try:
        return OpenedDrawing(ezdxf.readfile(path, encoding=encoding), has_header, encoding)
    except (DXFError, OSError, ValueError, UnicodeError, IndexError) as strict_error:
        first_problem = f"{type(strict_error).__name__}: {strict_error}"
    try:
        document, auditor = recover.readfile(path)
    except (DXFError, OSError, ValueError, UnicodeError, IndexError) as exc:
        raise CorruptFile(f"the DXF cannot be read: {exc}") from None
    opened = OpenedDrawing(document, has_header)
    opened.warnings.append(
        f"the DXF has structural errors ({first_problem}); it was read in recovery mode"
    )
    opened.errors.extend(str(entry.message) for entry in auditor.errors[:_MAX_AUDIT_MESSAGES])
    if auditor.fixes:
        opened.warnings.append(f"recovery fixed {len(auditor.fixes)} problem(s) in the drawing")
    return opened

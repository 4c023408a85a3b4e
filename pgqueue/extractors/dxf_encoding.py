"""Text as the drawing shows it: legacy code pages, ``\\U+``/``\\M+`` escapes, MTEXT codes.

Before R2007 a DXF is written in the code page its ``$DWGCODEPAGE`` names. ezdxf knows the
Windows ``ANSI_*`` pages but reads every other one (``DOS850``, ``DOS437``, ``ISO8859_2``,
``MAC-ROMAN``...) as cp1252, which turns ``ä`` into ``„``; those files are opened here with the
Python codec of their code page. Characters outside the code page are written as ``\\U+039B``
(and ``\\M+1xxxx`` for double-byte pages), in layer names as well as in text; ezdxf leaves them
as written, so every string read from the drawing goes through :func:`decoded`.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any

_FIRST_UTF8_VERSION = "AC1021"  # R2007: always UTF-8, whatever $DWGCODEPAGE says
_HEADER_BYTES = 16_384  # writers put $ACADVER and $DWGCODEPAGE first in the header
# $DWGCODEPAGE spellings ezdxf does not map, with their Python codecs (the ANSI_* pages and
# DOS932 it maps itself).
_CODE_PAGE_PREFIXES = (("DOS", "cp"), ("ISO8859_", "iso8859_"), ("ISO8859-", "iso8859_"))
_NAMED_CODE_PAGES = {
    "MAC-ROMAN": "mac_roman", "BIG5": "big5", "KSC5601": "euc_kr", "JOHAB": "johab",
    "GB2312": "gb2312",
}
_UNICODE_ESCAPE = re.compile(r"\\U\+([0-9A-Fa-f]{4,5})")
_MIF_ESCAPE = re.compile(r"\\M\+([1-5])([0-9A-Fa-f]{4})")
_MIF_CODECS = {"1": "cp932", "2": "cp950", "3": "cp949", "4": "johab", "5": "gb2312"}
# \S<upper><divider><lower>; — stacked text; ezdxf garbles the "^" (tolerance) divider
_STACK = re.compile(r"\\S((?:\\.|[^;\\/#^])*)([/#^])((?:\\.|[^;])*);")


def codec_of(code_page: str | None) -> str | None:
    """The Python codec of a ``$DWGCODEPAGE`` value ezdxf would read wrongly, else None."""
    if not code_page:
        return None
    name = code_page.strip().upper()
    codec = _NAMED_CODE_PAGES.get(name)
    for prefix, python_prefix in _CODE_PAGE_PREFIXES:
        if codec is None and name.startswith(prefix):
            codec = python_prefix + name.removeprefix(prefix)
    if codec is None:
        return None
    try:
        return codecs.lookup(codec).name
    except LookupError:
        return None


def legacy_encoding(path: Path) -> str | None:
    """The codec to read an ASCII DXF older than R2007 with, when ezdxf would pick a wrong one."""
    with path.open("rb") as file:
        head = file.read(_HEADER_BYTES).decode("latin-1")
    lines = [line.strip() for line in head.splitlines()]
    values: dict[str, str] = {}
    for position in range(0, len(lines) - 3, 2):
        if lines[position] == "0" and lines[position + 1].upper() == "ENDSEC":
            break
        if lines[position] == "9" and lines[position + 1] in ("$ACADVER", "$DWGCODEPAGE"):
            values[lines[position + 1]] = lines[position + 3]
            if len(values) == 2:
                break
    if values.get("$ACADVER", "AC1009").upper() >= _FIRST_UTF8_VERSION:
        return None
    return codec_of(values.get("$DWGCODEPAGE"))


def decoded(raw: str) -> str:
    """``raw`` with its ``\\U+xxxx`` and ``\\M+nxxxx`` escapes turned into characters."""
    if "\\" not in raw:
        return raw
    text = _UNICODE_ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), raw)
    return _MIF_ESCAPE.sub(_mif_character, text)


def _mif_character(match: re.Match[str]) -> str:
    try:
        return bytes.fromhex(match.group(2)).decode(_MIF_CODECS[match.group(1)])
    except UnicodeDecodeError:
        return match.group(0)


def mtext_plain(raw: str) -> str:
    """MTEXT content without formatting codes (fonts, colours, heights, paragraphs, stacks)."""
    from ezdxf.tools.text import plain_mtext

    text = _STACK.sub(_unstacked, decoded(raw))
    # ezdxf's fast reader drops text after "\~" and "\\"; the exact one keeps it
    return str(plain_mtext(text))


def _unstacked(match: re.Match[str]) -> str:
    upper, divider, lower = match.groups()
    return f"{upper}{' ' if divider == '^' else '/'}{lower}"


def entity_text(entity: Any) -> str:
    """What a TEXT, ATTRIB, ATTDEF, MTEXT or MULTILEADER shows, every MTEXT column included."""
    kind = entity.dxftype()
    if kind == "MULTILEADER":
        content = entity.context.mtext
        return mtext_plain(content.default_content) if content is not None else ""
    if kind == "MTEXT":
        parts = [entity.text]
        if entity.has_columns:
            parts.extend(column.text for column in entity.columns.linked_columns)
        return "\n".join(mtext_plain(part) for part in parts)
    if kind in ("ATTRIB", "ATTDEF") and entity.has_embedded_mtext_entity:
        return mtext_plain(entity.virtual_mtext_entity().text)
    from ezdxf.tools.text import plain_text

    return str(plain_text(decoded(entity.dxf.get("text", ""))))

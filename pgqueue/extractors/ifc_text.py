"""8-bit text in IFC strings that is not the ISO 8859-1 the standard says it is.

ISO 10303-21 writes characters past ASCII as ``\\X2\\...\\X0\\`` (UTF-16); ``\\X\\hh`` and
``\\S\\c`` stand for ISO 8859-1 characters. Some writers (Japanese ArchiCAD, for one) put
Shift-JIS bytes through ``\\X\\``/``\\S\\`` instead, or write raw bytes: ifcopenshell shows
the first as mojibake (``1\\x8aK`` for 1階) and silently drops raw bytes (``1K``).

The file's strings vote: if every string holding such bytes decodes as UTF-8, the file is
UTF-8; if every one decodes as Shift-JIS (cp932) to real characters and some hold bytes
0x80-0x9F (control codes in ISO 8859-1, the lead bytes of most kanji and kana in Shift-JIS),
it is Shift-JIS. Otherwise the standard's reading stands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgqueue.extractors.step_reader import decode_string

# A string literal of a statement; '' inside is a quote.
STRING_LITERAL = re.compile(r"'[^']*+(?:''[^']*+)*+'")
_BYTE_RUN = re.compile(r"[\x00-\xff]+")
_HIGH = re.compile(r"[\x80-\xff]")
_C1 = re.compile(r"[\x80-\x9f]")
# Characters no real text decodes to: C1 controls, private use, replacement, surrogates.
_NOT_TEXT = re.compile("[\x80-\x9f\ue000-\uf8ff\ufffd\ud800-\udfff]")

UTF8 = "utf-8"
SHIFT_JIS = "cp932"
LATIN1 = "latin-1"
ENCODING_NAMES = {UTF8: "UTF-8", SHIFT_JIS: "Shift-JIS (cp932)", LATIN1: "ISO 8859-1"}


def may_hold_bytes(statement: str) -> bool:
    """Whether a statement (read as ISO 8859-1) may hold a string with bytes past ASCII."""
    return not statement.isascii() or "\\X\\" in statement or "\\S\\" in statement


def string_bytes(literal: str) -> tuple[str, bool] | None:
    """A string literal's characters, bytes as code points 0-255; ``None`` without such bytes.

    The flag says whether some byte was written raw rather than escaped. Strings that switch
    code pages (``\\PB\\``...) say what they hold and are left alone.
    """
    content = literal[1:-1]
    if "\\P" in content:
        return None
    text = decode_string(content)
    if _HIGH.search(text) is None:
        return None
    return text, not content.isascii()


@dataclass
class EncodingVote:
    """What the file's strings with bytes past ASCII say about its encoding."""

    strings: int = 0
    raw: int = 0  # of which hold raw (unescaped) bytes
    control_bytes: int = 0  # of which hold bytes 0x80-0x9F
    utf8: bool = True
    shift_jis: bool = True

    def add(self, text: str, raw: bool) -> None:
        self.strings += 1
        self.raw += raw
        for run in _BYTE_RUN.findall(text):
            if _HIGH.search(run) is None:
                continue
            data = run.encode(LATIN1)
            self.utf8 = self.utf8 and _decodes(data, UTF8)
            self.shift_jis = self.shift_jis and _decodes(data, SHIFT_JIS)
        if _C1.search(text):
            self.control_bytes += 1

    def encoding(self) -> str | None:
        """The encoding to decode the strings with, or ``None`` to keep the standard's reading."""
        if not self.strings:
            return None
        if self.utf8:
            return UTF8
        if self.shift_jis and self.control_bytes:
            return SHIFT_JIS
        # Raw bytes would be dropped by ifcopenshell: ISO 8859-1 at least keeps every one.
        return LATIN1 if self.raw else None


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return _NOT_TEXT.search(text) is None


def decoded(text: str, encoding: str) -> str:
    """``text`` (bytes as code points 0-255) with each run of bytes decoded in ``encoding``."""

    def decode(match: re.Match[str]) -> str:
        run = match.group(0)
        try:
            return run.encode(LATIN1).decode(encoding)
        except UnicodeDecodeError:
            return run
    return _BYTE_RUN.sub(decode, text)


def step_literal(text: str) -> str:
    """``text`` as a standard ISO 10303-21 string literal: ASCII, the rest as ``\\X2\\``."""
    parts = ["'"]
    for char in text:
        code = ord(char)
        if char == "'":
            parts.append("''")
        elif char == "\\":
            parts.append("\\\\")
        elif 0x20 <= code < 0x7F:
            parts.append(char)
        elif code <= 0xFFFF:
            parts.append(f"\\X2\\{code:04X}\\X0\\")
        else:
            parts.append(f"\\X4\\{code:08X}\\X0\\")
    parts.append("'")
    return "".join(parts)


__all__ = [
    "ENCODING_NAMES",
    "LATIN1",
    "SHIFT_JIS",
    "STRING_LITERAL",
    "UTF8",
    "EncodingVote",
    "decoded",
    "may_hold_bytes",
    "step_literal",
    "string_bytes",
]

"""The file ifcopenshell is given: the upload itself, or a corrected copy of it.

A copy is written when ifcopenshell would refuse or misread the upload: its FILE_SCHEMA is a
variant ifcopenshell does not name (the copy names the nearest schema, see ``ifc_schema``), or
its strings hold bytes in another encoding than the standard's (the copy writes them as
``\\X2\\`` escapes, see ``ifc_text``). A schema variant's copy is made statement by statement
and counts the file's records, so that records the reading schema cannot take are counted,
not lost; a copy that only decodes text rewrites just the lines holding such strings.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pgqueue.extractors.ifc_schema import is_ifc_schema, nearest_schema
from pgqueue.extractors.ifc_text import (
    STRING_LITERAL,
    EncodingVote,
    decoded,
    may_hold_bytes,
    step_literal,
    string_bytes,
)
from pgqueue.extractors.step_reader import Header, statements

SCAN_CHUNK_BYTES = 1 << 20
# Bytes past ASCII and the \X\ and \S\ escapes occur only inside strings. A string on one line,
# escapes taken whole (the bare quote of \S\' too, as step_reader reads it). Searching for
# the escapes alone is far faster, so the byte class is searched only where bytes past ASCII are.
_ESCAPE = re.compile(rb"\\[XS]\\")
_MARKER = re.compile(rb"\\[XS]\\|[\x80-\xff]")
_LINE_STRING = re.compile(rb"'(?:[^'\\\n]|\\S\\[^\n]|\\[^\n]|'')*+'")


@dataclass(frozen=True)
class Source:
    """What ifcopenshell opens, and how it differs from the upload."""

    path: Path
    file_schema: str  # the FILE_SCHEMA name the file gives
    schema: str  # the schema ifcopenshell reads it with
    encoding: str | None  # the encoding its 8-bit strings were decoded in, if not the standard's
    strings_decoded: int  # strings decoded in that encoding
    unidentified_strings: int  # strings with bytes 0x80-0x9F left as the standard reads them
    record_count: int | None  # records in the file, counted when a copy was written


@contextmanager
def ifc_source(path: Path, header: Header) -> Iterator[Source]:
    """The file to open for ``path``; a corrected copy lives until the context ends."""
    file_schema = next(name for name in header.schema_names if is_ifc_schema(name))
    schema = nearest_schema(file_schema)
    vote = EncodingVote()
    for literal in _marked_strings(path):
        found = string_bytes(literal.decode("latin-1"))
        if found is not None:
            vote.add(*found)
    encoding = vote.encoding()
    unidentified = vote.control_bytes if encoding is None else 0
    if schema == file_schema and encoding is None:
        yield Source(path, file_schema, schema, None, 0, unidentified, None)
        return
    with tempfile.TemporaryDirectory(prefix="pgqueue-ifc-") as folder:
        copy = Path(folder) / "model.ifc"
        count = None
        if schema != file_schema:
            count = _write_copy(path, copy, schema, encoding)
        elif encoding is not None:
            _write_recoded_copy(path, copy, encoding)
        strings = vote.strings if encoding is not None else 0
        yield Source(copy, file_schema, schema, encoding, strings, unidentified, count)


def _marked_chunks(path: Path) -> Iterator[tuple[bytes, list[tuple[int, int]]]]:
    """Chunks of whole lines, each with the spans of its lines holding a marker.

    Only those lines can hold strings with bytes past ASCII. (A string spanning lines is left
    out; the copy for a schema variant is made statement by statement and misses none.)
    """
    with open(path, "rb") as stream:
        while chunk := stream.read(SCAN_CHUNK_BYTES):
            chunk += stream.readline()
            ascii_only = chunk.isascii()
            if ascii_only and b"\\X\\" not in chunk and b"\\S\\" not in chunk:
                yield chunk, []
                continue
            spans = []
            searched = 0
            for marker in (_ESCAPE if ascii_only else _MARKER).finditer(chunk):
                if marker.start() < searched:
                    continue
                start = chunk.rfind(b"\n", 0, marker.start()) + 1
                end = chunk.find(b"\n", marker.end())
                searched = len(chunk) if end == -1 else end
                spans.append((start, searched))
            yield chunk, spans


def _marked_strings(path: Path) -> Iterator[bytes]:
    for chunk, spans in _marked_chunks(path):
        for start, end in spans:
            yield from _LINE_STRING.findall(chunk, start, end)


def _write_recoded_copy(path: Path, copy: Path, encoding: str) -> None:
    """Copy ``path`` with the 8-bit strings of its marked lines written as ``\\X2\\`` escapes."""

    def recode(match: re.Match[bytes]) -> bytes:
        return _recoded(match.group(0).decode("latin-1"), encoding).encode("latin-1")

    with open(copy, "wb") as target:
        for chunk, spans in _marked_chunks(path):
            copied = 0
            for start, end in spans:
                target.write(chunk[copied:start])
                target.write(_LINE_STRING.sub(recode, chunk[start:end]))
                copied = end
            target.write(chunk[copied:])


def _write_copy(path: Path, copy: Path, schema: str | None, encoding: str | None) -> int:
    """Copy ``path`` naming ``schema`` and decoding 8-bit strings; return the record count."""
    records = 0
    with open(path, encoding="latin-1", newline="") as source, \
            open(copy, "w", encoding="latin-1", newline="") as target:
        for _, text in statements(source):
            if text.startswith("#"):
                records += 1
            elif schema is not None and text[:11].upper() == "FILE_SCHEMA":
                text = f"FILE_SCHEMA(('{schema}'))"
            if encoding is not None and may_hold_bytes(text):
                text = STRING_LITERAL.sub(lambda match: _recoded(match.group(0), encoding), text)
            target.write(text)
            target.write(";\n")
    return records


def _recoded(literal: str, encoding: str) -> str:
    found = string_bytes(literal)
    return literal if found is None else step_literal(decoded(found[0], encoding))


__all__ = ["Source", "ifc_source"]

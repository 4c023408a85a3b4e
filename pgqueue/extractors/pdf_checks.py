"""Checks that run before a PDF's pages are touched, so a hostile file costs little.

PDFium repairs what it can: it rebuilds a broken cross-reference table, counts the pages a
lying ``/Count`` does not have, and inflates whatever a content stream holds when a page is
loaded (a 2 KB file can hold 1 GiB of content). The checks here refuse such files first:

- ``check_envelope`` reads the first and last bytes: empty, not a PDF, truncated (no
  ``%%EOF``), or a ``startxref`` that points nowhere;
- ``check_pages`` reads the page tree with pdfminer's object parser (no page is interpreted):
  a declared page count that differs from the real one, and page content (content streams and
  the forms they draw) that inflates past a limit, measured by inflating it in small chunks.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pgqueue.errors import CorruptFile, FileTooLarge, JobError
from pgqueue.extractors.drawing_signatures import describe

MEBIBYTE = 1 << 20
MAX_PAGE_CONTENT = 64 * MEBIBYTE
MAX_DOCUMENT_CONTENT = 512 * MEBIBYTE
_HEAD_BYTES = 1024
_TAIL_BYTES = 4096
_CHUNK = 1 << 16
_MAX_FORM_DEPTH = 8

_STARTXREF = re.compile(rb"startxref\s*(\d+)")
_OBJECT_HEADER = re.compile(rb"\d+\s+\d+\s+obj")


def check_envelope(path: Path) -> None:
    """Refuse files that are empty, not PDFs, cut short, or whose xref offset is broken."""
    size = path.stat().st_size
    if size == 0:
        raise CorruptFile("the file is empty (0 bytes), not a PDF")
    with path.open("rb") as file:
        head = file.read(_HEAD_BYTES)
        header_offset = head.find(b"%PDF-")
        if header_offset < 0:
            kind = describe(head)
            raise CorruptFile(
                f"not a PDF: the file is {kind}" if kind
                else "not a PDF: it does not start with the %PDF- header"
            )
        file.seek(max(size - _TAIL_BYTES, 0))
        tail = file.read()
        if b"%%EOF" not in tail:
            raise CorruptFile(
                "the PDF is truncated: its end-of-file marker (%%EOF) is missing"
            )
        offsets = _STARTXREF.findall(tail)
        if not offsets:
            raise CorruptFile("the PDF is damaged: it has no startxref entry at its end")
        offset = int(offsets[-1])
        if offset >= size:
            raise CorruptFile(
                f"the PDF's cross-reference table is broken: startxref points to byte "
                f"{offset:,}, past the end of the {size:,}-byte file"
            )
        if not any(_is_xref_at(file, start) for start in {offset, offset + header_offset}):
            raise CorruptFile(
                f"the PDF's cross-reference table is broken: there is none at byte {offset:,}, "
                "where startxref points"
            )


def _is_xref_at(file: Any, offset: int) -> bool:
    file.seek(offset)
    found = file.read(64).lstrip()
    return found.startswith(b"xref") or _OBJECT_HEADER.match(found) is not None


def check_pages(path: Path, page_count: int, page_numbers: Iterable[int]) -> list[str]:
    """Check the page tree and the content size of the pages to be read (1-based numbers).

    Raises CorruptFile or FileTooLarge; returns warnings when pdfminer cannot parse what PDFium
    could, because PDFium stays the judge of whether a file is readable.
    """
    from pdfminer.pdfdocument import PDFDocument
    from pdfminer.pdfparser import PDFParser

    wanted = sorted(set(page_numbers))
    with path.open("rb") as file:
        try:
            document = PDFDocument(PDFParser(file))
            root = _resolve(document.catalog.get("Pages"))
        except Exception as exc:  # any parser failure only skips this check
            return [f"the page tree could not be checked ({type(exc).__name__}: {exc})"]
        try:
            _check_declared_count(root, page_count)
            _check_content(root, page_count, wanted)
        except JobError:
            raise
        except Exception as exc:  # as above
            return [f"the page content could not be checked ({type(exc).__name__}: {exc})"]
    return []


def _resolve(value: Any) -> Any:
    from pdfminer.pdftypes import resolve1

    return resolve1(value)


def _check_declared_count(root: Any, page_count: int) -> None:
    declared = _resolve(root.get("Count")) if isinstance(root, dict) else None
    if isinstance(declared, int) and declared != page_count:
        raise CorruptFile(
            f"the PDF is damaged: its page tree declares {declared:,} pages but holds "
            f"{page_count:,}"
        )


def _page_dicts(root: Any, page_count: int) -> Iterator[tuple[dict[str, Any], Any]]:
    """Page dictionaries in document order, each with the Resources it inherits."""
    from pdfminer.pdftypes import PDFObjRef

    stack: list[tuple[Any, Any]] = [(root, None)]
    visited: set[int] = set()
    budget = 4 * page_count + 1000  # nodes; a tree needing more is built to waste time
    while stack:
        reference, inherited = stack.pop()
        if isinstance(reference, PDFObjRef):
            if reference.objid in visited:
                raise CorruptFile("the PDF is damaged: its page tree contains a loop")
            visited.add(reference.objid)
        budget -= 1
        if budget < 0:
            raise CorruptFile("the PDF is damaged: its page tree is far larger than its pages")
        node = _resolve(reference)
        if not isinstance(node, dict):
            continue
        resources = node.get("Resources", inherited)
        kids = _resolve(node.get("Kids"))
        if isinstance(kids, list):
            stack.extend((kid, resources) for kid in reversed(kids))
        else:
            yield node, resources


def _check_content(root: Any, page_count: int, wanted: list[int]) -> None:
    if not wanted:
        return
    measured: set[int] = set()
    document_total = 0
    for number, (page, resources) in enumerate(_page_dicts(root, page_count), start=1):
        if number > wanted[-1]:
            break
        if number not in wanted:
            continue
        page_total = _content_size(page.get("Contents"), MAX_PAGE_CONTENT)
        page_total += _forms_size(resources, measured, MAX_PAGE_CONTENT - page_total, 0)
        if page_total > MAX_PAGE_CONTENT:
            raise FileTooLarge(
                f"the PDF's page {number} inflates to more than "
                f"{MAX_PAGE_CONTENT // MEBIBYTE} MiB (a decompression bomb, or a page too "
                "dense to read)"
            )
        document_total += page_total
        if document_total > MAX_DOCUMENT_CONTENT:
            raise FileTooLarge(
                f"the PDF's pages inflate to more than "
                f"{MAX_DOCUMENT_CONTENT // MEBIBYTE} MiB in all (up to page {number})"
            )


def _content_size(contents: Any, limit: int) -> int:
    contents = _resolve(contents)
    streams = contents if isinstance(contents, list) else [contents]
    total = 0
    for stream in streams:
        total += _inflated_size(_resolve(stream), limit - total)
        if total > limit:
            break
    return total


def _forms_size(resources: Any, measured: set[int], limit: int, depth: int) -> int:
    """Inflated size of the form XObjects a page draws, each form counted once per document."""
    from pdfminer.pdftypes import PDFObjRef, PDFStream

    resources = _resolve(resources)
    if not isinstance(resources, dict) or depth > _MAX_FORM_DEPTH or limit < 0:
        return 0
    xobjects = _resolve(resources.get("XObject"))
    if not isinstance(xobjects, dict):
        return 0
    total = 0
    for reference in xobjects.values():
        if isinstance(reference, PDFObjRef):
            if reference.objid in measured:
                continue
            measured.add(reference.objid)
        form = _resolve(reference)
        if not isinstance(form, PDFStream) or _name(form.get("Subtype")) != "Form":
            continue
        total += _inflated_size(form, limit - total)
        total += _forms_size(form.get("Resources"), measured, limit - total, depth + 1)
        if total > limit:
            break
    return total


def _name(value: Any) -> str:
    value = _resolve(value)
    return str(getattr(value, "name", value))


def _inflated_size(stream: Any, limit: int) -> int:
    """Bytes the stream decodes to, counted up to just past ``limit`` without holding them."""
    from pdfminer.pdftypes import PDFStream

    if not isinstance(stream, PDFStream):
        return 0
    data = stream.rawdata if stream.rawdata is not None else (stream.data or b"")
    if stream.decipher and stream.rawdata is not None:
        data = stream.decipher(stream.objid or 0, stream.genno or 0, data, stream.attrs)
    chunks: Iterable[bytes] = _slices(data)
    for position, (method, _parameters) in enumerate(stream.get_filters()):
        name = _name(method)
        if name in ("FlateDecode", "Fl"):
            chunks = _inflate(chunks)
        elif position == 0 and name in ("ASCII85Decode", "A85", "ASCIIHexDecode", "AHx"):
            chunks = _slices(_decode_ascii(name, data))
        else:
            break  # other filters expand little or decode lazily (images): count what we have
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > limit:
            break
    return total


def _decode_ascii(name: str, data: bytes) -> bytes:
    from pdfminer.ascii85 import ascii85decode, asciihexdecode

    return ascii85decode(data) if name in ("ASCII85Decode", "A85") else asciihexdecode(data)


def _slices(data: bytes) -> Iterator[bytes]:
    """Small pieces, so that zlib's unconsumed input, copied on every call, stays small."""
    view = memoryview(data)
    for start in range(0, len(view), _CHUNK):
        yield bytes(view[start:start + _CHUNK])


def _inflate(chunks: Iterable[bytes]) -> Iterator[bytes]:
    decompressor = zlib.decompressobj()
    try:
        for chunk in chunks:
            pending = chunk
            while pending and not decompressor.eof:
                output = decompressor.decompress(pending, _CHUNK)
                if output:
                    yield output
                pending = decompressor.unconsumed_tail
            if decompressor.eof:
                return
        yield decompressor.flush()
    except zlib.error:
        return  # a damaged stream: PDFium reads what inflates of it, and so does this count

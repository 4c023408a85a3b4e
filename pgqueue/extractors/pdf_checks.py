"""Checks that run before a PDF's pages are touched, so a hostile file costs little.

PDFium repairs what it can: it rebuilds a broken cross-reference table, counts the pages a
lying ``/Count`` does not have, and inflates whatever a content stream holds when a page is
loaded (a 2 KB file can hold 1 GiB of content). The checks here refuse such files first:

- ``check_envelope`` reads the first and last bytes: empty, not a PDF, truncated (no
  ``%%EOF``), or a ``startxref`` that points nowhere;
- ``check_pages`` reads the page tree with pdfminer's object parser (no page is interpreted):
  a declared page count that differs from the real one, and page content (content streams,
  the forms they draw at any depth, each as often as it is drawn, and Type3 glyph procedures)
  that decodes past a limit, measured through every filter in small chunks
  (``pdf_filters``), or that draws XObjects more often than a drawing would.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgqueue.errors import CorruptFile, FileTooLarge, JobError
from pgqueue.extractors import pdf_filters
from pgqueue.extractors.drawing_signatures import describe

MEBIBYTE = 1 << 20
MAX_PAGE_CONTENT = 64 * MEBIBYTE
MAX_DOCUMENT_CONTENT = 512 * MEBIBYTE
_HEAD_BYTES = 1024
_TAIL_BYTES = 4096
MAX_DRAWS = 100_000
"""XObject draws (forms and images, with their multiplicity) and glyph procedures per page."""
MAX_FORM_DEPTH = 64
"""Deeper than PDFium goes when forms draw forms, so every level it interprets is counted."""
_LONGEST_DRAW = 512
_DRAW = re.compile(rb"/([^\s/\[\]()<>{}%]+)\s+Do(?![^\s/\[\]()<>{}%])")

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
    measure = _Measure()
    document_total = 0
    for number, (page, resources) in enumerate(_page_dicts(root, page_count), start=1):
        if number > wanted[-1]:
            break
        if number not in wanted:
            continue
        page_total = measure.page(page.get("Contents"), resources, number)
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


@dataclass(frozen=True)
class _Facts:
    """What one content stream costs: its decoded size, and the XObjects it draws, by name."""

    size: int
    draws: Counter[str]


class _Measure:
    """Decoded content a reader interprets for a page, with every draw of a form counted.

    A form drawn a million times costs a million times its content, and a form that draws
    another twice, nested twenty deep, costs two to the twentieth: the page's content streams
    and every form reached from them, at any depth, are counted with their multiplicity, and
    so are Type3 glyph procedures (run for the glyphs a page shows). Each stream is decoded
    once per document; what it draws is remembered with it.
    """

    def __init__(self) -> None:
        self._facts: dict[int, _Facts] = {}

    def page(self, contents: Any, resources: Any, number: int) -> int:
        contents = _resolve(contents)
        streams = contents if isinstance(contents, list) else [contents]
        total, draws = 0, Counter[str]()
        for stream in streams:
            facts = self._facts_of(_resolve(stream))
            total += facts.size
            draws.update(facts.draws)
            if total > MAX_PAGE_CONTENT:
                return total
        return total + self._drawn(resources, draws, number, MAX_PAGE_CONTENT - total)

    def _drawn(self, resources: Any, draws: Counter[str], number: int, limit: int) -> int:
        from pdfminer.pdftypes import PDFStream

        total = drawn = 0
        fonts_seen: set[int] = set()
        # (resources in force, what a stream draws, how often that stream runs, depth)
        pending: list[tuple[Any, Counter[str], int, int]] = [(resources, draws, 1, 0)]
        while pending:
            scope, names, times, depth = pending.pop()
            scope = _resolve(scope)
            if not isinstance(scope, dict):
                continue
            for procedure, procedure_scope in self._glyph_procedures(scope, fonts_seen):
                facts = self._facts_of(procedure)
                total += facts.size
                drawn += 1
                pending.append((procedure_scope or scope, facts.draws, 1, depth + 1))
            xobjects = _resolve(scope.get("XObject"))
            for name, count in names.items():
                target = _resolve(xobjects.get(name)) if isinstance(xobjects, dict) else None
                if not isinstance(target, PDFStream):
                    continue
                runs = times * count
                drawn += runs
                if drawn > MAX_DRAWS:
                    break
                if _name(target.get("Subtype")) != "Form" or depth >= MAX_FORM_DEPTH:
                    continue
                facts = self._facts_of(target)
                total += runs * facts.size
                pending.append((target.get("Resources") or scope, facts.draws, runs, depth + 1))
            if drawn > MAX_DRAWS:
                raise FileTooLarge(
                    f"the PDF's page {number} draws forms, images or glyph procedures more "
                    f"than {MAX_DRAWS:,} times (a form drawn over and over, or nested forms "
                    "that multiply)"
                )
            if total > limit:
                return total
        return total

    def _glyph_procedures(self, scope: dict[str, Any], seen: set[int]) -> Iterator[tuple[Any, Any]]:
        from pdfminer.pdftypes import PDFObjRef

        fonts = _resolve(scope.get("Font"))
        if not isinstance(fonts, dict):
            return
        for reference in fonts.values():
            if isinstance(reference, PDFObjRef):
                if reference.objid in seen:
                    continue
                seen.add(reference.objid)
            font = _resolve(reference)
            if not isinstance(font, dict) or _name(font.get("Subtype")) != "Type3":
                continue
            procedures = _resolve(font.get("CharProcs"))
            if isinstance(procedures, dict):
                for procedure in procedures.values():
                    yield _resolve(procedure), font.get("Resources")

    def _facts_of(self, stream: Any) -> _Facts:
        from pdfminer.pdftypes import PDFStream

        if not isinstance(stream, PDFStream):
            return _Facts(0, Counter())
        key = stream.objid if stream.objid is not None else id(stream)
        known = self._facts.get(key)
        if known is None:
            known = self._facts[key] = _decoded_facts(stream, MAX_PAGE_CONTENT)
        return known


def _name(value: Any) -> str:
    value = _resolve(value)
    return str(getattr(value, "name", value))


def _decoded_facts(stream: Any, limit: int) -> _Facts:
    """Bytes the stream decodes to (counted up to just past ``limit``), and what it draws.

    Every stage of a filter chain is held to the limit, not only the last: PDFium keeps each
    stage's whole output in memory, and a stage that shrinks (ASCIIHex after Flate) must not
    hide the gibibyte before it.
    """
    data = stream.rawdata if stream.rawdata is not None else (stream.data or b"")
    if stream.decipher and stream.rawdata is not None:
        data = stream.decipher(stream.objid or 0, stream.genno or 0, data, stream.attrs)
    over: list[int] = []
    chunks: Iterable[bytes] = _within(pdf_filters.slices(data), limit, over)
    for method, _parameters in stream.get_filters():
        decode = pdf_filters.decoder(_name(method))
        if decode is None:
            break  # an image codec, or one we do not know: count what we have
        chunks = _within(decode(chunks), limit, over)
    scanner = _DrawScanner()
    total = 0
    for chunk in chunks:
        total += len(chunk)
        scanner.feed(chunk)
    if over:
        return _Facts(limit + 1, scanner.finish())
    return _Facts(total, scanner.finish())


def _within(chunks: Iterable[bytes], limit: int, over: list[int]) -> Iterator[bytes]:
    """Pass chunks on until more than ``limit`` bytes went by; then note it and stop."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        yield chunk
        if total > limit:
            over.append(total)
            return


class _DrawScanner:
    """Counts ``/Name Do`` operators in content that arrives in pieces."""

    def __init__(self) -> None:
        self._carry = b""
        self.draws: Counter[str] = Counter()

    def feed(self, chunk: bytes) -> None:
        text = self._carry + chunk
        # A draw operator holds no '/' after its name's, so one that starts before the last
        # '/' is whole; the rest waits for the next piece.
        cut = text.rfind(b"/")
        if cut < 0:
            self._carry = b""
            self._count(text)
            return
        self._count(text[:cut])
        tail = text[cut:]
        self._carry = tail if len(tail) <= _LONGEST_DRAW else b""

    def finish(self) -> Counter[str]:
        self._count(self._carry)
        self._carry = b""
        return self.draws

    def _count(self, text: bytes) -> None:
        if b"Do" in text:
            self.draws.update(name.decode("latin-1") for name in _DRAW.findall(text))

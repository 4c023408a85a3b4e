"""PDF bombs past the old pre-check, and children that crash near the memory limit (issue 20, item 5).

Every bomb is written here, small on disk and huge once decoded or interpreted: LZW and
RunLength streams (the old check counted neither), forms nested deeper than it looked, a
form drawn a million times, and a Type3 glyph procedure. Each must end ``failed`` after its one attempt, refused by the
pre-check rather than by the memory limit or the timeout. The decoders that measure are
compared with pdfminer's on the same data.
"""

from __future__ import annotations

import base64
import os
import random
import signal
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import pytest
from pdfminer.ascii85 import ascii85decode, asciihexdecode
from pdfminer.lzw import lzwdecode
from pdfminer.runlength import rldecode

from pgqueue.errors import FileTooLarge
from pgqueue.extractors import pdf_filters
from pgqueue.extractors.pdf import extract
from pgqueue.jobrun import JobInput, Outcome
from pgqueue.worker.children import NEAR_MEMORY_LIMIT, ChildPool
from tests.burst_worker import run_burst_worker
from tests.extractors.conftest import _raw_pdf
from tests.worker.plugins import extractor_settings, local_target
from tests.workers import query, wait_until

MIB = 1 << 20
BOMB_MIB = 256  # decoded size of each stream bomb: four times the page limit
TEXT = b"BT /F1 12 Tf 72 720 Td (Hello) Tj ET\n"
FLATE = b"/Filter /FlateDecode"
REFUSAL_SECONDS = 20.0  # generous for a shared machine; the checks take about a second


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- writing bombs -----------------------------------------------------------------------------


class _BitWriter:
    """Codes of varying width, most significant bit first, as LZWDecode reads them."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.bits = 0
        self.held = 0

    def write(self, code: int, width: int) -> None:
        self.bits = (self.bits << width) | code
        self.held += width
        while self.held >= 8:
            self.held -= 8
            self.out.append((self.bits >> self.held) & 0xFF)
        self.bits &= (1 << self.held) - 1

    def finish(self) -> bytes:
        if self.held:
            self.out.append((self.bits << (8 - self.held)) & 0xFF)
        return bytes(self.out)


def lzw_of_spaces(size: int) -> bytes:
    """LZW codes (EarlyChange 1) for ``size`` spaces, written without running an encoder.

    On a run of one byte each new code stands for one byte more than the one before, so the
    codes are 32, 258, 259, ... until the table is full, then a clear code, and again.
    """
    writer = _BitWriter()
    remaining, width = size, 9
    while remaining > 0:
        writer.write(256, width)
        width, next_code = 9, 258
        writer.write(32, width)
        remaining -= 1
        while remaining >= next_code - 256 and next_code < 4095:
            writer.write(next_code, width)
            remaining -= next_code - 256
            next_code += 1
            if next_code + 1 >= 1 << width and width < 12:
                width += 1
    writer.write(257, width)
    return writer.finish()


def run_length_of_spaces(size: int) -> bytes:
    return b"\x81 " * (size // 128) + b"\x80"


Form = tuple[bytes, bytes]
"""A form's stream data as stored, and its /Filter entry."""


HELVETICA = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def one_page(
    content: bytes, filters: bytes = b"", forms: Sequence[Form] = (), *,
    font: bytes = HELVETICA, more: dict[int, bytes] | None = None,
) -> bytes:
    """A one-page PDF whose page draws form ``/F0``; form ``n`` may draw only ``/F{n+1}``.

    ``font`` is ``/F1``; ``more`` holds objects it refers to (from 6, on a page without forms).
    """
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
           b"/Resources %s >>" % _resources(0, len(forms)),
        4: _stream(b"", content, filters),
        5: font,
        **(more or {}),
    }
    for number, (data, form_filters) in enumerate(forms):
        entries = b"/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources %s" % (
            _resources(number + 1, len(forms))
        )
        objects[6 + number] = _stream(entries, data, form_filters)
    return _raw_pdf(objects, None)


def _resources(form: int, forms: int) -> bytes:
    """Each level names only the next form, so the nesting is real for a checker too."""
    drawn = b"/XObject << /F%d %d 0 R >>" % (form, 6 + form) if form < forms else b""
    return b"<< /Font << /F1 5 0 R >> %s >>" % drawn


def _stream(entries: bytes, data: bytes, filters: bytes) -> bytes:
    head = b"<< %s /Length %d %s >>\nstream\n" % (entries, len(data), filters)
    return head + data + b"\nendstream"


def _deflated(data: bytes) -> Form:
    return zlib.compress(data, 9), FLATE


def _deflated_twice_spaces(size: int) -> bytes:
    inner = zlib.compressobj(9)
    once = b"".join(inner.compress(b" " * MIB) for _ in range(size // MIB)) + inner.flush()
    return zlib.compress(once, 9)


def lzw_bomb() -> bytes:
    return one_page(lzw_of_spaces(BOMB_MIB * MIB), b"/Filter /LZWDecode")


def run_length_bomb() -> bytes:
    # RunLength inside Flate: the old check inflated, then stopped at the filter it did not know.
    data = zlib.compress(run_length_of_spaces(BOMB_MIB * MIB), 9)
    return one_page(data, b"/Filter [/FlateDecode /RunLengthDecode]")


def forms_that_multiply() -> bytes:
    """Twenty forms deep, each drawing the next twice: a million draws of the last one."""
    depth = 20
    chain = [_deflated(b"/F%d Do /F%d Do\n" % (n + 1, n + 1)) for n in range(depth - 1)]
    return one_page(*_deflated(b"/F0 Do\n"), forms=[*chain, _deflated(TEXT)])


def bomb_nested_deep() -> bytes:
    """A flate bomb in a form twelve levels down, past the depth the old check looked at."""
    depth = 12
    chain = [_deflated(b"/F%d Do\n" % (n + 1)) for n in range(depth - 1)]
    bomb = (_deflated_twice_spaces(BOMB_MIB * MIB), b"/Filter [/FlateDecode /FlateDecode]")
    return one_page(*_deflated(b"/F0 Do\n"), forms=[*chain, bomb])


def form_drawn_a_million_times() -> bytes:
    return one_page(*_deflated(b"/F0 Do\n" * 10**6), forms=[_deflated(TEXT)])


def glyph_procedure_bomb() -> bytes:
    """A Type3 font whose one glyph is drawn by a procedure that inflates to 256 MiB."""
    font = (
        b"<< /Type /Font /Subtype /Type3 /FontBBox [0 0 1000 1000] "
        b"/FontMatrix [0.001 0 0 0.001 0 0] /CharProcs << /a 6 0 R >> "
        b"/Encoding << /Type /Encoding /Differences [97 /a] >> "
        b"/FirstChar 97 /LastChar 97 /Widths [1000] >>"
    )
    procedure = _stream(
        b"", _deflated_twice_spaces(BOMB_MIB * MIB), b"/Filter [/FlateDecode /FlateDecode]"
    )
    return one_page(*_deflated(b"BT /F1 12 Tf 72 720 Td (a) Tj ET\n"), font=font,
                    more={6: procedure})


BOMBS: dict[str, Callable[[], bytes]] = {
    "lzw": lzw_bomb,
    "run-length": run_length_bomb,
    "nested-forms-that-multiply": forms_that_multiply,
    "bomb-nested-twelve-deep": bomb_nested_deep,
    "form-drawn-a-million-times": form_drawn_a_million_times,
    "type3-glyph-procedure": glyph_procedure_bomb,
}


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    written = {}
    for name, build in BOMBS.items():
        written[name] = folder / f"{name}.pdf"
        written[name].write_bytes(build())
    return written


# --- the decoders against pdfminer's --------------------------------------------------------


def _decoded(decode: pdf_filters.Decoder, data: bytes, piece: int) -> bytes:
    pieces = (data[start : start + piece] for start in range(0, len(data), piece))
    return b"".join(decode(pieces))


@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_the_chunked_decoders_read_what_pdfminer_reads(piece: int) -> None:
    rng = random.Random(piece)
    text = bytes(rng.choice(b"BT ET /F1 12 Tf (Hello) Tj 0123456789\n") for _ in range(20_000))
    literal_and_runs = b"".join(
        bytes([length - 1]) + text[:length] if rng.random() < 0.5 else bytes([257 - length]) + b"x"
        for length in (rng.randint(2, 128) for _ in range(300))
    ) + b"\x80"
    cases = [
        (pdf_filters.lzw, lzw_of_spaces(3 * MIB + 12345), lzwdecode),
        (pdf_filters.run_length, literal_and_runs, rldecode),
        (pdf_filters.ascii_hex, text.hex().encode() + b">", asciihexdecode),
        (pdf_filters.ascii85, base64.a85encode(text, wrapcol=70) + b"~>", ascii85decode),
        (pdf_filters.inflate, zlib.compress(text), zlib.decompress),
    ]
    for decode, data, reference in cases:
        assert _decoded(decode, data, piece) == reference(data), decode.__name__
    assert lzwdecode(lzw_of_spaces(3 * MIB + 12345)) == b" " * (3 * MIB + 12345)


def test_a_decoder_never_holds_more_than_a_chunk_of_a_bomb() -> None:
    sizes = [len(chunk) for chunk in pdf_filters.lzw([lzw_of_spaces(64 * MIB)])]
    assert sum(sizes) == 64 * MIB
    assert max(sizes) < pdf_filters.CHUNK + 4096  # a chunk, plus at most one table entry


# --- bombs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BOMBS))
def test_each_bomb_is_refused_by_the_pre_check(bombs: dict[str, Path], name: str) -> None:
    started = time.monotonic()
    with pytest.raises(FileTooLarge):
        extract(bombs[name], {})
    assert time.monotonic() - started < REFUSAL_SECONDS


def test_a_form_drawn_often_but_within_reason_is_read(tmp_path: Path) -> None:
    path = tmp_path / "symbols.pdf"
    path.write_bytes(one_page(*_deflated(b"/F0 Do\n" * 2000), forms=[_deflated(TEXT)]))
    result = extract(path, {})
    assert result["metadata"]["pages"] == 1 and result["warnings"] == []
    assert [block["text"] for block in result["text_blocks"]] == ["Hello"]


def test_each_bomb_fails_after_one_attempt_in_a_worker(
    db_url: str, bombs: dict[str, Path]
) -> None:
    for name, path in bombs.items():
        query(
            db_url,
            "INSERT INTO extraction_jobs (filename, file_url, file_size, format)"
            " VALUES (%s, %s, %s, 'pdf')",
            (name, path.as_uri(), path.stat().st_size),
        )
    run_burst_worker(db_url, {
        "PGQUEUE_FILE_ROOTS": str(next(iter(bombs.values())).parent),
        "PGQUEUE_MEMORY_LIMIT_MB": "512", "PGQUEUE_JOB_TIMEOUT": "120",
    })
    rows = query(
        db_url,
        "SELECT filename, status, retry_count, jsonb_array_length(error_history) AS attempts,"
        " error_history -> 0 ->> 'error_type' AS error_type FROM extraction_jobs",
    )
    assert {row["filename"]: (row["status"], row["retry_count"], row["attempts"], row["error_type"])
            for row in rows} == {name: ("failed", 0, 1, "FileTooLarge") for name in BOMBS}


# --- a crash near the memory limit ------------------------------------------------------------


async def _crash_while_holding(megabytes: int, limit_mb: int, tmp_path: Path) -> Outcome:
    """Run a job that holds ``megabytes`` MiB, and abort its child once the pool has seen it."""
    pool = ChildPool(extractor_settings(memory_limit_mb=limit_mb, job_timeout=120), 1,
                     target=local_target)
    held = megabytes * MIB * 0.9
    outcome: list[Outcome] = []

    async def run() -> None:
        job = JobInput("near", str(tmp_path), "allocate", {"mb": megabytes, "hold": 120})
        outcome.append(await pool.run(job))

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(run)
            # What the worker saw is what it judges by: wait until its watch saw the memory.
            def seen() -> bool:
                return any(child.peak >= held for child in list(pool._children.values()))

            await anyio.to_thread.run_sync(wait_until, seen, 60.0, "the pool to see the memory")
            (child,) = pool._children.values()
            os.kill(child.pid, signal.SIGABRT)  # as PDFium does when an allocation fails
    finally:
        await pool.aclose()
    return outcome[0]


@pytest.mark.anyio
async def test_a_child_that_crashes_near_the_memory_limit_fails_at_once(tmp_path: Path) -> None:
    limit = 200
    outcome = await _crash_while_holding(int(limit * (NEAR_MEMORY_LIMIT + 0.2)), limit, tmp_path)
    assert (outcome.error_type, outcome.retryable) == ("MemoryLimitExceeded", False)
    assert "SIGABRT" in (outcome.error_message or "")


@pytest.mark.anyio
async def test_a_child_that_crashes_far_below_the_limit_is_still_retried(tmp_path: Path) -> None:
    outcome = await _crash_while_holding(16, 400, tmp_path)
    assert (outcome.error_type, outcome.retryable) == ("ExtractorCrashed", True)


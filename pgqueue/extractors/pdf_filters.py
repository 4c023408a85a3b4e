"""PDF stream filters decoded as a stream of small chunks, so a bomb is measured, not held.

Each decoder takes an iterable of byte chunks and yields decoded chunks of at most about
``CHUNK`` bytes, whatever the compression ratio: a 4 KB stream that decodes to a gibibyte is
counted piece by piece and dropped as it goes. Damaged input ends the output where it breaks,
as PDFium does: the count is then of what a reader would really see.

Filters that expand a little or not at all and that PDFium decodes only to draw an image
(DCT, JPX, CCITT, JBIG2) are not decoded here; ``decoder`` returns ``None`` for them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator

CHUNK = 1 << 16
_LZW_CLEAR, _LZW_END, _LZW_FIRST = 256, 257, 258
_LZW_MAX_WIDTH = 12
_LZW_SIZE = 1 << _LZW_MAX_WIDTH
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_WHITESPACE = frozenset(b" \t\r\n\f\x00")

Decoder = Callable[[Iterable[bytes]], Iterator[bytes]]


def decoder(name: str) -> Decoder | None:
    """The chunked decoder of a filter name (full or abbreviated), or ``None``."""
    return _DECODERS.get(name)


def slices(data: bytes) -> Iterator[bytes]:
    """Small pieces, so that zlib's unconsumed input, copied on every call, stays small."""
    view = memoryview(data)
    for start in range(0, len(view), CHUNK):
        yield bytes(view[start : start + CHUNK])


def inflate(chunks: Iterable[bytes]) -> Iterator[bytes]:
    decompressor = zlib.decompressobj()
    try:
        for chunk in chunks:
            pending = chunk
            while pending and not decompressor.eof:
                output = decompressor.decompress(pending, CHUNK)
                if output:
                    yield output
                pending = decompressor.unconsumed_tail
            if decompressor.eof:
                return
        yield decompressor.flush()
    except zlib.error:
        return  # a damaged stream: PDFium reads what inflates of it, and so does this count


def lzw(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """LZWDecode with the PDF default of EarlyChange 1 (codes widen one entry early)."""
    table: list[bytes] = [bytes([value]) for value in range(256)] + [b"", b""]
    width, bits, held = 9, 0, 0
    previous: bytes | None = None
    out = bytearray()
    for chunk in chunks:
        for byte in chunk:
            bits = (bits << 8) | byte
            held += 8
            while held >= width:
                held -= width
                code = bits >> held
                bits &= (1 << held) - 1
                if code == _LZW_CLEAR:
                    del table[_LZW_FIRST:]
                    width, previous = 9, None
                    continue
                if code == _LZW_END:
                    yield bytes(out)
                    return
                if code < _LZW_CLEAR or _LZW_FIRST <= code < len(table):
                    entry = table[code]
                    if previous is not None and len(table) < _LZW_SIZE:
                        table.append(previous + entry[:1])
                elif code == len(table) and previous is not None:
                    entry = previous + previous[:1]
                    table.append(entry)
                else:
                    yield bytes(out)  # a code the table cannot hold yet: damaged
                    return
                out += entry
                previous = entry
                if len(table) + 1 >= 1 << width and width < _LZW_MAX_WIDTH:
                    width += 1
                if len(out) >= CHUNK:
                    yield bytes(out)
                    out.clear()
    yield bytes(out)


def run_length(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """RunLengthDecode: a length byte, then a literal run or one byte repeated."""
    pending = bytearray()
    out = bytearray()
    for chunk in chunks:
        pending += chunk
        position = 0
        while position < len(pending):
            length = pending[position]
            if length == 128:
                yield bytes(out)
                return
            if length < 128:
                if position + length + 2 > len(pending):
                    break
                out += pending[position + 1 : position + length + 2]
                position += length + 2
            else:
                if position + 2 > len(pending):
                    break
                out += pending[position + 1 : position + 2] * (257 - length)
                position += 2
            if len(out) >= CHUNK:
                yield bytes(out)
                out.clear()
        del pending[:position]
    yield bytes(out)


def ascii_hex(chunks: Iterable[bytes]) -> Iterator[bytes]:
    digits = bytearray()
    for chunk in chunks:
        end = chunk.find(b">")
        piece = chunk if end < 0 else chunk[:end]
        digits += bytes(byte for byte in piece if byte in _HEX_DIGITS)
        usable = len(digits) - len(digits) % 2
        yield bytes.fromhex(digits[:usable].decode("ascii"))
        del digits[:usable]
        if end >= 0:
            break
    if digits:
        yield bytes.fromhex(digits.decode("ascii") + "0")


def ascii85(chunks: Iterable[bytes]) -> Iterator[bytes]:
    group: list[int] = []
    out = bytearray()
    for chunk in chunks:
        for byte in chunk:
            if byte in _WHITESPACE:
                continue
            if byte == ord("~"):
                yield bytes(out) + _ascii85_tail(group)
                return
            if byte == ord("z") and not group:
                out += bytes(4)
            elif ord("!") <= byte <= ord("u"):
                group.append(byte - 33)
                if len(group) == 5:
                    out += _ascii85_group(group)
                    group.clear()
            else:
                yield bytes(out)  # not ASCII85: damaged
                return
        yield bytes(out)
        out.clear()
    yield _ascii85_tail(group)


def _ascii85_group(group: list[int]) -> bytes:
    value = 0
    for digit in group:
        value = value * 85 + digit
    return (value & 0xFFFFFFFF).to_bytes(4, "big")


def _ascii85_tail(group: list[int]) -> bytes:
    if len(group) < 2:
        return b""
    padded = group + [84] * (5 - len(group))
    return _ascii85_group(padded)[: len(group) - 1]


_DECODERS: dict[str, Decoder] = {
    "FlateDecode": inflate,
    "Fl": inflate,
    "LZWDecode": lzw,
    "LZW": lzw,
    "RunLengthDecode": run_length,
    "RL": run_length,
    "ASCIIHexDecode": ascii_hex,
    "AHx": ascii_hex,
    "ASCII85Decode": ascii85,
    "A85": ascii85,
}

"""A small streaming reader of ISO 10303-21 files (STEP and IFC "physical files").

The file is read in chunks and cut into statements (``...;`` outside strings and comments),
so memory stays bounded by the longest record, not by the file: a 2 GiB STEP file is never
held in one string. Data records are yielded one by one with their id and entity type(s);
their parameters are parsed only when asked for, because an extractor needs the values of a
handful of entity types and only the count of the rest.

What it understands: the header section (FILE_DESCRIPTION, FILE_NAME, FILE_SCHEMA), data
sections (``DATA;`` and edition 3's ``DATA(...);``), records spanning lines, strings holding
``;`` and ``''``, comments, complex instances ``#1=(A()B());``, typed parameters
``LENGTH_MEASURE(1.)``, and the string escapes ``\\X2\\...\\X0\\``, ``\\X4\\...\\X0\\``,
``\\X\\hh``, ``\\S\\c``, ``\\P?\\`` and ``\\\\``. A file that does not start with
``ISO-10303-21;``, ends before ``END-ISO-10303-21;``, or holds a malformed record is a
``CorruptFile`` naming the line.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeAlias

from pgqueue.errors import CorruptFile

CHUNK_CHARS = 1 << 20
# Real records reach a few MiB (a B-spline surface with thousands of poles); one far longer is
# an unterminated string or comment swallowing the rest of the file.
MAX_STATEMENT_CHARS = 64 << 20
MAX_NESTING = 64
END_MARKER = "END-ISO-10303-21"
END_MARKER_WINDOW = 64 * 1024
MAGIC_WINDOW = 256

_LATIN1_FALLBACK = "pgqueue-step-latin1"


def _decode_as_latin1(error: UnicodeError) -> tuple[str, int]:
    # Edition 3 files may hold UTF-8; older writers put raw Latin-1 bytes into strings.
    # Reading those bytes as Latin-1 keeps every character instead of failing the file.
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error(_LATIN1_FALLBACK, _decode_as_latin1)


# --- values ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reference:
    """``#123``: a reference to another instance."""

    id: int


@dataclass(frozen=True, slots=True)
class Enumeration:
    """``.METRE.``, ``.T.``: an enumeration or logical value, without the dots."""

    name: str


@dataclass(frozen=True, slots=True)
class TypedValue:
    """``LENGTH_MEASURE(1.)``: a value of a named defined type."""

    type: str
    value: Value


@dataclass(frozen=True, slots=True)
class Binary:
    """``"0FF"``: a binary value, its hex digits as written."""

    digits: str


class _Derived:
    """``*``: a value derived from other attributes (one instance, ``DERIVED``)."""

    def __repr__(self) -> str:
        return "DERIVED"


DERIVED = _Derived()

Value: TypeAlias = (
    "str | int | float | Reference | Enumeration | TypedValue | Binary | _Derived"
    " | list[Value] | None"
)


# --- header and records ----------------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """The header section. Missing or malformed optional fields are ``None`` or empty."""

    description: tuple[str, ...]
    implementation_level: str | None
    name: str | None
    time_stamp: str | None
    author: tuple[str, ...]
    organization: tuple[str, ...]
    preprocessor_version: str | None
    originating_system: str | None
    authorization: str | None
    schemas: tuple[str, ...]

    @property
    def schema_names(self) -> tuple[str, ...]:
        """FILE_SCHEMA names in upper case, without their ``{ 1 0 10303 ... }`` identifier."""
        return tuple(schema_name(raw) for raw in self.schemas)


@dataclass(slots=True)  # not frozen: a frozen __init__ is measurably slower per record
class Record:
    """One data record ``#id=...;``. ``types`` holds one name, or several for a complex one."""

    id: int
    types: tuple[str, ...]
    body: str
    line: int

    @property
    def is_complex(self) -> bool:
        return self.body.startswith("(")

    def partials(self) -> dict[str, list[Value]]:
        """Parameters per entity type (one entry unless the instance is complex)."""
        parser = _Parser(self.body, self.line)
        if self.is_complex:
            return parser.complex_instance()
        name, parameters = parser.simple_instance()
        return {name: parameters}

    def parameters(self) -> list[Value]:
        """Parameters of a simple instance, or of the first partial of a complex one."""
        return next(iter(self.partials().values()))


def schema_name(raw: str) -> str:
    return raw.split("{", 1)[0].strip().upper()


# --- statements ------------------------------------------------------------------------------

# Possessive quantifiers: when a statement is cut by the end of the buffer the match fails at
# once instead of backtracking through every way to split the text.
_STATEMENT = re.compile(r"(?:[^';/]++|'[^']*+'|/\*(?:[^*]++|\*(?!/))*+\*/|/(?!\*))*+;")
_SPACE = re.compile(r"(?:\s++|/\*(?:[^*]++|\*(?!/))*+\*/)*+")
_STRING_OR_COMMENT = re.compile(r"('[^']*+')|/\*(?:[^*]++|\*(?!/))*+\*/")
_STRING = re.compile(r"'[^']*+'")
_MAGIC = re.compile(r"\ufeff?(?:\s++|/\*(?:[^*]++|\*(?!/))*+\*/)*+ISO-10303-21\s*+;")
_INSTANCE = re.compile(r"#([0-9]++)\s*+=\s*+(?:([A-Za-z_][A-Za-z0-9_]*+)\s*+)?(?=\()")


def _without_comments(text: str) -> str:
    return _STRING_OR_COMMENT.sub(lambda match: match.group(1) or " ", text)


def _statement_end(buffer: str, position: int) -> int:
    """Index of the ``;`` ending the statement at ``position``, or -1 when the buffer ends first."""
    end = buffer.find(";", position)
    searched = position
    quotes = 0
    # Fast path, in C: without a comment in the way, a ';' ends the statement when an even
    # number of quotes precede it (a doubled quote inside a string counts twice). Counting
    # only the new stretch each time keeps a string full of ';' linear.
    while end != -1:
        if buffer.find("/*", searched, end) != -1:
            match = _STATEMENT.match(buffer, position)
            return match.end() - 1 if match else -1
        quotes += buffer.count("'", searched, end)
        if quotes % 2 == 0:
            return end
        searched = end
        end = buffer.find(";", end + 1)
    return -1


def _statements(
    stream: _ShiftedQuotes, buffer: str, chunk_chars: int, max_statement_chars: int
) -> Iterator[tuple[int, str]]:
    """Yield ``(line, text)`` per statement, text without its ``;``, comments or outer spaces."""
    position = 0
    line = 1
    exhausted = False
    while True:
        end = _statement_end(buffer, position)
        if end == -1:
            if exhausted:
                rest = buffer[position:]
                leading = _SPACE.match(rest)
                skipped = leading.end() if leading else 0
                if skipped == len(rest):
                    return
                start = line + rest.count("\n", 0, skipped)
                raise CorruptFile(
                    f"line {start}: the file ends inside a record (truncated, or an "
                    f"unterminated string or comment): {rest[skipped : skipped + 60]!r}"
                )
            pending = len(buffer) - position
            if pending > max_statement_chars:
                _check_length(buffer, position, len(buffer), line, max_statement_chars)
            # Read at least as much as is pending, so one long record costs linear time.
            chunk = stream.read(max(chunk_chars, pending))
            exhausted = not chunk
            buffer = buffer[position:] + chunk
            position = 0
            continue
        if end - position > max_statement_chars:
            # Reads of up to twice the limit can complete a statement: measure what was found.
            _check_length(buffer, position, end, line, max_statement_chars)
        raw = buffer[position:end]
        text = raw.lstrip()
        statement_line = line + raw.count("\n", 0, len(raw) - len(text))
        line += raw.count("\n")
        if "/*" in text:
            text = _without_comments(text).lstrip()
        yield statement_line, text.rstrip()
        position = end + 1


def _check_length(buffer: str, position: int, end: int, line: int, limit: int) -> None:
    """Refuse a statement whose text (after leading spaces and comments) passes ``limit``."""
    leading = _SPACE.match(buffer, position)
    start = leading.end() if leading else position
    if end - start > limit:
        start_line = line + buffer.count("\n", position, start)
        raise CorruptFile(
            f"line {start_line}: a record runs past {limit:,} characters without ending (an "
            "unterminated string or comment?)"
        )


# Some writers (Japanese ArchiCAD) put a bare apostrophe after \S\ (the character 0xA7) where
# the standard doubles it; ifcopenshell reads the character after \S\ whatever it is. Doubling
# such a quote as the text is read keeps strings whole, and decode_string still reads 0xA7.
_SHIFTED_QUOTE = re.compile(r"(?<!\\)\\S\\'")
_SHIFTED_QUOTE_STARTS = ("\\", "\\S", "\\S\\")


class _ShiftedQuotes:
    """A text stream whose bare quotes after ``\\S\\`` are doubled."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def read(self, size: int) -> str:
        text = self._stream.read(size)
        # Never end a chunk inside the pattern.
        while text.endswith(_SHIFTED_QUOTE_STARTS) and (more := self._stream.read(1)):
            text += more
        if "\\S\\'" not in text:
            return text
        return _SHIFTED_QUOTE.sub("\\\\S\\\\''", text)


# --- the file --------------------------------------------------------------------------------


class StepFile:
    """An open ISO 10303-21 file: the header is read on opening, records are streamed."""

    def __init__(
        self,
        stream: TextIO,
        chunk_chars: int = CHUNK_CHARS,
        max_statement_chars: int = MAX_STATEMENT_CHARS,
    ) -> None:
        readable = _ShiftedQuotes(stream)
        first = readable.read(chunk_chars)
        # Enough text to recognise the start, however small the chunks.
        while len(first) < MAGIC_WINDOW and (more := readable.read(chunk_chars)):
            first += more
        if not first.strip():
            raise CorruptFile("empty file" if not first else "the file holds only white space")
        if _MAGIC.match(first) is None:
            raise CorruptFile(
                f"not an ISO 10303-21 (STEP/IFC) file: it does not start with 'ISO-10303-21;' "
                f"(it starts with {first.lstrip()[:20]!r})"
            )
        self._statements = _statements(readable, first, chunk_chars, max_statement_chars)
        next(self._statements)  # ISO-10303-21
        self.header = self._read_header()
        self.instance_count = 0

    def _next(self, expecting: str) -> tuple[int, str]:
        try:
            return next(self._statements)
        except StopIteration:
            raise CorruptFile(
                f"the file is truncated: it ends before {END_MARKER}; (while expecting "
                f"{expecting})"
            ) from None

    def _read_header(self) -> Header:
        line, text = self._next("HEADER;")
        if text.upper() != "HEADER":
            raise CorruptFile(f"line {line}: expected 'HEADER;', found {text[:60]!r}")
        entries: dict[str, list[Value]] = {}
        while True:
            line, text = self._next("ENDSEC; closing the header")
            if text.upper() == "ENDSEC":
                break
            name, parameters = _Parser(text, line).simple_instance()
            entries.setdefault(name, parameters)
        if "FILE_SCHEMA" not in entries:
            raise CorruptFile("the header has no FILE_SCHEMA: the schema of the file is unknown")
        return _header_from(entries)

    def records(self) -> Iterator[Record]:
        """Every data record, in file order, until ``END-ISO-10303-21;``."""
        while True:
            line, text = self._next("DATA; or END-ISO-10303-21;")
            keyword = text.split("(", 1)[0].strip().upper()
            if keyword == END_MARKER:
                return
            if keyword == "DATA":
                yield from self._data_section()
            elif keyword in ("ANCHOR", "REFERENCE", "SIGNATURE"):
                self._skip_section(keyword)
            else:
                raise CorruptFile(f"line {line}: expected 'DATA;', found {text[:60]!r}")

    def _data_section(self) -> Iterator[Record]:
        # The hot loop of the reader: it runs once per record of the file.
        for line, text in self._statements:
            if text.startswith("#"):
                self.instance_count += 1
                yield _record(line, text)
            elif text.upper() == "ENDSEC":
                return
            else:
                raise CorruptFile(
                    f"line {line}: expected a record '#id=TYPE(...);' or 'ENDSEC;', found "
                    f"{text[:60]!r}"
                )
        raise CorruptFile(f"the file is truncated: it ends before {END_MARKER};")

    def _skip_section(self, keyword: str) -> None:
        # Edition 3 sections carry nothing an extractor reports; only their end matters.
        while self._next(f"ENDSEC; closing {keyword}")[1].upper() != "ENDSEC":
            pass


def _record(line: int, text: str) -> Record:
    match = _INSTANCE.match(text)
    if match is None or not text.endswith(")"):
        raise CorruptFile(f"line {line}: malformed record {text[:60]!r}")
    if text.count("(") != text.count(")") and _unbalanced(text):
        raise CorruptFile(f"line {line}: record #{match.group(1)} has unbalanced parentheses")
    body = text[match.end() :]
    name = match.group(2)
    if name is not None:
        return Record(int(match.group(1)), (name.upper(),), text[match.start(2) :], line)
    partials = _Parser(body, line).complex_instance()
    return Record(int(match.group(1)), tuple(partials), body, line)


def _unbalanced(text: str) -> bool:
    bare = _STRING.sub("", text)
    return bare.count("(") != bare.count(")")


@contextmanager
def open_step(
    path: Path,
    chunk_chars: int = CHUNK_CHARS,
    max_statement_chars: int = MAX_STATEMENT_CHARS,
) -> Iterator[StepFile]:
    """Open ``path`` and read its header; raise ``CorruptFile`` when it is not ISO 10303-21."""
    with open(path, encoding="utf-8", errors=_LATIN1_FALLBACK, newline="") as stream:
        yield StepFile(stream, chunk_chars, max_statement_chars)


def statements(stream: TextIO) -> Iterator[tuple[int, str]]:
    """Every statement of ``stream`` as ``(line, text)``, without ``;``, comments or outer spaces."""
    return _statements(_ShiftedQuotes(stream), "", CHUNK_CHARS, MAX_STATEMENT_CHARS)


def read_header(path: Path) -> Header:
    with open_step(path) as step_file:
        return step_file.header


def has_end_marker(path: Path) -> bool:
    """Whether the end of ``path`` holds ``END-ISO-10303-21;`` (a cheap truncation check)."""
    with open(path, "rb") as stream:
        size = stream.seek(0, 2)
        stream.seek(max(0, size - END_MARKER_WINDOW))
        tail = stream.read()
    return re.search(rb"END-ISO-10303-21\s*;", tail) is not None


# --- header fields ---------------------------------------------------------------------------


def _header_from(entries: dict[str, list[Value]]) -> Header:
    description = entries.get("FILE_DESCRIPTION", [])
    name = entries.get("FILE_NAME", [])
    schema = entries["FILE_SCHEMA"]
    return Header(
        description=_texts(_at(description, 0)),
        implementation_level=_text(_at(description, 1)),
        name=_text(_at(name, 0)),
        time_stamp=_text(_at(name, 1)),
        author=_texts(_at(name, 2)),
        organization=_texts(_at(name, 3)),
        preprocessor_version=_text(_at(name, 4)),
        originating_system=_text(_at(name, 5)),
        authorization=_text(_at(name, 6)),
        schemas=_texts(_at(schema, 0)),
    )


def _at(values: list[Value], index: int) -> Value:
    return values[index] if index < len(values) else None


def _text(value: Value) -> str | None:
    return value if isinstance(value, str) else None


def _texts(value: Value) -> tuple[str, ...]:
    # Writers differ: a list of strings is standard, a bare string is common enough to accept.
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


# --- parameters ------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*+(?:
      (?P<string>'[^']*+(?:''[^']*+)*+')
    | (?P<reference>\#[0-9]++)
    | (?P<enumeration>\.[A-Za-z_][A-Za-z0-9_]*+\.)
    | (?P<real>[+-]?[0-9]++\.[0-9]*+(?:[Ee][+-]?[0-9]++)?)
    | (?P<integer>[+-]?[0-9]++)
    | (?P<binary>"[0-9A-Fa-f]*+")
    | (?P<keyword>!?[A-Za-z_][A-Za-z0-9_]*+)
    | (?P<punctuation>[(),$*])
    )""",
    re.VERBOSE,
)
_END = re.compile(r"\s*+\Z")


class _Parser:
    """Recursive descent over one record body, with a nesting limit against hostile files."""

    def __init__(self, text: str, line: int) -> None:
        self.text = text
        self.line = line
        self.position = 0

    def fail(self, problem: str) -> CorruptFile:
        near = self.text[self.position : self.position + 40]
        return CorruptFile(f"line {self.line}: {problem} near {near!r}")

    def token(self) -> tuple[str, str]:
        match = _TOKEN.match(self.text, self.position)
        if match is None or match.lastgroup is None:
            raise self.fail("unexpected character")
        self.position = match.end()
        return match.lastgroup, match.group(match.lastgroup)

    def expect(self, punctuation: str) -> None:
        kind, text = self.token()
        if kind != "punctuation" or text != punctuation:
            raise self.fail(f"expected {punctuation!r}, found {text!r}")

    def finish(self) -> None:
        if _END.match(self.text, self.position) is None:
            raise self.fail("unexpected text after the record")

    def simple_instance(self) -> tuple[str, list[Value]]:
        kind, name = self.token()
        if kind != "keyword":
            raise self.fail(f"expected an entity name, found {name!r}")
        self.expect("(")
        parameters = self.list_items(0)
        self.finish()
        return name.upper(), parameters

    def complex_instance(self) -> dict[str, list[Value]]:
        self.expect("(")
        partials: dict[str, list[Value]] = {}
        while True:
            kind, text = self.token()
            if kind == "punctuation" and text == ")":
                break
            if kind != "keyword":
                raise self.fail(f"expected an entity name in a complex instance, found {text!r}")
            self.expect("(")
            partials[text.upper()] = self.list_items(0)
        if not partials:
            raise self.fail("empty complex instance")
        self.finish()
        return partials

    def list_items(self, depth: int) -> list[Value]:
        """Items up to the closing ``)``, whose ``(`` was already read."""
        if depth > MAX_NESTING:
            raise self.fail(f"parameters nested more than {MAX_NESTING} deep")
        items: list[Value] = []
        kind, text = self.token()
        if kind == "punctuation" and text == ")":
            return items
        while True:
            items.append(self.value(kind, text, depth))
            kind, text = self.token()
            if kind == "punctuation" and text == ")":
                return items
            if kind != "punctuation" or text != ",":
                raise self.fail(f"expected ',' or ')', found {text!r}")
            kind, text = self.token()

    def value(self, kind: str, text: str, depth: int) -> Value:
        if kind == "string":
            return decode_string(text[1:-1])
        if kind == "reference":
            return Reference(int(text[1:]))
        if kind == "integer":
            return int(text)
        if kind == "real":
            return float(text)
        if kind == "enumeration":
            return Enumeration(text[1:-1].upper())
        if kind == "binary":
            return Binary(text[1:-1])
        if kind == "keyword":
            self.expect("(")
            inner = self.list_items(depth + 1)
            if len(inner) != 1:
                raise self.fail(f"typed value {text} holds {len(inner)} values, not one")
            return TypedValue(text.upper(), inner[0])
        if text == "(":
            return self.list_items(depth + 1)
        if text == "$":
            return None
        if text == "*":
            return DERIVED
        raise self.fail(f"unexpected {text!r}")


# --- strings ---------------------------------------------------------------------------------

_DIRECTIVE = re.compile(
    r"\\(?:X2\\((?:[0-9A-Fa-f]{4})*)\\X0\\|X4\\((?:[0-9A-Fa-f]{8})*)\\X0\\"
    r"|X\\([0-9A-Fa-f]{2})|S\\(.)|P([A-I])\\|(\\))",
    re.DOTALL,
)


def decode_string(raw: str) -> str:
    """Decode the text between a string's quotes: ``''`` and the backslash directives."""
    text = raw.replace("''", "'")
    if "\\" not in text:
        return text
    code_page = ["latin-1"]  # \PA\ .. \PI\ switch the page that \S\ reads from

    def replace(match: re.Match[str]) -> str:
        utf16, ucs4, hex_byte, shifted, page, backslash = match.groups()
        if utf16 is not None:
            return bytes.fromhex(utf16).decode("utf-16-be", errors="replace")
        if ucs4 is not None:
            return bytes.fromhex(ucs4).decode("utf-32-be", errors="replace")
        if hex_byte is not None:
            return chr(int(hex_byte, 16))
        if shifted is not None:
            code = ord(shifted) + 128
            if code > 255:
                return match.group(0)
            return bytes([code]).decode(code_page[0], errors="replace")
        if page is not None:
            code_page[0] = f"iso8859-{ord(page) - ord('A') + 1}"
            return ""
        return backslash or ""

    return _DIRECTIVE.sub(replace, text)

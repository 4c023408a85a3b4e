"""Stored values shown on a terminal as plain text: no control reaches the terminal.

Filenames, URLs and error messages come from job rows, that is from whoever inserted them or
from the files themselves. Shown raw, an ``ESC [2J`` clears the screen, an OSC-8 sequence
makes a link, a C1 control starts a sequence of its own and a bidi override reverses what
follows. ``inert`` writes each such character as a visible escape (``\\x1b``, ``\\u202e``).
"""

from __future__ import annotations

import re

# C0 and DEL, C1, and the bidi marks, embeddings, overrides and isolates.
UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# What json.dumps leaves raw: DEL, C1 and bidi (it escapes C0 itself, and a JSON text's own
# line breaks must stay).
_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(value: object, keep_newlines: bool = False) -> str:
    """``value`` as text with every control and bidi character escaped.

    With ``keep_newlines``, line feeds stay (for multi-line messages shown in a block).
    """
    text = "" if value is None else str(value)
    if keep_newlines:
        return "\n".join(UNSAFE.sub(_escape, line) for line in text.split("\n"))
    return UNSAFE.sub(_escape, text)


def escape_json_text(text: str) -> str:
    """JSON text with the C1 and bidi characters (which ``json.dumps`` leaves raw when
    ``ensure_ascii`` is off) written as ``\\uXXXX``; valid JSON, same value."""
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group(0)):04x}", text)

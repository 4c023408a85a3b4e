"""What a page may be asked for, checked before any statement runs.

Every query parameter is parsed here into a typed value, or refused with a message that says
what is wrong: a bad id, filter or cursor is the operator's typo, never a server error.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pgqueue.lifecycle import ExtractionJobStatus

PAGE_SIZE = 50
MAX_TEXT = 200
_FORMAT = re.compile(r"^[a-z0-9_]{1,32}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class BadRequest(ValueError):
    """A parameter a page cannot use; the message is shown to the operator as it is."""


@dataclass(frozen=True)
class JobFilter:
    status: str | None = None
    format: str | None = None
    record_id: str | None = None
    text: str | None = None

    def params(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "format": self.format,
            "record_id": self.record_id,
            "text": self.text,
        }

    def query(self) -> dict[str, str]:
        """The filter as query-string pairs, for links and forms."""
        pairs = {"status": self.status, "format": self.format, "record": self.record_id, "q": self.text}
        return {key: value for key, value in pairs.items() if value}


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: the last row shown, in (created_at, id) order."""

    created_at: datetime
    job_id: str

    def token(self) -> str:
        return f"{self.created_at.isoformat()}~{self.job_id}"


def job_id(text: str) -> str:
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        raise BadRequest(f"not a job id: {text[:64]!r} (a job id is a UUID)") from None


def _optional(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name, "").strip()
    return value or None


def job_filter(query: Mapping[str, str]) -> JobFilter:
    status = _optional(query, "status")
    if status is not None and status not in {member.value for member in ExtractionJobStatus}:
        known = ", ".join(member.value for member in ExtractionJobStatus)
        raise BadRequest(f"unknown status {status[:32]!r}: choose one of {known}")
    fmt = _optional(query, "format")
    if fmt is not None and not _FORMAT.match(fmt):
        raise BadRequest(f"not a format: {fmt[:40]!r} (lower-case letters, digits and _)")
    record = _optional(query, "record")
    if record is not None:
        try:
            record = str(uuid.UUID(record))
        except ValueError:
            raise BadRequest(f"not a record id: {record[:64]!r} (a record id is a UUID)") from None
    text = _optional(query, "q")
    if text is not None:
        if len(text) > MAX_TEXT:
            raise BadRequest(f"the search text is {len(text)} characters; at most {MAX_TEXT}")
        if _CONTROL.search(text):
            raise BadRequest("the search text holds control characters")
    return JobFilter(status, fmt, record, text)


def cursor(query: Mapping[str, str]) -> Cursor | None:
    token = _optional(query, "after")
    if token is None:
        return None
    stamp, _, key = token.partition("~")
    try:
        return Cursor(datetime.fromisoformat(stamp), str(uuid.UUID(key)))
    except ValueError:
        raise BadRequest("the page cursor is damaged: start again from the first page") from None

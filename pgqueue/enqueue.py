"""Enqueue jobs from a web app, inside the caller's own transaction.

The caller's transaction decides: ``enqueue`` runs one INSERT on the connection or session it
is given and never commits, so a rolled-back request leaves no job (and wakes no worker: the
NOTIFY trigger fires at commit). Accepted: a psycopg ``Connection``/``AsyncConnection``, or a
SQLAlchemy ``Session``/``Connection``/``AsyncSession``/``AsyncConnection`` with any driver.

Input is validated before anything is written (``InvalidJob``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pgqueue import extractors, sql
from pgqueue.errors import InvalidFileUrl
from pgqueue.extractors import schemas
from pgqueue.inert_text import UNSAFE, inert
from pgqueue.priority import Priority, priority_names, priority_value
from pgqueue.storage.urls import MAX_URL_LENGTH, redact, scheme_of

MAX_FILENAME = 255
MAX_FILE_SIZE = 2**63 - 1  # the column is a bigint
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


class InvalidJob(ValueError):
    """A job request that cannot become a job; nothing was written."""


@dataclass(frozen=True)
class JobRequest:
    """What the web app knows about a file to extract. Validated on creation."""

    filename: str
    file_url: str
    file_size: int
    format: str
    options: Mapping[str, Any] = field(default_factory=dict)
    record_id: str | uuid.UUID | None = None
    field_id: str | uuid.UUID | None = None
    attachment_id: str | uuid.UUID | None = None
    max_retries: int = 3
    priority: Priority | int | str | None = None
    """A level (``Priority.BULK``), its name (``"bulk"``) or 0-100, lower more urgent. None:
    ``interactive`` for ``enqueue``, ``bulk`` for ``enqueue_bulk``."""

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise InvalidJob("; ".join(problems))

    def params(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "file_url": self.file_url,
            "file_size": self.file_size,
            "format": self.format,
            "record_id": _uuid_text(self.record_id),
            "field_id": _uuid_text(self.field_id),
            "attachment_id": _uuid_text(self.attachment_id),
            "options": _options_json(self.options),
            "max_retries": self.max_retries,
            "priority": self.priority_or(Priority.INTERACTIVE),
        }

    def row(self) -> tuple[Any, ...]:
        """The COPY row, in ``sql.JOB_STAGING_COPY``'s column order (bulk by default)."""
        return (
            self.filename, self.file_url, self.file_size, self.format,
            _uuid_text(self.record_id), _uuid_text(self.field_id), _uuid_text(self.attachment_id),
            _options_json(self.options), self.max_retries, self.priority_or(Priority.BULK),
        )

    def priority_or(self, default: Priority) -> int:
        if self.priority is None:
            return int(default)
        value = priority_value(self.priority)
        assert value is not None  # checked on creation
        return value


@dataclass(frozen=True)
class EnqueuedJob:
    id: str
    status: str
    existing: bool
    """True when the attachment already had an active job and that job was returned."""


@dataclass(frozen=True)
class BulkResult:
    inserted: int
    skipped: int
    """Requests whose attachment already had an active job."""


# Formats extracted only by plugins the workers load (PGQUEUE_EXTRACTORS) are unknown to the
# web app's own registry. It accepts them when a registered worker advertises them (see
# ``pgqueue.control.accept_worker_formats``) or when they are listed in PGQUEUE_ENQUEUE_FORMATS.
_advertised: set[str] = set()


def accepted_formats() -> set[str]:
    """The formats enqueue accepts: this process's extractors, the configured list, and those
    registered workers advertised when last asked."""
    return set(extractors.formats()) | _configured(os.environ.get("PGQUEUE_ENQUEUE_FORMATS", "")) | _advertised


def _accepted_elsewhere(fmt: str) -> bool:
    return fmt in _advertised or fmt in _configured(os.environ.get("PGQUEUE_ENQUEUE_FORMATS", ""))


@functools.lru_cache(maxsize=4)
def _configured(listed: str) -> frozenset[str]:
    return frozenset(name.strip() for name in listed.split(",") if name.strip())


def accept(formats: Iterable[str]) -> None:
    """Accept these formats at enqueue from now on (as advertised by registered workers)."""
    _advertised.update(formats)


def _options_json(options: Mapping[str, Any]) -> str:
    # Most back-filled jobs have no options: skip the encoder for them.
    return json.dumps(dict(options), allow_nan=False) if options else "{}"


def _url_problem(url: object) -> str | None:
    """What the worker would refuse in this URL before fetching anything, or None."""
    try:
        scheme_of(url)
    except InvalidFileUrl as exc:
        return str(exc)
    return None


def _problems(job: JobRequest) -> list[str]:
    if (
        type(job.filename) is str and 0 < len(job.filename) <= MAX_FILENAME
        and not UNSAFE.search(job.filename)
        and _url_problem(job.file_url) is None
        and type(job.file_size) is int and 0 <= job.file_size <= MAX_FILE_SIZE
        and type(job.format) is str and (job.format in extractors.formats() or _accepted_elsewhere(job.format))
        and type(job.options) is dict and not job.options
        and job.record_id is None and job.field_id is None and job.attachment_id is None
        and type(job.max_retries) is int and 0 <= job.max_retries <= 100
        and job.priority is None
        and job.filename.strip()
    ):
        return []  # the common case of a back-fill, checked without building messages
    problems: list[str] = []
    if not isinstance(job.filename, str) or not job.filename.strip():
        problems.append("filename must be a non-empty string")
    elif len(job.filename) > MAX_FILENAME:
        problems.append(f"filename is longer than {MAX_FILENAME} characters")
    elif "\x00" in job.filename:
        problems.append("filename must not contain NUL characters")
    elif found := UNSAFE.search(job.filename):
        problems.append(
            f"filename must not contain control or bidi characters, found {inert(found.group(0))}"
        )
    if not isinstance(job.file_url, str) or not job.file_url.strip():
        problems.append("file_url must be a non-empty string")
    elif len(job.file_url) > MAX_URL_LENGTH:
        problems.append(f"file_url is longer than {MAX_URL_LENGTH} characters")
    elif not _URL.match(job.file_url):
        problems.append(f"file_url must be a URL such as s3://bucket/key, got {redact(job.file_url)[:80]!r}")
    elif problem := _url_problem(job.file_url):
        problems.append(problem)  # the worker's own check: scheme, control characters
    if isinstance(job.file_size, bool) or not isinstance(job.file_size, int) or job.file_size < 0:
        problems.append(f"file_size must be a non-negative integer, got {job.file_size!r}")
    elif job.file_size > MAX_FILE_SIZE:
        problems.append(f"file_size is larger than {MAX_FILE_SIZE}, got {job.file_size}")
    if not isinstance(job.format, str) or not (
        job.format in extractors.formats() or _accepted_elsewhere(job.format)
    ):
        known = accepted_formats()
        problems.append(f"unknown format {job.format!r}; known formats: {', '.join(sorted(known))}")
    if not isinstance(job.options, Mapping):
        problems.append(f"options must be a JSON object, got {type(job.options).__name__}")
    else:
        try:
            json.dumps(dict(job.options), allow_nan=False)
        except (TypeError, ValueError) as exc:
            problems.append(f"options are not JSON: {exc}")
        except RecursionError:
            problems.append("options are nested too deeply")
        else:
            if isinstance(job.format, str) and (problem := schemas.options_problem(job.format, job.options)):
                problems.append(problem)
    for name in ("record_id", "field_id", "attachment_id"):
        value = getattr(job, name)
        if value is not None and _uuid_text(value, strict=False) is None:
            problems.append(f"{name} must be a UUID, got {value!r}")
    if isinstance(job.max_retries, bool) or not isinstance(job.max_retries, int) or not 0 <= job.max_retries <= 100:
        problems.append(f"max_retries must be an integer from 0 to 100, got {job.max_retries!r}")
    if job.priority is not None and priority_value(job.priority) is None:
        problems.append(f"priority must be {priority_names()} or an integer from 0 (most urgent) "
                        f"to 100, got {job.priority!r}")
    return problems


def _checked(job: object) -> JobRequest:
    """A bulk item: JobRequests validate themselves on creation; anything else is refused."""
    if not isinstance(job, JobRequest):
        raise InvalidJob(f"enqueue_bulk takes JobRequest items, got {type(job).__name__}")
    return job


def _uuid_text(value: str | uuid.UUID | None, strict: bool = True) -> str | None:
    if value is None:
        return None
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except ValueError:
        if strict:
            raise
        return None


def _named(statement: str) -> str:
    """psycopg's ``%(name)s`` placeholders as SQLAlchemy's ``:name``."""
    return re.sub(r"%\((\w+)\)s", r":\1", statement)


_ENQUEUE_NAMED = _named(sql.JOB_ENQUEUE)


def _request(job: JobRequest | None, fields: dict[str, Any]) -> JobRequest:
    if job is not None and fields:
        raise TypeError("give a JobRequest or keyword fields, not both")
    return job if job is not None else JobRequest(**fields)


def _enqueued(row: Any) -> EnqueuedJob:
    values = dict(row._mapping) if hasattr(row, "_mapping") else dict(row) if isinstance(row, Mapping) else None
    if values is None:
        job_id, status, existing = row
        return EnqueuedJob(str(job_id), str(status), bool(existing))
    return EnqueuedJob(str(values["id"]), str(values["status"]), bool(values["existing"]))


def enqueue(connection: Any, job: JobRequest | None = None, /, **fields: Any) -> EnqueuedJob:
    """Enqueue one job on a psycopg connection or a SQLAlchemy session or connection.

    Either pass a ``JobRequest`` or its fields as keywords. Does not commit.
    """
    request = _request(job, fields)
    if isinstance(connection, psycopg.Connection):
        with connection.cursor() as cursor:
            cursor.execute(sql.JOB_ENQUEUE, request.params())
            return _enqueued(cursor.fetchone())
    from sqlalchemy import text

    result = connection.execute(text(_ENQUEUE_NAMED), request.params())
    return _enqueued(result.one())


async def enqueue_async(connection: Any, job: JobRequest | None = None, /, **fields: Any) -> EnqueuedJob:
    """``enqueue`` for a psycopg ``AsyncConnection`` or a SQLAlchemy ``AsyncSession``/``AsyncConnection``."""
    request = _request(job, fields)
    if isinstance(connection, psycopg.AsyncConnection):
        async with connection.cursor() as cursor:
            await cursor.execute(sql.JOB_ENQUEUE, request.params())
            return _enqueued(await cursor.fetchone())
    from sqlalchemy import text

    result = await connection.execute(text(_ENQUEUE_NAMED), request.params())
    return _enqueued(result.one())


def enqueue_bulk(connection: psycopg.Connection[Any], jobs: Iterable[JobRequest]) -> BulkResult:
    """Enqueue many jobs with COPY: hundreds of thousands without a round trip per row.

    Runs in the connection's transaction (opening one if it is in autocommit mode) and commits
    only a transaction it opened itself. Jobs without an attachment are copied straight into the
    table; jobs with one go through a staging table so that attachments which already have an
    active job are skipped (and counted).
    """
    # In autocommit mode the statements need a transaction of their own; otherwise they join
    # the caller's (psycopg's transaction() would commit an implicit one on exit).
    scope = connection.transaction() if connection.autocommit else contextlib.nullcontext()
    attached: list[JobRequest] = []
    with scope, connection.cursor() as cursor:
        with cursor.copy(sql.JOB_COPY) as copy:
            for job in jobs:
                if _checked(job).attachment_id is None:
                    copy.write_row(job.row())
                else:
                    attached.append(job)
        inserted = max(cursor.rowcount, 0)
        staged = 0
        if attached:
            cursor.execute(sql.JOB_STAGING_CREATE)
            with cursor.copy(sql.JOB_STAGING_COPY) as copy:
                for job in attached:
                    copy.write_row(job.row())
            cursor.execute(sql.JOB_STAGING_INSERT)
            staged = cursor.rowcount
            cursor.execute(sql.JOB_STAGING_CLEAR)
    return BulkResult(inserted=inserted + staged, skipped=len(attached) - staged)


async def enqueue_bulk_async(
    connection: psycopg.AsyncConnection[Any], jobs: Iterable[JobRequest]
) -> BulkResult:
    """``enqueue_bulk`` for a psycopg ``AsyncConnection``."""
    scope = connection.transaction() if connection.autocommit else contextlib.nullcontext()
    attached: list[JobRequest] = []
    async with scope, connection.cursor() as cursor:
        async with cursor.copy(sql.JOB_COPY) as copy:
            for job in jobs:
                if _checked(job).attachment_id is None:
                    await copy.write_row(job.row())
                else:
                    attached.append(job)
        inserted = max(cursor.rowcount, 0)
        staged = 0
        if attached:
            await cursor.execute(sql.JOB_STAGING_CREATE)
            async with cursor.copy(sql.JOB_STAGING_COPY) as copy:
                for job in attached:
                    await copy.write_row(job.row())
            await cursor.execute(sql.JOB_STAGING_INSERT)
            staged = cursor.rowcount
            await cursor.execute(sql.JOB_STAGING_CLEAR)
    return BulkResult(inserted=inserted + staged, skipped=len(attached) - staged)

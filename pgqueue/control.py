"""Read, cancel and retry one job from a web app, inside the caller's own transaction.

Like ``enqueue``, these functions run on what the caller gives them, a psycopg ``Connection`` or
a SQLAlchemy ``Session``/``Connection`` (``*_async``: a psycopg ``AsyncConnection`` or a
SQLAlchemy ``AsyncSession``/``AsyncConnection``), and never commit. A cancel or retry takes
effect, and wakes workers, when the caller commits.

Each operation is written once, as a sequence of statements (a generator that yields a
statement and receives its rows); a sync and an async driver run it. So ``cancel`` and
``cancel_async`` cannot drift apart.

A job id that is not a UUID is treated as an id that does not exist.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row

from pgqueue import sql
from pgqueue.enqueue import accept

__all__ = [
    "JobChange",
    "JobInfo",
    "accept_worker_formats",
    "accept_worker_formats_async",
    "cancel",
    "cancel_async",
    "get_job",
    "get_job_async",
    "retry",
    "retry_async",
]

CANCEL_REASON = "cancelled by the web app"

Rows = list[dict[str, Any]]
Statement = tuple[str, dict[str, Any]]
T = TypeVar("T")
Steps = Generator[Statement, Rows, T]


@dataclass(frozen=True)
class JobInfo:
    """A job as the web app shows it: where it stands, what it found, what went wrong."""

    id: str
    status: str
    filename: str
    file_url: str
    file_size: int
    format: str
    record_id: str | None
    field_id: str | None
    attachment_id: str | None
    options: dict[str, Any]
    result: dict[str, Any] | None
    error_message: str | None
    error_history: list[dict[str, Any]]
    retry_count: int
    max_retries: int
    next_retry_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    worker_id: str | None
    created_at: datetime
    updated_at: datetime
    priority: int = 10
    """Lower is more urgent: interactive 10, bulk 20 (``pgqueue.priority``)."""
    superseded_by: str | None = None
    """On a completed job: the newer completed job of the same attachment that replaced it."""
    extractor: str | None = None
    """The extractor that wrote ``result`` ("unknown" version: written before versions)."""
    extractor_version: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> JobInfo:
        values = dict(row)
        for name in ("options", "result", "error_history"):
            if isinstance(values[name], str):  # drivers that hand jsonb over as text
                values[name] = json.loads(values[name])
        values["options"] = values["options"] or {}
        return cls(**values)


@dataclass(frozen=True)
class JobChange:
    """What a cancel or retry did. ``status`` is the job's status now; None: no such job."""

    id: str
    changed: bool
    status: str | None

    @property
    def found(self) -> bool:
        return self.status is not None


def job_key(job_id: str | uuid.UUID) -> str | None:
    """The canonical text of a job id, or None when it is not a UUID."""
    if isinstance(job_id, uuid.UUID):
        return str(job_id)
    try:
        return str(uuid.UUID(str(job_id).strip()))
    except ValueError:
        return None


# --- the operations, each written once --------------------------------------------------------


def _get_steps(job_id: str | uuid.UUID) -> Steps[JobInfo | None]:
    key = job_key(job_id)
    if key is None:
        return None
    rows = yield sql.JOB_GET, {"id": key}
    return JobInfo.from_row(rows[0]) if rows else None


def _cancel_steps(job_id: str | uuid.UUID, reason: str) -> Steps[JobChange]:
    key = job_key(job_id)
    if key is None:
        return JobChange(str(job_id), False, None)
    rows = yield sql.JOB_CANCEL, {"id": key, "reason": reason}
    if rows:
        return JobChange(key, True, "cancelled")
    rows = yield sql.JOB_GET_STATUS, {"id": key}
    return JobChange(key, False, str(rows[0]["status"]) if rows else None)


def _retry_steps(job_id: str | uuid.UUID) -> Steps[JobChange]:
    key = job_key(job_id)
    if key is None:
        return JobChange(str(job_id), False, None)
    rows = yield sql.JOB_RETRY, {"id": key}
    if rows:
        return JobChange(key, True, "pending")
    rows = yield sql.JOB_GET_STATUS, {"id": key}
    return JobChange(key, False, str(rows[0]["status"]) if rows else None)


def _worker_formats_steps() -> Steps[set[str]]:
    rows = yield sql.WORKER_FORMATS, {}
    formats = {str(row["format"]) for row in rows}
    accept(formats)
    return formats


# --- public API -----------------------------------------------------------------------------


def accept_worker_formats(connection: Any) -> set[str]:
    """Read the formats the registered workers advertise (plugins loaded only there included)
    and accept them at enqueue in this process from now on. Call it at start-up, and again
    after deploying workers with new formats. Returns the advertised formats."""
    return _drive(connection, _worker_formats_steps())


async def accept_worker_formats_async(connection: Any) -> set[str]:
    return await _drive_async(connection, _worker_formats_steps())


def get_job(connection: Any, job_id: str | uuid.UUID) -> JobInfo | None:
    """The job with this id, or None."""
    return _drive(connection, _get_steps(job_id))


def cancel(connection: Any, job_id: str | uuid.UUID, reason: str = CANCEL_REASON) -> JobChange:
    """Cancel a pending or processing job (a running one is stopped by its worker within
    seconds of the commit). ``changed`` is False when the job is already finished or missing."""
    return _drive(connection, _cancel_steps(job_id, reason))


def retry(connection: Any, job_id: str | uuid.UUID) -> JobChange:
    """Give a failed or cancelled job a fresh set of retries, due now.
    ``changed`` is False when the job is pending, processing, completed or missing."""
    return _drive(connection, _retry_steps(job_id))


async def get_job_async(connection: Any, job_id: str | uuid.UUID) -> JobInfo | None:
    return await _drive_async(connection, _get_steps(job_id))


async def cancel_async(connection: Any, job_id: str | uuid.UUID, reason: str = CANCEL_REASON) -> JobChange:
    return await _drive_async(connection, _cancel_steps(job_id, reason))


async def retry_async(connection: Any, job_id: str | uuid.UUID) -> JobChange:
    return await _drive_async(connection, _retry_steps(job_id))


# --- drivers ----------------------------------------------------------------------------------


def named_parameters(statement: str) -> str:
    """psycopg's ``%(name)s`` placeholders as SQLAlchemy's ``:name``."""
    return re.sub(r"%\((\w+)\)s", r":\1", statement)


def _drive(connection: Any, steps: Steps[T]) -> T:
    try:
        statement = next(steps)
        while True:
            statement = steps.send(_execute(connection, *statement))
    except StopIteration as done:
        result: T = done.value
        return result


async def _drive_async(connection: Any, steps: Steps[T]) -> T:
    try:
        statement = next(steps)
        while True:
            statement = steps.send(await _execute_async(connection, *statement))
    except StopIteration as done:
        result: T = done.value
        return result


def _execute(connection: Any, statement: str, params: dict[str, Any]) -> Rows:
    if isinstance(connection, psycopg.Connection):
        with connection.cursor(row_factory=dict_row) as cursor:
            cursor.execute(statement.encode(), params)
            return cursor.fetchall() if cursor.description else []
    from sqlalchemy import text

    result = connection.execute(text(named_parameters(statement)), params)
    return [dict(row._mapping) for row in result] if result.returns_rows else []


async def _execute_async(connection: Any, statement: str, params: dict[str, Any]) -> Rows:
    if isinstance(connection, psycopg.AsyncConnection):
        async with connection.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(statement.encode(), params)
            return await cursor.fetchall() if cursor.description else []
    from sqlalchemy import text

    result = await connection.execute(text(named_parameters(statement)), params)
    return [dict(row._mapping) for row in result] if result.returns_rows else []

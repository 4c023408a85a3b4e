"""What an operator does with the queue: plain functions that take a psycopg connection
(autocommit, as ``pgqueue.database.connect`` opens it) and return data. ``pgqueue.cli`` calls
them and ``pgqueue.cli_output`` renders what they return; neither holds any logic of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgqueue import control, sql
from pgqueue.enqueue import BulkResult, EnqueuedJob, JobRequest, enqueue, enqueue_bulk

RETRY_BATCH = 1000
FAILURE_REASONS_SHOWN = 5

Rows = list[dict[str, Any]]


def _fetch(conn: psycopg.Connection[Any], statement: str, params: dict[str, Any] | None = None) -> Rows:
    with conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(statement.encode(), params)
        return cursor.fetchall() if cursor.description else []


# --- status -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusReport:
    counts: Rows
    """One row per (format, status): format, status, jobs."""
    totals: dict[str, int]
    """Jobs by status, every format together; every status is present."""
    due_jobs: int
    oldest_due_at: datetime | None
    lag_seconds: float
    throughput: dict[str, int]
    """completed_5m, failed_5m, completed_1h, failed_1h."""
    workers: Rows
    failure_reasons: Rows


def status(conn: psycopg.Connection[Any], failure_reasons: int = FAILURE_REASONS_SHOWN) -> StatusReport:
    counts = _fetch(conn, sql.REPORT_STATUS_BY_FORMAT)
    totals = dict.fromkeys(("pending", "processing", "completed", "failed", "cancelled"), 0)
    for row in counts:
        totals[row["status"]] = totals.get(row["status"], 0) + int(row["jobs"])
    lag = _fetch(conn, sql.REPORT_QUEUE_LAG)[0]
    throughput = _fetch(conn, sql.REPORT_THROUGHPUT)[0]
    return StatusReport(
        counts=counts,
        totals=totals,
        due_jobs=int(lag["due_jobs"]),
        oldest_due_at=lag["oldest_due_at"],
        lag_seconds=float(lag["lag_seconds"]),
        throughput={name: int(value) for name, value in throughput.items()},
        workers=_fetch(conn, sql.REPORT_LIVE_WORKERS),
        failure_reasons=_fetch(conn, sql.REPORT_FAILURE_REASONS, {"limit": failure_reasons}),
    )


# --- jobs list / show -------------------------------------------------------------------------


@dataclass(frozen=True)
class JobPage:
    jobs: Rows
    total: int
    """Jobs matching the filters, on every page."""
    offset: int
    limit: int


@dataclass(frozen=True)
class JobFilter:
    statuses: Sequence[str] = ()
    formats: Sequence[str] = ()
    record_id: str | None = None
    since: timedelta | None = None


def list_jobs(conn: psycopg.Connection[Any], where: JobFilter, limit: int = 50, offset: int = 0) -> JobPage:
    rows = _fetch(conn, sql.JOB_LIST, {
        "statuses": list(where.statuses),
        "formats": list(where.formats),
        "record_id": where.record_id,
        "since_seconds": where.since.total_seconds() if where.since is not None else None,
        "limit": limit,
        "offset": offset,
    })
    total = int(rows[0]["total"]) if rows else 0
    for row in rows:
        del row["total"]
    return JobPage(rows, total, offset, limit)


def show_job(conn: psycopg.Connection[Any], job_id: str) -> control.JobInfo | None:
    return control.get_job(conn, job_id)


# --- retry / cancel / purge -------------------------------------------------------------------

OPERATOR_CANCEL_REASON = "cancelled by an operator (pgqueue cancel)"


def retry_job(conn: psycopg.Connection[Any], job_id: str) -> control.JobChange:
    return control.retry(conn, job_id)


def cancel_job(conn: psycopg.Connection[Any], job_id: str) -> control.JobChange:
    return control.cancel(conn, job_id, OPERATOR_CANCEL_REASON)


def retry_failed(
    conn: psycopg.Connection[Any],
    formats: Sequence[str] = (),
    since: timedelta | None = None,
    batch: int = RETRY_BATCH,
) -> list[str]:
    """Retry every failed job matching the filters; the ids retried. Each batch commits."""
    before = _fetch(conn, sql.CLOCK_NOW)[0]["now"]
    params = {
        "before": before,
        "formats": list(formats),
        "since_seconds": since.total_seconds() if since is not None else None,
        "batch": batch,
    }
    retried: list[str] = []
    while True:
        rows = _fetch(conn, sql.JOB_RETRY_FAILED_MANY, params)
        retried.extend(row["id"] for row in rows)
        if len(rows) < batch:
            return retried


@dataclass(frozen=True)
class PurgeCounts:
    """Finished jobs older than the purge's cutoff, by what retention makes of them."""

    failed: int
    cancelled: int
    superseded: int
    """Completed, with a newer completed job of the same attachment."""
    latest: int
    """Completed, the latest result of their attachment."""
    unlinked: int
    """Completed, without an attachment (no record_id or no attachment_id)."""

    def deleted_by(self, include_latest: bool) -> int:
        kept_by_default = self.failed + self.cancelled + self.superseded
        return kept_by_default + (self.latest + self.unlinked if include_latest else 0)


def purge_counts(conn: psycopg.Connection[Any], older_than: timedelta) -> PurgeCounts:
    row = _fetch(conn, sql.JOB_COUNT_PURGEABLE, {"older_than_seconds": older_than.total_seconds()})[0]
    return PurgeCounts(**{name: int(value) for name, value in row.items()})


def purge(
    conn: psycopg.Connection[Any], older_than: timedelta, batch: int = 1000,
    include_latest: bool = False,
) -> int:
    """Delete finished jobs that finished longer ago than ``older_than``; how many. By default
    the retention rule: failed, cancelled and superseded jobs; ``include_latest`` deletes the
    latest results (and completed jobs without an attachment) too. Pending and processing jobs
    are never touched. Each batch commits."""
    statement = sql.JOB_PURGE_ALL_FINISHED if include_latest else sql.JOB_PRUNE_FINISHED
    deleted = 0
    while True:
        rows = _fetch(conn, statement, {
            "older_than_seconds": older_than.total_seconds(), "batch": batch, "lock_key": None,
            "unlinked_older_than_seconds": None,
        })
        deleted += len(rows)
        if len(rows) < batch:
            return deleted


# --- enqueue ----------------------------------------------------------------------------------


@dataclass
class EnqueueSummary:
    jobs: list[EnqueuedJob] = field(default_factory=list)
    inserted: int = 0
    existing: int = 0
    """Requests whose attachment already had an active job (that job was kept)."""


def enqueue_each(
    conn: psycopg.Connection[Any],
    requests: Iterable[JobRequest],
    advance: Callable[[], None] = lambda: None,
) -> EnqueueSummary:
    """Enqueue jobs one statement each, in one transaction, keeping every id."""
    summary = EnqueueSummary()
    with conn.transaction():
        for request in requests:
            job = enqueue(conn, request)
            summary.jobs.append(job)
            if job.existing:
                summary.existing += 1
            else:
                summary.inserted += 1
            advance()
    return summary


def enqueue_many(
    conn: psycopg.Connection[Any],
    requests: Iterable[JobRequest],
    advance: Callable[[], None] = lambda: None,
) -> BulkResult:
    """Enqueue jobs with COPY (``enqueue_bulk``), in one transaction; ids are not returned."""

    def counted() -> Iterable[JobRequest]:
        for request in requests:
            yield request
            advance()

    return enqueue_bulk(conn, counted())

"""Outcomes waiting to be written still hold their jobs.

A PostgreSQL restart under two workers once ran a job twice (caught by
``test_postgres_restart_while_two_workers_process_500_jobs``): the job finished while the
database was away, its outcome waited in the completer, and after the reconnect the claimer
handed "orphans" back, i.e. every job processing under this worker that was not running, this one
included. The same worker claimed it again, and both outcomes went out in one write-back, which
reported the job completed twice. These tests drive the claimer and the completer against a real
database, one step at a time.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import anyio
import psycopg
import pytest
from psycopg.rows import dict_row
from structlog.testing import capture_logs

from pgqueue.enqueue import JobRequest, enqueue
from pgqueue.jobrun import Outcome
from pgqueue.settings import Settings
from pgqueue.worker.claimer import Claimer
from pgqueue.worker.completer import Completer
from pgqueue.worker.link import Link
from pgqueue.worker.state import ClaimedJob, WorkerState
from tests.factories import claim, register_worker
from tests.workers import query

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def claim_all(db_url: str, state: WorkerState, count: int) -> list[ClaimedJob]:
    """Enqueue ``count`` jobs and claim them all under the worker's identity."""
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        register_worker(conn, state.worker_id)
        for n in range(count):
            enqueue(conn, JobRequest(f"f{n}.pdf", f"s3://bucket/f{n}.pdf", 1, "pdf"))
        rows = claim(conn, state.worker_id, limit=count)
    assert len(rows) == count
    return [ClaimedJob.from_row(row) for row in rows]


@contextlib.asynccontextmanager
async def completer_with_claims(
    db_url: str, count: int, **settings: Any
) -> AsyncIterator[tuple[WorkerState, list[ClaimedJob], Completer]]:
    """A worker's state holding ``count`` claimed jobs, and its completer on a real link."""
    state = WorkerState(max(2, count))
    jobs = claim_all(db_url, state, count)
    link = Link(db_url, "public", "test")
    try:
        yield state, jobs, Completer(link, Settings(database_url=db_url, slots=state.slots, **settings), state)
    finally:
        await link.close()


def job_result(db_url: str, job_id: str) -> Any:
    return query(db_url, "SELECT result FROM extraction_jobs WHERE id = %s", [job_id])[0]["result"]


def rows_by_id(db_url: str) -> dict[str, dict[str, Any]]:
    rows = query(db_url, "SELECT id::text AS id, status, worker_id::text AS worker_id FROM extraction_jobs")
    return {row["id"]: row for row in rows}


async def test_release_after_an_outage_keeps_jobs_whose_outcomes_wait(db_url: str) -> None:
    async with completer_with_claims(db_url, 2) as (state, (finished, orphan), completer):
        # ``finished`` ran and ended while the database was away: its outcome waits, unwritten.
        # ``orphan`` was claimed by a statement whose answer never arrived: nothing here knows it.
        state.hold(finished)
        completer.submit(finished, Outcome(finished.id, "{}"), time.monotonic())
        claimer = Claimer(completer.link, completer.settings, state, executor=None)  # type: ignore[arg-type]
        with capture_logs() as logs:
            await claimer._release_orphans()
        rows = rows_by_id(db_url)
        assert rows[orphan.id]["status"] == "pending"
        assert rows[finished.id] == {"id": finished.id, "status": "processing",
                                     "worker_id": state.worker_id}
        assert [entry["job_id"] for entry in logs if entry["event"] == "job_released"] == [orphan.id]

        assert await completer.drain(time.monotonic() + 10)
        assert rows_by_id(db_url)[finished.id]["status"] == "completed"


async def test_two_outcomes_of_one_job_are_written_apart(db_url: str) -> None:
    async with completer_with_claims(db_url, 1) as (_, (job,), completer):
        completer.submit(job, Outcome(job.id, '{"run": 1}'), time.monotonic())
        completer.submit(job, Outcome(job.id, '{"run": 2}'), time.monotonic())
        with capture_logs() as logs:
            assert await completer.drain(time.monotonic() + 10)
    events = [entry["event"] for entry in logs if entry.get("job_id") == job.id]
    assert events == ["job_completed", "job_outcome_already_written"]
    assert job_result(db_url, job.id) == {"run": 1}


async def test_a_shutdown_drain_and_the_flush_loop_write_each_outcome_once(db_url: str) -> None:
    # At shutdown ``drain`` flushes while the flush loop may be flushing too; once, both took
    # the same batch, and the second one's cleanup dropped outcomes that were never written.
    async with completer_with_claims(db_url, 25, flush_delay=0, flush_batch=10) as (_, jobs, completer):
        with capture_logs() as logs:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(completer.run)
                for job in jobs:
                    completer.submit(job, Outcome(job.id, "{}"), time.monotonic())
                assert await completer.drain(time.monotonic() + 10)
                await completer.empty.wait()
                tasks.cancel_scope.cancel()
    events = Counter(entry["event"] for entry in logs if entry.get("job_id"))
    assert events == {"job_completed": 25}
    assert {row["status"] for row in rows_by_id(db_url).values()} == {"completed"}


async def test_an_outcome_is_fenced_by_the_claim_that_computed_it(db_url: str) -> None:
    # The worker was declared lost while the job ran; its job was rescued, and the same
    # worker claimed it again. The first run's outcome, still waiting here, must not end the
    # second claim.
    async with completer_with_claims(db_url, 1) as (state, (first,), completer):
        with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
            conn.execute("UPDATE extraction_jobs SET status = 'pending' WHERE id = %s", [first.id])
            [row] = claim(conn, state.worker_id)
        second = ClaimedJob.from_row(row)
        assert second.id == first.id and second.claim_token != first.claim_token
        with capture_logs() as logs:
            completer.submit(first, Outcome(first.id, '{"run": 1}'), time.monotonic())
            assert await completer.drain(time.monotonic() + 10)
            assert rows_by_id(db_url)[first.id]["status"] == "processing"
            completer.submit(second, Outcome(second.id, '{"run": 2}'), time.monotonic())
            assert await completer.drain(time.monotonic() + 10)
    events = [entry["event"] for entry in logs if entry.get("job_id") == first.id]
    assert events == ["job_lost_race", "job_completed"]
    assert job_result(db_url, first.id) == {"run": 2}

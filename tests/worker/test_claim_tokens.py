"""Every write-back is fenced on the claim that computed it, and never waits on a web request.

Real PostgreSQL, the real claimer, executor and completer; the runner is a small stand-in and
the link a real one that can lose one answer, as a connection cut after the commit would.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import psycopg
import pytest
from psycopg.rows import dict_row
from structlog.testing import capture_logs

from pgqueue import sql
from pgqueue.errors import StorageUnavailable
from pgqueue.jobrun import JobInput, Outcome
from pgqueue.settings import Settings
from pgqueue.worker.claimer import Claimer
from pgqueue.worker.completer import Completer
from pgqueue.worker.executor import Executor
from pgqueue.worker.link import DatabaseUnavailable, Link
from pgqueue.worker.state import ClaimedJob, WorkerState
from tests.factories import claim, make_job, register_worker
from tests.workers import query

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class AnswerLosingLink(Link):
    """Loses the answer of the first write-back after it committed, then holds the retry of
    that write-back until ``retry_allowed`` is set."""

    def __init__(self, url: str) -> None:
        super().__init__(url, "public", "completer")
        self.lost = False
        self.retry_allowed = anyio.Event()

    async def fetch(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        if query is sql.JOB_FINISH_MANY and self.lost:
            await self.retry_allowed.wait()
        rows = await super().fetch(query, params)
        if query is sql.JOB_FINISH_MANY and not self.lost:
            self.lost = True
            await self.close()
            raise DatabaseUnavailable("the connection broke before the answer arrived")
        return rows


class FailsFirstRun:
    """The first run fails with a transient error; later runs succeed."""

    enforces_timeouts = False

    def __init__(self) -> None:
        self.runs = 0
        self.second_started = anyio.Event()

    async def run(self, job: JobInput) -> Outcome:
        self.runs += 1
        if self.runs == 1:
            return Outcome.failure(job.id, StorageUnavailable("S3 said 503"))
        self.second_started.set()
        return Outcome(job.id, json.dumps({"run": self.runs}))

    async def aclose(self) -> None:
        pass


async def test_a_write_back_retried_after_its_answer_was_lost_spares_the_next_attempt(
    db_url: str,
) -> None:
    # The first attempt's failure is written (a retry, due at once) but its answer is lost; the
    # same worker claims the job again and runs it before the completer retries the write-back.
    # That retry must not land on the second attempt: the job completes with one failed attempt.
    settings = Settings(database_url=db_url, slots=1, poll_interval=0.05, flush_delay=0,
                        backoff_base=0, backoff_jitter=0, claim_wait=0)
    state = WorkerState(settings.slots)
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        register_worker(conn, state.worker_id)
        job_id = make_job(conn)
    runner = FailsFirstRun()
    claim_link = Link(db_url, settings.schema_name, "claimer")
    complete_link = AnswerLosingLink(db_url)
    completer = Completer(complete_link, settings, state)
    claimer = Claimer(claim_link, settings, state, Executor(state, runner, completer, settings))
    try:
        with capture_logs() as logs:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(completer.run)
                tasks.start_soon(claimer.run, tasks)
                with anyio.fail_after(10):
                    await runner.second_started.wait()
                complete_link.retry_allowed.set()
                with anyio.fail_after(10):
                    while job_row(db_url, job_id)["status"] != "completed":  # noqa: ASYNC110 - the state lives in PostgreSQL
                        await anyio.sleep(0.02)
                    await completer.empty.wait()
                tasks.cancel_scope.cancel()
    finally:
        await claim_link.close()
        await complete_link.close()
    row = job_row(db_url, job_id)
    assert runner.runs == 2
    assert row["result"] == {"run": 2}
    assert row["retry_count"] == 1 == len(row["error_history"])
    assert [entry["attempt"] for entry in row["error_history"]] == [1]
    assert [entry["event"] for entry in logs if entry["event"] == "job_lost_race"] == ["job_lost_race"]


def job_row(db_url: str, job_id: str) -> dict[str, Any]:
    return query(db_url, "SELECT status, result, retry_count, error_history FROM extraction_jobs "
                         "WHERE id = %s", [job_id])[0]


async def test_a_row_locked_by_a_web_request_holds_up_no_other_outcome(db_url: str) -> None:
    # 200 outcomes wait; a web request has cancelled one of their jobs and not committed yet.
    # The other 199 are written at once; the locked one keeps its place and is settled by a
    # later flush, once the request has committed.
    settings = Settings(database_url=db_url, slots=200, flush_batch=200)
    state = WorkerState(settings.slots)
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        register_worker(conn, state.worker_id)
        conn.execute("INSERT INTO extraction_jobs (filename, file_url, file_size, format) "
                     "SELECT 'f.pdf', 's3://b/' || n, 1, 'pdf' FROM generate_series(1, 200) n")
        jobs = [ClaimedJob.from_row(row) for row in claim(conn, state.worker_id, limit=200)]
    locked = jobs[57]
    link = Link(db_url, settings.schema_name, "completer")
    completer = Completer(link, settings, state)
    try:
        with psycopg.connect(db_url, row_factory=dict_row) as web:
            web.execute(sql.JOB_CANCEL.encode(), {"id": locked.id, "reason": "by the web app"})
            for job in jobs:
                state.hold(job)
                completer.submit(job, Outcome(job.id, json.dumps({"n": job.id})), time.monotonic())
            with capture_logs() as logs, anyio.fail_after(10):
                await completer.flush_once()
            statuses = {row["id"]: row["status"] for row in query(
                db_url, "SELECT id::text AS id, status FROM extraction_jobs")}
            assert statuses.pop(locked.id) == "processing"
            assert set(statuses.values()) == {"completed"}
            assert completer.pending == 1 and list(state.claims) == [locked.claim_token]
            with anyio.fail_after(10):
                await completer.flush_once()  # still locked: skipped again, not waited for
            assert completer.pending == 1
            web.commit()
        with anyio.fail_after(10):
            await completer.flush_once()
    finally:
        await link.close()
    assert completer.pending == 0 and not state.claims
    assert job_row(db_url, locked.id)["status"] == "cancelled"
    completed = [entry["job_id"] for entry in logs if entry["event"] == "job_completed"]
    assert completed == [job.id for job in jobs if job is not locked]


async def test_a_locked_outcome_keeps_its_place_before_a_later_one_of_the_same_job(
    db_url: str,
) -> None:
    # A locked row's outcome, then an outcome of a later claim of the same job: the later one
    # is never written first.
    settings = Settings(database_url=db_url, slots=2)
    state = WorkerState(settings.slots)
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        register_worker(conn, state.worker_id)
        job_id = make_job(conn)
        [first] = [ClaimedJob.from_row(row) for row in claim(conn, state.worker_id)]
    later = ClaimedJob.from_row({**_row_of(first), "claim_token": "00000000-0000-4000-8000-000000000000"})
    link = Link(db_url, settings.schema_name, "completer")
    completer = Completer(link, settings, state)
    try:
        with psycopg.connect(db_url, row_factory=dict_row) as web:
            web.execute("SELECT 1 FROM extraction_jobs WHERE id = %s FOR UPDATE", [job_id])
            for job, run in ((first, 1), (later, 2)):
                state.hold(job)
                completer.submit(job, Outcome(job.id, json.dumps({"run": run})), time.monotonic())
            with anyio.fail_after(10):
                await completer.flush_once()
            assert [job.claim_token for job, _, _ in completer.waiting] == [first.claim_token, later.claim_token]
            web.rollback()
        with capture_logs() as logs, anyio.fail_after(10):
            assert await completer.drain(time.monotonic() + 10)
    finally:
        await link.close()
    assert [entry["event"] for entry in logs if entry.get("job_id") == job_id] == [
        "job_completed", "job_lost_race"]
    assert query(db_url, "SELECT result FROM extraction_jobs WHERE id = %s", [job_id])[0]["result"] == {"run": 1}


def _row_of(job: ClaimedJob) -> dict[str, Any]:
    return {"id": job.id, "claim_token": job.claim_token, "filename": job.filename,
            "file_url": job.file_url, "file_size": job.file_size, "format": job.format,
            "options": "{}", "retry_count": job.retry_count, "max_retries": job.max_retries}

"""A job claimed again by the worker that is still stopping its earlier run.

An operator cancels a running job and retries it at once. The cancelled run is still winding
down (a child process takes up to seconds to die) when the same worker claims the job again.
The claimer must not start a second run beside the first, and the claim must not be left
unattended: once the stopped run ends, the job goes back to pending and runs. Before, it stayed
``processing`` under a live worker for good (no rescue applies to a worker that heartbeats).

Real PostgreSQL, the real claimer, executor and completer; the runner is a small stand-in that
holds its first run until the test lets it end, as a dying child process would.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import psycopg
import pytest
from psycopg.rows import dict_row

from pgqueue import sql
from pgqueue.enqueue import JobRequest, enqueue
from pgqueue.jobrun import JobInput, Outcome
from pgqueue.settings import Settings
from pgqueue.worker.claimer import Claimer
from pgqueue.worker.completer import Completer
from pgqueue.worker.executor import Executor
from pgqueue.worker.link import Link
from pgqueue.worker.state import STOP_CANCELLED, WorkerState
from tests.factories import register_worker
from tests.workers import query

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class SlowToStopRunner:
    """The first run waits for ``first_started`` to be answered, ignoring cancellation until
    ``let_first_end`` is set; later runs succeed at once."""

    enforces_timeouts = False

    def __init__(self) -> None:
        self.runs = 0
        self.first_started = anyio.Event()
        self.let_first_end = anyio.Event()

    async def run(self, job: JobInput) -> Outcome:
        self.runs += 1
        if self.runs == 1:
            self.first_started.set()
            with anyio.CancelScope(shield=True):
                await self.let_first_end.wait()
            await anyio.lowlevel.checkpoint()  # the stop takes effect here
        return Outcome(job.id, json.dumps({"run": self.runs}))

    async def aclose(self) -> None:
        pass


def job_row(db_url: str, job_id: str) -> dict[str, Any]:
    rows = query(db_url, "SELECT status, result FROM extraction_jobs WHERE id = %s", [job_id])
    return rows[0]


async def wait_for(check: Any, what: str, seconds: float = 10) -> None:
    """Poll for a state (in the database or the worker), failing after ``seconds``."""
    try:
        with anyio.fail_after(seconds):
            while not check():  # noqa: ASYNC110 - the state lives in PostgreSQL, no event to await
                await anyio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"waited {seconds} s for {what}") from None


async def test_a_job_cancelled_retried_and_reclaimed_while_stopping_runs_again(db_url: str) -> None:
    settings = Settings(database_url=db_url, slots=2, poll_interval=0.1, flush_delay=0)
    state = WorkerState(settings.slots)
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        register_worker(conn, state.worker_id)
        job_id = enqueue(conn, JobRequest("a.pdf", "s3://bucket/a.pdf", 1, "pdf")).id
    runner = SlowToStopRunner()
    links = [Link(db_url, settings.schema_name, name) for name in ("claimer", "completer")]
    completer = Completer(links[1], settings, state)
    executor = Executor(state, runner, completer, settings)
    claimer = Claimer(links[0], settings, state, executor)
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(completer.run)
            tasks.start_soon(claimer.run, tasks)
            with anyio.fail_after(10):
                await runner.first_started.wait()

            # The operator cancels the job (the listener stops the run) and retries it.
            query(db_url, sql.JOB_CANCEL, {"id": job_id, "reason": "by operator"})
            assert state.stop_job(job_id, STOP_CANCELLED)
            query(db_url, sql.JOB_RETRY, {"id": job_id})
            state.wake_claimer()

            # The claimer claims it again while the stopped run is still winding down.
            await wait_for(lambda: len(state.running) == 2, "the second claim")
            assert job_row(db_url, job_id)["status"] == "processing"
            assert runner.runs == 1  # no second run beside the first

            runner.let_first_end.set()
            await wait_for(lambda: job_row(db_url, job_id)["status"] == "completed", "the job to end")
            tasks.cancel_scope.cancel()
        assert runner.runs == 2
        assert job_row(db_url, job_id)["result"] == {"run": 2}
    finally:
        for link in links:
            await link.close()

"""A stop that comes while the claimer waits for slots to free (``claim_wait``) claims nothing."""

from __future__ import annotations

import anyio
import psycopg
import pytest
from psycopg.rows import dict_row

from pgqueue.settings import Settings
from pgqueue.worker.claimer import Claimer
from pgqueue.worker.link import Link
from pgqueue.worker.state import ClaimedJob, RunningJob, WorkerState
from tests.factories import make_job, register_worker
from tests.workers import query

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_stop_during_the_claim_wait_window_claims_nothing(db_url: str) -> None:
    settings = Settings(database_url=db_url, slots=2, claim_wait=30, poll_interval=30)
    state = WorkerState(settings.slots)
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        register_worker(conn, state.worker_id)
        job_id = make_job(conn)
    # One slot busy with a run that does not end: the claimer waits for it (claim_wait).
    busy = ClaimedJob("00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002",
                      "a.pdf", "s3://b/a.pdf", 1, "pdf", {}, 0, 3)
    state.add(RunningJob(busy, anyio.CancelScope()))
    link = Link(db_url, settings.schema_name, "claimer")
    claimer = Claimer(link, settings, state, executor=None)  # type: ignore[arg-type]
    try:
        with anyio.fail_after(5):  # the block ends when the claimer returns
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(claimer.run, tasks)
                await anyio.wait_all_tasks_blocked()
                state.stopping = True
                state.wake_claimer()
    finally:
        await link.close()
    assert query(db_url, "SELECT status FROM extraction_jobs WHERE id = %s", [job_id]) == [{"status": "pending"}]


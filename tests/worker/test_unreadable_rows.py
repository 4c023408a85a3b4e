"""A claimed row the worker cannot read fails alone, with the reason, and the worker goes on.

Options nested thousands deep can only come from SQL typed by hand (``enqueue`` checks them).
They once made the database driver fail the whole claim: the worker exited, the row and its
batch-mates stayed ``processing`` until they were rescued as "worker lost", and after a few
rounds a good job ended ``failed`` for nothing.
"""

from __future__ import annotations

from typing import Any

import anyio
import psycopg
import pytest
from psycopg.rows import dict_row

from pgqueue.jobrun import JobInput, Outcome
from pgqueue.settings import Settings
from pgqueue.worker.claimer import Claimer
from pgqueue.worker.completer import Completer
from pgqueue.worker.executor import Executor
from pgqueue.worker.link import Link
from pgqueue.worker.state import WorkerState
from tests.factories import make_job, register_worker
from tests.workers import query

pytestmark = pytest.mark.anyio

DEPTH = 5000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Succeeds:
    enforces_timeouts = False

    async def run(self, job: JobInput) -> Outcome:
        return Outcome(job.id, '{"ok": true}')

    async def aclose(self) -> None:
        pass


def final_rows(db_url: str) -> dict[str, dict[str, Any]]:
    rows = query(db_url, "SELECT id::text AS id, status, retry_count, error_message FROM extraction_jobs "
                         "WHERE status IN ('completed', 'failed', 'cancelled')")
    return {row["id"]: row for row in rows}


async def test_options_nested_too_deeply_fail_their_job_alone(db_url: str) -> None:
    settings = Settings(database_url=db_url, slots=4, flush_delay=0)
    state = WorkerState(settings.slots)
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        register_worker(conn, state.worker_id)
        good = make_job(conn)
        deep = make_job(conn)
        conn.execute("UPDATE extraction_jobs SET options = %s::jsonb WHERE id = %s",
                     ['{"a": ' * DEPTH + "1" + "}" * DEPTH, deep])
    link = Link(db_url, settings.schema_name, "test")
    completer = Completer(link, settings, state)
    claimer = Claimer(link, settings, state, Executor(state, Succeeds(), completer, settings))
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(completer.run)
            assert await claimer._claim(tasks, settings.slots) == 2
            with anyio.fail_after(10):
                while len(final_rows(db_url)) < 2:  # noqa: ASYNC110 - the state lives in PostgreSQL
                    await anyio.sleep(0.02)
            tasks.cancel_scope.cancel()
    finally:
        await link.close()
    rows = final_rows(db_url)
    assert rows[good]["status"] == "completed"
    assert rows[deep]["status"] == "failed" and rows[deep]["retry_count"] == 0
    assert rows[deep]["error_message"] == "the options are nested too deeply to read"

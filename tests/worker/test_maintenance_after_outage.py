"""After an outage nobody is declared lost until the heartbeats have had time to catch up.

When the database (or the network to it) was away, every worker's heartbeat is stale when it
comes back, through no fault of the workers. A maintenance round that rescued at once would
take every running job in the fleet back as a failed attempt (a test under a real restart once
saw 8 of 500 jobs lose an attempt). The same holds for a worker that has just started: it has
not seen the others beat yet. These tests drive one ``Maintenance`` against a real database and
break its connection with ``pg_terminate_backend``.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import psycopg
import pytest

from pgqueue.settings import Settings
from pgqueue.worker.link import DatabaseUnavailable, Link
from pgqueue.worker.maintenance import Maintenance
from tests.factories import job, make_job, register_worker
from tests.workers import wait_until

pytestmark = pytest.mark.anyio

TIMEOUT = 1.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def lost_job(conn: psycopg.Connection[Any]) -> str:
    dead = register_worker(conn, age_seconds=600)
    return make_job(conn, "processing", worker_id=dead)


async def rounds_until_rescued(maintenance: Maintenance, conn: psycopg.Connection[Any], job_id: str) -> float:
    """Run rounds until the job is rescued; return when that happened (monotonic)."""
    with anyio.fail_after(10):
        while job(conn, job_id)["status"] == "processing":
            await maintenance.run_once()
            await anyio.sleep(0.05)
    return time.monotonic()


async def test_no_rescue_until_a_worker_timeout_after_start_and_after_a_reconnect(
    conn: psycopg.Connection[Any], db_url: str
) -> None:
    # The server-side guard (no rescue in a server's first worker timeout) is not under test.
    wait_until(
        lambda: conn.execute("SELECT now() - pg_postmaster_start_time() > interval '2 s' AS up")
        .fetchone()["up"], 10, "the server to be up for 2 s",
    )
    settings = Settings(database_url=db_url, worker_timeout=TIMEOUT, heartbeat_interval=TIMEOUT / 2)
    maintenance = Maintenance(Link(db_url, settings.schema_name, "maintenance"), settings)
    started = time.monotonic()
    try:
        first = lost_job(conn)
        await maintenance.run_once()
        assert job(conn, first)["status"] == "processing"  # just started: not yet
        assert await rounds_until_rescued(maintenance, conn, first) - started >= TIMEOUT
        assert job(conn, first)["status"] == "pending"

        # The connection breaks under it, as in a failover or a network cut.
        rows = await maintenance.link.fetch("SELECT pg_backend_pid() AS pid")
        conn.execute("SELECT pg_terminate_backend(%s)", [rows[0]["pid"]])
        second = lost_job(conn)
        await maintenance.run_once()  # the round fails: the connection is gone
        assert maintenance.reconnecting
        reconnected = time.monotonic()
        await maintenance.run_once()
        assert job(conn, second)["status"] == "processing"
        assert await rounds_until_rescued(maintenance, conn, second) - reconnected >= TIMEOUT
    finally:
        await maintenance.link.close()


async def test_a_statement_timeout_is_not_a_lost_connection(db_url: str) -> None:
    # Only a lost connection postpones rescues; a statement cut off by statement_timeout on a
    # working connection (a long prune, say) must not, or rescues could be postponed for good.
    link = Link(db_url, "public", "test")
    try:
        await link.fetch("SET statement_timeout = '50ms'")
        with pytest.raises(DatabaseUnavailable) as timed_out:
            await link.fetch("SELECT pg_sleep(2)")
        assert not timed_out.value.connection_lost
        rows = await link.fetch("SELECT pg_backend_pid() AS pid")
        with psycopg.connect(db_url, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [rows[0]["pid"]])
        with pytest.raises(DatabaseUnavailable) as cut:
            await link.fetch("SELECT 1")
        assert cut.value.connection_lost
    finally:
        await link.close()

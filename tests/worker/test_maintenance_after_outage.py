"""After an outage nobody is declared lost until the heartbeats have had time to catch up.

When the database (or the network to it) was away, every worker's heartbeat is stale when it
comes back, through no fault of the workers. A maintenance round that rescued at once would
take every running job in the fleet back as a failed attempt (a test under a real restart once
saw 8 of 500 jobs lose an attempt). The same holds for a worker that has just started: it has
not seen the others beat yet. These tests drive one ``Maintenance`` against a real database and
break its connection with ``pg_terminate_backend``.
"""

from __future__ import annotations

from typing import Any

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


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def rescued_one_timeout_later(
    maintenance: Maintenance, clock: Clock, conn: psycopg.Connection[Any], job_id: str
) -> None:
    """Not rescued now, nor just before a worker timeout has passed; rescued just after."""
    for step, expected in ((0.0, "processing"), (0.9, "processing"), (0.2, "pending")):
        clock.now += TIMEOUT * step
        await maintenance.run_once()
        assert job(conn, job_id)["status"] == expected, step


def settled_server(conn: psycopg.Connection[Any], db_url: str) -> tuple[Settings, Clock]:
    """Settings and a clock for a maintenance under test, once the server has run for 2 s (its
    own guard, no rescue in a server's first worker timeout, is not under test)."""
    wait_until(
        lambda: conn.execute("SELECT now() - pg_postmaster_start_time() > interval '2 s' AS up")
        .fetchone()["up"], 10, "the server to be up for 2 s",
    )
    settings = Settings(database_url=db_url, worker_timeout=TIMEOUT, heartbeat_interval=TIMEOUT / 2)
    return settings, Clock()


async def test_no_rescue_until_a_worker_timeout_after_start_and_after_a_reconnect(
    conn: psycopg.Connection[Any], db_url: str
) -> None:
    settings, clock = settled_server(conn, db_url)
    maintenance = Maintenance(Link(db_url, settings.schema_name, "maintenance"), settings, clock)
    try:
        first = lost_job(conn)
        await rescued_one_timeout_later(maintenance, clock, conn, first)  # just started

        # The connection breaks under it, as in a failover or a network cut.
        rows = await maintenance.link.fetch("SELECT pg_backend_pid() AS pid")
        conn.execute("SELECT pg_terminate_backend(%s)", [rows[0]["pid"]])
        second = lost_job(conn)
        await maintenance.run_once()  # the round fails: the connection is gone
        assert maintenance.reconnecting
        await rescued_one_timeout_later(maintenance, clock, conn, second)
    finally:
        await maintenance.link.close()


async def test_an_outage_noticed_by_another_loop_on_the_shared_link_postpones_rescues(
    conn: psycopg.Connection[Any], db_url: str
) -> None:
    # The claimer, completer, heartbeat and maintenance share one link: whichever of them
    # meets the broken connection, maintenance must know the database was away.
    settings, clock = settled_server(conn, db_url)
    link = Link(db_url, settings.schema_name, "queue")
    maintenance = Maintenance(link, settings, clock)
    try:
        await rescued_one_timeout_later(maintenance, clock, conn, lost_job(conn))
        rows = await link.fetch("SELECT pg_backend_pid() AS pid")
        conn.execute("SELECT pg_terminate_backend(%s)", [rows[0]["pid"]])
        with pytest.raises(DatabaseUnavailable):
            await link.fetch("SELECT 1")  # the claimer's statement, say
        await rescued_one_timeout_later(maintenance, clock, conn, lost_job(conn))
    finally:
        await link.close()


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

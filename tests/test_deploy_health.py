"""``/livez`` and ``/readyz`` on the metrics port: a real worker process against a real
PostgreSQL whose database is closed and reopened under it, and the probes' own rules with a
real event loop and an injected clock."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pgqueue
from pgqueue import metrics
from pgqueue.health import Health
from tests import database
from tests.test_metrics import add_jobs, free_port
from tests.workers import Workspace, query, status_counts, wait_until, worker_process


def probe(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def answer_when(port: int, path: str, status: int, what: str, timeout: float = 30) -> dict[str, Any]:
    """Probe until ``path`` answers ``status``; that answer's body."""
    seen: list[tuple[int, dict[str, Any]]] = []

    def check() -> bool:
        try:
            seen.append(probe(port, path))
        except OSError:  # the server is not listening yet
            return False
        return seen[-1][0] == status

    wait_until(check, timeout, what, interval=0.1)
    return seen[-1][1]


def set_connections(srv: database.Server, db_url: str, allowed: bool) -> None:
    """Open or close the test database to new connections; closing also cuts the open ones."""
    name = db_url.rpartition("/")[2]
    with psycopg.connect(srv.admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                          [name])


@pytest.mark.slow
def test_probes_follow_a_real_worker_through_start_outage_and_shutdown(
    db_url: str, pg_server: database.Server, tmp_path: Path
) -> None:
    space = Workspace(tmp_path)
    port = free_port()
    env = space.env(db_url, slots=1, isolation="process", shutdown_grace=120)
    set_connections(pg_server, db_url, allowed=False)
    try:
        with worker_process(env, "--metrics-port", str(port), log=tmp_path / "worker.log") as worker:
            # Started while the database refuses it: alive, not ready.
            body = answer_when(port, "/readyz", 503, "the probes to answer")
            assert body["status"] == "fail" and body["reason"].startswith("starting")
            assert probe(port, "/livez")[0] == 200

            set_connections(pg_server, db_url, allowed=True)
            body = answer_when(port, "/readyz", 200, "the worker to register")
            registered = query(db_url, "SELECT id::text AS id FROM pgqueue_workers")
            assert [row["id"] for row in registered] == [body["worker_id"]]
            assert probe(port, "/livez")[0] == 200

            # The database goes away under a registered worker: still alive (a restart would
            # not help), no longer ready, and ready again once the database is back.
            set_connections(pg_server, db_url, allowed=False)
            body = answer_when(port, "/readyz", 503, "readiness to notice the outage")
            assert body["reason"].startswith("database unavailable: ")
            assert "\n" not in body["reason"]
            assert probe(port, "/livez")[0] == 200
            set_connections(pg_server, db_url, allowed=True)
            answer_when(port, "/readyz", 200, "readiness after the outage")

            # SIGTERM with a job running: not ready while the job finishes, still alive.
            add_jobs(db_url, space, [("hang.pdf", "pdf", {"mode": "hang"})])
            wait_until(lambda: status_counts(db_url).get("processing") == 1, 60, "the job to start")
            worker.send_signal(signal.SIGTERM)
            body = answer_when(port, "/readyz", 503, "readiness to drop at SIGTERM")
            assert body["reason"].startswith("stopping")
            assert probe(port, "/livez")[0] == 200
            job_id = query(db_url, "SELECT id::text AS id FROM extraction_jobs")[0]["id"]
            with psycopg.connect(db_url) as conn:
                assert pgqueue.cancel(conn, job_id).changed
                conn.commit()
            assert worker.wait(60) == 0
    finally:
        set_connections(pg_server, db_url, allowed=True)


@contextmanager
def served(health: Health) -> Iterator[int]:
    server = metrics.serve(0, health, host="127.0.0.1")
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def running_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_liveness_fails_when_the_event_loop_is_blocked_and_when_the_heartbeat_stops() -> None:
    now = [1000.0]
    health = Health(clock=lambda: now[0], ping_timeout=0.2)
    release = threading.Event()
    with running_loop() as loop, served(health) as port:
        asyncio.run_coroutine_threadsafe(_start(health, 30.0), loop).result(5)
        assert probe(port, "/livez") == (200, {"status": "ok", "reason": "starting",
                                              "worker_id": None, "heartbeat_age_seconds": None})
        status, body = probe(port, "/readyz")
        assert (status, body["reason"]) == (503, "starting: not registered yet")

        health.answered("w-1")
        assert probe(port, "/livez")[0] == 200
        assert probe(port, "/readyz") == (200, {"status": "ok", "reason": "ready",
                                               "worker_id": "w-1", "heartbeat_age_seconds": 0.0})

        # A callback that never returns holds the loop: the probe thread's ping goes unanswered.
        loop.call_soon_threadsafe(release.wait)
        status, body = probe(port, "/livez")
        assert (status, body["reason"]) == (503, "the event loop did not answer within 0.2 s")
        release.set()
        assert probe(port, "/livez")[0] == 200

        # The heartbeat stops turning: dead after the worker timeout, not before.
        now[0] += 30.0
        assert probe(port, "/livez")[0] == 200
        now[0] += 0.5
        status, body = probe(port, "/livez")
        assert status == 503 and body["reason"].startswith("the heartbeat has not turned for 30.5 s")
        status, body = probe(port, "/readyz")
        assert (status, body["reason"]) == (503, "no heartbeat answered for 30.5 s")

        # A failed statement turns the heartbeat (alive) but says the database is away.
        health.unanswered("connection refused\n  is the server running?")
        assert probe(port, "/livez")[0] == 200
        status, body = probe(port, "/readyz")
        assert (status, body["reason"]) == (
            503, "database unavailable: connection refused is the server running?")
        health.answered("w-1")
        assert probe(port, "/readyz")[0] == 200
        health.stopping()
        assert probe(port, "/readyz")[1]["reason"] == "stopping: claiming no more jobs"
        assert probe(port, "/livez")[0] == 200


def test_metrics_are_still_served_beside_the_probes() -> None:
    with served(Health()) as port, urllib.request.urlopen(
        f"http://127.0.0.1:{port}/metrics", timeout=5
    ) as response:
        assert "pgqueue_slots" in response.read().decode()


async def _start(health: Health, stale_after: float) -> None:
    health.started(stale_after)

"""Fault tolerance with real processes: lost workers, hostile jobs, cancel, shutdown, database faults."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgqueue import JobRequest, enqueue_bulk, sql
from pgqueue.embedded import EmbeddedPostgres
from pgqueue.migrate import upgrade
from tests.workers import (
    Workspace,
    query,
    status_counts,
    unfinished,
    wait_until,
    worker_process,
)

pytestmark = pytest.mark.slow


def add_job(db_url: str, space: Workspace, name: str, max_retries: int = 3, **script: Any) -> str:
    url = space.job_file(name, **script)
    rows = query(
        db_url,
        "INSERT INTO extraction_jobs (filename, file_url, file_size, format, max_retries) "
        "VALUES (%s, %s, 1, 'pdf', %s) RETURNING id::text AS id",
        [name, url, max_retries],
    )
    return str(rows[0]["id"])


def job_row(db_url: str, job_id: str) -> dict[str, Any]:
    return query(db_url, "SELECT * FROM extraction_jobs WHERE id = %s", [job_id])[0]


def processing_by(db_url: str, job_id: str) -> str | None:
    row = job_row(db_url, job_id)
    return str(row["worker_id"]) if row["status"] == "processing" else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children of a fork server included)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    found: list[int] = []
    for child in map(int, text.split()):
        found += [child, *descendants(child)]
    return found


def test_a_killed_worker_s_job_is_rescued_and_completed_by_another(db_url: str, space: Workspace) -> None:
    job_id = add_job(db_url, space, "slow.pdf", sleep=2)
    env = space.env(db_url, slots=1)
    with worker_process(env, log=space.folder / "a.log") as first:
        wait_until(lambda: processing_by(db_url, job_id), 30, "the first worker to claim the job")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = time.monotonic()
    with worker_process(env, log=space.folder / "b.log"):
        wait_until(lambda: job_row(db_url, job_id)["status"] == "completed", 30, "the rescued job to complete")
        took = time.monotonic() - killed_at
    row = job_row(db_url, job_id)
    assert [entry["error_type"] for entry in row["error_history"]] == ["WorkerLost"]
    assert row["retry_count"] == 1
    assert took < 3 + 10  # worker timeout 3 s, plus start-up, heartbeat and backoff margins
    assert query(db_url, "SELECT count(*) AS n FROM pgqueue_workers") == [{"n": 0}]


def test_a_file_that_kills_its_worker_fails_after_max_retries(db_url: str, space: Workspace) -> None:
    """Inline isolation, so the job really kills the worker; a supervisor restarts it."""
    deadly = add_job(db_url, space, "deadly.pdf", max_retries=2, mode="crash")
    env = space.env(db_url, slots=1)
    restarts = 0
    deadline = time.monotonic() + 120
    while job_row(db_url, deadly)["status"] != "failed":
        assert time.monotonic() < deadline, "the deadly job never failed"
        with worker_process(env, log=space.folder / "w.log") as process:
            wait_until(lambda: process.poll() is not None or job_row(db_url, deadly)["status"] == "failed",
                       60, "the worker to die or the job to fail")
        restarts += 1
    row = job_row(db_url, deadly)
    assert row["retry_count"] == 2 and "worker lost" in row["error_message"]
    assert [entry["error_type"] for entry in row["error_history"]] == ["WorkerLost"] * 3
    assert restarts >= 3
    healthy = add_job(db_url, space, "healthy.pdf", mode="ok")
    with worker_process(env, log=space.folder / "w.log"):
        wait_until(lambda: job_row(db_url, healthy)["status"] == "completed", 30, "a healthy job after that")


def test_crashing_hanging_and_hungry_children_fail_only_their_job(db_url: str, space: Workspace) -> None:
    crash = add_job(db_url, space, "crash.pdf", max_retries=1, mode="crash")
    hang = add_job(db_url, space, "hang.pdf", max_retries=0, mode="hang")
    hungry = add_job(db_url, space, "hungry.pdf", max_retries=3, mode="allocate", mebibytes=600)
    fine = [add_job(db_url, space, f"fine{n}.pdf", mode="ok") for n in range(5)]
    env = space.env(db_url, slots=2, isolation="process", job_timeout=3, memory_limit_mb=256)
    with worker_process(env, log=space.folder / "w.log") as worker:
        wait_until(lambda: unfinished(db_url) == 0, 90, "every job to end")
        assert worker.poll() is None, "the worker died"
    rows = {job_id: job_row(db_url, job_id) for job_id in (crash, hang, hungry)}
    assert rows[crash]["status"] == "failed" and rows[crash]["retry_count"] == 1
    assert [e["error_type"] for e in rows[crash]["error_history"]] == ["ExtractorCrashed"] * 2
    assert rows[hang]["status"] == "failed"
    assert rows[hang]["error_history"][0]["error_type"] == "ExtractionTimeout"
    assert rows[hungry]["status"] == "failed" and rows[hungry]["retry_count"] == 0  # permanent
    assert rows[hungry]["error_history"][0]["error_type"] == "MemoryLimitExceeded"
    assert "256" in rows[hungry]["error_message"]
    assert all(job_row(db_url, job_id)["status"] == "completed" for job_id in fine)


def test_cancelling_a_running_job_stops_it_within_seconds(db_url: str, space: Workspace) -> None:
    job_id = add_job(db_url, space, "long.pdf", sleep=60)
    env = space.env(db_url, slots=1, isolation="process")
    with worker_process(env, log=space.folder / "w.log") as worker:
        wait_until(lambda: processing_by(db_url, job_id), 30, "the job to start")
        wait_until(lambda: "long.pdf" in space.runs(), 30, "the child to run the job")
        child = space.runs()["long.pdf"][0][2]
        cancelled_at = time.monotonic()
        rows = query(db_url, sql.JOB_CANCEL, {"id": job_id, "reason": "cancelled by the user"})
        assert [row["id"] for row in rows] == [job_id]
        wait_until(lambda: not pid_alive(child), 10, "the child running the job to be killed")
        assert time.monotonic() - cancelled_at < 5
        row = job_row(db_url, job_id)
        assert row["status"] == "cancelled" and row["error_message"] == "cancelled by the user"
        after = add_job(db_url, space, "after.pdf", mode="ok")
        wait_until(lambda: job_row(db_url, after)["status"] == "completed", 30, "the next job")
        assert worker.poll() is None
    assert job_row(db_url, job_id)["status"] == "cancelled"


@pytest.mark.parametrize("grace", [30, 1])
def test_sigterm_lets_a_job_finish_within_the_grace_or_hands_it_back(
    db_url: str, space: Workspace, grace: int
) -> None:
    job_id = add_job(db_url, space, "job.pdf", sleep=3 if grace == 30 else 60)
    env = space.env(db_url, slots=1, isolation="process", shutdown_grace=grace)
    with worker_process(env, log=space.folder / "w.log") as worker:
        wait_until(lambda: "job.pdf" in space.runs(), 30, "the job to start")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(grace + 20) == 0
    row = job_row(db_url, job_id)
    if grace == 30:
        assert row["status"] == "completed"
    else:
        assert row["status"] == "pending" and row["retry_count"] == 0 and row["error_history"] == []
    assert query(db_url, "SELECT count(*) AS n FROM pgqueue_workers") == [{"n": 0}]


def test_a_worker_cut_off_past_its_timeout_gives_up_its_job(db_url: str, space: Workspace) -> None:
    """SIGSTOP a worker past the worker timeout: another rescues and completes the job; the
    frozen one, thawed, notices it lost the job and writes nothing."""
    job_id = add_job(db_url, space, "frozen.pdf", sleep=4)
    env = space.env(db_url, slots=1)
    with worker_process(env, log=space.folder / "a.log") as frozen:
        wait_until(lambda: processing_by(db_url, job_id), 30, "the first worker to claim the job")
        frozen.send_signal(signal.SIGSTOP)
        try:
            with worker_process(env, log=space.folder / "b.log"):
                wait_until(lambda: job_row(db_url, job_id)["status"] == "completed", 40, "the rescue")
        finally:
            frozen.send_signal(signal.SIGCONT)
        log = space.folder / "a.log"
        wait_until(lambda: "worker_declared_lost" in log.read_text() or "job_lost_race" in log.read_text(),
                   30, "the thawed worker to notice")
        assert frozen.poll() is None
    completions = [
        line for name in ("a.log", "b.log") for line in (space.folder / name).read_text().splitlines()
        if '"job_completed"' in line and job_id in line
    ]
    assert len(completions) == 1, completions


def completed_events(logs: list[Path]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for log in logs:
        for line in log.read_text().splitlines():
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            if event.get("event") == "job_completed":
                counts[event["job_id"]] = counts.get(event["job_id"], 0) + 1
    return counts


# 2 s: shorter than the worker timeout (3 s in tests). 5 s: longer, so every heartbeat in the
# table is stale when the server comes back, yet no worker was lost and no attempt may be counted.
# The test decides what is in flight: 100 urgent jobs run first; the 400 bulk jobs behind them
# wait for a gate file, so when the server stops every slot holds a gated job, and the gate
# opens during the outage, so their outcomes are computed while the database is away.
@pytest.mark.parametrize("outage", [2, 5])
def test_postgres_restart_while_two_workers_process_500_jobs(
    server_folder: Path, space: Workspace, outage: float
) -> None:
    server = EmbeddedPostgres(server_folder / "pg", durable=False)
    url = server.start()
    gate = space.folder / "gate"
    try:
        upgrade(url)
        jobs = [JobRequest(f"j{n}.pdf", space.job_file(f"j{n}.pdf", sleep=0.02), 1, "pdf",
                           priority="interactive") for n in range(100)]
        jobs += [JobRequest(f"g{n}.pdf", space.job_file(f"g{n}.pdf", sleep=0.02, gate=str(gate)),
                            1, "pdf", priority="bulk") for n in range(400)]
        with psycopg.connect(url) as conn:
            enqueue_bulk(conn, jobs)
            conn.commit()
        env = space.env(url, slots=4)
        logs = [space.folder / "a.log", space.folder / "b.log"]
        with worker_process(env, log=logs[0]) as first, worker_process(env, log=logs[1]) as second:
            wait_until(lambda: status_counts(url) == {"completed": 100, "processing": 8, "pending": 392},
                       60, "the urgent jobs done and every slot holding a gated job")
            server.stop("fast")
            stopped_at = time.monotonic()
            gate.touch()
            wait_until(lambda: sum(end is not None for name, runs in space.runs().items()
                                   if name.startswith("g") for _, end, _ in runs) == 8,
                       60, "the gated jobs to finish while the server is down")
            time.sleep(max(0.0, outage - (time.monotonic() - stopped_at)))  # the outage itself
            server.start()
            wait_until(lambda: unfinished(url) == 0, 120, "every job to end after the restart")
            assert first.poll() is None and second.poll() is None
        assert status_counts(url) == {"completed": 500}
        counts = completed_events(logs)
        assert len(counts) == 500 and set(counts.values()) == {1}
        with psycopg.connect(url) as conn:
            attempts = conn.execute(
                "SELECT count(*) FILTER (WHERE retry_count > 0), "
                "count(*) FILTER (WHERE error_history <> '[]'::jsonb) FROM extraction_jobs"
            ).fetchone()
        assert attempts == (0, 0), "an outage cost jobs an attempt"
        assert "database_unavailable" in logs[0].read_text() + logs[1].read_text()
    finally:
        server.stop("immediate")


def test_killed_connections_cost_no_job(db_url: str, space: Workspace) -> None:
    jobs = [JobRequest(f"k{n}.pdf", space.job_file(f"k{n}.pdf", sleep=0.01), 1, "pdf") for n in range(300)]
    with psycopg.connect(db_url) as conn:
        enqueue_bulk(conn, jobs)
        conn.commit()
    logs = [space.folder / "a.log"]
    with worker_process(space.env(db_url, slots=4), log=logs[0]) as worker:
        for _ in range(3):
            wait_until(lambda: status_counts(db_url).get("pending", 0) < 300, 60, "progress")
            query(db_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name LIKE 'pgqueue-%%'")
        wait_until(lambda: unfinished(db_url) == 0, 120, "every job to end")
        assert worker.poll() is None
    assert status_counts(db_url) == {"completed": 300}
    counts = completed_events(logs)
    assert len(counts) == 300 and set(counts.values()) == {1}


def test_a_second_signal_exits_at_once(db_url: str, space: Workspace) -> None:
    job_id = add_job(db_url, space, "long.pdf", sleep=60)
    env = space.env(db_url, slots=1, isolation="process", shutdown_grace=60)
    with worker_process(env, log=space.folder / "w.log") as worker:
        wait_until(lambda: "long.pdf" in space.runs(), 30, "the job to start")
        children = descendants(worker.pid)
        worker.send_signal(signal.SIGTERM)
        wait_until(lambda: "worker_stopping" in (space.folder / "w.log").read_text(), 10, "the first signal")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(10) != 0
    wait_until(lambda: not any(pid_alive(child) for child in children), 10, "the children to die")
    assert job_row(db_url, job_id)["status"] == "processing"  # left for the rescuer


def test_no_children_survive_a_killed_worker(db_url: str, space: Workspace) -> None:
    add_job(db_url, space, "long.pdf", sleep=60)
    env = space.env(db_url, slots=1, isolation="process")
    with worker_process(env, log=space.folder / "w.log") as worker:
        wait_until(lambda: "long.pdf" in space.runs(), 30, "the job to start")
        children = descendants(worker.pid)
        assert children
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    wait_until(lambda: not any(pid_alive(child) for child in children), 10, "the children to die")




def test_sigterm_during_start_up_stops_gracefully(space: Workspace) -> None:
    # The database does not answer yet (nothing listens on the port): the worker is still
    # starting when the signal comes, and stops as it would later, instead of dying with -15.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        env = space.env(f"postgresql://postgres@127.0.0.1:{port}/nothing")
        log = space.folder / "w.log"
        with worker_process(env, log=log) as worker:
            wait_until(lambda: "database_unreachable" in log.read_text(), 30, "the first attempt")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(20) == 0
    events = [json.loads(line)["event"] for line in log.read_text().splitlines() if line.startswith("{")]
    assert events[-2:] == ["worker_signal", "worker_stopped"]
    assert "Traceback" not in log.read_text()

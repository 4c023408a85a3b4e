"""Real worker processes on a real PostgreSQL: the queue end to end."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgqueue import JobRequest, enqueue_bulk
from tests.workers import (
    ROOT,
    Workspace,
    query,
    status_counts,
    unfinished,
    wait_until,
    worker_process,
)


def insert_jobs(db_url: str, space: Workspace, scripts: list[dict[str, Any]]) -> list[str]:
    jobs = [
        JobRequest(f"job{n}.pdf", space.job_file(f"job{n}.pdf", **script), 10, "pdf", max_retries=3)
        for n, script in enumerate(scripts)
    ]
    with psycopg.connect(db_url) as conn:
        enqueue_bulk(conn, jobs)
        conn.commit()
    return [job.filename for job in jobs]


@pytest.mark.slow
def test_four_workers_two_thousand_jobs_with_failures(db_url: str, space: Workspace) -> None:
    rng = random.Random(20261129)
    scripts: list[dict[str, Any]] = []
    for _ in range(2000):
        roll = rng.random()
        if roll < 0.70:
            scripts.append({"mode": "ok"})
        elif roll < 0.80:
            scripts.append({"mode": "permanent"})
        elif roll < 0.95:
            scripts.append({"mode": "flaky", "fail_first": rng.randint(1, 3)})
        else:
            scripts.append({"mode": "always_transient"})
    names = insert_jobs(db_url, space, scripts)
    env = space.env(db_url, slots=4)
    logs = [space.folder / f"worker{n}.log" for n in range(4)]
    with worker_process(env, log=logs[0]), worker_process(env, log=logs[1]), \
            worker_process(env, log=logs[2]), worker_process(env, log=logs[3]):
        wait_until(lambda: unfinished(db_url) == 0, 240, "every job to reach a final state")
    rows = query(db_url, "SELECT filename, status, retry_count, max_retries, error_history, result FROM extraction_jobs")
    by_name = {row["filename"]: row for row in rows}
    assert sorted(by_name) == sorted(names)
    runs = space.runs()
    for name, script in zip(names, scripts, strict=True):
        row = by_name[name]
        history = row["error_history"]
        attempts = runs[name]
        # No job ran twice at the same time, and every run finished.
        assert all(end is not None for _, end, _ in attempts), (name, attempts)
        for (_, end, _), (next_start, _, _) in itertools.pairwise(attempts):
            assert end is not None and end <= next_start, (name, attempts)
        assert row["retry_count"] <= row["max_retries"]
        mode = script["mode"]
        if mode == "ok":
            assert row["status"] == "completed" and len(attempts) == 1 and history == []
        elif mode == "permanent":
            assert row["status"] == "failed" and len(attempts) == 1
            assert [entry["error_type"] for entry in history] == ["CorruptFile"]
        elif mode == "flaky":
            expected_failures = min(script["fail_first"], 4)
            assert row["status"] == "completed", row
            assert len(attempts) == expected_failures + 1
            assert len(history) == expected_failures == row["retry_count"]
            assert row["result"]["attempt"] == expected_failures + 1
        else:
            assert row["status"] == "failed" and row["retry_count"] == 3
            assert len(attempts) == 4 and [entry["attempt"] for entry in history] == [1, 2, 3, 4]
        assert all(entry["error_type"] != "WorkerLost" for entry in history)
    for log in logs:
        text = log.read_text()
        assert '"event": "worker_started"' in text and '"event": "worker_stopped"' in text, text[-2000:]


def listener_ready(db_url: str) -> bool:
    rows = query(
        db_url,
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'pgqueue-listener' "
        "AND query LIKE 'LISTEN%%' AND state = 'idle'",
    )
    return rows[0]["n"] > 0


def test_a_raw_insert_wakes_an_idle_worker_without_waiting_for_the_poll(db_url: str, space: Workspace) -> None:
    env = space.env(db_url, poll_interval=120, slots=1)
    with worker_process(env, log=space.folder / "worker.log"):
        wait_until(lambda: listener_ready(db_url), 30, "the worker to LISTEN")
        url = space.job_file("raw.pdf", mode="ok")
        started = time.monotonic()
        query(db_url, "INSERT INTO extraction_jobs (filename, file_url, file_size, format) "
                      "VALUES ('raw.pdf', %s, 1, 'pdf')", [url])
        wait_until(lambda: status_counts(db_url).get("completed") == 1, 10, "the raw insert to complete")
        elapsed = time.monotonic() - started
    assert elapsed < 10  # the poll would take 90-150 s


def test_the_listen_connection_comes_back_after_it_is_killed(db_url: str, space: Workspace) -> None:
    env = space.env(db_url, poll_interval=120, slots=1)
    with worker_process(env, log=space.folder / "worker.log"):
        wait_until(lambda: listener_ready(db_url), 30, "the worker to LISTEN")
        killed = query(db_url, "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity "
                               "WHERE application_name = 'pgqueue-listener'")
        assert killed and all(row["killed"] for row in killed)
        wait_until(lambda: listener_ready(db_url), 30, "the worker to LISTEN again")
        url = space.job_file("after.pdf", mode="ok")
        query(db_url, "INSERT INTO extraction_jobs (filename, file_url, file_size, format) "
                      "VALUES ('after.pdf', %s, 1, 'pdf')", [url])
        wait_until(lambda: status_counts(db_url).get("completed") == 1, 10, "the job after reconnect")


def test_poll_only_mode_finds_jobs_without_listen(db_url: str, space: Workspace) -> None:
    env = space.env(db_url, poll_interval=0.3, poll_only="true", slots=1)
    with worker_process(env, log=space.folder / "worker.log"):
        insert_jobs(db_url, space, [{"mode": "ok"}] * 3)
        wait_until(lambda: status_counts(db_url).get("completed") == 3, 30, "three jobs by polling")
        assert not listener_ready(db_url)


def test_burst_drains_the_queue_and_exits_zero(db_url: str, space: Workspace) -> None:
    insert_jobs(db_url, space, [{"mode": "ok"}] * 40 + [{"mode": "permanent"}] * 5)
    result = subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), "--burst", "--slots", "3"],
        env=space.env(db_url), cwd=ROOT, capture_output=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert status_counts(db_url) == {"completed": 40, "failed": 5}
    assert query(db_url, "SELECT count(*) AS n FROM pgqueue_workers") == [{"n": 0}]
    events = result.stderr.decode()
    for event in ("worker_started", "job_claimed", "job_completed", "job_failed", "burst_finished"):
        assert f'"event": "{event}"' in events, event


def test_burst_without_database_url_starts_an_embedded_postgres(
    server_folder: Path, space: Workspace
) -> None:
    tmp_path = server_folder
    env = space.env("unused")
    del env["DATABASE_URL"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), "--burst", "--data-dir", str(tmp_path / "data")],
        env=env, cwd=ROOT, capture_output=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert b"embedded PostgreSQL running at" in result.stderr
    url = next(line.strip() for line in result.stderr.decode().splitlines() if line.strip().startswith("postgresql://"))
    from pgqueue.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path / "data")
    try:
        server.start()  # the worker stopped it on exit; it comes back with its data
        assert server.url == url
        assert query(url, "SELECT count(*) AS n FROM extraction_jobs") == [{"n": 0}]
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slots", "0"], "--slots: Input should be greater than or equal to 1"),
        (["--isolation", "threads"], "--isolation: Input should be 'process' or 'inline'"),
        (["--format-timeouts", "ifc"], "--format-timeouts: expected 'key=value'"),
    ],
)
def test_a_bad_setting_stops_start_up_with_a_clear_message(
    space: Workspace, args: list[str], message: str
) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), *args],
        env=space.env("postgresql://nowhere.invalid/db"), cwd=ROOT, capture_output=True, timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr.decode()


def test_a_bad_environment_variable_is_named(space: Workspace) -> None:
    env = space.env("postgresql://nowhere.invalid/db", heartbeat_interval="soon")
    result = subprocess.run([sys.executable, str(ROOT / "worker.py")], env=env, cwd=ROOT,
                            capture_output=True, timeout=60)
    assert result.returncode == 2
    assert "PGQUEUE_HEARTBEAT_INTERVAL" in result.stderr.decode()


def test_a_worker_on_an_unmigrated_database_says_to_migrate(pg_server: Any, space: Workspace) -> None:
    from tests import database

    with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS unmigrated")
        admin.execute("CREATE DATABASE unmigrated")
    url = pg_server.url_for("unmigrated")
    try:
        result = subprocess.run([sys.executable, str(ROOT / "worker.py"), "--burst"], env=space.env(url),
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        database.drop(pg_server, url)
    assert result.returncode == 2
    assert "run `pgqueue migrate` first" in result.stderr
    assert "Traceback" not in result.stderr


def test_hand_typed_rows_end_failed_with_a_clear_reason(db_url: str, space: Workspace) -> None:
    inside = space.files / "real.dxf"
    inside.write_text("0\nSECTION\n2\nENTITIES\n")  # truncated: no ENDSEC, no EOF
    rows = [
        ("a.docx", (space.files / "a.docx").as_uri(), "docx", "{}", "unknown format 'docx'"),
        ("b.pdf", "gopher://example.com/b.pdf", "pdf", "{}", "gopher"),
        ("c.pdf", "file:///etc/passwd", "pdf", "{}", "outside"),
        ("d.dxf", inside.as_uri(), "dxf", '{"layers": "yes"}', "layers"),
        ("e.dxf", inside.as_uri(), "dxf", "{}", "truncated"),
        ("f.pdf", "http://127.0.0.1:9/f.pdf", "pdf", "{}", "https"),
    ]
    for filename, url, fmt, options, _ in rows:
        query(db_url, "INSERT INTO extraction_jobs (filename, file_url, file_size, format, options) "
                      "VALUES (%s, %s, 1, %s, %s::jsonb)", [filename, url, fmt, options])
    env = space.env(db_url, extractors="", isolation="process", slots=2)
    result = subprocess.run([sys.executable, str(ROOT / "worker.py"), "--burst"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    found = {row["filename"]: row for row in query(
        db_url, "SELECT filename, status, retry_count, error_message FROM extraction_jobs")}
    for filename, _, _, _, reason in rows:
        row = found[filename]
        assert row["status"] == "failed" and row["retry_count"] == 0, row
        assert reason in row["error_message"].lower(), row


def test_a_result_postgres_refuses_fails_its_job_and_spares_its_batch(db_url: str, space: Workspace) -> None:
    insert_jobs(db_url, space, [{"mode": "surrogate"}] + [{"mode": "ok"}] * 9)
    result = subprocess.run([sys.executable, str(ROOT / "worker.py"), "--burst", "--slots", "10"],
                            env=space.env(db_url), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["filename"]: row for row in query(
        db_url, "SELECT filename, status, retry_count, error_message FROM extraction_jobs")}
    bad = rows.pop("job0.pdf")
    assert bad["status"] == "failed" and bad["retry_count"] == 0
    assert bad["error_message"].startswith("the result could not be stored"), bad
    assert {row["status"] for row in rows.values()} == {"completed"} and len(rows) == 9

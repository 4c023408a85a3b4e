"""How a worker starts and stops as a script or an operator sees it: exit codes, stderr."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from pgqueue import JobRequest, enqueue_bulk
from tests.storage.fetch_servers import refusing_port
from tests.workers import ROOT, Workspace, status_counts, wait_until


def _events(stderr: str) -> list[dict[str, object]]:
    """Every line as a JSON event; fails on any line that is not one."""
    events = []
    for line in stderr.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON log line: {line!r}") from None
    return events


def test_burst_against_an_unreachable_database_exits_three_after_its_wait(space: Workspace) -> None:
    with refusing_port() as port:
        result = subprocess.run(
            [sys.executable, str(ROOT / "worker.py"), "--burst", "--startup-wait", "1"],
            env=space.env(f"postgresql://postgres:secret@127.0.0.1:{port}/db"), cwd=ROOT,
            capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 3, result.stderr[-2000:]
    *log_lines, last = result.stderr.strip().splitlines()
    assert last.startswith("pgqueue: cannot reach the database after ")
    assert last.endswith("check DATABASE_URL and that PostgreSQL is running")
    events = _events("\n".join(log_lines))
    waits = [event for event in events if event["event"] == "database_unreachable"]
    assert waits and all(event["action"] == "giving up after 1 s (--burst)" for event in waits)
    assert "secret" not in result.stderr


def test_a_service_keeps_waiting_for_its_database_and_says_so(space: Workspace, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with refusing_port() as port, open(log, "wb") as output:
        worker = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py"), "--startup-wait", "0"],
            env=space.env(f"postgresql://postgres@127.0.0.1:{port}/db"), cwd=ROOT,
            stdout=output, stderr=output,
        )
        try:
            def waits() -> list[dict[str, object]]:
                return [event for event in _events(log.read_text())
                        if event["event"] == "database_unreachable"]

            wait_until(lambda: len(waits()) >= 3, 60, "three retries")
            assert worker.poll() is None  # --startup-wait bounds burst runs only
            assert all(event["action"] == "retrying until it answers" for event in waits())
            assert all(isinstance(event["retry_in"], float | int) for event in waits())
            # SIGTERM while it waits: a graceful stop like any other (exit 0), logged, no
            # traceback.
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
    names = [event["event"] for event in _events(log.read_text())]
    assert "worker_signal" in names and names[-1] == "worker_stopped"
    assert "Traceback" not in log.read_text()


def test_a_burst_run_exits_with_json_lines_only_and_quiet_children(
    space: Workspace, db_url: str
) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        enqueue_bulk(conn, [JobRequest(f"job-{number}.pdf", space.job_file(f"job-{number}.pdf"),
                                       10, "pdf") for number in range(6)])
    result = subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), "--burst", "--slots", "2"],
        env=space.env(db_url, isolation="process"), cwd=ROOT, capture_output=True, text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert status_counts(db_url) == {"completed": 6}
    events = _events(result.stderr)
    exits = [event for event in events if event["event"] == "child_exited"]
    assert exits, "the children were started and stopped"
    assert all(event["exitcode"] == 0 and event["signal"] is None for event in exits), exits

"""Run real ``python worker.py`` processes against a test database, and wait on conditions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

ROOT = Path(__file__).resolve().parent.parent


class Workspace:
    """Files, run log and attempt counters shared by a test and its workers."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files = folder / "files"
        self.state = folder / "state"
        self.run_log = folder / "runs.log"
        self.files.mkdir(parents=True, exist_ok=True)
        self.state.mkdir(exist_ok=True)

    def job_file(self, name: str, **script: Any) -> str:
        path = self.files / name
        path.write_text(json.dumps(script))
        return path.as_uri()

    def env(self, db_url: str, **settings: Any) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PGQUEUE_")}
        env.update(
            DATABASE_URL=db_url,
            PYTHONPATH=str(ROOT),
            PGQUEUE_EXTRACTORS="pdf=tests.queue_plugins:scripted",
            PGQUEUE_FILE_ROOTS=str(self.files),
            PGQUEUE_TEST_RUN_LOG=str(self.run_log),
            PGQUEUE_TEST_STATE_DIR=str(self.state),
            PGQUEUE_LOG_FORMAT="json",
            PGQUEUE_ISOLATION="inline",
            PGQUEUE_BACKOFF_BASE="0.05",
            PGQUEUE_BACKOFF_FACTOR="2",
            PGQUEUE_HEARTBEAT_INTERVAL="0.5",
            PGQUEUE_WORKER_TIMEOUT="3",
            PGQUEUE_MAINTENANCE_INTERVAL="0.5",
        )
        env.update({f"PGQUEUE_{key.upper()}": str(value) for key, value in settings.items()})
        return env

    def runs(self) -> dict[str, list[tuple[float, float | None, int]]]:
        """Each job file's runs as (start, end or None, pid), in order of start."""
        starts: dict[tuple[str, int], list[float]] = {}
        runs: dict[str, list[tuple[float, float | None, int]]] = {}
        if not self.run_log.exists():
            return runs
        for line in self.run_log.read_text().splitlines():
            name, kind, stamp, pid = line.split()
            key = (name, int(pid))
            if kind == "start":
                starts.setdefault(key, []).append(float(stamp))
            else:
                runs.setdefault(name, []).append((starts[key].pop(0), float(stamp), int(pid)))
        for (name, pid), open_starts in starts.items():
            for start in open_starts:
                runs.setdefault(name, []).append((start, None, pid))
        for intervals in runs.values():
            intervals.sort()
        return runs


@contextmanager
def worker_process(env: dict[str, str], *args: str, log: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A worker process; stopped with SIGTERM (then SIGKILL) when the block ends."""
    output = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py"), *args],
        env=env, cwd=ROOT, stdout=output, stderr=output,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if log:
            output.close()  # type: ignore[union-attr]


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def query(db_url: str, statement: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        cursor = conn.execute(statement.encode(), params)
        return cursor.fetchall() if cursor.description else []


def status_counts(db_url: str) -> dict[str, int]:
    rows = query(db_url, "SELECT status, count(*) AS n FROM extraction_jobs GROUP BY status")
    return {row["status"]: row["n"] for row in rows}


def unfinished(db_url: str) -> int:
    rows = query(
        db_url,
        "SELECT count(*) AS n FROM extraction_jobs WHERE status NOT IN ('completed', 'failed', 'cancelled')",
    )
    return int(rows[0]["n"])

"""Chaos run: workers killed and restarted at random, PostgreSQL restarted, over thousands of jobs.

    python -m bench.chaos [--jobs 3000] [--workers 3] [--seconds 60] [--db-restarts 2]

At the end every job must be in a final state (lost = 0), no job may be completed twice
(duplicates = 0), no row may be left processing, and no failed attempt may be counted twice
(double_counted = 0: ``retry_count`` agrees with the retried attempts in ``error_history``, whose
attempt numbers are all different). Exits 1 otherwise. Bounded in time: the
chaos phase lasts ``--seconds``, the drain after it at most ``--drain-timeout``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgqueue import JobRequest, enqueue_bulk
from pgqueue.embedded import EmbeddedPostgres
from pgqueue.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Report:
    jobs: int
    workers: int
    kills: int = 0
    db_restarts: int = 0
    runs: int = 0
    lost: int = 0
    duplicates: int = 0
    stuck_processing: int = 0
    double_counted: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (self.lost == 0 and self.duplicates == 0 and self.stuck_processing == 0
                and self.double_counted == 0)


def _query(url: str, statement: str) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=5) as conn:
        return conn.execute(statement.encode()).fetchall()


# A job whose retry_count disagrees with its error history, or whose history names one attempt
# twice: a failure written onto a later attempt, or a rescue on top of a written outcome.
DOUBLE_COUNTED = """
SELECT count(*) AS n
FROM extraction_jobs AS job
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE (entry ->> 'retried')::boolean) AS retried,
           count(DISTINCT entry ->> 'attempt') AS attempts, count(*) AS entries
    FROM jsonb_array_elements(job.error_history) AS entry
) AS history
WHERE job.retry_count <> history.retried OR history.attempts <> history.entries
"""


def _unfinished(url: str) -> int | None:
    try:
        rows = _query(url, "SELECT count(*) AS n FROM extraction_jobs "
                           "WHERE status NOT IN ('completed', 'failed', 'cancelled')")
    except psycopg.OperationalError:
        return None
    return int(rows[0]["n"])


class Fleet:
    """Worker processes, each restarted in place after it is killed."""

    def __init__(self, count: int, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []
        self.log_files: list[Path] = []
        for _ in range(count):
            self.processes.append(self._start())

    def _start(self) -> subprocess.Popen[bytes]:
        path = self.logs / f"worker{len(self.log_files)}.log"
        self.log_files.append(path)
        with open(path, "wb") as output:
            return subprocess.Popen([sys.executable, str(ROOT / "worker.py")], env=self.env,
                                    cwd=ROOT, stdout=output, stderr=output)

    def kill_one(self, rng: random.Random) -> None:
        index = rng.randrange(len(self.processes))
        victim = self.processes[index]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        self.processes[index] = self._start()

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def completions(log_files: list[Path]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path in log_files:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{") and '"job_completed"' in line:
                job_id = json.loads(line)["job_id"]
                counts[job_id] = counts.get(job_id, 0) + 1
    return counts


def run(jobs: int, workers: int, seconds: float, db_restarts: int, seed: int, drain_timeout: float,
        folder: Path, isolation: str = "inline", job_seconds: float = 0.1) -> Report:
    rng = random.Random(seed)
    files = folder / "files"
    files.mkdir(parents=True)
    server = EmbeddedPostgres(folder / "pg", durable=True)
    url = server.start()
    report = Report(jobs=jobs, workers=workers)
    started = time.monotonic()
    try:
        upgrade(url)
        requests = []
        for number in range(jobs):
            roll = rng.random()
            script: dict[str, Any] = {"sleep": rng.uniform(0, job_seconds)}
            if roll < 0.05:
                script["mode"] = "permanent"
            elif roll < 0.15:
                script.update(mode="flaky", fail_first=rng.randint(1, 2))
            path = files / f"job{number}.pdf"
            path.write_text(json.dumps(script))
            requests.append(JobRequest(path.name, path.as_uri(), 1, "pdf"))
        with psycopg.connect(url) as conn:
            enqueue_bulk(conn, requests)
            conn.commit()
        state = folder / "state"
        state.mkdir()
        env = {
            "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "DATABASE_URL": url,
            "PGQUEUE_EXTRACTORS": "pdf=tests.queue_plugins:scripted",
            "PGQUEUE_FILE_ROOTS": str(files), "PGQUEUE_TEST_RUN_LOG": str(folder / "runs.log"),
            "PGQUEUE_TEST_STATE_DIR": str(state), "PGQUEUE_LOG_FORMAT": "json",
            "PGQUEUE_ISOLATION": isolation, "PGQUEUE_SLOTS": "4",
            "PGQUEUE_BACKOFF_BASE": "0.2", "PGQUEUE_BACKOFF_FACTOR": "2",
            "PGQUEUE_HEARTBEAT_INTERVAL": "0.5", "PGQUEUE_WORKER_TIMEOUT": "3",
            "PGQUEUE_MAINTENANCE_INTERVAL": "0.5", "PGQUEUE_POLL_INTERVAL": "2",
        }
        fleet = Fleet(workers, env, folder)
        # Restarts come early (2 s in, then every 5 s) so they hit a busy queue.
        restart_at = [2.0 + 5.0 * index for index in range(db_restarts)]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and _unfinished(url) != 0:
            pause = rng.uniform(0.5, 2.0)
            time.sleep(pause)  # chaos cadence: when to strike next, not a wait for a result
            elapsed = seconds - (deadline - time.monotonic())
            if restart_at and elapsed >= restart_at[0]:
                restart_at.pop(0)
                server.stop("immediate")
                time.sleep(rng.uniform(0.5, 2.0))  # the outage
                server.start()
                report.db_restarts += 1
            else:
                fleet.kill_one(rng)
                report.kills += 1
        drain_deadline = time.monotonic() + drain_timeout
        while (left := _unfinished(url)) != 0 and time.monotonic() < drain_deadline:
            time.sleep(0.2)
        fleet.stop()
        report.statuses = {row["status"]: row["n"] for row in _query(
            url, "SELECT status, count(*) AS n FROM extraction_jobs GROUP BY status")}
        report.lost = jobs - sum(report.statuses.get(s, 0) for s in ("completed", "failed", "cancelled"))
        report.stuck_processing = report.statuses.get("processing", 0)
        report.double_counted = int(_query(url, DOUBLE_COUNTED)[0]["n"])
        counts = completions(fleet.log_files)
        report.duplicates = sum(count - 1 for count in counts.values() if count > 1)
        runs_log = folder / "runs.log"
        report.runs = sum(1 for line in runs_log.read_text().splitlines() if " start " in line)
        del left
    finally:
        server.stop("immediate")
        report.seconds = round(time.monotonic() - started, 1)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--db-restarts", type=int, default=2)
    parser.add_argument("--drain-timeout", type=float, default=180)
    parser.add_argument("--isolation", choices=["inline", "process"], default="inline")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--job-seconds", type=float, default=0.1, help="longest job run")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pgqueue-chaos-") as folder:
        os.chmod(folder, 0o755)  # as root the server runs as postgres, which must enter it
        report = run(arguments.jobs, arguments.workers, arguments.seconds, arguments.db_restarts,
                     arguments.seed, arguments.drain_timeout, Path(folder), arguments.isolation,
                     arguments.job_seconds)
    print(json.dumps(report.__dict__, indent=2))
    print(f"jobs={report.jobs} workers={report.workers} kills={report.kills} "
          f"db_restarts={report.db_restarts} runs={report.runs} lost={report.lost} "
          f"duplicates={report.duplicates} stuck_processing={report.stuck_processing} "
          f"double_counted={report.double_counted} "
          f"seconds={report.seconds} -> {'OK' if report.ok else 'FAILED'}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

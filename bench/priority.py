"""Priorities under a real backlog: ``python -m bench.priority [--backlog N] [--big N]``.

1. Claim cost, same run: the median time of the claim statement (8 jobs, rolled back) with
   1,000 due jobs of mixed priority, then with ``--big`` (1,000,000) due jobs.
2. An upload behind a back-fill: ``--backlog`` (200,000) due ``bulk`` jobs, two ``python
   worker.py`` processes of 4 slots each running a 20 ms extractor; once they run, one job is
   inserted with plain SQL (interactive by default). Reported: how long after its INSERT began
   a worker started it (both the database's clock), and how many bulk jobs were still waiting.

Prints one line per figure; the numbers quoted in reports come from here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg

from bench.server import bench_server, vacuum_analyze, wait_for
from pgqueue import sql
from pgqueue.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
EXTRACTION_SECONDS = 0.02
CLAIM_SAMPLES = 300
WARM_UP = 50  # claims not counted: the first ones plan the statement and warm the cache


def slow_extractor(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    """The issue's 20 ms extractor (plugged into the workers with PGQUEUE_EXTRACTORS)."""
    time.sleep(EXTRACTION_SECONDS)
    return {"slept": EXTRACTION_SECONDS}


def add_due_jobs(url: str, count: int, mixed: bool, file_url: str = "s3://bench/f.pdf") -> None:
    """``count`` due jobs: a mix of priorities (a fifth interactive), or all bulk."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO extraction_jobs (filename, file_url, file_size, format, priority, next_retry_at) "
            "SELECT 'f.pdf', %s, 1, 'pdf', "
            "       CASE WHEN %s THEN (ARRAY[10, 20, 20, 20, 50])[1 + n %% 5] ELSE 20 END, "
            "       now() - make_interval(secs => random() * 3600) "
            "FROM generate_series(1, %s) n",
            [file_url, mixed, count],
        )
    vacuum_analyze(url, "extraction_jobs")


def claim_reads(url: str) -> str:
    """What one claim reads, from its plan: the claim index's rows and buffers, and the
    statement's buffers in all (the UPDATE also writes every index of the rows it takes)."""
    worker_id = str(uuid.uuid4())
    with psycopg.connect(url) as conn:
        conn.execute(sql.WORKER_REGISTER.encode(), {
            "worker_id": worker_id, "hostname": "bench", "pid": 1, "slots": 8, "version": "bench"})
        row = conn.execute(b"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql.JOB_CLAIM.encode(), {
            "now": None, "limit": 8, "worker_id": worker_id, "min_priority": 0}).fetchone()
        conn.rollback()
    assert row is not None
    top = row[0][0]["Plan"]
    found = [node for node in _nodes(top) if node.get("Index Name") == "ix_extraction_jobs_claim"]
    scan = found[0]
    return (f"claim index scan: {scan['Actual Rows']} rows, "
            f"{scan['Shared Hit Blocks'] + scan['Shared Read Blocks']} buffers; statement: "
            f"{top['Shared Hit Blocks'] + top['Shared Read Blocks']} buffers")


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


def claim_median_ms(url: str) -> float:
    worker_id = str(uuid.uuid4())
    with psycopg.connect(url) as conn:
        conn.execute(sql.WORKER_REGISTER.encode(), {
            "worker_id": worker_id, "hostname": "bench", "pid": 1, "slots": 8, "version": "bench"})
        conn.commit()
        times = []
        for sample in range(-WARM_UP, CLAIM_SAMPLES):
            started = time.perf_counter()
            rows = conn.execute(sql.JOB_CLAIM.encode(), {
                "now": None, "limit": 8, "worker_id": worker_id, "min_priority": 0}).fetchall()
            if sample >= 0:
                times.append(time.perf_counter() - started)
            conn.rollback()
            assert len(rows) == 8
    return statistics.median(times) * 1000


def claim_cost(url: str, big: int) -> None:
    add_due_jobs(url, 1000, mixed=True)
    small = claim_median_ms(url)
    print(f"with 1,000 due jobs: {claim_reads(url)}")
    add_due_jobs(url, big - 1000, mixed=True)
    large = claim_median_ms(url)
    print(f"with {big:,} due jobs: {claim_reads(url)}")
    print(f"claim (8 jobs) median of {CLAIM_SAMPLES}: {small:.3f} ms with 1,000 due jobs, "
          f"{large:.3f} ms with {big:,} due jobs of mixed priority ({large / small - 1:+.1%})")


def upload_behind_backfill(url: str, backlog: int, folder: Path) -> None:
    file_url = (folder / "backfill.pdf").as_uri()
    (folder / "backfill.pdf").write_bytes(b"%PDF-1.4\n")
    add_due_jobs(url, backlog, mixed=False, file_url=file_url)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PGQUEUE_")}
    env.update(DATABASE_URL=url, PYTHONPATH=str(ROOT), PGQUEUE_SLOTS="4",
               PGQUEUE_EXTRACTORS="pdf=bench.priority:slow_extractor",
               PGQUEUE_FILE_ROOTS=str(folder), PGQUEUE_ISOLATION="inline", PGQUEUE_LOG_LEVEL="warning")
    workers = [subprocess.Popen([sys.executable, str(ROOT / "worker.py")], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            def completed() -> int:
                row = conn.execute("SELECT count(*) FROM extraction_jobs WHERE status = 'completed'").fetchone()
                return int(row[0]) if row else 0

            wait_for(lambda: completed() >= 500, 120, "the back-fill to run")
            row = conn.execute(
                "INSERT INTO extraction_jobs (filename, file_url, file_size, format) "
                "VALUES ('upload.pdf', %s, 1, 'pdf') RETURNING id", [file_url]).fetchone()
            assert row is not None
            upload = row[0]
            wait_for(lambda: conn.execute("SELECT started_at FROM extraction_jobs WHERE id = %s",
                                          [upload]).fetchone()[0] is not None,  # type: ignore[index]
                     60, "the upload to start", interval=0.001)
            result = conn.execute(
                "SELECT extract(epoch FROM upload.started_at - upload.created_at) * 1000, "
                "       (SELECT count(*) FROM extraction_jobs WHERE status = 'pending' AND priority = 20) "
                "FROM extraction_jobs AS upload WHERE upload.id = %s",
                [upload]).fetchone()
            done = completed()
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(60)
    assert result is not None
    wait_ms, waiting = result
    print(f"upload inserted with plain SQL behind {backlog:,} bulk jobs (2 workers x 4 slots, "
          f"{EXTRACTION_SECONDS * 1000:.0f} ms extractor, {done:,} bulk done before it): started "
          f"{wait_ms:.1f} ms after its INSERT began; {waiting:,} bulk jobs still pending")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=200_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    arguments = parser.parse_args(argv)
    with bench_server() as server:
        claim_url = server.create_database("priority_claim")
        upgrade(claim_url)
        claim_cost(claim_url, arguments.big)
        server.drop_database(claim_url)
        backlog_url = server.create_database("priority_backlog")
        upgrade(backlog_url)
        upload_behind_backfill(backlog_url, arguments.backlog, server.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())

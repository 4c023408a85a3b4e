"""``pgqueue demo``: the whole queue on one machine with nothing running.

Starts the embedded PostgreSQL (in ``--data-dir`` or a temporary folder), migrates it, writes
sample files of every format (``pgqueue.samples``), enqueues them, runs a real worker process
(process isolation) until every job is finished, and prints what each extraction found. The
werk24 sample runs only when a Werk24 token is configured (``PGQUEUE_WERK24_TOKEN``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgqueue import cli_output, logs, sql
from pgqueue.control import get_job
from pgqueue.embedded import EmbeddedPostgres
from pgqueue.enqueue import JobRequest, enqueue
from pgqueue.migrate import upgrade
from pgqueue.result_summary import summarize
from pgqueue.samples import Sample, write_all
from pgqueue.settings import load_settings

FINISHED = ("completed", "failed", "cancelled")
POLL_SECONDS = 0.2


def run(data_dir: Path | None, slots: int = 2, timeout: float = 600.0) -> int:
    """Run the demo; 0 when every sample was extracted, 1 otherwise."""
    settings = load_settings()
    logs.configure(settings.log_format, "warning")  # the demo shows progress its own way
    temporary = data_dir is None
    base = Path(tempfile.mkdtemp(prefix="pgqueue-demo-")) if data_dir is None else data_dir.absolute()
    console = cli_output.stderr()
    server = EmbeddedPostgres(base)
    try:
        console.print(f"Starting the embedded PostgreSQL in {base} ...")
        url = server.start()
        upgrade(url)
        samples = write_all(base / "samples")
        skipped: list[dict[str, Any]] = []
        if settings.werk24_token:
            samples.append(Sample("werk24", samples[0].path))
        else:
            skipped.append({"format": "werk24", "file": samples[0].path.name, "status": "skipped",
                            "duration": None,
                            "summary": "skipped: set PGQUEUE_WERK24_TOKEN to send a drawing to Werk24"})
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            ids = _enqueue(conn, samples)
            console.print(f"Enqueued {len(ids)} sample files; starting a worker ...")
            finished = _run_worker(conn, url, base, samples, ids, slots, timeout, settings.werk24_token,
                                   settings.werk24_url)
            rows = [_row(conn, job_id) for job_id in ids]
        cli_output.render_demo(rows + skipped)
        if not temporary:
            console.print(
                f"The samples, the worker's log and the database are kept in {base}; "
                f"`pgqueue worker --data-dir {base}` starts that database again and prints its URL."
            )
        return 0 if finished and all(row["status"] == "completed" for row in rows) else 1
    finally:
        server.stop()
        if temporary:
            shutil.rmtree(base, ignore_errors=True)


def _enqueue(conn: psycopg.Connection[Any], samples: list[Sample]) -> list[str]:
    with conn.transaction():
        return [
            enqueue(conn, JobRequest(sample.path.name, sample.path.as_uri(), sample.path.stat().st_size,
                                     sample.format, options=sample.options)).id
            for sample in samples
        ]


def _worker_environment(url: str, samples_dir: Path, token: str | None, werk24_url: str | None) -> dict[str, str]:
    # The demo's own settings, whatever the shell has set for a real deployment.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PGQUEUE_")}
    env.update(
        DATABASE_URL=url,
        PGQUEUE_FILE_ROOTS=str(samples_dir),
        PGQUEUE_ISOLATION="process",
        PGQUEUE_LOG_FORMAT="json",
        PGQUEUE_BACKOFF_BASE="1",
        PGQUEUE_SHUTDOWN_GRACE="5",
    )
    if token:
        env["PGQUEUE_WERK24_TOKEN"] = token
    if werk24_url:
        env["PGQUEUE_WERK24_URL"] = werk24_url
    return env


def _run_worker(
    conn: psycopg.Connection[Any], url: str, base: Path, samples: list[Sample], ids: list[str],
    slots: int, timeout: float, token: str | None, werk24_url: str | None,
) -> bool:
    """Run a worker until every job is finished; False if it stopped or timed out first."""
    env = _worker_environment(url, base / "samples", token, werk24_url)
    log_path = base / "worker.log"
    with open(log_path, "ab") as log:
        worker = subprocess.Popen(worker_command(slots), env=env, stdout=log, stderr=log)
        try:
            done = _wait_for_jobs(conn, worker, ids, timeout)
        finally:
            _stop(worker)
    if not done:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        cli_output.error(f"the demo worker did not finish the jobs; its log ({log_path}) ends with:\n{tail}")
    return done


def worker_command(slots: int) -> list[str]:
    """The demo worker's command line. ``-P``: ``python -m`` would put the current folder first
    on ``sys.path``, and a folder holding a checkout named ``pgqueue`` would shadow the package."""
    return [sys.executable, "-P", "-m", "pgqueue.cli", "worker", "--slots", str(slots)]


def _wait_for_jobs(conn: psycopg.Connection[Any], worker: subprocess.Popen[bytes], ids: list[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    with cli_output.progress_always(len(ids), "extracting") as update:
        while True:
            done = _finished_count(conn, ids)
            update(done)
            if done == len(ids):
                return True
            if worker.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(POLL_SECONDS)  # a progress display, not a test: it only redraws


def _finished_count(conn: psycopg.Connection[Any], ids: list[str]) -> int:
    rows = conn.execute(sql.JOB_COUNT_FINISHED.encode(), {"ids": ids}).fetchall()
    return int(rows[0]["finished"])


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)


def _row(conn: psycopg.Connection[Any], job_id: str) -> dict[str, Any]:
    job = get_job(conn, job_id)
    if job is None:  # deleted behind the demo's back
        return {"format": "?", "file": job_id, "status": "missing", "duration": None, "summary": ""}
    duration = None
    if job.status == "completed" and job.started_at and job.completed_at:
        duration = (job.completed_at - job.started_at).total_seconds()
    if job.status == "completed":
        summary = summarize(job.result or {})
    else:
        summary = (job.error_message or job.status).splitlines()[0][:120]
    return {"format": job.format, "file": job.filename, "status": job.status,
            "duration": duration, "summary": summary}

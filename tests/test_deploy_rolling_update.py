"""A rolling update: the database is migrated to the new head first, then workers of the
previous release (the code just before the newest migration was added, taken from git) and of
this one run side by side on the same table, and the old one is stopped mid-job as a rollout
would stop it. Skipped where the checkout has no git history to take the old release from."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

import psycopg
import pytest

import pgqueue
from tests import workers
from tests.test_metrics import add_jobs
from tests.workers import ROOT, Workspace


def git(*arguments: str) -> bytes:
    return subprocess.run(["git", *arguments], cwd=ROOT, capture_output=True, check=True,
                          timeout=60).stdout


def previous_release(folder: Path) -> Path:
    """The tree as it was before the newest migration file was added."""
    if shutil.which("git") is None:
        pytest.skip("git is missing: no previous release to run")
    newest = sorted((ROOT / "migrations" / "versions").glob("0*.py"))[-1]
    try:
        added = git("log", "-1", "--diff-filter=A", "--format=%H", "--",
                    str(newest.relative_to(ROOT))).decode().strip()
        archive = git("archive", "--format=tar", f"{added}^") if added else b""
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"no git history here to take the previous release from: {exc.stderr!r}")
    if not archive:
        pytest.skip("a shallow checkout: the commit that added the newest migration is missing")
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    assert not (folder / "migrations" / "versions" / newest.name).exists()
    return folder


@contextmanager
def old_worker(env: dict[str, str], tree: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The previous release's worker: ``python -m`` from its own tree, which comes first on the
    path (``tests.workers.worker_process`` runs this checkout's worker.py)."""
    with open(log, "ab") as output:
        process = subprocess.Popen([sys.executable, "-m", "pgqueue.cli", "worker"], env=env,
                                   cwd=tree, stdout=output, stderr=output)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(30)


def events(log: Path) -> list[dict[str, object]]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


def held(db_url: str, worker_id: str) -> int:
    rows = workers.query(db_url, "SELECT count(*) AS n FROM extraction_jobs "
                         "WHERE status = 'processing' AND worker_id = %s", [worker_id])
    return int(rows[0]["n"])


def problems(log: Path) -> list[str]:
    """Errors in a worker's log, but for the job failed on purpose."""
    found = [f"{e['event']}: {e}" for e in events(log)
             if e["level"] in ("error", "critical") and e["event"] != "job_failed"]
    return found + (["a traceback"] if "Traceback" in log.read_text() else [])


@pytest.mark.slow
def test_old_and_new_workers_share_the_migrated_table(db_url: str, tmp_path: Path) -> None:
    old_tree = previous_release(tmp_path / "previous")
    space = Workspace(tmp_path / "space")
    new_env = space.env(db_url, slots=2, isolation="process", shutdown_grace=0)
    old_env = {**new_env, "PYTHONPATH": str(old_tree)}
    where = subprocess.run([sys.executable, "-c", "import pgqueue.worker.main as m; print(m.__file__)"],
                           env=old_env, cwd=old_tree, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip() == str(old_tree / "pgqueue" / "worker" / "main.py"), where.stderr
    old_log, new_log = tmp_path / "old.log", tmp_path / "new.log"
    with old_worker(old_env, old_tree, old_log) as old, workers.worker_process(new_env, log=new_log):
        workers.wait_until(lambda: len(workers.query(db_url, "SELECT 1 FROM pgqueue_workers")) == 2, 60,
                   "both workers to register")
        # Every kind of outcome, written back by both releases.
        add_jobs(db_url, space, [(f"ok{n:02}.pdf", "pdf", {"mode": "ok", "sleep": 0.05}) for n in range(40)]
                 + [("flaky.pdf", "pdf", {"mode": "flaky", "fail_first": 1}),
                    ("broken.pdf", "pdf", {"mode": "permanent"})])
        workers.wait_until(lambda: workers.unfinished(db_url) == 0, 120, "the queue to drain")
        assert workers.status_counts(db_url) == {"completed": 41, "failed": 1}
        for log in (old_log, new_log):
            assert any(e["event"] == "job_completed" for e in events(log)), f"{log.name} did no job"

        # The rollout stops the old worker while it runs jobs: they are handed back and taken
        # by the new one. Four jobs that never end fill the four slots, two in each worker.
        old_id, new_id = (next(str(e["worker_id"]) for e in events(log) if e["event"] == "worker_started")
                          for log in (old_log, new_log))
        add_jobs(db_url, space, [(f"hang{n}.pdf", "pdf", {"mode": "hang"}) for n in range(4)])
        workers.wait_until(lambda: held(db_url, old_id) == held(db_url, new_id) == 2, 60, "every slot to fill")
        old.send_signal(signal.SIGTERM)
        assert old.wait(60) == 0
        assert sum(e["event"] == "job_handed_back" for e in events(old_log)) == 2
        with psycopg.connect(db_url) as conn:
            for row in workers.query(db_url, "SELECT id::text AS id FROM extraction_jobs "
                                     "WHERE status = 'processing' AND worker_id = %s", [new_id]):
                assert pgqueue.cancel(conn, row["id"]).changed
            conn.commit()
        workers.wait_until(lambda: held(db_url, new_id) == 2 and workers.status_counts(db_url).get("cancelled") == 2,
                   60, "the new worker to take the handed-back jobs")
        hanging = workers.query(db_url, "SELECT id::text AS id, retry_count FROM extraction_jobs "
                                "WHERE status = 'processing'")
        assert [row["retry_count"] for row in hanging] == [0, 0], "a hand-back costs no attempt"
        with psycopg.connect(db_url) as conn:
            for row in hanging:
                assert pgqueue.cancel(conn, row["id"]).changed
            conn.commit()
        workers.wait_until(lambda: workers.unfinished(db_url) == 0, 60, "the cancelled jobs to stop")
    assert workers.status_counts(db_url) == {"completed": 41, "failed": 1, "cancelled": 4}
    assert problems(old_log) == [] and problems(new_log) == []

"""The embedded PostgreSQL: closed to other users of the machine, and shared safely by the
workers and commands of one folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgqueue.embedded import EmbeddedPostgres, EmbeddedPostgresError
from pgqueue.embedded_sharing import EmbeddedNotRunning, using_embedded
from tests.workers import ROOT, Workspace, query, wait_until

AS_ROOT = os.geteuid() == 0


@pytest.fixture
def folder(server_folder: Path) -> Path:
    return server_folder


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _no_password(url: str, password: str) -> str:
    return url.replace(f":{password}@", "@")


@pytest.fixture
def server(folder: Path) -> Iterator[EmbeddedPostgres]:
    embedded = EmbeddedPostgres(folder / "data", durable=False)
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop("immediate")


# --- closed to others ---------------------------------------------------------------------------


def test_the_server_asks_for_the_generated_password(server: EmbeddedPostgres) -> None:
    password = server.password()
    assert len(password) >= 24 and f":{password}@" in server.url
    assert query(server.url, "SELECT current_user AS who") == [{"who": "postgres"}]
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    result = subprocess.run(
        [str(server.bindir / "psql"), "-w", _no_password(server.url, password), "-c", "SELECT 1"],
        env=environment, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0 and "password" in result.stderr, result.stderr


def test_its_folder_and_files_are_private(server: EmbeddedPostgres) -> None:
    assert _mode(server.base_dir) == 0o700
    assert _mode(server.pgdata) == 0o700
    for name in ("password", "pgqueue_port", "postgres.log"):
        assert _mode(server.base_dir / name) == 0o600, name


@pytest.mark.skipif(not AS_ROOT or not shutil.which("runuser"), reason="needs root and runuser")
def test_another_os_user_cannot_connect_or_read_the_password(server: EmbeddedPostgres) -> None:
    environment = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    as_nobody = [shutil.which("runuser") or "runuser", "-u", "nobody", "--"]
    psql = [str(server.bindir / "psql"), "-w", "-c", "SELECT 1"]
    for url in (_no_password(server.url, server.password()),
                _no_password(server.url, server.password()).replace("postgres@", "nobody@")):
        result = subprocess.run([*as_nobody, *psql[:2], url, *psql[2:]], env=environment,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode != 0, result.stdout
        assert "password" in result.stderr, result.stderr
    read = subprocess.run([*as_nobody, "cat", str(server.password_file)], env=environment,
                          capture_output=True, text=True, timeout=30)
    assert read.returncode != 0 and "Permission denied" in read.stderr


def test_a_cluster_made_with_trust_gets_a_password(server: EmbeddedPostgres) -> None:
    # What an older pgqueue left behind: every local user trusted, no password file.
    server.stop()
    rules = server.pgdata / "pg_hba.conf"
    rules.write_text(rules.read_text().replace("scram-sha-256", "trust"))
    server.password_file.unlink()
    url = server.start()
    assert query(url, "SELECT 1 AS one") == [{"one": 1}]
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(_no_password(url, server.password()), connect_timeout=5,
                        password="").close()
    assert _mode(server.password_file) == 0o600


@pytest.mark.skipif(not AS_ROOT, reason="only root runs the server as another user")
def test_a_closed_parent_folder_stops_start_up_and_keeps_its_mode(folder: Path) -> None:
    closed = folder / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(EmbeddedPostgresError, match=f"cannot enter {closed} \\(mode 700\\)"):
        EmbeddedPostgres(closed / "data").start()
    assert _mode(closed) == 0o700


def test_a_shared_folder_with_other_files_is_not_taken_over(folder: Path) -> None:
    shared = folder / "shared"
    shared.mkdir(mode=0o755)
    (shared / "notes.txt").write_text("mine")
    with pytest.raises(EmbeddedPostgresError, match="holds other files"):
        EmbeddedPostgres(shared).start()
    assert _mode(shared) == 0o755


# --- shared by the processes of one folder ------------------------------------------------------


def test_a_command_does_not_start_a_server_and_creates_nothing(folder: Path) -> None:
    with pytest.raises(EmbeddedNotRunning), using_embedded(folder / "data", start=False):
        pass
    assert not (folder / "data").exists()


def test_the_last_user_stops_the_server_whoever_started_it(folder: Path) -> None:
    data = folder / "data"
    first = using_embedded(data, start=True)
    started = first.__enter__()
    assert started.started_here
    with using_embedded(data, start=False) as joined:
        assert not joined.started_here and joined.url == started.url
        first.__exit__(None, None, None)  # the starter leaves first
        assert query(joined.url, "SELECT 1 AS one") == [{"one": 1}]
    assert not EmbeddedPostgres(data).is_running()


def test_a_server_started_otherwise_is_left_running(server: EmbeddedPostgres) -> None:
    with using_embedded(server.base_dir, start=True) as shared:
        assert not shared.started_here
    assert server.is_running()


def _worker_env(space: Workspace, data: Path) -> dict[str, str]:
    env = space.env("unused", data_dir=data, slots=2, shutdown_grace=30)
    del env["DATABASE_URL"]
    return env


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as output:
        return subprocess.Popen([sys.executable, str(ROOT / "worker.py")], env=env, cwd=ROOT,
                                stdout=output, stderr=output)


def _started(log: Path) -> bool:
    return '"event": "worker_started"' in log.read_text(errors="replace")


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(60)


@pytest.mark.parametrize("first_to_stop", ["starter", "joiner"])
def test_two_workers_share_one_embedded_database_and_stop_in_either_order(
    folder: Path, first_to_stop: str
) -> None:
    space = Workspace(folder / "space")
    data = folder / "data"
    env = _worker_env(space, data)
    logs = {name: folder / f"{name}.log" for name in ("starter", "joiner")}
    workers = {"starter": _start_worker(env, logs["starter"])}
    try:
        wait_until(lambda: _started(logs["starter"]), 120, "the first worker")
        workers["joiner"] = _start_worker(env, logs["joiner"])
        wait_until(lambda: _started(logs["joiner"]), 120, "the second worker")
        assert "already running: shared" in logs["joiner"].read_text()
        url = EmbeddedPostgres(data).attach()
        urls = [space.job_file(f"job-{number:02}.pdf", sleep=0.2) for number in range(24)]
        with psycopg.connect(url, autocommit=True) as conn:
            for number, file_url in enumerate(urls):
                conn.execute(
                    "INSERT INTO extraction_jobs (filename, file_url, file_size, format) "
                    "VALUES (%s, %s, 10, 'pdf')", [f"job-{number:02}.pdf", file_url])
        wait_until(lambda: query(url, "SELECT count(*) AS n FROM extraction_jobs "
                                      "WHERE status = 'completed'")[0]["n"] >= 4,
                   60, "the first jobs to finish")
        second_to_stop = "joiner" if first_to_stop == "starter" else "starter"
        assert _stop(workers[first_to_stop]) == 0
        # The database stays up for the worker that is left, which finishes the queue.
        wait_until(lambda: query(url, "SELECT count(*) AS n FROM extraction_jobs "
                                      "WHERE status = 'completed'")[0]["n"] == 24,
                   120, "the remaining worker to finish every job")
        assert _stop(workers[second_to_stop]) == 0
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)
    everything = logs["starter"].read_text() + logs["joiner"].read_text()
    assert "hand_back_failed" not in everything and "job_rescued" not in everything
    assert not EmbeddedPostgres(data).is_running()  # the last one out stopped it
    server = EmbeddedPostgres(data)
    url = server.start()
    try:
        rows = query(url, "SELECT status, retry_count, error_history FROM extraction_jobs")
        assert len(rows) == 24
        assert all(row["status"] == "completed" and row["retry_count"] == 0
                   and not row["error_history"] for row in rows), rows
    finally:
        server.stop()


def test_the_database_command_runs_only_the_database_for_the_other_commands(folder: Path) -> None:
    data = folder / "data"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PGQUEUE_", "PG")) and key != "DATABASE_URL"}
    pgqueue = [sys.executable, "-m", "pgqueue.cli"]
    database = subprocess.Popen([*pgqueue, "database", "--data-dir", str(data)], env=env,
                                cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        assert database.stdout is not None
        url = database.stdout.readline().strip()  # printed once it is up and migrated
        assert url.startswith("postgresql://postgres:")
        status = subprocess.run([*pgqueue, "status", "--json", "--data-dir", str(data)], env=env,
                                cwd=folder, capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["totals"]["pending"] == 0
        database.send_signal(signal.SIGTERM)
        assert database.wait(60) == 0
    finally:
        if database.poll() is None:
            database.kill()
            database.wait(10)
    assert not EmbeddedPostgres(data).is_running()

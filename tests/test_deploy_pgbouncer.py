"""PgBouncer in transaction pooling mode in front of the test PostgreSQL: enqueue, drain and
cancel all go through it, with a real worker in ``--poll-only`` mode and fewer server
connections than clients. Skipped where the ``pgbouncer`` binary is missing (``.ci/run``
installs the Debian package)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

import pgqueue
from pgqueue import JobRequest
from tests import database
from tests.test_metrics import free_port
from tests.workers import Workspace, query, status_counts, wait_until, worker_process

POOL_SIZE = 3  # server connections per database

pytestmark = pytest.mark.skipif(
    shutil.which("pgbouncer", path=os.environ.get("PATH", "") + ":/usr/sbin") is None,
    reason="the pgbouncer binary is missing: apt-get install pgbouncer (.ci/run does)",
)


@dataclass
class Bouncer:
    port: int
    process: subprocess.Popen[bytes]

    def url_for(self, db_url: str) -> str:
        return f"postgresql://{urlsplit(db_url).username}@127.0.0.1:{self.port}{urlsplit(db_url).path}"

    def admin(self, command: str) -> list[tuple[object, ...]]:
        """A command on PgBouncer's console (simple query protocol only)."""
        url = f"postgresql://pgbouncer@127.0.0.1:{self.port}/pgbouncer"
        with psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor) as console:
            return console.execute(command).fetchall()


@pytest.fixture(scope="module")
def bouncer(pg_server: database.Server) -> Iterator[Bouncer]:
    server = urlsplit(pg_server.admin_url)
    port = free_port()
    # The folder must be readable by the user PgBouncer switches to when started as root.
    folder = Path(tempfile.mkdtemp(prefix="pgqueue-pgbouncer-"))
    folder.chmod(0o755)
    # The test server may ask for a password (the embedded one does): PgBouncer logs in to the
    # server with the one its auth file holds for the user (clients are trusted).
    password = server.password or os.environ.get("PGPASSWORD") or ""
    (folder / "users.txt").write_text(f'"{server.username}" "{password}"\n"pgbouncer" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.hostname} port={server.port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        "admin_users = pgbouncer\n"
        f"pool_mode = transaction\ndefault_pool_size = {POOL_SIZE}\nmax_client_conn = 200\n"
        f"logfile = {folder / 'pgbouncer.log'}\n"
    )
    (folder / "pgbouncer.log").touch(mode=0o666)
    (folder / "pgbouncer.log").chmod(0o666)
    command = [shutil.which("pgbouncer", path=os.environ.get("PATH", "") + ":/usr/sbin") or "pgbouncer"]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        command += ["-u", "nobody"]
    process = subprocess.Popen([*command, str(folder / "pgbouncer.ini")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: _accepts(port) or process.poll() is not None, 30, "PgBouncer to listen")
        assert process.poll() is None, (process.stderr.read() if process.stderr else b"").decode()
        yield Bouncer(port, process)
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_enqueue_drain_and_cancel_through_transaction_pooling(
    db_url: str, bouncer: Bouncer, tmp_path: Path
) -> None:
    space = Workspace(tmp_path)
    pooled = bouncer.url_for(db_url)
    names = [f"part-{n:02}.pdf" for n in range(40)]
    # What docs/deployment.md tells a web app behind PgBouncer older than 1.21: no prepared
    # statements (psycopg's prepare_threshold=None).
    with psycopg.connect(pooled, prepare_threshold=None) as conn:
        # One by one (in the caller's transaction), and in bulk (COPY), through the pool.
        for name in names[:10]:
            pgqueue.enqueue(conn, filename=name, file_url=space.job_file(name, mode="ok"),
                            file_size=10, format="pdf")
        conn.commit()
        result = pgqueue.enqueue_bulk(conn, [JobRequest(n, space.job_file(n, mode="ok"), 10, "pdf")
                                             for n in names[10:]])
        conn.commit()
        pgqueue.enqueue(conn, filename="hang.pdf", file_url=space.job_file("hang.pdf", mode="hang"),
                        file_size=10, format="pdf")
        conn.commit()
    assert result.inserted == 30

    env = space.env(pooled, slots=2, isolation="process", poll_only="true", poll_interval=0.2)
    log = tmp_path / "worker.log"
    with worker_process(env, log=log) as worker:
        wait_until(lambda: status_counts(db_url).get("completed") == 40, 120, "the queue to drain")
        assert status_counts(db_url) == {"completed": 40, "processing": 1}
        clients = [row for row in bouncer.admin("SHOW CLIENTS") if "pgqueue-" in str(row)]
        # A poll-only worker opens one connection (claims, write-backs, heartbeat, maintenance).
        assert len(clients) >= 1, "the worker's connection goes through PgBouncer"
        servers = [row for row in bouncer.admin("SHOW SERVERS") if urlsplit(db_url).path[1:] in row]
        assert len(servers) <= POOL_SIZE

        hang_id = query(db_url, "SELECT id::text AS id FROM extraction_jobs WHERE filename = 'hang.pdf'")[0]["id"]
        with psycopg.connect(pooled, prepare_threshold=None) as conn:
            assert pgqueue.cancel(conn, hang_id).changed
            conn.commit()
        wait_until(lambda: not query(db_url, "SELECT 1 FROM extraction_jobs WHERE status = 'processing'"),
                   30, "the running job to stop")
        assert worker.poll() is None, "the worker kept running"
        worker.terminate()
        assert worker.wait(60) == 0
    assert status_counts(db_url) == {"completed": 40, "cancelled": 1}
    text = log.read_text()
    assert '"level": "error"' not in text and "Traceback" not in text, text[-3000:]
    assert "database_unavailable" not in text, text[-3000:]
    assert query(db_url, "SELECT count(*) AS n FROM pgqueue_workers")[0]["n"] == 0

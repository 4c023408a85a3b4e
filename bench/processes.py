"""Worker processes: start them, know when they are ready, read their memory, stop them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from bench.record import RECORD_ENV
from bench.systems.base import WorkerConfig
from bench.worker_main import READY

ROOT = Path(__file__).resolve().parent.parent


class WorkerFailed(RuntimeError):
    """A worker process exited before it was asked to."""


class WorkerProcess:
    def __init__(self, config: WorkerConfig, log: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log = log
        # pgqueue settings come from the config only; the benchmark's own variables pass through.
        environment = {
            key: value for key, value in os.environ.items()
            if not key.startswith("PGQUEUE_") or key.startswith("PGQUEUE_BENCH_")
        }
        environment.update(env or {})
        environment[RECORD_ENV] = config.record
        # The repository root, after any path given (to measure another copy of pgqueue).
        environment["PYTHONPATH"] = os.pathsep.join(
            part for part in (os.environ.get("PYTHONPATH"), str(ROOT)) if part
        )
        self._terminated = False
        self._log_handle = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.worker_main", config.to_json()],
            # Not the repository as cwd: ``python -m`` would put it before PYTHONPATH.
            cwd=log.parent, env=environment, stdout=subprocess.PIPE, stderr=self._log_handle,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise WorkerFailed(f"{self.config.system} worker exited early; see {self.log}")
            if line.decode().strip() == READY:
                return
        raise TimeoutError(f"{self.config.system} worker not ready after {timeout} s")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise WorkerFailed(
                f"{self.config.system} worker exited with {self.process.returncode}; see {self.log}"
            )

    def terminate(self) -> None:
        """Ask once: a second SIGTERM makes a pgqueue worker exit at once."""
        if self.process.poll() is None and not self._terminated:
            self._terminated = True
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30) -> int | None:
        self.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log_handle.close()
        return self.process.returncode


@contextlib.contextmanager
def workers(
    configs: list[WorkerConfig], log_dir: Path, env: dict[str, str] | None = None
) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    batch = uuid.uuid4().hex[:8]
    try:
        for number, config in enumerate(configs):
            log = log_dir / f"{config.system}-{batch}-{number}.log"
            started.append(WorkerProcess(config, log, env))
        for worker in started:
            worker.wait_ready()
        yield started
    finally:
        for worker in started:
            worker.terminate()
        for worker in started:
            worker.stop()


def rss_kib(pid: int) -> int:
    """Resident set size of one process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                found += [int(child) for child in (task / "children").read_text().split()]
    return found


def descendants_of(pid: int) -> list[int]:
    """Children, their children, and so on (job processes are children of a fork server)."""
    found: list[int] = []
    waiting = children_of(pid)
    while waiting:
        child = waiting.pop()
        found.append(child)
        waiting += children_of(child)
    return found


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """CPU time of a process and of its live descendants; with ``reaped``, also of the ended
    children they waited for (backends reaped by the postmaster, job processes replaced in a
    pool and reaped by its fork server)."""
    def own(process: int) -> float:
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:
            return 0.0
        # After the command name: state is field 3, utime 14, stime 15, cutime 16, cstime 17.
        ticks = int(fields[11]) + int(fields[12])
        if reaped:
            ticks += int(fields[13]) + int(fields[14])
        return ticks / _TICK

    return own(pid) + sum(own(child) for child in descendants_of(pid))

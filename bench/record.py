"""The shared record of job runs: every benchmark job, of every system, appends one line.

A line is ``<key> <unix time> <pid>``, written with one unbuffered ``write`` on a file opened
with ``O_APPEND`` (whole lines from many processes never interleave). The harness reads the
file to know when all jobs ran, to get start times for latency, and to prove that every job ran
exactly once: a key seen twice or never fails the run.

The cost per job (one small ``write`` system call) is the same for every system measured.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

RECORD_ENV = "PGQUEUE_BENCH_RECORD"

_open: dict[tuple[int, str], int] = {}


def record_run(key: int | str, path: str | None = None) -> None:
    """Called by a job when it starts: appends its key. Works in any process, after fork too."""
    target = path or os.environ[RECORD_ENV]
    slot = (os.getpid(), target)
    fd = _open.get(slot)
    if fd is None:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        _open[slot] = fd
    os.write(fd, f"{key} {time.time():.6f} {os.getpid()}\n".encode())


class AccountingError(AssertionError):
    """A job ran twice, never ran, or a run was recorded that nobody enqueued."""


@dataclass
class RunRecord:
    path: Path
    _offset: int = 0
    _partial: bytes = b""
    lines: int = 0
    starts: dict[int, list[float]] = field(default_factory=dict)
    pids: set[int] = field(default_factory=set)

    def create(self) -> RunRecord:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(b"")
        os.chmod(self.path, 0o666)
        return self

    def poll(self) -> int:
        """Read what was appended since the last call; return the number of runs seen so far."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return self.lines
        self._offset += len(chunk)
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        for line in complete:
            key, stamp, pid = line.split()
            self.starts.setdefault(int(key), []).append(float(stamp))
            self.pids.add(int(pid))
        self.lines += len(complete)
        return self.lines

    def check(self, expected: Iterable[int]) -> None:
        """Every expected key exactly once, nothing else; raise ``AccountingError`` otherwise."""
        self.poll()
        wanted = set(expected)
        counts = Counter({key: len(stamps) for key, stamps in self.starts.items()})
        twice = sorted(key for key, count in counts.items() if count > 1)
        never = sorted(wanted - counts.keys())
        strangers = sorted(counts.keys() - wanted)
        problems = []
        if twice:
            problems.append(f"{len(twice)} job(s) ran more than once, e.g. {twice[:5]}")
        if never:
            problems.append(f"{len(never)} job(s) never ran, e.g. {never[:5]}")
        if strangers:
            problems.append(f"{len(strangers)} unknown job(s) ran, e.g. {strangers[:5]}")
        if self._partial:
            problems.append("the record ends with a torn line")
        if problems:
            raise AccountingError("; ".join(problems))

    def first_start(self, key: int) -> float:
        return self.starts[key][0]

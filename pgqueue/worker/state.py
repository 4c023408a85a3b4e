"""What the loops of one worker share: its identity, the jobs it runs, and the claimer's wake-up."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import anyio

from pgqueue.errors import InvalidOptions
from pgqueue.jobrun import JobInput
from pgqueue.priority import Priority


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    filename: str
    file_url: str
    file_size: int
    format: str
    options: dict[str, Any]
    retry_count: int
    max_retries: int
    worker_id: str  # the identity that claimed it: its outcome is fenced by this one
    priority: int = Priority.INTERACTIVE

    @property
    def attempt(self) -> int:
        return self.retry_count + 1

    def as_input(self) -> JobInput:
        options = self.options if isinstance(self.options, dict) else {}
        return JobInput(self.id, self.file_url, self.format, options, self.file_size)

    @classmethod
    def from_row(cls, row: dict[str, Any], worker_id: str) -> ClaimedJob:
        """A claimed row (options as JSON text). ``InvalidOptions`` if they cannot be read."""
        return cls(
            id=row["id"], filename=row["filename"], file_url=row["file_url"],
            file_size=row["file_size"], format=row["format"], options=read_options(row["options"]),
            retry_count=row["retry_count"], max_retries=row["max_retries"], worker_id=worker_id,
            priority=row.get("priority", Priority.INTERACTIVE),
        )


def read_options(text: str | None) -> dict[str, Any]:
    """A claimed job's options. The claim returns them as text and they are read here, job by
    job: options nested thousands deep (typed by hand) once made the driver fail the whole
    claim, and the worker with it."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except RecursionError:
        raise InvalidOptions("the options are nested too deeply to read") from None
    return value if isinstance(value, dict) else {}


# Why a running job was stopped before it finished. Only a hand-back writes anything: a
# cancelled or rescued job's row has already moved on.
STOP_CANCELLED = "cancelled"
STOP_LOST = "no_longer_held"
STOP_SHUTDOWN = "shutdown"


@dataclass
class RunningJob:
    job: ClaimedJob
    scope: anyio.CancelScope
    started: float = field(default_factory=time.monotonic)
    stop_reason: str | None = None
    # The row was claimed again by this worker while this run went on (see Claimer._claim).
    reclaimed: bool = False


class WorkerState:
    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.worker_id = str(uuid.uuid4())
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.running: dict[str, RunningJob] = {}
        self.wake = anyio.Event()
        self.stopping = False
        self.idle = anyio.Event()  # set whenever nothing runs
        self.idle.set()
        # Set when this worker may hold jobs in the table that nothing here will finish: the
        # claimer hands them back before its next claim.
        self.orphans_possible = False

    @property
    def free_slots(self) -> int:
        return self.slots - len(self.running)

    def wake_claimer(self) -> None:
        self.wake.set()

    def new_wake(self) -> anyio.Event:
        self.wake = anyio.Event()
        return self.wake

    def add(self, running: RunningJob) -> None:
        self.running[running.job.id] = running
        if self.idle.is_set():
            self.idle = anyio.Event()

    def remove(self, job_id: str) -> None:
        self.running.pop(job_id, None)
        if not self.running:
            self.idle.set()
        self.wake.set()

    def stop_job(self, job_id: str, reason: str) -> bool:
        running = self.running.get(job_id)
        if running is None or running.stop_reason is not None:
            return False
        running.stop_reason = reason
        running.scope.cancel()
        return True

    def new_identity(self) -> str:
        """After this worker was declared lost, it comes back as a new worker."""
        self.worker_id = str(uuid.uuid4())
        return self.worker_id

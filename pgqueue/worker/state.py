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
    claim_token: str  # stamped by the claim: its outcome is fenced by this one
    filename: str
    file_url: str
    file_size: int
    format: str
    options: dict[str, Any]
    retry_count: int
    max_retries: int
    priority: int = Priority.INTERACTIVE
    # Why the options cannot be read, if they cannot: the job then fails without a run.
    unreadable: str | None = None

    @property
    def attempt(self) -> int:
        return self.retry_count + 1

    def as_input(self) -> JobInput:
        options = self.options if isinstance(self.options, dict) else {}
        return JobInput(self.id, self.file_url, self.format, options, self.file_size)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ClaimedJob:
        """A claimed row (options as JSON text)."""
        unreadable = None
        try:
            options = read_options(row["options"])
        except InvalidOptions as exc:
            options, unreadable = {}, str(exc)
        return cls(
            id=row["id"], claim_token=row["claim_token"], filename=row["filename"],
            file_url=row["file_url"], file_size=row["file_size"], format=row["format"],
            options=options, retry_count=row["retry_count"], max_retries=row["max_retries"],
            priority=row.get("priority", Priority.INTERACTIVE), unreadable=unreadable,
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
    done: anyio.Event = field(default_factory=anyio.Event)


class WorkerState:
    """The one owner of what the loops share. The claimer adds claims; the executor runs them
    and hands outcomes to the completer; the completer settles them. Loops read this state and
    call its methods; none of them calls another loop.

    A claim is *held* from the claim until its outcome is settled in the table (written, or
    found lost) or its run was stopped without one. Slots count the runs only.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.worker_id = str(uuid.uuid4())  # fixed for the life of the process
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.formats: list[str] = []  # advertised in the registry, for enqueue's format check
        self.claims: dict[str, ClaimedJob] = {}  # by claim token
        self.running: dict[str, RunningJob] = {}  # by claim token
        self.wake = anyio.Event()
        self.stopping = False
        self.idle = anyio.Event()  # set whenever nothing runs
        self.idle.set()
        self.settled = anyio.Event()  # set whenever no claim is held
        self.settled.set()

    @property
    def free_slots(self) -> int:
        return self.slots - len(self.running)

    def wake_claimer(self) -> None:
        self.wake.set()

    def new_wake(self) -> anyio.Event:
        self.wake = anyio.Event()
        return self.wake

    def hold(self, job: ClaimedJob) -> None:
        self.claims[job.claim_token] = job
        if self.settled.is_set():
            self.settled = anyio.Event()

    def settle(self, claim_token: str) -> None:
        self.claims.pop(claim_token, None)
        if not self.claims:
            self.settled.set()
            self.wake.set()

    def held_tokens(self) -> list[str]:
        return list(self.claims)

    def add(self, running: RunningJob) -> None:
        self.running[running.job.claim_token] = running
        if self.idle.is_set():
            self.idle = anyio.Event()

    def remove(self, running: RunningJob) -> None:
        self.running.pop(running.job.claim_token, None)
        running.done.set()
        if not self.running:
            self.idle.set()
        self.wake.set()

    def earlier_runs(self, running: RunningJob) -> list[RunningJob]:
        """Runs of the same job under earlier claims, still winding down."""
        return [other for other in self.running.values()
                if other.job.id == running.job.id and other is not running]

    def stop_claim(self, claim_token: str, reason: str) -> bool:
        running = self.running.get(claim_token)
        if running is None or running.stop_reason is not None:
            return False
        running.stop_reason = reason
        running.scope.cancel()
        return True

    def stop_job(self, job_id: str, reason: str) -> bool:
        """Stop every run of this job (a cancel names the job, not the claim)."""
        tokens = [token for token, running in self.running.items() if running.job.id == job_id]
        return any([self.stop_claim(token, reason) for token in tokens])

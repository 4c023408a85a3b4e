"""What the harness needs from each queue system under test.

A system installs its schema into an empty database, enqueues jobs through its own client API
(one job per transaction, or its bulk path), runs a worker process whose job is the no-op that
records its key (``bench.record.record_run``), and says how to tell from SQL that every job
is finished. Every job carries an integer key, 0..N-1 within one measurement.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

BULK_BATCH = 1000  # jobs per bulk call, the same for every system


@dataclass(frozen=True)
class WorkerConfig:
    """What one worker process is told; sent to it as JSON on its command line."""

    system: str
    url: str
    slots: int
    record: str
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        return cls(**json.loads(text))


class Enqueuer(Protocol):
    async def one(self, key: int) -> None:
        """Enqueue one job in a transaction of its own (committed on return)."""

    async def many(self, keys: Sequence[int]) -> None:
        """Enqueue these jobs with the system's bulk path (one call, one transaction)."""


class System(Protocol):
    name: str
    label: str
    queue_table: str
    # Counts jobs not yet finished; 0 means the drain is over.
    unfinished_sql: str
    # Counts jobs that ended successfully.
    succeeded_sql: str

    def install(self, url: str) -> None:
        """Create the system's schema in an empty database."""

    def enqueuer(self, url: str) -> AbstractAsyncContextManager[Enqueuer]:
        """A client connected to ``url``."""

    def serve(self, config: WorkerConfig) -> None:
        """Run one worker in this process until SIGTERM or SIGINT."""

    def describe(self, slots: int) -> str:
        """The settings a worker with ``slots`` slots is given, for the report."""


def on_stop(callback: Callable[[], None]) -> None:
    """Call ``callback`` on SIGTERM or SIGINT (for workers that do not handle signals)."""
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: callback())

"""Liveness and readiness of a worker, answered on the metrics port as ``/livez`` and ``/readyz``.

The heartbeat writes here after each statement; the metrics server's threads read. The two
answers mean different things to an orchestrator, so they look at different evidence:

- live: the event loop answers within a second, and (once the worker is registered) the
  heartbeat has turned within the worker timeout. A failing liveness probe restarts the
  process, which only helps when the process itself is stuck, so an unreachable database does
  not make a worker "dead": it reconnects by itself.
- ready: the heartbeat's last statement was answered by the database, the worker is
  registered, and it is not shutting down. Workers take no traffic, so readiness gates rolling
  updates: a new replica counts once it can claim.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PING_TIMEOUT = 1.0  # seconds the event loop may take to run a callback from the probe thread


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


class Health:
    def __init__(self, clock: Callable[[], float] = time.monotonic, ping_timeout: float = PING_TIMEOUT) -> None:
        self._clock = clock
        self._ping_timeout = ping_timeout
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stale_after = 30.0
        self._worker_id: str | None = None
        self._last_turn: float | None = None  # a heartbeat statement ended, answered or not
        self._last_answer: float | None = None
        self._error: str | None = None
        self._stopping = False

    # --- written by the worker ---------------------------------------------------------------

    def started(self, stale_after: float) -> None:
        """The worker runs on the current event loop; a heartbeat older than ``stale_after``
        seconds is stale."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # not on asyncio: the heartbeat alone speaks for the loop
            loop = None
        with self._lock:
            self._loop = loop
            self._stale_after = stale_after
            self._worker_id = None
            self._last_turn = self._last_answer = None
            self._error = None
            self._stopping = False

    def answered(self, worker_id: str) -> None:
        """A heartbeat or registration statement succeeded: ``worker_id`` is registered."""
        with self._lock:
            self._worker_id = worker_id
            self._last_turn = self._last_answer = self._clock()
            self._error = None

    def unanswered(self, error: str) -> None:
        """A heartbeat or registration statement failed: the database did not answer."""
        with self._lock:
            self._last_turn = self._clock()
            self._error = error

    def stopping(self) -> None:
        with self._lock:
            self._stopping = True

    # --- read by the probes ------------------------------------------------------------------

    def liveness(self) -> Verdict:
        with self._lock:
            loop, registered = self._loop, self._worker_id is not None
            age = self._age(self._last_turn)
            details = self._details()
        if loop is not None and not _answers(loop, self._ping_timeout):
            return Verdict(False, f"the event loop did not answer within {self._ping_timeout:g} s",
                           details)
        if registered and age is not None and age > self._stale_after:
            return Verdict(False, f"the heartbeat has not turned for {age:.1f} s "
                                  f"(worker timeout {self._stale_after:g} s)", details)
        return Verdict(True, "alive" if registered else "starting", details)

    def readiness(self) -> Verdict:
        with self._lock:
            details = self._details()
            age = self._age(self._last_answer)
            error, stopping, registered = self._error, self._stopping, self._worker_id is not None
        if stopping:
            return Verdict(False, "stopping: claiming no more jobs", details)
        if error is not None:
            return Verdict(False, f"database unavailable: {_one_line(error)}", details)
        if not registered:
            return Verdict(False, "starting: not registered yet", details)
        if age is not None and age > self._stale_after:
            return Verdict(False, f"no heartbeat answered for {age:.1f} s", details)
        return Verdict(True, "ready", details)

    def _age(self, stamp: float | None) -> float | None:
        return None if stamp is None else self._clock() - stamp

    def _details(self) -> dict[str, Any]:
        age = self._age(self._last_answer)
        return {"worker_id": self._worker_id,
                "heartbeat_age_seconds": None if age is None else round(age, 3)}


def _answers(loop: asyncio.AbstractEventLoop, timeout: float) -> bool:
    answered = threading.Event()
    try:
        loop.call_soon_threadsafe(answered.set)
    except RuntimeError:  # the loop is closed
        return False
    return answered.wait(timeout)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# One worker per process, like the metrics registry: the heartbeat and the probes share this.
current = Health()

"""The executor: runs one claimed job in its slot and hands the outcome to the completer.

A running job can be stopped from outside through its cancel scope (``WorkerState.stop_job``):
cancelled by a user, no longer held (rescued while this worker was cut off), or shut down. The
runner kills the child process; only a shutdown hand-back writes to the row afterwards.
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio
import structlog

from pgqueue import metrics
from pgqueue.errors import ExtractionTimeout
from pgqueue.jobrun import JobInput, Outcome
from pgqueue.settings import Settings
from pgqueue.worker.completer import Completer
from pgqueue.worker.state import (
    STOP_CANCELLED,
    STOP_LOST,
    STOP_SHUTDOWN,
    ClaimedJob,
    RunningJob,
    WorkerState,
)

log = structlog.get_logger("pgqueue.executor")

BACKSTOP_MARGIN = 30.0

# The ``outcome`` label of a run stopped from outside, by why it was stopped.
STOPPED_OUTCOMES = {STOP_CANCELLED: "cancelled", STOP_LOST: "lost", STOP_SHUTDOWN: "handed_back"}


class Runner(Protocol):
    # False: the runner leaves the job's timeout to the executor's cancel scope.
    enforces_timeouts: bool

    async def run(self, job: JobInput) -> Outcome: ...

    async def aclose(self) -> None: ...


class Executor:
    def __init__(
        self, state: WorkerState, runner: Runner, completer: Completer, settings: Settings
    ) -> None:
        self.settings = settings
        self.state = state
        self.runner = runner
        self.completer = completer

    def prepare(self, job: ClaimedJob) -> RunningJob:
        """Register the job as running before its task starts, so slots are counted at once."""
        running = RunningJob(job, anyio.CancelScope())
        self.state.add(running)
        return running

    async def execute(self, running: RunningJob) -> None:
        job = running.job
        outcome: Outcome | None = None
        timeout = self.settings.timeout_for(job.format)
        # One cancel scope per job serves both stopping it from outside and its deadline. A
        # runner that enforces timeouts itself (killing a child) gets a later backstop here.
        margin = BACKSTOP_MARGIN if self.runner.enforces_timeouts else 0.0
        running.scope.deadline = anyio.current_time() + timeout + margin
        try:
            with running.scope:
                try:
                    outcome = await self.runner.run(job.as_input())
                except anyio.get_cancelled_exc_class():
                    raise
                except Exception as exc:
                    log.exception("runner_failed", job_id=job.id, format=job.format)
                    outcome = Outcome.failure(job.id, exc, time.monotonic() - running.started)
            if outcome is None and running.stop_reason is None:
                message = f"the extraction took longer than {timeout:g} s"
                outcome = Outcome.failure(
                    job.id, ExtractionTimeout(message), time.monotonic() - running.started
                )
            if outcome is not None:
                self.completer.submit(job, outcome, running.started)
                return
            # Stopped from outside: the run ends without an outcome, but it still ended.
            metrics.finished(job.format, STOPPED_OUTCOMES.get(running.stop_reason or "", "stopped")).inc()
            if running.stop_reason != STOP_SHUTDOWN:  # shutdown hands them back, and says so
                log.warning("job_stopped", job_id=job.id, format=job.format, attempt=job.attempt,
                            worker_id=self.state.worker_id, reason=running.stop_reason)
        finally:
            if running.reclaimed:
                # Claimed again while this run went on. Unless this run's outcome lands on the
                # new claim (same identity, not stopped), nothing will finish that claim: the
                # claimer hands back whatever is neither running nor waiting to be written.
                self.state.orphans_possible = True
            self.state.remove(job.id)

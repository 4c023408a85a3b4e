"""The executor: runs each claimed job in its slot and hands the outcome to the completer.

A running job can be stopped from outside through its cancel scope (``WorkerState.stop_job``):
cancelled by a user, no longer held (rescued while this worker was cut off), or shut down. The
runner kills the child process; only a shutdown hand-back writes to the row afterwards.
"""

from __future__ import annotations

import time
from typing import Protocol

import anyio
import structlog
from anyio.abc import TaskGroup

from pgqueue import metrics
from pgqueue.errors import ExtractionTimeout, InvalidOptions
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

    def start(self, job: ClaimedJob, jobs: TaskGroup) -> None:
        """Take a claimed job: counted in its slot at once, run in a task of ``jobs``."""
        self.state.hold(job)
        if job.unreadable is not None:
            # Fails this job alone, without a run; its batch-mates go on.
            self.completer.submit(job, Outcome.failure(job.id, InvalidOptions(job.unreadable)),
                                  time.monotonic())
            return
        running = RunningJob(job, anyio.CancelScope())
        self.state.add(running)
        jobs.start_soon(self.execute, running, name=f"job-{job.id}")

    async def execute(self, running: RunningJob) -> None:
        job = running.job
        try:
            outcome = await self._run(running)
            if outcome is not None:
                self.completer.submit(job, outcome, running.started)
                return
            # Stopped from outside: the run ends without an outcome, and its claim with it.
            self.state.settle(job.claim_token)
            metrics.finished(job.format, STOPPED_OUTCOMES.get(running.stop_reason or "", "stopped")).inc()
            if running.stop_reason != STOP_SHUTDOWN:  # shutdown hands them back, and says so
                log.warning("job_stopped", job_id=job.id, format=job.format, attempt=job.attempt,
                            worker_id=self.state.worker_id, reason=running.stop_reason)
        finally:
            self.state.remove(running)

    async def _run(self, running: RunningJob) -> Outcome | None:
        """The outcome, or None when the run was stopped from outside."""
        job = running.job
        timeout = self.settings.timeout_for(job.format)
        # One cancel scope per job serves both stopping it from outside and its deadline. A
        # runner that enforces timeouts itself (killing a child) gets a later backstop here.
        margin = BACKSTOP_MARGIN if self.runner.enforces_timeouts else 0.0
        running.scope.deadline = anyio.current_time() + timeout + margin
        outcome: Outcome | None = None
        with running.scope:
            # Claimed again while a stopped run of it winds down (cancelled and retried, say):
            # one run of a job at a time. The new claim's outcome is fenced by its own token.
            for earlier in self.state.earlier_runs(running):
                await earlier.done.wait()
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
        return outcome

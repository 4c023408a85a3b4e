"""One worker process: wires the loops together, starts them, and shuts them down in order.

Shutdown (first SIGTERM or SIGINT): stop claiming; running jobs get ``shutdown_grace`` seconds
to finish; then they are stopped and handed back as pending without counting an attempt;
outcomes waiting to be written are flushed; the worker leaves the registry. A second signal
exits at once: its jobs are then rescued as lost by another worker.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import structlog

from pgqueue import health, metrics, sql
from pgqueue.jobrun import JobInput, Outcome, run_job
from pgqueue.settings import Settings
from pgqueue.worker.claimer import Claimer
from pgqueue.worker.completer import Completer
from pgqueue.worker.executor import Executor
from pgqueue.worker.heartbeat import heartbeat_loop, register_until_done
from pgqueue.worker.link import Backoff, DatabaseUnavailable, Link
from pgqueue.worker.listener import listen_loop
from pgqueue.worker.maintenance import Maintenance
from pgqueue.worker.state import STOP_SHUTDOWN, WorkerState

log = structlog.get_logger("pgqueue.worker")

# A job function: synchronous (run in a child process or a thread) or a coroutine function
# (run on the event loop). The default fetches the file and runs the format's extractor.
Target = Callable[[JobInput, Settings], Outcome] | Callable[[JobInput, Settings], Awaitable[Outcome]]


class SchemaMissing(RuntimeError):
    """The database has no pgqueue tables."""


class DatabaseUnreachable(RuntimeError):
    """In burst mode, the database did not answer within ``startup_wait`` seconds."""


class Worker:
    def __init__(self, settings: Settings, *, target: Target = run_job) -> None:
        if not settings.database_url:
            raise ValueError("the worker needs settings.database_url")
        self.settings = settings
        self.target = target
        self.state = WorkerState(settings.slots)
        url, schema = settings.database_url, settings.schema_name
        # Claims commit durably: a claim lost in a database crash would let the job be claimed
        # again (by another worker, or by this one) while its first run goes on.
        prepare = not settings.poll_only  # poll-only is the PgBouncer transaction-pooling mode
        self.claim_link = Link(url, schema, "claimer", prepare=prepare)
        self.complete_link = Link(url, schema, "completer", prepare=prepare)
        self.house_link = Link(url, schema, "housekeeping", prepare=prepare)
        self.maintenance_link = Link(url, schema, "maintenance", prepare=prepare)
        self.listen_link = Link(url, schema, "listener", prepare=prepare)
        self.stop_requested = anyio.Event()

    async def run(self) -> int:
        from pgqueue.worker.children import make_runner

        settings = self.settings
        health.current.started(stale_after=settings.worker_timeout)
        await self._check_schema()
        runner = make_runner(settings, self.target)
        completer = Completer(self.complete_link, settings, self.state)
        executor = Executor(self.state, runner, completer, settings)
        claimer = Claimer(self.claim_link, settings, self.state, executor, completer)
        maintenance = Maintenance(self.maintenance_link, settings)
        metrics.slots.set(settings.slots)
        metrics.jobs_running.set_function(lambda: len(self.state.running))
        await register_until_done(self.house_link, self.state)
        log.info("worker_started", worker_id=self.state.worker_id, slots=settings.slots,
                 isolation=settings.isolation, burst=settings.burst, poll_only=settings.poll_only)
        try:
            async with anyio.create_task_group() as background:
                background.start_soon(self._watch_signals)
                background.start_soon(completer.run)
                background.start_soon(heartbeat_loop, self.house_link, settings, self.state)
                background.start_soon(maintenance.run)
                if not settings.poll_only:
                    background.start_soon(listen_loop, self.listen_link, self.state)
                async with anyio.create_task_group() as jobs:
                    jobs.start_soon(self._claim_until_stopped, claimer, jobs)
                    await self.stop_requested.wait()
                    health.current.stopping()
                    self.state.stopping = True
                    self.state.wake_claimer()
                    await self._wind_down()
                await self._hand_back_and_flush(completer)
                background.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await runner.aclose()
                for link in (self.claim_link, self.complete_link, self.house_link,
                             self.maintenance_link, self.listen_link):
                    await link.close()
        log.info("worker_stopped", worker_id=self.state.worker_id)
        return 0

    def request_stop(self) -> None:
        self.stop_requested.set()

    async def _claim_until_stopped(self, claimer: Claimer, jobs: Any) -> None:
        await claimer.run(jobs)
        if claimer.burst_done.is_set():
            log.info("burst_finished", worker_id=self.state.worker_id)
        self.stop_requested.set()

    async def _wind_down(self) -> None:
        if self.state.running:
            log.info("worker_stopping", worker_id=self.state.worker_id,
                     running=len(self.state.running), grace=self.settings.shutdown_grace)
        with anyio.move_on_after(self.settings.shutdown_grace):
            await self.state.idle.wait()
        for job_id in list(self.state.running):
            self.state.stop_job(job_id, STOP_SHUTDOWN)

    async def _hand_back_and_flush(self, completer: Completer) -> None:
        deadline = time.monotonic() + max(10.0, self.settings.shutdown_grace)
        await completer.drain(deadline)
        backoff = Backoff()
        while time.monotonic() < deadline:
            try:
                # Everything still processing under this worker is handed back: jobs stopped
                # by the shutdown, and any claim whose answer never arrived.
                rows = await self.house_link.fetch(
                    sql.JOB_RELEASE_ORPHANS, {"worker_id": self.state.worker_id, "held": []}
                )
                for row in rows:
                    log.info("job_handed_back", job_id=row["id"], worker_id=self.state.worker_id,
                             reason="shutdown")
                if rows:
                    await self.house_link.fetch(sql.NOTIFY_JOBS)
                await self.house_link.fetch(sql.WORKER_DEREGISTER, {"worker_id": self.state.worker_id})
                return
            except DatabaseUnavailable as exc:
                log.warning("database_unavailable", link="housekeeping", error=str(exc))
                await backoff.wait()
        log.error("hand_back_failed", worker_id=self.state.worker_id,
                  reason="database unavailable; the jobs will be rescued as lost")

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for received in signals:
                if self.stop_requested.is_set():
                    log.warning("worker_killed", worker_id=self.state.worker_id,
                                signal=signal.Signals(received).name,
                                reason="second signal: exiting now; running jobs will be rescued")
                    os._exit(1)
                log.info("worker_signal", worker_id=self.state.worker_id,
                         signal=signal.Signals(received).name)
                self.request_stop()

    async def _check_schema(self) -> None:
        # A service waits for its database as long as it takes; a burst run is a script's
        # step, and a script needs an answer: it gives up after startup_wait seconds.
        backoff = Backoff()
        waited_from = time.monotonic()
        while True:
            try:
                rows = await self.house_link.fetch(sql.SCHEMA_CHECK)
                break
            except DatabaseUnavailable as exc:
                reason = str(exc).splitlines()[0] if str(exc) else "no answer"
                waited = time.monotonic() - waited_from
                if self.settings.burst and waited >= self.settings.startup_wait:
                    raise DatabaseUnreachable(
                        f"cannot reach the database after {waited:.0f} s ({reason}): check "
                        "DATABASE_URL and that PostgreSQL is running"
                    ) from None
                delay = backoff.next_delay()
                log.warning("database_unreachable", error=reason, retry_in=round(delay, 1),
                            waited=round(waited, 1),
                            action="retrying until it answers" if not self.settings.burst
                            else f"giving up after {self.settings.startup_wait:g} s (--burst)")
                await anyio.sleep(delay)
        if rows[0]["jobs"] is None or rows[0]["workers"] is None:
            raise SchemaMissing(
                "the database has no extraction_jobs table in schema "
                f"{self.settings.schema_name!r}: run `pgqueue migrate` first"
            )


def run(settings: Settings, target: Target = run_job) -> int:
    return anyio.run(Worker(settings, target=target).run)

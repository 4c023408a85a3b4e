"""One worker process: wires the loops together, starts them, and shuts them down in order.

Connections: one shared by the claimer, completer, heartbeat and maintenance (statements of a
millisecond or two, one at a time), and one for LISTEN (none with ``poll_only``);
``claim_connection`` gives the claimer one of its own.

Shutdown (first SIGTERM or SIGINT, from the moment the process starts): stop claiming; running
jobs get ``shutdown_grace`` seconds to finish; then they are stopped and handed back as pending
without counting an attempt; outcomes waiting to be written are flushed; the worker leaves the
registry. A second signal exits at once: its jobs are then rescued as lost by another worker.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import structlog

from pgqueue import extractors, health, metrics, sql
from pgqueue.jobrun import JobInput, Outcome, run_job
from pgqueue.settings import Settings
from pgqueue.worker.claimer import Claimer
from pgqueue.worker.completer import Completer
from pgqueue.worker.executor import Executor, Runner
from pgqueue.worker.heartbeat import heartbeat_loop, register_until_done
from pgqueue.worker.link import Backoff, DatabaseUnavailable, Link, log_unavailable
from pgqueue.worker.listener import listen_loop
from pgqueue.worker.maintenance import Maintenance
from pgqueue.worker.state import STOP_SHUTDOWN, WorkerState

log = structlog.get_logger("pgqueue.worker")

# A job function: synchronous (run in a child process or a thread) or a coroutine function
# (run on the event loop). The default fetches the file and runs the format's extractor.
Target = Callable[[JobInput, Settings], Outcome] | Callable[[JobInput, Settings], Awaitable[Outcome]]

# Signals received before the event loop watches them (see ``run``).
_early_signals: list[int] = []


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
        needs = (1 if settings.poll_only else 2) + settings.claim_connection
        prepare = not settings.poll_only  # poll-only is the PgBouncer transaction-pooling mode
        self.link = Link(url, schema, "queue", needs=needs, prepare=prepare)
        self.listen_link = Link(url, schema, "listener", needs=needs, quiet_when_full=True)
        # Claims and write-backs on one connection take turns: in a drain of jobs of a
        # millisecond that costs a quarter of the throughput; jobs of 50 ms and more hardly
        # notice. The option gives claims their own.
        self.claim_link = (
            Link(url, schema, "claimer", needs=needs, quiet_when_full=True, prepare=prepare)
            if settings.claim_connection else self.link
        )
        self.stop_requested = anyio.Event()
        self.startup: anyio.CancelScope | None = None  # made in ``run``, on the event loop
        self.registering = False
        self.runner: Runner | None = None

    async def run(self) -> int:
        # Raised below as they are, not inside an exception group.
        missing: SchemaMissing | DatabaseUnreachable | None = None
        try:
            async with anyio.create_task_group() as watcher:
                self.startup = anyio.CancelScope()
                watcher.start_soon(self._watch_signals)
                with self.startup:
                    try:
                        await self._start()
                    except (SchemaMissing, DatabaseUnreachable) as exc:
                        missing = exc
                if self.runner is not None and not self.stop_requested.is_set():
                    await self._serve(self.runner)
                elif self.registering:
                    # Stopped while registering: the registration may have gone through.
                    await self._hand_back_and_deregister(time.monotonic() + 10)
                watcher.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                if self.runner is not None:
                    await self.runner.aclose()
                for link in {self.link, self.claim_link, self.listen_link}:
                    await link.close()
        if missing is not None:
            raise missing
        log.info("worker_stopped", worker_id=self.state.worker_id)
        return 0

    def request_stop(self) -> None:
        self.stop_requested.set()
        if self.startup is not None:
            self.startup.cancel()  # a stop during start-up ends it; later this is a no-op

    async def _start(self) -> None:
        from pgqueue.worker.children import make_runner

        if _early_signals:
            self.request_stop()
        health.current.started(stale_after=self.settings.worker_timeout)
        await self._check_schema()
        self.runner = make_runner(self.settings, self.target)
        self.state.formats = sorted(extractors.formats())
        self.registering = True
        await register_until_done(self.link, self.state)

    async def _serve(self, runner: Runner) -> None:
        settings = self.settings
        completer = Completer(self.link, settings, self.state)
        executor = Executor(self.state, runner, completer, settings)
        claimer = Claimer(self.claim_link, settings, self.state, executor)
        maintenance = Maintenance(self.link, settings)
        metrics.slots.set(settings.slots)
        metrics.jobs_running.set_function(lambda: len(self.state.running))
        log.info("worker_started", worker_id=self.state.worker_id, slots=settings.slots,
                 isolation=settings.isolation, burst=settings.burst, poll_only=settings.poll_only)
        async with anyio.create_task_group() as background:
            background.start_soon(completer.run)
            background.start_soon(heartbeat_loop, self.link, settings, self.state)
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
            # A burst that ran out of work writes everything, however long the database is
            # away; a signalled stop gives up after a while (its jobs are then rescued).
            deadline = None if claimer.burst_done.is_set() else (
                time.monotonic() + max(10.0, settings.shutdown_grace))
            await completer.drain(deadline)
            await self._hand_back_and_deregister(deadline)
            background.cancel_scope.cancel()

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
        for claim_token in list(self.state.running):
            self.state.stop_claim(claim_token, STOP_SHUTDOWN)

    async def _hand_back_and_deregister(self, deadline: float | None) -> None:
        backoff = Backoff()
        while deadline is None or time.monotonic() < deadline:
            try:
                # Everything still processing under this worker is handed back: jobs stopped
                # by the shutdown, and any claim whose answer never arrived.
                rows = await self.link.fetch(
                    sql.JOB_RELEASE_ORPHANS, {"worker_id": self.state.worker_id, "held": []}
                )
                for row in rows:
                    log.info("job_handed_back", job_id=row["id"], worker_id=self.state.worker_id,
                             reason="shutdown")
                if rows:
                    await self.link.fetch(sql.NOTIFY_JOBS)
                await self.link.fetch(sql.WORKER_DEREGISTER, {"worker_id": self.state.worker_id})
                return
            except DatabaseUnavailable as exc:
                log_unavailable(log, self.link, exc)
                await backoff.wait()
        log.error("hand_back_failed", worker_id=self.state.worker_id,
                  reason="database unavailable; the jobs will be rescued as lost")

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            if _early_signals:
                self.request_stop()
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
                rows = await self.link.fetch(sql.SCHEMA_CHECK)
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
                if exc.server_full:
                    log_unavailable(log, self.link, exc)
                else:
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
    # Until the event loop watches SIGTERM and SIGINT (first thing in ``Worker.run``), a signal
    # is noted here and turns into a graceful stop as soon as it can: not a -15 exit.
    previous = {number: signal.signal(number, _note_signal) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        return anyio.run(Worker(settings, target=target).run)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _note_signal(number: int, frame: object) -> None:
    _early_signals.append(number)

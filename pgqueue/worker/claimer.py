"""The claimer: fills free slots with due jobs, one statement per claim.

It wakes on a NOTIFY from the enqueue trigger, on a freed slot, at the next due retry, or on a
jittered poll. After a failed claim it hands back jobs this worker holds in the table but not
in memory: a claim that committed while its answer was lost with the connection.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import anyio
import structlog
from anyio.abc import TaskGroup

from pgqueue import metrics, sql
from pgqueue.errors import InvalidOptions
from pgqueue.jobrun import Outcome
from pgqueue.priority import Priority
from pgqueue.settings import Settings
from pgqueue.worker.completer import Completer
from pgqueue.worker.executor import Executor
from pgqueue.worker.link import Backoff, DatabaseUnavailable, Link
from pgqueue.worker.state import ClaimedJob, WorkerState

log = structlog.get_logger("pgqueue.claimer")


class Claimer:
    def __init__(
        self,
        link: Link,
        settings: Settings,
        state: WorkerState,
        executor: Executor,
        completer: Completer,
    ) -> None:
        self.link = link
        self.settings = settings
        self.state = state
        self.executor = executor
        self.completer = completer
        self.burst_done = anyio.Event()

    async def run(self, jobs: TaskGroup) -> None:
        backoff = Backoff()
        while not self.state.stopping:
            wake = self.state.new_wake()
            claimed = -1
            wait_for = self._poll_delay()
            if 0 < self.state.free_slots < self.settings.slots and self.settings.claim_wait:
                # Jobs finishing together free their slots one by one: a moment's wait (at most
                # claim_wait, against jobs that take seconds) lets one claim fill them all,
                # instead of one statement per slot. Waiting for only half of them halved the
                # claims' size in a drain of short jobs, and doubled their number.
                with anyio.move_on_after(self.settings.claim_wait):
                    while self.state.free_slots < self.settings.slots:
                        await self.state.new_wake().wait()
                wake = self.state.new_wake()
            if self.state.free_slots > 0:
                try:
                    if self.state.orphans_possible:
                        self.state.orphans_possible = False  # first: a run may end meanwhile
                        await self._release_orphans()
                    asked = self.state.free_slots
                    claimed = await self._claim_by_priority(jobs, asked)
                    if claimed < asked:
                        # Fewer than asked for: nothing else is due now.
                        wait_for = await self._until_next_due(wait_for)
                    backoff.reset()
                except DatabaseUnavailable as exc:
                    log.warning("database_unavailable", link="claimer", error=str(exc))
                    self.state.orphans_possible = True
                    wait_for = backoff.next_delay()
                if claimed == 0 and self.settings.burst and await self._burst_finished():
                    self.burst_done.set()
                    return
                if claimed > 0 and self.state.free_slots > 0:
                    continue  # there may be more due jobs: claim again at once
            with anyio.move_on_after(wait_for):
                await wake.wait()

    async def _claim_by_priority(self, jobs: TaskGroup, free: int) -> int:
        """Claim up to ``free`` jobs, most urgent first. With a reserved share, the slots it
        keeps for less urgent work take such jobs first while any are due (and urgent ones
        when none are), so a stream of uploads cannot stop a back-fill for good."""
        reserved = int(self.settings.slots * self.settings.reserved_share)
        less_urgent = Priority.INTERACTIVE + 1
        running = sum(1 for run in self.state.running.values() if run.job.priority >= less_urgent)
        keep = min(free, reserved - running)
        claimed = await self._claim(jobs, keep, less_urgent) if keep > 0 else 0
        return claimed + (await self._claim(jobs, free - claimed) if claimed < free else 0)

    async def _claim(self, jobs: TaskGroup, free: int, min_priority: int = 0) -> int:
        started = time.perf_counter()
        worker_id = self.state.worker_id  # the heartbeat may change it while this runs
        rows = await self.link.fetch(
            sql.JOB_CLAIM,
            {"now": None, "limit": free, "worker_id": worker_id, "min_priority": min_priority},
        )
        metrics.claim_latency.observe(time.perf_counter() - started)
        for row in rows:
            running = self.state.running.get(row["id"])
            if running is not None:
                # This worker claimed the job again while a run of it goes on (it was pending
                # again: rescued while this worker was cut off, or cancelled and retried while
                # its stopped run winds down). No second run at once. The running one's outcome
                # lands on the new claim if it was made under the same identity and the run was
                # not stopped; otherwise the new claim is handed back when the run ends.
                running.reclaimed = True
                log.warning("job_reclaimed_while_running", job_id=row["id"],
                            worker_id=self.state.worker_id)
                continue
            try:
                job = ClaimedJob.from_row(row, worker_id)
            except InvalidOptions as exc:
                # Fails this job alone, without a run; its batch-mates go on.
                job = ClaimedJob.from_row({**row, "options": None}, worker_id)
                self.completer.submit(job, Outcome.failure(job.id, exc), time.monotonic())
                continue
            metrics.claimed(job.format).inc()
            log.info("job_claimed", job_id=job.id, format=job.format, attempt=job.attempt,
                     worker_id=self.state.worker_id)
            running = self.executor.prepare(job)
            jobs.start_soon(self.executor.execute, running, name=f"job-{job.id}")
        return len(rows)

    async def _until_next_due(self, default: float) -> float:
        rows = await self.link.fetch(sql.JOB_NEXT_DUE)
        next_due: datetime | None = rows[0]["next_due"] if rows else None
        if next_due is None:
            return default
        seconds = (next_due - datetime.now(UTC)).total_seconds()
        # The database's clock decides when a job is due; a small margin absorbs skew.
        return max(0.05, min(default, seconds + 0.05))

    async def _release_orphans(self) -> None:
        # Held: the jobs running, and the jobs that finished while the database was away and
        # whose outcomes still wait to be written. Releasing those would run them again.
        held = set(self.state.running) | self.completer.job_ids()
        rows = await self.link.fetch(
            sql.JOB_RELEASE_ORPHANS, {"worker_id": self.state.worker_id, "held": list(held)}
        )
        for row in rows:
            log.warning("job_released", job_id=row["id"], worker_id=self.state.worker_id,
                        reason="claimed while the connection broke")

    async def _burst_finished(self) -> bool:
        """In burst mode: done when nothing runs, nothing waits to be written, nothing is due."""
        await self.state.idle.wait()
        with anyio.move_on_after(30):
            while self.completer.pending:
                await self.completer.empty.wait()
        due = await self.link.fetch(sql.JOB_ANY_DUE)
        return not due[0]["due"]

    def _poll_delay(self) -> float:
        return self.settings.poll_interval * (0.75 + random.random() / 2)

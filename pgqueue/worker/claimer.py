"""The claimer: fills free slots with due jobs, one statement per claim.

It wakes on a NOTIFY from the enqueue trigger, on a freed slot, at the next due retry, or on a
jittered poll. It hands each claimed job to the executor and never talks to the completer.
After a claim whose answer was lost it hands back what this worker holds in the table under a
claim it does not know: a claim that committed while its answer was lost with the connection.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import anyio
import structlog
from anyio.abc import TaskGroup

from pgqueue import metrics, sql
from pgqueue.priority import Priority
from pgqueue.settings import Settings
from pgqueue.worker.executor import Executor
from pgqueue.worker.link import Backoff, DatabaseUnavailable, Link, log_unavailable
from pgqueue.worker.state import ClaimedJob, WorkerState

log = structlog.get_logger("pgqueue.claimer")


class Claimer:
    def __init__(self, link: Link, settings: Settings, state: WorkerState, executor: Executor) -> None:
        self.link = link
        self.settings = settings
        self.state = state
        self.executor = executor
        self.burst_done = anyio.Event()
        # A claim failed without an answer: it may have committed. Only the claimer claims, so
        # only the claimer knows this.
        self.answer_lost = False

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
                    while self.state.free_slots < self.settings.slots and not self.state.stopping:
                        await self.state.new_wake().wait()
                wake = self.state.new_wake()
                if self.state.stopping:
                    return
            if self.state.free_slots > 0:
                try:
                    if self.answer_lost:
                        await self._release_orphans()
                        self.answer_lost = False
                    asked = self.state.free_slots
                    claimed = await self._claim_by_priority(jobs, asked)
                    if claimed < asked:
                        # Fewer than asked for: nothing else is due now.
                        wait_for = await self._until_next_due(wait_for)
                    if claimed == 0 and self.settings.burst and await self._burst_finished():
                        self.burst_done.set()
                        return
                    backoff.reset()
                except DatabaseUnavailable as exc:
                    log_unavailable(log, self.link, exc)
                    wait_for = backoff.next_delay()
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

    async def _claim(
        self, jobs: TaskGroup, free: int, min_priority: int = 0, now: datetime | None = None
    ) -> int:
        started = time.perf_counter()
        try:
            rows = await self.link.fetch(
                sql.JOB_CLAIM,
                {"now": now, "limit": free, "worker_id": self.state.worker_id,
                 "min_priority": min_priority},
            )
        except DatabaseUnavailable as exc:
            self.answer_lost = self.answer_lost or exc.connection_lost
            raise
        metrics.claim_latency.observe(time.perf_counter() - started)
        for row in rows:
            job = ClaimedJob.from_row(row)
            metrics.claimed(job.format).inc()
            log.info("job_claimed", job_id=job.id, format=job.format, attempt=job.attempt,
                     worker_id=self.state.worker_id)
            self.executor.start(job, jobs)
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
        # Held: the claims running here, and those whose outcomes wait to be written.
        # Releasing those would run them twice.
        rows = await self.link.fetch(
            sql.JOB_RELEASE_ORPHANS,
            {"worker_id": self.state.worker_id, "held": self.state.held_tokens()},
        )
        for row in rows:
            log.warning("job_released", job_id=row["id"], worker_id=self.state.worker_id,
                        reason="claimed while the connection broke")

    async def _burst_finished(self) -> bool:
        """In burst mode: done when no claim is held here and nothing is due."""
        while self.state.claims and not self.state.stopping:
            await self.state.new_wake().wait()
        if self.state.stopping:
            return False
        due = await self.link.fetch(sql.JOB_ANY_DUE)
        return not due[0]["due"]

    def _poll_delay(self) -> float:
        return self.settings.poll_interval * (0.75 + random.random() / 2)

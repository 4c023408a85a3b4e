"""The completer: writes outcomes back to their rows, in batches, fenced.

Outcomes wait at most ``flush_delay`` seconds (or until ``flush_batch`` are waiting) and are
written by one statement per batch. The statement only touches rows still ``processing`` and
held by this worker, so an outcome of a job that was cancelled or rescued meanwhile changes
nothing; that is logged as ``job_lost_race``.

While the database is away, outcomes stay here and the flush is retried, so work finished
during an outage is not lost. If this process dies before a flush, its jobs are rescued as
lost and run again: a job is never completed twice, but it can run twice.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import psycopg
import structlog

from pgqueue import metrics, sql
from pgqueue.jobrun import Outcome
from pgqueue.settings import Settings
from pgqueue.worker.link import Backoff, DatabaseUnavailable, Link
from pgqueue.worker.state import ClaimedJob, WorkerState

log = structlog.get_logger("pgqueue.completer")


class Completer:
    def __init__(self, link: Link, settings: Settings, state: WorkerState) -> None:
        self.link = link
        self.settings = settings
        self.state = state
        self.waiting: list[tuple[ClaimedJob, Outcome, float]] = []
        self.arrived = anyio.Event()
        self.empty = anyio.Event()
        self.empty.set()
        # The flush loop and a shutdown's ``drain`` may both flush: one statement at a time,
        # each taking the batch at the head of the list when its turn comes.
        self._flushing = anyio.Lock()

    def submit(self, job: ClaimedJob, outcome: Outcome, started: float) -> None:
        self.waiting.append((job, outcome, started))
        if self.empty.is_set():
            self.empty = anyio.Event()
        self.arrived.set()

    @property
    def pending(self) -> int:
        return len(self.waiting)

    def job_ids(self) -> set[str]:
        """The jobs whose outcomes wait here: their rows are still held by this worker."""
        return {job.id for job, _, _ in self.waiting}

    async def run(self) -> None:
        backoff = Backoff()
        while True:
            await self.arrived.wait()
            self.arrived = anyio.Event()
            if len(self.waiting) < self.settings.flush_batch and self.settings.flush_delay:
                # Give jobs finishing right now a moment to share the statement.
                with anyio.move_on_after(self.settings.flush_delay):
                    while len(self.waiting) < self.settings.flush_batch:
                        await self.arrived.wait()
                        self.arrived = anyio.Event()
            while self.waiting:
                try:
                    # Shielded: a statement cut off after its commit would leave outcomes
                    # here that were already written.
                    with anyio.CancelScope(shield=True):
                        await self.flush_once()
                    backoff.reset()
                except DatabaseUnavailable as exc:
                    log.warning("database_unavailable", link="completer", error=str(exc),
                                waiting=len(self.waiting))
                    await backoff.wait()

    async def flush_once(self) -> None:
        async with self._flushing:
            await self._flush_head()

    async def _flush_head(self) -> None:
        batch = self._next_batch()
        if not batch:
            return
        try:
            rows = await self._write(batch)
        except DatabaseUnavailable:
            raise
        except psycopg.Error as exc:
            # One bad outcome must not hold back the others: write them one by one.
            log.error("write_back_batch_failed", error=str(exc), size=len(batch))
            rows = []
            for item in batch:
                rows.extend(await self._write_alone(item))
        del self.waiting[: len(batch)]
        if not self.waiting:
            self.empty.set()
        self._report(batch, rows)

    def _next_batch(self) -> list[tuple[ClaimedJob, Outcome, float]]:
        """The oldest outcomes, up to ``flush_batch``, one per job.

        A job's second outcome (from a second run) waits for the next statement, where the
        fence judges it against what the first one wrote; in one statement both would match
        the row once and both be reported as written.
        """
        seen: set[str] = set()
        batch: list[tuple[ClaimedJob, Outcome, float]] = []
        for item in self.waiting[: self.settings.flush_batch]:
            if item[0].id in seen:
                break
            seen.add(item[0].id)
            batch.append(item)
        return batch

    async def _write(self, batch: list[tuple[ClaimedJob, Outcome, float]]) -> list[dict[str, Any]]:
        params = {
            "ids": [job.id for job, _, _ in batch],
            "worker_ids": [job.worker_id for job, _, _ in batch],
            "results": [outcome.result_json for _, outcome, _ in batch],
            "retryable": [outcome.retryable for _, outcome, _ in batch],
            "error_types": [outcome.error_type for _, outcome, _ in batch],
            "messages": [outcome.error_message for _, outcome, _ in batch],
            "extractors": [outcome.extractor for _, outcome, _ in batch],
            "extractor_versions": [outcome.extractor_version for _, outcome, _ in batch],
            "backoff_base": self.settings.backoff_base,
            "backoff_factor": self.settings.backoff_factor,
            "backoff_cap": self.settings.backoff_cap,
            "backoff_jitter": self.settings.backoff_jitter,
        }
        return await self.link.fetch(sql.JOB_FINISH_MANY, params)

    async def _write_alone(self, item: tuple[ClaimedJob, Outcome, float]) -> list[dict[str, Any]]:
        job, outcome, started = item
        try:
            return await self._write([item])
        except DatabaseUnavailable:
            raise
        except psycopg.Error as exc:
            # The outcome itself cannot be stored (e.g. a result PostgreSQL refuses): store
            # the reason instead, as a permanent failure, so the job still ends.
            log.error("write_back_failed", job_id=job.id, error=str(exc))
            replacement = Outcome(
                job.id, None, False, "ResultNotStorable",
                f"the result could not be stored: {str(exc).strip()[:500]}", outcome.duration,
            )
            return await self._write([(job, replacement, started)])

    def _report(self, batch: list[tuple[ClaimedJob, Outcome, float]], rows: list[dict[str, Any]]) -> None:
        written = {row["id"]: row for row in rows}
        now = time.monotonic()
        retried = False
        for job, outcome, started in batch:
            fields = {"job_id": job.id, "format": job.format, "attempt": job.attempt,
                      "worker_id": job.worker_id}
            row = written.get(job.id)
            metrics.duration(job.format).observe(now - started)
            if row is None:
                # The row moved on. If this worker claimed it again meanwhile (under a new
                # identity, say), that claim has no run here: let the claimer hand it back.
                self.state.orphans_possible = True
                metrics.finished(job.format, "lost_race").inc()
                log.warning("job_lost_race", **fields,
                            reason="the job was cancelled or rescued before its outcome was written")
            elif row["status"] == "completed":
                metrics.finished(job.format, "completed").inc()
                log.info("job_completed", **fields, duration=round(outcome.duration, 4))
            elif row["status"] == "pending":
                retried = True
                metrics.finished(job.format, "retried").inc()
                log.warning("job_retry_scheduled", **fields, error_type=outcome.error_type,
                            error=outcome.error_message, next_retry_at=row["next_retry_at"].isoformat(),
                            retry_count=row["retry_count"])
            else:
                metrics.finished(job.format, "failed").inc()
                log.error("job_failed", **fields, error_type=outcome.error_type,
                          error=outcome.error_message, retry_count=row["retry_count"])
        if retried or self.state.orphans_possible:
            self.state.wake_claimer()  # it sleeps until the next due job: that just changed

    async def drain(self, deadline: float) -> bool:
        """Flush everything waiting, trying until ``deadline`` (monotonic). True if all written."""
        backoff = Backoff()
        while self.waiting and time.monotonic() < deadline:
            try:
                await self.flush_once()
            except DatabaseUnavailable as exc:
                log.warning("database_unavailable", link="completer", error=str(exc),
                            waiting=len(self.waiting))
                await backoff.wait()
        return not self.waiting

"""The completer: writes outcomes back to their rows, in batches, fenced.

Outcomes wait at most ``flush_delay`` seconds (or until ``flush_batch`` are waiting) and are
written by one statement per batch. The statement only touches rows still ``processing`` under
the claim that computed the outcome, so an outcome of a job that was cancelled, rescued or
claimed again meanwhile changes nothing; that is logged as ``job_lost_race``. A row locked by
someone else's open transaction is skipped, and its outcome stays at its place in the line for
the next flush: a web request never holds up the outcomes of other jobs.

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
from pgqueue.worker.link import Backoff, DatabaseUnavailable, Link, log_unavailable
from pgqueue.worker.state import ClaimedJob, WorkerState

log = structlog.get_logger("pgqueue.completer")


class Completer:
    def __init__(self, link: Link, settings: Settings, state: WorkerState) -> None:
        self.link = link
        self.settings = settings
        self.state = state
        self.busy = 0  # outcomes at the head of the line whose rows were locked last flush
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

    async def run(self) -> None:
        backoff = Backoff()
        busy_backoff = Backoff(first=0.05, cap=1.0)
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
                    log_unavailable(log, self.link, exc, waiting=len(self.waiting))
                    await backoff.wait()
                    continue
                if not self.busy:
                    busy_backoff.reset()
                elif self.busy == len(self.waiting):
                    # Only locked rows left: try them again shortly, or with the next outcomes.
                    with anyio.move_on_after(busy_backoff.next_delay()):
                        await self.arrived.wait()
                    self.arrived = anyio.Event()

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
        fates = {row["id"]: row for row in rows}
        # Outcomes whose rows were locked keep their place at the head of the line, before
        # any later outcome of the same job.
        kept = [item for item in batch if fates.get(item[0].id, {}).get("fate") == "busy"]
        self.busy = len(kept)
        self.waiting[: len(batch)] = kept
        if not self.waiting:
            self.empty.set()
        self._report(batch, fates)

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
            "claim_tokens": [job.claim_token for job, _, _ in batch],
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

    def _report(self, batch: list[tuple[ClaimedJob, Outcome, float]], fates: dict[str, dict[str, Any]]) -> None:
        now = time.monotonic()
        retried = False
        for job, outcome, started in batch:
            row = fates.get(job.id, {"fate": "lost"})
            if row["fate"] == "busy":
                log.debug("job_row_busy", job_id=job.id, worker_id=self.state.worker_id,
                          reason="locked by another transaction; written at a later flush")
                continue
            self.state.settle(job.claim_token)
            fields = {"job_id": job.id, "format": job.format, "attempt": job.attempt,
                      "worker_id": self.state.worker_id}
            metrics.duration(job.format).observe(now - started)
            if row["fate"] == "written_before":
                # A write-back retried after its answer was lost: the first one went through.
                log.info("job_outcome_already_written", **fields)
            elif row["fate"] != "written":
                metrics.finished(job.format, "lost_race").inc()
                log.warning("job_lost_race", **fields,
                            reason="the job was cancelled, rescued or claimed again before "
                                   "this outcome was written")
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
        if retried:
            self.state.wake_claimer()  # it sleeps until the next due job: that just changed

    async def drain(self, deadline: float | None) -> bool:
        """Flush everything waiting, trying until ``deadline`` (monotonic; None: until done).
        True if all written."""
        backoff = Backoff()
        while self.waiting and (deadline is None or time.monotonic() < deadline):
            try:
                await self.flush_once()
            except DatabaseUnavailable as exc:
                log_unavailable(log, self.link, exc, waiting=len(self.waiting))
                await backoff.wait()
                continue
            if self.busy == len(self.waiting):
                await backoff.wait()
        return not self.waiting

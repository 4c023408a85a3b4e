"""Maintenance: rescue jobs of lost workers, prune old jobs, sample queue metrics.

Every worker runs this loop; each statement takes a transaction-level advisory lock inside
itself and does nothing without it, so one worker at a time does the work and no lock is ever
left behind by a worker that froze or lost its network.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime

import anyio
import structlog

from pgqueue import metrics, sql
from pgqueue.settings import Settings
from pgqueue.worker.link import Backoff, DatabaseUnavailable, Link, log_unavailable

log = structlog.get_logger("pgqueue.maintenance")

PRUNE_EVERY = 12  # rounds: pruning a big table is not needed every few seconds


class Maintenance:
    def __init__(
        self, link: Link, settings: Settings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.link = link
        self.settings = settings
        self.clock = clock  # tests move it instead of sleeping
        self.rounds = 0
        self.backoff = Backoff()
        # When this worker has just started, or its connection has just come back, the other
        # workers' heartbeats may be stale through no fault of theirs (the database, or the
        # network to it, was away for everyone). Nobody is declared lost until they have had a
        # worker timeout, counted from then, to catch up. (A server restart is also caught in
        # JOB_RESCUE_LOST itself.)
        self.rescue_after = clock() + settings.worker_timeout
        self.reconnecting = False
        self.generation = link.generation

    async def run(self) -> None:
        while True:
            delay = await self.run_once()
            await anyio.sleep(delay)

    async def run_once(self) -> float:
        """One round; returns the seconds to wait before the next."""
        try:
            await self.round()
            self.backoff.reset()
            return self.settings.maintenance_interval * (0.8 + random.random() * 0.4)
        except DatabaseUnavailable as exc:
            log_unavailable(log, self.link, exc)
            self.reconnecting = self.reconnecting or exc.connection_lost
            return self.backoff.next_delay()

    async def round(self) -> None:
        # The link is shared with other loops: whichever of them noticed the outage, a new
        # connection says the database (or the way to it) was away.
        await self.link.connect()
        came_back = self.generation > 0 and self.link.generation != self.generation
        self.generation = self.link.generation
        if self.reconnecting or came_back:
            self.reconnecting = False
            self.rescue_after = self.clock() + self.settings.worker_timeout
        if self.clock() >= self.rescue_after:
            await self.rescue()
        if self.rounds % PRUNE_EVERY == 0:
            await self.prune()
        if self.settings.metrics_port is not None:  # nobody reads the gauges otherwise
            await self.sample()
        self.rounds += 1

    async def rescue(self, now: datetime | None = None) -> int:
        """Rescue the jobs of lost workers, judged at ``now`` (default: the database's clock)."""
        rows = await self.link.fetch(
            sql.JOB_RESCUE_LOST,
            {"lock_key": sql.MAINTENANCE_LOCK_KEY, "now": now,
             "worker_timeout": self.settings.worker_timeout,
             "backoff_base": self.settings.backoff_base,
             "backoff_factor": self.settings.backoff_factor,
             "backoff_cap": self.settings.backoff_cap,
             "backoff_jitter": self.settings.backoff_jitter},
        )
        for row in rows:
            log.warning("job_rescued", job_id=row["id"], lost_worker_id=row["worker_id"],
                        status=row["status"], retry_count=row["retry_count"],
                        reason="worker lost")
        return len(rows)

    async def prune(self) -> int:
        """Delete what retention allows (never an attachment's latest result); how many."""
        unlinked_days = self.settings.retention_unlinked_days
        total = 0
        while True:
            rows = await self.link.fetch(
                sql.JOB_PRUNE_FINISHED,
                {"lock_key": sql.MAINTENANCE_LOCK_KEY,
                 "older_than_seconds": self.settings.retention_days * 86400,
                 "unlinked_older_than_seconds": None if unlinked_days is None else unlinked_days * 86400,
                 "batch": self.settings.prune_batch},
            )
            total += len(rows)
            if len(rows) < self.settings.prune_batch:  # each kind had less than a batch left
                break
        if total:
            log.info("jobs_pruned", count=total, retention_days=self.settings.retention_days,
                     retention_unlinked_days=unlinked_days)
        return total

    async def sample(self) -> None:
        rows = await self.link.fetch(sql.QUEUE_SAMPLE)
        metrics.queue_due.set(rows[0]["due"])
        metrics.queue_lag.set(rows[0]["lag_seconds"] or 0)

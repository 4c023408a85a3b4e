"""The heartbeat: proves this worker alive, and stops jobs it no longer holds.

Each beat is one statement that refreshes the worker's registry row and reports which of the
jobs running here are no longer ``processing`` under this worker (cancelled, or rescued while
this worker was cut off from the database). If the registry row is gone, this worker was
declared lost: its jobs were rescued, so it stops them all and registers again. Outcomes still
on their way are fenced out by their claim tokens.
"""

from __future__ import annotations

import anyio
import structlog

from pgqueue import __version__, health, sql
from pgqueue.settings import Settings
from pgqueue.worker.link import Backoff, DatabaseUnavailable, Link, log_unavailable
from pgqueue.worker.state import STOP_LOST, WorkerState

log = structlog.get_logger("pgqueue.heartbeat")


async def register(link: Link, state: WorkerState) -> None:
    await link.fetch(
        sql.WORKER_REGISTER,
        {"worker_id": state.worker_id, "hostname": state.hostname, "pid": state.pid,
         "slots": state.slots, "version": __version__, "formats": state.formats},
    )
    log.info("worker_registered", worker_id=state.worker_id, hostname=state.hostname,
             pid=state.pid, slots=state.slots)


async def register_until_done(link: Link, state: WorkerState) -> None:
    backoff = Backoff()
    while True:
        try:
            await register(link, state)
            health.current.answered(state.worker_id)
            return
        except DatabaseUnavailable as exc:
            health.current.unanswered(str(exc))
            log_unavailable(log, link, exc)
            await backoff.wait()


async def beat(link: Link, state: WorkerState) -> None:
    running = list(state.running.values())
    rows = await link.fetch(
        sql.WORKER_HEARTBEAT,
        {"worker_id": state.worker_id, "held_ids": [run.job.id for run in running],
         "held_tokens": [run.job.claim_token for run in running]},
    )
    row = rows[0]
    for claim_token in row["lost"]:
        job_id = state.running[claim_token].job.id if claim_token in state.running else None
        if state.stop_claim(claim_token, STOP_LOST):
            log.warning("job_stopped", job_id=job_id, worker_id=state.worker_id,
                        reason="the job is no longer held by this worker")
    if not row["registered"]:
        for claim_token in list(state.running):
            state.stop_claim(claim_token, STOP_LOST)
        log.error("worker_declared_lost", worker_id=state.worker_id,
                  reason="no heartbeat reached the database within the worker timeout")
        await register(link, state)
        state.wake_claimer()  # claims found nothing while unregistered: claim again now


async def heartbeat_loop(link: Link, settings: Settings, state: WorkerState) -> None:
    backoff = Backoff()
    delay = settings.heartbeat_interval
    while True:
        await anyio.sleep(delay)
        try:
            await beat(link, state)
            health.current.answered(state.worker_id)
            backoff.reset()
            delay = settings.heartbeat_interval
        except DatabaseUnavailable as exc:
            # Beat again as soon as the database is back (no full interval on top): the
            # heartbeat is already late.
            health.current.unanswered(str(exc))
            log_unavailable(log, link, exc)
            delay = min(backoff.next_delay(), settings.heartbeat_interval)

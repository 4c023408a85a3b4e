"""The listener: a LISTEN connection that wakes the claimer on new jobs and stops cancelled ones.

It reconnects by itself. After every (re)connect it wakes the claimer once, since
notifications sent while it was away are lost.
"""

from __future__ import annotations

import anyio
import psycopg
import structlog

from pgqueue import sql
from pgqueue.worker.link import Backoff, DatabaseUnavailable, Link
from pgqueue.worker.state import STOP_CANCELLED, WorkerState

log = structlog.get_logger("pgqueue.listener")


async def listen_loop(link: Link, state: WorkerState) -> None:
    backoff = Backoff()
    while True:
        try:
            connection = await link.connect()
            await connection.execute(sql.LISTEN_JOBS)
            await connection.execute(sql.LISTEN_CANCEL)
            log.debug("listening", worker_id=state.worker_id)
            backoff.reset()
            state.wake_claimer()
            async for notification in connection.notifies():
                if notification.channel == sql.CHANNEL_JOBS:
                    state.wake_claimer()
                elif notification.channel == sql.CHANNEL_CANCEL and state.stop_job(
                    notification.payload, STOP_CANCELLED
                ):
                    log.info("job_cancel_received", job_id=notification.payload,
                             worker_id=state.worker_id)
            # notifies() ends only when the connection closes.
            raise DatabaseUnavailable("the LISTEN connection closed")
        except (DatabaseUnavailable, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            await link.close()
            full = isinstance(exc, DatabaseUnavailable) and exc.server_full
            (log.debug if full else log.warning)("listener_reconnecting", error=str(exc).strip())
            await anyio.sleep(backoff.next_delay())

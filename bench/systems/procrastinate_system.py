"""procrastinate 3.x with its psycopg 3 connector.

Worker: ``app.run_worker_async(concurrency=slots)`` with LISTEN/NOTIFY on (the default), the
default polling interval, finished jobs kept (the default). The task is an ``async def`` no-op,
which is what procrastinate's concurrency is for. The connection pool gets ``slots + 2``
connections (one per concurrent job, plus the fetching and the listening connection), so no job
waits for a connection. Enqueue: ``defer_async`` (one job) and ``batch_defer_async`` (bulk).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import procrastinate

from bench.record import record_run
from bench.systems.base import WorkerConfig

TASK = "bench_noop"


def make_app(url: str, pool_size: int) -> tuple[procrastinate.App, Any]:
    connector = procrastinate.PsycopgConnector(
        conninfo=url, min_size=min(pool_size, 4), max_size=pool_size
    )
    app = procrastinate.App(connector=connector)

    @app.task(name=TASK)
    async def bench_noop(key: int) -> None:
        record_run(key)

    return app, bench_noop


class ProcrastinateEnqueuer:
    def __init__(self, task: Any) -> None:
        self.task = task

    async def one(self, key: int) -> None:
        await self.task.defer_async(key=key)

    async def many(self, keys: Sequence[int]) -> None:
        await self.task.batch_defer_async(*({"key": key} for key in keys))


class ProcrastinateSystem:
    name = "procrastinate"
    label = "procrastinate"
    queue_table = "procrastinate_jobs"
    unfinished_sql = "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
    succeeded_sql = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"

    def install(self, url: str) -> None:
        async def apply() -> None:
            app, _ = make_app(url, 2)
            async with app.open_async():
                await app.schema_manager.apply_schema_async()

        asyncio.run(apply())

    @contextlib.asynccontextmanager
    async def enqueuer(self, url: str) -> AsyncIterator[ProcrastinateEnqueuer]:
        app, task = make_app(url, 2)
        async with app.open_async():
            yield ProcrastinateEnqueuer(task)

    def describe(self, slots: int) -> str:
        return f"run_worker_async(concurrency={slots}), listen_notify on, pool max_size={slots + 2}"

    def serve(self, config: WorkerConfig) -> None:
        logging.basicConfig(level=logging.WARNING)
        asyncio.run(self._serve(config))

    @staticmethod
    async def _serve(config: WorkerConfig) -> None:
        app, _ = make_app(config.url, config.slots + 2)
        async with app.open_async():
            # procrastinate installs its own SIGTERM/SIGINT handlers and stops gracefully.
            await app.run_worker_async(
                concurrency=config.slots, wait=True, install_signal_handlers=True
            )

"""pgqueuer 1.6, with its asyncpg driver or its psycopg driver.

Worker: one ``QueueManager`` per process on one connection, the job queue only (no scheduler),
``run(batch_size=slots)`` and no ``max_concurrent_tasks`` cap: the settings of pgqueuer's own
benchmark tool (batch size 10, unlimited tasks), where the batch size plays the role of the
slots. (pgqueuer refuses a cap below twice the batch size, so "1 slot" cannot be a hard cap.)
The entrypoint is an ``async def`` no-op. Enqueue: ``Queries.enqueue`` with one job, and with
lists (its batch path, one statement per call).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import psycopg
from pgqueuer import AsyncpgDriver, PsycopgDriver, Queries, QueueManager
from pgqueuer.models import Job

from bench.record import record_run
from bench.systems.base import WorkerConfig

ENTRYPOINT = "bench_noop"


class PgqueuerEnqueuer:
    def __init__(self, queries: Queries) -> None:
        self.queries = queries

    async def one(self, key: int) -> None:
        await self.queries.enqueue(ENTRYPOINT, str(key).encode())

    async def many(self, keys: Sequence[int]) -> None:
        await self.queries.enqueue(
            [ENTRYPOINT] * len(keys), [str(key).encode() for key in keys], [0] * len(keys)
        )


class PgqueuerSystem:
    queue_table = "pgqueuer"
    # Finished jobs leave the queue table for pgqueuer_log.
    unfinished_sql = "SELECT count(*) FROM pgqueuer"
    succeeded_sql = "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'"

    def __init__(self, driver: str) -> None:
        if driver not in ("asyncpg", "psycopg"):
            raise ValueError(driver)
        self.driver = driver
        self.name = f"pgqueuer-{driver}"
        self.label = f"pgqueuer ({driver})"

    @contextlib.asynccontextmanager
    async def _driver(self, url: str) -> AsyncIterator[Any]:
        if self.driver == "asyncpg":
            connection = await asyncpg.connect(url)
            try:
                yield AsyncpgDriver(connection)
            finally:
                await connection.close()
        else:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                yield PsycopgDriver(conn)

    def install(self, url: str) -> None:
        async def apply() -> None:
            async with self._driver(url) as driver:
                await Queries(driver).install()

        asyncio.run(apply())

    @contextlib.asynccontextmanager
    async def enqueuer(self, url: str) -> AsyncIterator[PgqueuerEnqueuer]:
        async with self._driver(url) as driver:
            yield PgqueuerEnqueuer(Queries(driver))

    def describe(self, slots: int) -> str:
        return f"QueueManager.run(batch_size={slots}), no max_concurrent_tasks, {self.driver}"

    def serve(self, config: WorkerConfig) -> None:
        asyncio.run(self._serve(config))

    async def _serve(self, config: WorkerConfig) -> None:
        async with self._driver(config.url) as driver:
            manager = QueueManager(Queries(driver))

            @manager.entrypoint(ENTRYPOINT)
            async def bench_noop(job: Job) -> None:
                record_run(int(job.payload or b"-1"))

            loop = asyncio.get_running_loop()
            for number in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(number, manager.shutdown.set)
            await manager.run(batch_size=config.slots)

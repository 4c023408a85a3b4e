"""The floor: minimal hand-written SKIP LOCKED loops over a small table, with psycopg 3 (async).

- ``raw``: each slot has its own connection and runs one job per transaction
  (``SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1``, run, ``UPDATE``, ``COMMIT``): the cost of one
  commit per job.
- ``raw-batched``: one loop per process claims up to 100 jobs in one statement (marking them
  running), runs them, and writes them all back in one statement.

Both wake on a statement-level NOTIFY trigger, like pgqueue, and poll once a second otherwise.
No retries, no fencing, no heartbeat: what is left when everything a queue promises is removed.

For the harness's own test, the worker option ``run_twice`` (a list of keys) makes these loops
record those jobs twice, as a queue that ran a job twice would.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg

from bench.record import record_run
from bench.systems.base import WorkerConfig

SCHEMA = """
CREATE TABLE raw_jobs (
    id bigserial PRIMARY KEY,
    key integer NOT NULL,
    status text NOT NULL DEFAULT 'pending',
    run_at timestamptz NOT NULL DEFAULT now(),
    done_at timestamptz
);
CREATE INDEX raw_jobs_due ON raw_jobs (status, run_at);
CREATE FUNCTION raw_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('raw_jobs', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER raw_jobs_notify AFTER INSERT ON raw_jobs
FOR EACH STATEMENT EXECUTE FUNCTION raw_jobs_notify();
"""

ENQUEUE_ONE = "INSERT INTO raw_jobs (key) VALUES (%s)"
ENQUEUE_MANY = "INSERT INTO raw_jobs (key) SELECT unnest(%s::integer[])"

CLAIM_ONE = """
SELECT id, key FROM raw_jobs
WHERE status = 'pending' AND run_at <= now()
ORDER BY run_at
LIMIT 1
FOR UPDATE SKIP LOCKED
"""
FINISH_ONE = "UPDATE raw_jobs SET status = 'done', done_at = now() WHERE id = %s"

CLAIM_MANY = """
UPDATE raw_jobs SET status = 'running'
WHERE id IN (
    SELECT id FROM raw_jobs
    WHERE status = 'pending' AND run_at <= now()
    ORDER BY run_at
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, key
"""
FINISH_MANY = "UPDATE raw_jobs SET status = 'done', done_at = now() WHERE id = ANY(%s)"

BATCH = 100
IDLE_POLL = 1.0


class RawEnqueuer:
    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.connection = connection

    async def one(self, key: int) -> None:
        await self.connection.execute(ENQUEUE_ONE, (key,))

    async def many(self, keys: Sequence[int]) -> None:
        await self.connection.execute(ENQUEUE_MANY, (list(keys),))


class Wake:
    """A NOTIFY listener; waiters take ``current`` before they look for work, so none is lost."""

    def __init__(self) -> None:
        self.current = asyncio.Event()

    def fire(self) -> None:
        fired, self.current = self.current, asyncio.Event()
        fired.set()

    async def listen(self, url: str) -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("LISTEN raw_jobs")
            self.fire()
            async for _ in conn.notifies():
                self.fire()


async def sleep_until(event: asyncio.Event, longest: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(longest):
            await event.wait()


def run(key: int, twice: frozenset[int]) -> None:
    record_run(key)
    if key in twice:
        record_run(key)


async def one_job_slot(url: str, wake: Wake, stop: asyncio.Event, twice: frozenset[int]) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        while not stop.is_set():
            woken = wake.current
            async with conn.transaction():
                row = await (await conn.execute(CLAIM_ONE)).fetchone()
                if row is not None:
                    run(row[1], twice)
                    await conn.execute(FINISH_ONE, (row[0],))
            if row is None:
                await sleep_until(woken, IDLE_POLL)


async def batched_loop(url: str, wake: Wake, stop: asyncio.Event, twice: frozenset[int]) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            woken = wake.current
            rows = await (await conn.execute(CLAIM_MANY, (BATCH,))).fetchall()
            for _, key in rows:
                run(key, twice)
            if rows:
                await conn.execute(FINISH_MANY, ([job_id for job_id, _ in rows],))
            if len(rows) < BATCH:
                await sleep_until(woken, IDLE_POLL)


class RawSystem:
    queue_table = "raw_jobs"
    unfinished_sql = "SELECT count(*) FROM raw_jobs WHERE status <> 'done'"
    succeeded_sql = "SELECT count(*) FROM raw_jobs WHERE status = 'done'"

    def __init__(self, batched: bool) -> None:
        self.batched = batched
        self.name = "raw-batched" if batched else "raw"
        self.label = "raw loop, batched" if batched else "raw loop, 1 job/txn"

    def install(self, url: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SCHEMA)

    @contextlib.asynccontextmanager
    async def enqueuer(self, url: str) -> AsyncIterator[RawEnqueuer]:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            yield RawEnqueuer(conn)

    def describe(self, slots: int) -> str:
        if self.batched:
            return f"one loop per process, claims {BATCH} per statement, writes back in one"
        return f"{slots} connection(s) per process, one job per transaction"

    def serve(self, config: WorkerConfig) -> None:
        asyncio.run(self._serve(config))

    async def _serve(self, config: WorkerConfig) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, stop.set)
        wake = Wake()
        twice = frozenset(config.options.get("run_twice", ()))
        listener = asyncio.create_task(wake.listen(config.url))
        if self.batched:
            loops = [asyncio.create_task(batched_loop(config.url, wake, stop, twice))]
        else:
            loops = [
                asyncio.create_task(one_job_slot(config.url, wake, stop, twice))
                for _ in range(config.slots)
            ]
        await stop.wait()
        wake.fire()
        await asyncio.gather(*loops, return_exceptions=True)
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener

"""pgqueue under test: its public enqueue API and its real ``Worker``.

The no-op job is a module-level target (``bench.pgqueue_jobs.noop_target``) given to
``Worker(settings, target=...)``; with ``isolation="inline"`` it runs in the worker's thread, with
``isolation="process"`` in the child-process pool. The real path instead runs pgqueue's own
``run_job`` (fetch the file, look up the extractor, serialise the result) with a trivial
extractor registered for ``pdf``, over small local ``file://`` files named by the job's key.

Worker settings: pgqueue defaults, except ``slots`` (the measured configuration),
``isolation`` (as measured) and ``log_level="warning"`` (the peers log little by default too).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import psycopg

from bench.pgqueue_jobs import TRIVIAL_EXTRACTOR, noop_target, noop_target_async
from bench.systems.base import WorkerConfig
from pgqueue import JobRequest, enqueue, enqueue_bulk, extractors, logs
from pgqueue.jobrun import run_job
from pgqueue.migrate import upgrade
from pgqueue.settings import Settings


def job_request(key: int, real_folder: Path | None = None) -> JobRequest:
    if real_folder is not None:
        return JobRequest(
            filename=f"{key}.pdf", file_url=(real_folder / f"{key}.pdf").as_uri(),
            file_size=16, format="pdf",
        )
    return JobRequest(
        filename=f"bench-{key}.pdf", file_url=f"s3://bench/{key}", file_size=16, format="pdf"
    )


class PgqueueEnqueuer:
    def __init__(self, connection: psycopg.Connection[Any], real_folder: Path | None) -> None:
        self.connection = connection
        self.real_folder = real_folder

    async def one(self, key: int) -> None:
        enqueue(self.connection, job_request(key, self.real_folder))

    async def many(self, keys: Sequence[int]) -> None:
        enqueue_bulk(self.connection, (job_request(key, self.real_folder) for key in keys))


class PgqueueSystem:
    queue_table = "extraction_jobs"
    unfinished_sql = (
        "SELECT count(*) FROM extraction_jobs WHERE status IN ('pending', 'processing')"
    )
    succeeded_sql = "SELECT count(*) FROM extraction_jobs WHERE status = 'completed'"

    def __init__(self, real_folder: Path | None = None, *, coroutine: bool = False) -> None:
        # With a folder, job N points at the file N.pdf in it (the real path).
        self.real_folder = real_folder
        # The no-op as a coroutine function, run on the event loop like the peers' no-ops.
        self.coroutine = coroutine
        self.name = "pgqueue-async" if coroutine else "pgqueue"
        self.label = "pgqueue (async no-op)" if coroutine else "pgqueue"

    def install(self, url: str) -> None:
        upgrade(url)

    @contextlib.asynccontextmanager
    async def enqueuer(self, url: str) -> AsyncIterator[PgqueueEnqueuer]:
        with psycopg.connect(url, autocommit=True) as conn:
            yield PgqueueEnqueuer(conn, self.real_folder)

    def describe(self, slots: int) -> str:
        target = "async def no-op (on the event loop)" if self.coroutine else "def no-op (in a thread)"
        return (f"Worker(settings, target={target}), slots={slots}, isolation=inline, "
                "log_level=warning, defaults otherwise")

    @staticmethod
    def settings(config: WorkerConfig) -> Settings:
        options = dict(config.options)
        real = bool(options.pop("real", False))
        values: dict[str, Any] = {
            "database_url": config.url,
            "slots": config.slots,
            "isolation": "inline",
            "log_level": "warning",
            "log_format": "json",
        }
        if real:
            values["extractors"] = {"pdf": TRIVIAL_EXTRACTOR}
        # The rest are pgqueue settings as measured (isolation, file_roots, ...).
        values.update(options)
        return Settings(**values)

    def serve(self, config: WorkerConfig) -> None:
        from pgqueue.worker.main import run

        settings = self.settings(config)
        logs.configure(settings.log_format, settings.log_level)
        extractors.register_many(settings.extractors)
        if config.options.get("real"):
            run(settings, run_job)
        else:
            run(settings, noop_target_async if self.coroutine else noop_target)

"""The jobs pgqueue runs in the benchmark. A module of its own with few imports: in process
isolation it is loaded by the fork server and by every child, like a user's extractor module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.record import record_run
from pgqueue.jobrun import JobInput, Outcome
from pgqueue.settings import Settings

TRIVIAL_EXTRACTOR = "bench.pgqueue_jobs:trivial_extract"


def noop_target(job: JobInput, settings: Settings) -> Outcome:
    """The benchmark job: record that it ran (its key ends the URL), succeed with ``{}``."""
    record_run(job.file_url.rpartition("/")[2])
    return Outcome(job.id, "{}")


async def noop_target_async(job: JobInput, settings: Settings) -> Outcome:
    """The same job as a coroutine function: pgqueue runs it on the worker's event loop, as
    procrastinate and pgqueuer run their ``async def`` no-op."""
    record_run(job.file_url.rpartition("/")[2])
    return Outcome(job.id, "{}")


def trivial_extract(path: Path, options: dict[str, Any]) -> dict[str, Any]:
    """An extractor that reads nothing (the file is named by the job's key): the real path's
    cost without an extractor's."""
    record_run(path.stem)
    return {"metadata": {"bytes": path.stat().st_size}}

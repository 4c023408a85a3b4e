"""Extractors and run targets for the child-pool tests.

Children import this module by name (``tests.worker.plugins``), so everything here is a
module-level function. The extractors that run for a while announce themselves by writing
their pid to ``options["started"]``, so a test can wait for the job to really be running.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from pgqueue import extractors
from pgqueue.errors import CorruptFile, StorageUnavailable
from pgqueue.jobrun import JobInput, Outcome, to_json
from pgqueue.settings import Settings

MODULE = __name__
MIB = 1024 * 1024


def extractor_settings(**overrides: Any) -> Settings:
    """Settings with every extractor of this module registered under its own name."""
    names = ("succeed", "crash", "hang", "allocate", "raise_permanent", "raise_transient",
             "echo_pid", "slow")
    return Settings(extractors={name: f"{MODULE}:{name}" for name in names}, **overrides)


# --- run targets -------------------------------------------------------------------------------


def local_target(job: JobInput, settings: Settings) -> Outcome:
    """Like ``run_job`` without the fetch: ``job.file_url`` is a local path."""
    started = time.monotonic()
    try:
        result = extractors.get(job.format)(Path(job.file_url), dict(job.options))
        return Outcome(job.id, to_json(result), duration=time.monotonic() - started)
    except Exception as exc:
        return Outcome.failure(job.id, exc, time.monotonic() - started)


def noop_target(job: JobInput, settings: Settings) -> Outcome:
    return Outcome(job.id, "{}")


# --- extractors --------------------------------------------------------------------------------


def _announce(options: Mapping[str, Any]) -> None:
    if "started" in options:
        # Written whole, then renamed: a reader never sees a partial file.
        partial = options["started"] + ".partial"
        Path(partial).write_text(json.dumps({"pid": os.getpid(), "tempdir": tempfile.gettempdir()}))
        os.replace(partial, options["started"])


def succeed(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": path.name, "text": path.read_text(), "options": dict(options)}


def crash(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    if options.get("how") == "exit":
        os._exit(int(options.get("code", 3)))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a segfault here leaves no core file
    os.kill(os.getpid(), getattr(signal, options.get("signal", "SIGKILL")))
    raise AssertionError("still alive after the signal")


def hang(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    _announce(options)
    threading.Event().wait()
    raise AssertionError("unreachable")


def allocate(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    _announce(options)
    hog = bytearray(options["mb"] * MIB)
    hog[::4096] = b"\x01" * len(range(0, len(hog), 4096))  # every page resident
    time.sleep(options.get("hold", 0))
    return {"allocated": len(hog)}


def raise_permanent(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    raise CorruptFile(f"{path.name} is broken on purpose")


def raise_transient(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    raise StorageUnavailable("the storage hiccups on purpose")


def echo_pid(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    return {"pid": os.getpid(), "tempdir": tempfile.gettempdir()}


def slow(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    _announce(options)
    began = time.monotonic()  # CLOCK_MONOTONIC is one clock for every process of the machine
    time.sleep(options["seconds"])
    return {"pid": os.getpid(), "began": began, "ended": time.monotonic()}


def wait_for_files(paths: list[Path], timeout: float) -> list[dict[str, Any]]:
    """Wait until each extractor announced itself; return what they wrote. Blocking."""
    deadline = time.monotonic() + timeout
    while not all(path.exists() for path in paths):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not started within {timeout} s: {[str(p) for p in paths]}")
        time.sleep(0.005)
    return [json.loads(path.read_text()) for path in paths]


# --- a worker to kill --------------------------------------------------------------------------


async def _hold_hanging_jobs(folder: Path, jobs: int) -> None:
    from pgqueue.worker.children import ChildPool

    pool = ChildPool(extractor_settings(job_timeout=600), jobs, target=local_target)
    markers = [folder / f"started-{n}" for n in range(jobs)]
    async with anyio.create_task_group() as group:
        for n, marker in enumerate(markers):
            job = JobInput(f"hang-{n}", str(folder), "hang", {"started": str(marker)})
            group.start_soon(pool.run, job)
        announced = await anyio.to_thread.run_sync(wait_for_files, markers, 60.0)
        report = {"children": sorted(pool.pids), "tempdirs": [a["tempdir"] for a in announced]}
        print(json.dumps(report), flush=True)
        await anyio.sleep_forever()


def hold_hanging_jobs() -> None:
    """Start a pool with hanging jobs, print its child pids, wait to be killed.

    Run as ``python -c "from tests.worker.plugins import hold_hanging_jobs; hold_hanging_jobs()"
    FOLDER JOBS``.
    """
    anyio.run(_hold_hanging_jobs, Path(sys.argv[1]), int(sys.argv[2]))

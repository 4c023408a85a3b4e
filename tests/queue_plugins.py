"""Extractors for queue tests, plugged in with PGQUEUE_EXTRACTORS. They run in real workers.

``scripted`` reads what to do from the job's file (JSON: a sleep, a mode, a gate file to wait
for), records every run in a shared run
log (one ``O_APPEND`` write per line, atomic), and counts its attempts in a state folder, so a
test can check afterwards that no job ran twice at the same time.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pgqueue.errors import CorruptFile, StorageUnavailable


def _append(path: str, line: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


def _attempt(state_dir: str, name: str) -> int:
    counter = os.path.join(state_dir, name + ".attempts")
    _append(counter, "x")
    return os.path.getsize(counter)


def _wait_for(gate: str, name: str) -> None:
    """Hold the job until the test creates the file ``gate``: a test decides when it ends."""
    deadline = time.monotonic() + 120
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise StorageUnavailable(f"{name}: its gate never opened")
        time.sleep(0.01)


def scripted(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    script = json.loads(Path(path).read_text())
    name = Path(path).name
    run_log = os.environ["PGQUEUE_TEST_RUN_LOG"]
    attempt = _attempt(os.environ["PGQUEUE_TEST_STATE_DIR"], name)
    _append(run_log, f"{name} start {time.time():.6f} {os.getpid()}\n")
    try:
        if gate := script.get("gate"):
            _wait_for(gate, name)
        time.sleep(script.get("sleep", 0))
        mode = script.get("mode", "ok")
        if mode == "permanent":
            raise CorruptFile(f"{name} is broken on purpose")
        if mode == "flaky" and attempt <= script.get("fail_first", 1):
            raise StorageUnavailable(f"{name} attempt {attempt} failed on purpose")
        if mode == "always_transient":
            raise StorageUnavailable(f"{name} never works")
        if mode == "surrogate":  # JSON Python writes, jsonb refuses: a lone UTF-16 surrogate
            return {"text": "broken \ud800 text"}
        if mode == "crash":
            os._exit(3)  # kills whatever process runs it: a child, or with inline isolation the worker
        if mode == "hang":
            while True:
                time.sleep(1)
        if mode == "allocate":
            hog = bytearray(script["mebibytes"] * 1024 * 1024)
            for offset in range(0, len(hog), 4096):
                hog[offset] = 1  # touch every page so it is really resident
            return {"allocated": len(hog)}
        return {"name": name, "attempt": attempt, "options": dict(options)}
    finally:
        _append(run_log, f"{name} end {time.time():.6f} {os.getpid()}\n")


def noop(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    return {}

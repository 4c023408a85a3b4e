"""The systems under test, by name. Modules are imported on demand, so a worker process of one
system never loads another system's library."""

from __future__ import annotations

from typing import Any

from bench.systems.base import System

NAMES = ("pgqueue", "pgqueue-async", "pgqueuer-asyncpg", "pgqueuer-psycopg", "procrastinate", "raw", "raw-batched")


def get(name: str, **options: Any) -> System:
    if name in ("pgqueue", "pgqueue-async"):
        from bench.systems.pgqueue_system import PgqueueSystem

        return PgqueueSystem(**options, coroutine=name == "pgqueue-async")
    if name in ("pgqueuer-asyncpg", "pgqueuer-psycopg"):
        from bench.systems.pgqueuer_system import PgqueuerSystem

        return PgqueuerSystem(name.partition("-")[2])
    if name == "procrastinate":
        from bench.systems.procrastinate_system import ProcrastinateSystem

        return ProcrastinateSystem()
    if name in ("raw", "raw-batched"):
        from bench.systems.raw_system import RawSystem

        return RawSystem(batched=name == "raw-batched")
    raise KeyError(f"unknown system {name!r}; known: {', '.join(NAMES)}")

"""The benchmark, in one command: ``python -m bench.run [--quick]``.

Starts its own throwaway PostgreSQL 16, measures pgqueue beside procrastinate, pgqueuer (asyncpg
and psycopg drivers) and two raw psycopg loops, and writes ``bench/results/results.json``,
``report.md`` and ``drain.png``. Every measurement is repeated (three times by default) with the
order of the systems rotated between repetitions; the report gives medians with min-max.

A measurement that fails (a job run twice or never, a worker that died) is kept in the results
as a failure, the run goes on, and the command exits 1 at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench import report
from bench.scenarios import Bench
from bench.server import bench_server
from bench.worker_main import PROFILE_ENV

RESULTS = Path(__file__).resolve().parent / "results"

DRAIN_SYSTEMS = (
    "pgqueue", "pgqueue-async", "pgqueuer-asyncpg", "pgqueuer-psycopg", "procrastinate", "raw",
    "raw-batched",
)
ENQUEUE_SYSTEMS = ("pgqueue", "pgqueuer-asyncpg", "pgqueuer-psycopg", "procrastinate", "raw")
LATENCY_SYSTEMS = DRAIN_SYSTEMS
SHAPES = ((1, 1), (1, 10), (2, 10))
SCENARIOS = ("pgbench", "enqueue", "drain", "latency", "table", "real", "idle", "memory")

T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    reps: int
    drain_n: int
    single_n: int
    bulk_n: int
    latency_n: int
    table_sizes: tuple[int, ...]
    real_n: int
    pgbench_seconds: int
    idle_workers: int
    idle_seconds: float
    memory_rounds: int
    memory_per_round: int


FULL = Plan(
    reps=3, drain_n=10_000, single_n=5_000, bulk_n=100_000, latency_n=250,
    table_sizes=(0, 100_000, 1_000_000), real_n=5_000, pgbench_seconds=5,
    idle_workers=10, idle_seconds=30, memory_rounds=4, memory_per_round=10_000,
)
QUICK = Plan(
    reps=1, drain_n=1_000, single_n=500, bulk_n=20_000, latency_n=100,
    table_sizes=(0, 100_000), real_n=1_000, pgbench_seconds=2,
    idle_workers=10, idle_seconds=10, memory_rounds=2, memory_per_round=1_000,
)


def rotated(items: Sequence[T], rep: int) -> list[T]:
    shift = rep % len(items) if items else 0
    return [*items[shift:], *items[:shift]]


class Runner:
    def __init__(self, bench: Bench, plan: Plan, systems: Sequence[str]) -> None:
        self.bench = bench
        self.plan = plan
        self.systems = systems
        self.results: list[dict[str, Any]] = []
        self.failures = 0

    def measure(
        self, scenario: str, what: dict[str, Any], rep: int,
        call: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any,
    ) -> None:
        label = " ".join(f"{key}={value}" for key, value in what.items())
        began = time.monotonic()
        entry: dict[str, Any] = {"scenario": scenario, "rep": rep, **what}
        try:
            entry.update(call(*args, **kwargs))
            status = summary(entry)
        except Exception as exc:
            self.failures += 1
            entry["error"] = f"{type(exc).__name__}: {exc}"
            status = "FAILED " + entry["error"]
            traceback.print_exc()
        entry["wall_seconds"] = time.monotonic() - began
        entry["load_1min"] = round(os.getloadavg()[0], 2)  # others' work shows up here
        self.results.append(entry)
        print(f"[{scenario} rep {rep + 1}] {label}: {status} ({entry['wall_seconds']:.0f} s)", flush=True)

    def chosen(self, candidates: Sequence[str]) -> list[str]:
        return [name for name in candidates if name in self.systems]

    # --- scenarios ---------------------------------------------------------------------------

    def pgbench(self, rep: int) -> None:
        for processes, slots in rotated(SHAPES, rep):
            clients = processes * slots
            self.measure("pgbench", {"clients": clients}, rep,
                         self.bench.pgbench, clients, self.plan.pgbench_seconds)

    def enqueue(self, rep: int) -> None:
        plan = self.plan
        for system in rotated(self.chosen(ENQUEUE_SYSTEMS), rep):
            self.measure("enqueue", {"system": system, "mode": "single"}, rep,
                         self.bench.enqueue, system, "single", plan.single_n)
            self.measure("enqueue", {"system": system, "mode": "bulk"}, rep,
                         self.bench.enqueue, system, "bulk", plan.bulk_n)
        if "pgqueue" in self.systems:
            self.measure("enqueue", {"system": "pgqueue", "mode": "bulk-one-call"}, rep,
                         self.bench.enqueue, "pgqueue", "bulk-one-call", plan.bulk_n)

    def drain(self, rep: int) -> None:
        for system in rotated(self.chosen(DRAIN_SYSTEMS), rep):
            for processes, slots in SHAPES:
                self.measure("drain", {"system": system, "shape": f"{processes}x{slots}"}, rep,
                             self.bench.drain, system, processes, slots, self.plan.drain_n)

    def latency(self, rep: int) -> None:
        for system in rotated(self.chosen(LATENCY_SYSTEMS), rep):
            self.measure("latency", {"system": system}, rep,
                         self.bench.latency, system, self.plan.latency_n)

    def table(self, rep: int) -> None:
        if "pgqueue" not in self.systems:
            return
        for rows in rotated(self.plan.table_sizes, rep):
            self.measure("table", {"finished_rows": rows}, rep, self.table_drain, rows)

    def table_drain(self, rows: int) -> dict[str, Any]:
        template = self.bench.finished_rows_template(rows)
        return self.bench.drain("pgqueue", 1, 10, self.plan.drain_n, template=template)

    def real(self, rep: int) -> None:
        if "pgqueue" not in self.systems:
            return
        from bench.systems.pgqueue_system import PgqueueSystem

        folder = self.bench.work / "files"
        if not folder.exists():
            folder.mkdir()
            for key in range(self.plan.real_n):  # one small file per job, named by its key
                (folder / f"{key}.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
        variants: list[tuple[str, dict[str, Any], PgqueueSystem]] = [
            ("async no-op target, on the event loop", {}, PgqueueSystem(coroutine=True)),
            ("inline, no-op target", {"isolation": "inline"}, PgqueueSystem()),
            ("process, no-op target", {"isolation": "process"}, PgqueueSystem()),
            ("inline, run_job + trivial extractor",
             {"isolation": "inline", "real": True, "file_roots": [str(folder)]},
             PgqueueSystem(folder)),
            ("process, run_job + trivial extractor",
             {"isolation": "process", "real": True, "file_roots": [str(folder)]},
             PgqueueSystem(folder)),
        ]
        for variant, options, system in rotated(variants, rep):
            self.measure("real", {"variant": variant}, rep, self.bench.drain,
                         system.name, 1, 10, self.plan.real_n, options=options, system=system)

    def idle(self, rep: int) -> None:
        if rep == 0 and "pgqueue" in self.systems:
            self.measure("idle", {"workers": self.plan.idle_workers}, rep, self.bench.idle_cost,
                         self.plan.idle_workers, self.plan.idle_seconds, {"isolation": "process"})

    def memory(self, rep: int) -> None:
        if rep == 0 and "pgqueue" in self.systems:
            self.measure("memory", {"isolation": "process"}, rep, self.bench.memory,
                         self.plan.memory_rounds, self.plan.memory_per_round, {"isolation": "process"})


def summary(entry: dict[str, Any]) -> str:
    if "rate" in entry:
        return f"{entry['rate']:,.0f} jobs/s"
    if "tps" in entry:
        return f"{entry['tps']:,.0f} tps"
    if "p50_ms" in entry:
        return f"p50 {entry['p50_ms']:.1f} ms, p99 {entry['p99_ms']:.1f} ms"
    if "statements_per_s" in entry:
        return f"{entry['statements_per_s']:.2f} statements/s"
    if "samples" in entry:
        return ", ".join(f"{sample['parent_rss_kib'] // 1024} MiB" for sample in entry["samples"])
    return "done"


def source_version() -> str:
    """The commit measured, and whether the working tree differed from it."""
    import pgqueue

    root = RESULTS.parent.parent
    imported = Path(pgqueue.__file__).resolve().parent.parent
    if imported != root:
        return f"imported from {imported}"

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=root, capture_output=True,
                                text=True, check=False)
        return result.stdout.strip()

    dirty = git("status", "--porcelain", "--", "pgqueue", "migrations")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes in pgqueue/" if dirty else "")


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("pgqueue", "procrastinate", "pgqueuer", "asyncpg", "psycopg", "anyio"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    return found


@contextlib.contextmanager
def work_folder(keep: bool) -> Iterator[Path]:
    if keep:
        folder = Path(tempfile.mkdtemp(prefix="pgqueue-bench-work-"))
        print(f"work folder (kept): {folder}", flush=True)
        yield folder
    else:
        with tempfile.TemporaryDirectory(prefix="pgqueue-bench-work-") as name:
            yield Path(name)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small N, one repetition (~2 min)")
    parser.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    parser.add_argument("--only", help=f"comma-separated scenarios: {','.join(SCENARIOS)}")
    parser.add_argument("--systems", help=f"comma-separated systems: {','.join(DRAIN_SYSTEMS)}")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--profile", type=Path, help="run workers under cProfile, profiles here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, records)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse(sys.argv[1:] if argv is None else argv)
    plan = QUICK if arguments.quick else FULL
    if arguments.reps:
        plan = Plan(**{**asdict(plan), "reps": arguments.reps})
    scenarios = arguments.only.split(",") if arguments.only else list(SCENARIOS)
    chosen = arguments.systems.split(",") if arguments.systems else list(DRAIN_SYSTEMS)
    for name in scenarios:
        if name not in SCENARIOS:
            raise SystemExit(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    if arguments.profile:
        arguments.profile.mkdir(parents=True, exist_ok=True)
        os.environ[PROFILE_ENV] = str(arguments.profile.resolve())
    meta: dict[str, Any] = {
        "plan": asdict(plan), "quick": arguments.quick, "cpus": os.cpu_count(),
        "versions": versions(), "source": source_version(), "load_before": load_average(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "scenarios": scenarios,
    }
    print(f"load average before: {meta['load_before']} on {meta['cpus']} CPUs", flush=True)
    began = time.monotonic()
    with work_folder(arguments.keep) as work, bench_server() as server:
        meta["postgres"] = server.settings()
        runner = Runner(Bench(server, work), plan, chosen)
        for scenario in scenarios:
            for rep in range(plan.reps):
                getattr(runner, scenario)(rep)
    meta["load_after"] = load_average()
    meta["minutes"] = (time.monotonic() - began) / 60
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "results.json").write_text(
        json.dumps({"meta": meta, "results": runner.results}, indent=1) + "\n"
    )
    report.write(arguments.out)
    print(f"done in {meta['minutes']:.1f} min, load average after: {meta['load_after']}; "
          f"report: {arguments.out / 'report.md'}", flush=True)
    return 1 if runner.failures else 0


if __name__ == "__main__":
    sys.exit(main())

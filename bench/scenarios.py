"""One measurement of each kind. ``bench.run`` repeats them and rotates their order.

Every drain follows the same steps for every system:

1. a fresh database cloned from the system's template; N jobs queued through the system's own
   bulk path (untimed); ``VACUUM ANALYZE`` of the queue table; ``CHECKPOINT``;
2. the harness takes an ``ACCESS EXCLUSIVE`` lock on the queue table, then starts the worker
   processes; they connect and block on their first statement that touches the table;
3. when every process has said it is ready and the database shows them waiting on the lock,
   the clock starts and the lock is released (``COMMIT``): every worker starts at once, already
   connected;
4. the clock stops when the run record holds N runs and the database shows no unfinished job
   (so a batched write-back is inside the time);
5. after the workers are stopped, the record must hold every key exactly once, and the database
   must count N succeeded jobs; otherwise the measurement fails.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench import systems
from bench.processes import WorkerProcess, cpu_seconds, descendants_of, rss_kib, workers
from bench.record import RunRecord
from bench.server import BenchServer, scalar, vacuum_analyze
from bench.systems.base import BULK_BATCH, System, WorkerConfig

PREFILL_BATCH = 10_000
LATENCY_RATE = 50.0  # jobs per second
LATENCY_WARMUP = 5
STALL_LIMIT = 30.0  # seconds without a job run: the drain has failed


def chunks(keys: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


@dataclass
class Bench:
    server: BenchServer
    work: Path
    templates: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.logs = self.work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    # --- databases ---------------------------------------------------------------------------

    def template(self, system_name: str) -> str:
        """A database with the system's schema installed, made once per run."""
        if system_name not in self.templates:
            name = f"tpl_{system_name.replace('-', '_')}"
            url = self.server.create_database(name)
            systems.get(system_name).install(url)
            self.templates[system_name] = name
        return self.templates[system_name]

    def new_record(self) -> RunRecord:
        return RunRecord(self.work / "records" / f"{uuid.uuid4().hex}.log").create()

    # --- drain -------------------------------------------------------------------------------

    def drain(
        self,
        system_name: str,
        processes: int,
        slots: int,
        n: int,
        *,
        options: dict[str, Any] | None = None,
        system: System | None = None,
        template: str | None = None,
    ) -> dict[str, Any]:
        system = system or systems.get(system_name)
        with self.server.fresh_database(template or self.template(system_name)) as url:
            asyncio.run(enqueue_many(system, url, range(n), PREFILL_BATCH))
            succeeded_before = scalar(url, system.succeeded_sql)  # finished rows already there
            vacuum_analyze(url, system.queue_table)
            self.server.checkpoint()
            record = self.new_record()
            configs = [
                WorkerConfig(system_name, url, slots, str(record.path), options or {})
                for _ in range(processes)
            ]
            with psycopg.connect(url) as gate, psycopg.connect(url, autocommit=True) as watch:
                table_oid = watch.execute(
                    "SELECT %s::regclass::oid", (system.queue_table,)
                ).fetchone()[0]  # type: ignore[index]
                gate.execute(
                    sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                        sql.Identifier(system.queue_table)
                    )
                )
                with workers(configs, self.logs) as started:
                    wait_blocked(watch, table_oid, processes, started)
                    cpu_before = self.cpu(started)
                    began = time.perf_counter()
                    gate.commit()
                    seconds = wait_drained(watch, system, record, n, started, began)
                    cpu_after = self.cpu(started)
            record.check(range(n))
            succeeded = scalar(url, system.succeeded_sql) - succeeded_before
            if succeeded != n:
                raise AssertionError(f"{succeeded} jobs succeeded in the database, expected {n}")
        return {
            "seconds": seconds,
            "rate": n / seconds,
            "n": n,
            # CPU per 1,000 jobs, in ms: where the time goes (2 cores are shared by all).
            "worker_cpu_ms_per_1k": (cpu_after[0] - cpu_before[0]) * 1e6 / n,
            "db_cpu_ms_per_1k": (cpu_after[1] - cpu_before[1]) * 1e6 / n,
        }

    def cpu(self, started: list[WorkerProcess]) -> tuple[float, float]:
        return (
            sum(cpu_seconds(worker.pid, reaped=True) for worker in started),
            self.server.cpu_seconds(),
        )

    # --- enqueue -----------------------------------------------------------------------------

    def enqueue(self, system_name: str, mode: str, n: int) -> dict[str, Any]:
        system = systems.get(system_name)
        with self.server.fresh_database(self.template(system_name)) as url:
            self.server.checkpoint()
            if mode == "single":
                seconds = asyncio.run(enqueue_singles(system, url, range(n)))
            elif mode == "bulk":
                seconds = asyncio.run(enqueue_many(system, url, range(n), BULK_BATCH))
            elif mode == "bulk-one-call":
                seconds = asyncio.run(enqueue_many(system, url, range(n), n))
            else:
                raise ValueError(mode)
            counted = scalar(
                url, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(system.queue_table))
            )
            if counted != n:
                raise AssertionError(f"{counted} jobs in the table after enqueueing {n}")
        return {"seconds": seconds, "rate": n / seconds, "n": n}

    # --- latency -----------------------------------------------------------------------------

    def latency(self, system_name: str, n: int, slots: int = 10) -> dict[str, Any]:
        system = systems.get(system_name)
        with self.server.fresh_database(self.template(system_name)) as url:
            record = self.new_record()
            config = WorkerConfig(system_name, url, slots, str(record.path))
            with workers([config], self.logs) as started:
                sent = asyncio.run(paced_singles(system, url, n, record, started))
            record.check(range(n + LATENCY_WARMUP))
        waits = sorted((record.first_start(key) - sent[key]) * 1000 for key in range(n))
        return {
            "n": n,
            "p50_ms": percentile(waits, 50),
            "p95_ms": percentile(waits, 95),
            "p99_ms": percentile(waits, 99),
            "max_ms": waits[-1],
            "mean_ms": statistics.fmean(waits),
        }

    # --- table size --------------------------------------------------------------------------

    def finished_rows_template(self, rows: int) -> str:
        key = f"pgqueue-finished-{rows}"
        if key not in self.templates:
            name = f"tpl_pgqueue_finished_{rows}"
            url = self.server.create_database(name, self.template("pgqueue"))
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(FILL_FINISHED, {"rows": rows})
                conn.execute("VACUUM ANALYZE extraction_jobs")
            self.templates[key] = name
        return self.templates[key]

    # --- pgbench -----------------------------------------------------------------------------

    def pgbench_database(self) -> str:
        if "pgbench" not in self.templates:
            url = self.server.create_database("bench_pgbench")
            run_pgbench(self.server, url, ["-i", "-s", "10", "-q"])
            self.templates["pgbench"] = "bench_pgbench"
        return self.server.url_for(self.templates["pgbench"])

    def pgbench(self, clients: int, seconds: int) -> dict[str, Any]:
        url = self.pgbench_database()
        self.server.checkpoint()
        output = run_pgbench(
            self.server, url,
            ["-N", "-n", "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(seconds)],
        )
        match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", output)
        if not match:
            raise RuntimeError(f"pgbench printed no tps:\n{output}")
        return {"tps": float(match.group(1)), "clients": clients, "seconds": seconds}

    # --- idle cost ---------------------------------------------------------------------------

    def idle_cost(self, workers_count: int, seconds: float, options: dict[str, Any]) -> dict[str, Any]:
        with self.server.fresh_database(self.template("pgqueue")) as url:
            database = url.rpartition("/")[2]
            with self.server.admin() as admin:
                admin.execute(
                    sql.SQL("ALTER DATABASE {} SET log_statement = 'all'").format(
                        sql.Identifier(database)
                    )
                )
            record = self.new_record()
            configs = [
                WorkerConfig("pgqueue", url, 4, str(record.path), options)
                for _ in range(workers_count)
            ]
            with workers(configs, self.logs) as started:
                time.sleep(5)  # start-up statements are not idle cost
                for worker in started:
                    worker.check_alive()
                log_start = self.server.log_file.stat().st_size
                xacts_before, began = transactions(self.server, database), time.time()
                time.sleep(seconds)
                xacts_after, ended = transactions(self.server, database), time.time()
                time.sleep(0.5)  # let the log catch up
                statements = logged_statements(self.server.log_file, log_start, began, ended)
                rss = [rss_kib(worker.pid) for worker in started]
        elapsed = ended - began
        breakdown = statement_names(statements)
        return {
            "workers": workers_count,
            "seconds": elapsed,
            "statements_per_s": len(statements) / elapsed,
            "transactions_per_s": (xacts_after - xacts_before) / elapsed,
            "by_statement_per_s": {name: count / elapsed for name, count in breakdown.items()},
            "idle_rss_kib": rss,
        }

    # --- memory ------------------------------------------------------------------------------

    def memory(self, rounds: int, per_round: int, options: dict[str, Any]) -> dict[str, Any]:
        system = systems.get("pgqueue")
        with self.server.fresh_database(self.template("pgqueue")) as url:
            record = self.new_record()
            config = WorkerConfig("pgqueue", url, 10, str(record.path), options)
            samples: list[dict[str, Any]] = []
            with workers([config], self.logs) as started:
                worker = started[0]
                next_key = 0

                def drain(count: int) -> float:
                    nonlocal next_key
                    keys = range(next_key, next_key + count)
                    next_key += count
                    began = time.perf_counter()
                    asyncio.run(enqueue_many(system, url, keys, PREFILL_BATCH))
                    wait_drained_open(url, system, record, next_key, [worker])
                    return count / (time.perf_counter() - began)

                drain(1000)  # warm-up: imports, child processes, prepared paths
                time.sleep(2)
                samples.append(memory_sample(worker, "idle after 1,000 jobs"))
                for number in range(1, rounds + 1):
                    rate = drain(per_round)
                    samples.append(memory_sample(worker, f"after {number * per_round:,} jobs", rate))
                time.sleep(2)
                samples.append(memory_sample(worker, "idle at the end"))
            record.check(range(next_key))
        return {"samples": samples, "per_round": per_round, "rounds": rounds}


# --- helpers -----------------------------------------------------------------------------------

FILL_FINISHED = """
INSERT INTO extraction_jobs
    (filename, file_url, file_size, format, status, options, result, started_at, completed_at,
     worker_id, created_at, updated_at)
SELECT 'old-' || g || '.pdf', 's3://archive/old-' || g || '.pdf', 100000, 'pdf', 'completed',
       '{}'::jsonb, '{"metadata": {"pages": 1}}'::jsonb, now() - interval '1 day',
       now() - interval '1 day', gen_random_uuid(), now() - interval '1 day',
       now() - interval '1 day'
FROM generate_series(1, %(rows)s) AS g
"""


async def enqueue_many(system: System, url: str, keys: Sequence[int], batch: int) -> float:
    async with system.enqueuer(url) as enqueuer:
        began = time.perf_counter()
        for part in chunks(keys, batch):
            await enqueuer.many(part)
        return time.perf_counter() - began


async def enqueue_singles(system: System, url: str, keys: Sequence[int]) -> float:
    async with system.enqueuer(url) as enqueuer:
        began = time.perf_counter()
        for key in keys:
            await enqueuer.one(key)
        return time.perf_counter() - began


async def paced_singles(
    system: System, url: str, n: int, record: RunRecord, started: list[WorkerProcess]
) -> dict[int, float]:
    """Warm the worker up, then enqueue ``n`` jobs at ``LATENCY_RATE``; return send times."""
    sent: dict[int, float] = {}
    async with system.enqueuer(url) as enqueuer:
        for number, key in enumerate(range(n, n + LATENCY_WARMUP), start=1):
            await enqueuer.one(key)
            await wait_async(lambda number=number: record.poll() >= number, 60, "warm-up jobs", started)
        await asyncio.sleep(1.0)  # idle again
        began = time.perf_counter()
        for key in range(n):
            delay = began + key / LATENCY_RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[key] = time.time()
            await enqueuer.one(key)
        await wait_async(lambda: record.poll() >= n + LATENCY_WARMUP, 60, "all jobs", started)
    return sent


async def wait_async(condition: Any, limit: float, what: str, started: list[WorkerProcess]) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        for worker in started:
            worker.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {limit} s waiting for {what}")
        await asyncio.sleep(0.002)


def wait_blocked(
    watch: psycopg.Connection[Any], table_oid: int, processes: int, started: list[WorkerProcess]
) -> None:
    """Until at least one connection per process waits on the gate lock, and that count holds."""
    query = "SELECT count(DISTINCT pid) FROM pg_locks WHERE relation = %s AND NOT granted"
    deadline = time.monotonic() + 60
    stable_since, last = time.monotonic(), -1
    while True:
        for worker in started:
            worker.check_alive()
        waiting = watch.execute(query, (table_oid,)).fetchone()[0]  # type: ignore[index]
        now = time.monotonic()
        if waiting != last:
            stable_since, last = now, waiting
        if waiting >= processes and now - stable_since >= 0.3:
            return
        if now > deadline:
            raise TimeoutError(f"only {waiting} of {processes} worker(s) reached the gate")
        time.sleep(0.02)


def wait_drained(
    watch: psycopg.Connection[Any],
    system: System,
    record: RunRecord,
    n: int,
    started: list[WorkerProcess],
    began: float,
) -> float:
    """Seconds from ``began`` until all ``n`` ran and the database shows none unfinished."""
    deadline = time.monotonic() + 120 + n / 50
    checked = progressed = time.monotonic()
    seen = 0
    while record.poll() < n:
        now = time.monotonic()
        if record.lines > seen:
            seen, progressed = record.lines, now
        if now - checked > 0.5:
            for worker in started:
                worker.check_alive()
            checked = now
        if now > deadline or now - progressed > STALL_LIMIT:
            raise TimeoutError(f"only {record.lines} of {n} jobs ran (stalled or too slow)")
        time.sleep(0.002)
    # The database is asked only once every job ran, so polling does not load the drain.
    while watch.execute(system.unfinished_sql).fetchone()[0]:  # type: ignore[index]
        if time.monotonic() > deadline:
            raise TimeoutError("jobs ran but were not written back before the deadline")
        time.sleep(0.005)
    return time.perf_counter() - began


def wait_drained_open(
    url: str, system: System, record: RunRecord, n: int, started: list[WorkerProcess]
) -> None:
    with psycopg.connect(url, autocommit=True) as watch:
        wait_drained(watch, system, record, n, started, time.perf_counter())


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, round(pct / 100 * len(sorted_values) + 0.4999))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def run_pgbench(server: BenchServer, url: str, arguments: list[str]) -> str:
    result = subprocess.run(
        [str(server.bindir / "pgbench"), *arguments, url],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"pgbench failed: {result.stderr.strip()}")
    return result.stdout


def transactions(server: BenchServer, database: str) -> int:
    with server.admin() as admin:
        row = admin.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            (database,),
        ).fetchone()
    return int(row[0]) if row else 0


# "2026-11-29 08:55:01.123 UTC [1234] LOG:  execute <unnamed>: SELECT ..." (or "statement:");
# the server logs in UTC (``log_timezone=UTC``), continuation lines start with a tab.
_LOGGED = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) UTC \[\d+\] LOG:  (?:statement|execute [^:]*): (.*)$"
)


def logged_statements(log_file: Path, offset: int, began: float, ended: float) -> list[str]:
    """Statements the server logged (``log_statement=all``) between two wall-clock times."""
    with open(log_file, errors="replace") as handle:
        handle.seek(offset)
        lines = handle.read().splitlines()
    found: list[str] = []
    inside = False  # the current log entry is a statement within the window
    for line in lines:
        match = _LOGGED.match(line)
        if match:
            stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
            inside = began <= stamp.timestamp() <= ended
            if inside:
                found.append(match.group(2))
        elif inside and line.startswith("\t"):
            found[-1] += " " + line.strip()
        else:
            inside = False
    return found


def _normal(text: str) -> str:
    return " ".join(text.split()).rstrip(";").strip()


def _as_sent(statement: str) -> str:
    """A pgqueue statement as the server logs it: psycopg numbers ``%(name)s`` as ``$1``..."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${numbers.setdefault(match.group(1), len(numbers) + 1)}"

    return re.sub(r"%\((\w+)\)s", number, statement)


def statement_names(statements: list[str]) -> dict[str, int]:
    """Count statements by the name of the pgqueue ``sql`` constant they are, else by text."""
    from pgqueue import sql as pgqueue_sql

    named = {
        _normal(_as_sent(value)): name
        for name, value in vars(pgqueue_sql).items()
        if name.isupper() and isinstance(value, str)
    }
    counts: dict[str, int] = {}
    for statement in statements:
        text = _normal(statement)
        name = named.get(text) or text[:60]
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def memory_sample(worker: WorkerProcess, when: str, rate: float | None = None) -> dict[str, Any]:
    # The fork server, its job children and multiprocessing's resource tracker.
    children = descendants_of(worker.pid)
    return {
        "when": when,
        "parent_rss_kib": rss_kib(worker.pid),
        "children": len(children),
        "children_rss_kib": sum(rss_kib(child) for child in children),
        "drain_rate": rate,
    }


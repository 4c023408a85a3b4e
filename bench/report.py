"""Turn ``results.json`` into ``report.md`` and ``drain.png``: ``python -m bench.report [folder]``."""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench import systems

LABELS = {
    "pgqueue": "pgqueue (def no-op, thread)",
    "pgqueue-async": "pgqueue (async no-op)",
    "pgqueuer-asyncpg": "pgqueuer (asyncpg)",
    "pgqueuer-psycopg": "pgqueuer (psycopg)",
    "procrastinate": "procrastinate",
    "raw": "raw loop, 1 job/txn",
    "raw-batched": "raw loop, batched 100",
}
ORDER = list(LABELS)
# Enqueueing does not depend on the job function, nor on how the raw loops claim.
ENQUEUE_LABELS = {**LABELS, "pgqueue": "pgqueue", "raw": "raw SQL (psycopg)"}
SHAPES = ("1x1", "1x10", "2x10")
IDLE_LIMIT = 5.0  # statements/s for 10 idle workers: "at most a few"


class Results:
    def __init__(self, data: dict[str, Any]) -> None:
        self.meta: dict[str, Any] = data["meta"]
        self.entries: list[dict[str, Any]] = data["results"]

    def select(self, scenario: str, **match: Any) -> list[dict[str, Any]]:
        return [
            entry for entry in self.entries
            if entry["scenario"] == scenario and all(entry.get(k) == v for k, v in match.items())
        ]

    def values(self, scenario: str, metric: str, **match: Any) -> list[float]:
        return [e[metric] for e in self.select(scenario, **match) if "error" not in e and metric in e]

    def failures(self, scenario: str, **match: Any) -> list[str]:
        return [e["error"] for e in self.select(scenario, **match) if "error" in e]

    def median(self, scenario: str, metric: str, **match: Any) -> float | None:
        found = self.values(scenario, metric, **match)
        return statistics.median(found) if found else None

    def cell(self, scenario: str, metric: str, fmt: str = "{:,.0f}", **match: Any) -> str:
        found = self.values(scenario, metric, **match)
        failed = self.failures(scenario, **match)
        if not found:
            return "FAILED" if failed else "-"
        text = fmt.format(statistics.median(found))
        if len(found) > 1:
            text += f" ({fmt.format(min(found))}-{fmt.format(max(found))})"
        if failed:
            text += f" + {len(failed)} FAILED"
        return text


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def targets(r: Results) -> list[list[str]]:
    rows: list[list[str]] = []
    peer = r.median("drain", "rate", system="pgqueuer-asyncpg", shape="1x10")
    for name in ("pgqueue-async", "pgqueue"):
        ours = r.median("drain", "rate", system=name, shape="1x10")
        times = ratio(ours, peer)
        rows.append([
            f"drain 1 x 10 >= 3 x pgqueuer (asyncpg): {LABELS[name]}",
            f"{times:.2f} x ({ours:,.0f} vs {peer:,.0f} jobs/s)" if times and ours and peer else "-",
            verdict(times >= 3 if times else None)
            + (f": needs {3 * peer:,.0f} jobs/s, {3 / times:.1f} x more"
               if times and peer and times < 3 else ""),
        ])
    bulk = r.median("enqueue", "rate", system="pgqueue", mode="bulk")
    peers = {
        name: r.median("enqueue", "rate", system=name, mode="bulk")
        for name in ("pgqueuer-asyncpg", "pgqueuer-psycopg", "procrastinate")
    }
    best_peer = max((v for v in peers.values() if v), default=None)
    ok = None if bulk is None else bulk >= 100_000 and (best_peer is None or bulk > best_peer)
    rows.append([
        "bulk enqueue >= 100,000 jobs/s, above every peer",
        f"{bulk:,.0f} jobs/s (best peer {best_peer or 0:,.0f})" if bulk else "-",
        verdict(ok) + (f": {bulk / 100_000:.0%} of the target" if bulk and bulk < 100_000 else ""),
    ])
    raw50 = r.median("latency", "p50_ms", system="raw")
    for name in ("pgqueue-async", "pgqueue"):
        p50 = r.median("latency", "p50_ms", system=name)
        p99 = r.median("latency", "p99_ms", system=name)
        gap = p50 - raw50 if p50 is not None and raw50 is not None else None
        rows.append([
            f"latency p50 within 1 ms of the raw loop: {LABELS[name]}",
            f"{p50:.1f} ms vs raw {raw50:.1f} ms ({gap:+.1f} ms)" if gap is not None else "-",
            verdict(gap <= 1 if gap is not None else None),
        ])
        rows.append([f"latency p99 < 15 ms: {LABELS[name]}",
                     f"{p99:.1f} ms" if p99 is not None else "-",
                     verdict(p99 < 15 if p99 is not None else None)])
    sizes = sorted({e["finished_rows"] for e in r.select("table") if "error" not in e})
    if sizes:
        empty, full = r.median("table", "rate", finished_rows=sizes[0]), r.median(
            "table", "rate", finished_rows=sizes[-1])
        cost = 1 - full / empty if empty and full else None
        rows.append([
            f"{sizes[-1]:,} finished rows cost <= 20 % of drain rate",
            f"{cost:.0%} {'slower' if cost >= 0 else 'faster'} ({empty:,.0f} -> {full:,.0f} jobs/s)"
            if cost is not None else "-",
            verdict(cost <= 0.2 if cost is not None else None),
        ])
    idle = r.select("idle")
    if idle and "error" not in idle[0]:
        rate = idle[0]["statements_per_s"]
        rows.append([
            f"{idle[0]['workers']} idle workers: a few statements/s (<= {IDLE_LIMIT:g})",
            f"{rate:.2f} statements/s", verdict(rate <= IDLE_LIMIT)
            + (f": {rate / IDLE_LIMIT:.1f} x the limit" if rate > IDLE_LIMIT else ""),
        ])
    memory = r.select("memory")
    if memory and "error" not in memory[0]:
        samples = memory[0]["samples"]
        first, last = samples[1]["parent_rss_kib"], samples[-2]["parent_rss_kib"]
        rows.append([
            "worker memory stated and stable over a long drain",
            f"idle {samples[0]['parent_rss_kib'] / 1024:.0f} MiB; {first / 1024:.0f} -> "
            f"{last / 1024:.0f} MiB over {memory[0]['rounds'] - 1} more rounds",
            verdict(last <= first * 1.1),
        ])
    return rows


def render(r: Results) -> str:
    meta = r.meta
    plan = meta["plan"]
    lines = ["# pgqueue benchmark", ""]
    lines += [
        f"Run {meta['started']}, {meta['minutes']:.1f} min, {meta['cpus']} CPUs shared by "
        f"PostgreSQL, the workers and the harness. Load average before "
        f"{meta['load_before']}, after {meta['load_after']}"
        + (" (**the machine was busy: numbers are noisy**)." if max(meta["load_before"][:1]) > 1.0 else "."),
        f"{'Quick run (`--quick`): small N, indicative only.' if meta['quick'] else ''}",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + f"; pgqueue source {meta.get('source', '?')}.",
        f"{plan['reps']} repetition(s), order rotated; cells are median (min-max).",
        "",
        "PostgreSQL settings (one server for every system, defaults except these are shown): "
        + ", ".join(f"`{k}={v}`" for k, v in meta["postgres"].items()) + ".",
        "",
        "## Targets (issue 7)",
        "",
    ]
    lines += table(["target", "measured", "verdict"], targets(r))

    lines += ["## Drain: jobs/s", "",
              f"{plan['drain_n']:,} no-op jobs already queued, processes x slots. The clock runs "
              "from the workers' release (they wait, connected, on a lock on the queue table) "
              "until every job ran and the database shows none unfinished. Every job records its "
              "run; a job run twice or never fails the measurement. CPU columns: ms of CPU per "
              "1,000 jobs at 1 x 10, in the worker processes and in PostgreSQL.", ""]
    drained = [s for s in ORDER if r.select("drain", system=s)]
    lines += table(
        ["system", *SHAPES, "worker CPU", "PostgreSQL CPU"],
        [[LABELS[s], *(r.cell("drain", "rate", system=s, shape=shape) for shape in SHAPES),
          r.cell("drain", "worker_cpu_ms_per_1k", system=s, shape="1x10"),
          r.cell("drain", "db_cpu_ms_per_1k", system=s, shape="1x10")] for s in drained],
    )
    lines += ["![drain](drain.png)", ""]
    if r.select("pgbench"):
        lines += ["## The limit: `pgbench -N` (simple update), TPS", ""]
        clients = sorted({e["clients"] for e in r.select("pgbench")})
        lines += table([f"{c} client(s)" for c in clients],
                       [[r.cell("pgbench", "tps", clients=c) for c in clients]])

    if r.select("enqueue"):
        lines += ["## Enqueue: jobs/s", "",
                  f"Single: {plan['single_n']:,} jobs, one transaction each, one client. "
                  f"Bulk: {plan['bulk_n']:,} jobs in calls of 1,000 through each system's bulk "
                  "path (pgqueue: `enqueue_bulk`, COPY; pgqueuer: `enqueue` with lists; "
                  "procrastinate: `batch_defer_async`; raw: `INSERT ... SELECT unnest`). "
                  "pgqueue's row 'one call' sends all of them in one `enqueue_bulk` call.", ""]
        names = [s for s in ORDER if r.select("enqueue", system=s)]
        lines += table(["system", "single", "bulk (1,000 per call)", "bulk (one call)"],
                       [[ENQUEUE_LABELS[s], r.cell("enqueue", "rate", system=s, mode="single"),
                         r.cell("enqueue", "rate", system=s, mode="bulk"),
                         r.cell("enqueue", "rate", system=s, mode="bulk-one-call")] for s in names])

    if r.select("latency"):
        lines += ["## Latency: enqueue to start, ms", "",
                  f"One idle worker (1 x 10); {plan['latency_n']} single jobs enqueued at 50/s; "
                  "from just before the enqueue call (which commits) to the job's first line.", ""]
        names = [s for s in ORDER if r.select("latency", system=s)]
        lines += table(["system", "p50", "p95", "p99", "max"],
                       [[LABELS[s], *(r.cell("latency", m, "{:.1f}", system=s)
                                      for m in ("p50_ms", "p95_ms", "p99_ms", "max_ms"))]
                        for s in names])

    if r.select("table"):
        lines += ["## Table size: pgqueue drain (1 x 10) with finished rows in the table", ""]
        sizes = sorted({e["finished_rows"] for e in r.select("table")})
        lines += table(["finished rows", "jobs/s", "worker CPU", "PostgreSQL CPU"],
                       [[f"{s:,}", r.cell("table", "rate", finished_rows=s),
                         r.cell("table", "worker_cpu_ms_per_1k", finished_rows=s),
                         r.cell("table", "db_cpu_ms_per_1k", finished_rows=s)] for s in sizes])

    if r.select("real"):
        lines += ["## The real path: pgqueue 1 x 10, isolation and `run_job`", "",
                  f"{plan['real_n']:,} jobs. 'run_job + trivial extractor' is pgqueue's own job "
                  "function (file:// fetch, extractor registry, result serialisation) with an "
                  "extractor that returns a constant.", ""]
        variants = list(dict.fromkeys(e["variant"] for e in r.select("real")))
        lines += table(["variant", "jobs/s", "worker CPU", "PostgreSQL CPU"],
                       [[v, r.cell("real", "rate", variant=v),
                         r.cell("real", "worker_cpu_ms_per_1k", variant=v),
                         r.cell("real", "db_cpu_ms_per_1k", variant=v)] for v in variants])

    idle = [e for e in r.select("idle") if "error" not in e]
    if idle:
        entry = idle[0]
        lines += ["## Idle cost", "",
                  f"{entry['workers']} idle pgqueue workers (default settings, process "
                  f"isolation) for {entry['seconds']:.0f} s: **{entry['statements_per_s']:.2f} "
                  f"statements/s** together (counted in the server log, `log_statement=all`; "
                  f"`pg_stat_database` says {entry['transactions_per_s']:.2f} transactions/s, "
                  "a count that lags by up to 10 s and includes autovacuum). Idle parent RSS "
                  f"{min(entry['idle_rss_kib']) / 1024:.0f}-{max(entry['idle_rss_kib']) / 1024:.0f} MiB.", ""]
        lines += table(["statement", "per second"],
                       [[f"`{name}`", f"{rate:.2f}"] for name, rate in entry["by_statement_per_s"].items()])

    memory = [e for e in r.select("memory") if "error" not in e]
    if memory:
        lines += ["## Worker memory (one pgqueue worker, 1 x 10, process isolation)", ""]
        lines += table(["when", "parent RSS MiB", "children", "children RSS MiB", "jobs/s"],
                       [[s["when"], f"{s['parent_rss_kib'] / 1024:.1f}", str(s["children"]),
                         f"{s['children_rss_kib'] / 1024:.1f}",
                         f"{s['drain_rate']:,.0f}" if s["drain_rate"] else ""]
                        for s in memory[0]["samples"]])

    findings = Path(__file__).resolve().parent / "findings.md"
    if findings.exists():
        lines += ["## Why targets are missed: profiling findings", "", findings.read_text(), ""]

    lines += ["## How each system was configured", ""]
    described: list[list[str]] = []
    for name in ORDER:
        if r.select("drain", system=name) or r.select("latency", system=name):
            described.append([LABELS[name], systems.get(name).describe(10)])
    lines += table(["system", "worker settings, as for 10 slots (1 slot: 1 instead of 10)"],
                   described)
    loads = [e["load_1min"] for e in r.entries if "load_1min" in e]
    if loads:
        lines += [f"One-minute load average after each measurement: {min(loads):.1f}-{max(loads):.1f} "
                  f"(median {statistics.median(loads):.1f}); 2 CPUs.", ""]
    failures = [e for e in r.entries if "error" in e]
    if failures:
        lines += ["## Failed measurements", ""]
        lines += [f"- {e['scenario']} {describe_entry(e)}: {e['error']}" for e in failures] + [""]
    return "\n".join(lines)


def describe_entry(entry: dict[str, Any]) -> str:
    skip = {"scenario", "error", "wall_seconds", "load_1min"}
    return ", ".join(f"{k}={v}" for k, v in entry.items() if k not in skip)


def chart(r: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s for s in ORDER if r.select("drain", system=s)]
    figure, axis = plt.subplots(figsize=(9, 5.2))
    width = 0.8 / max(1, len(names))
    for index, name in enumerate(names):
        medians, lows, highs = [], [], []
        for shape in SHAPES:
            found = r.values("drain", "rate", system=name, shape=shape) or [0.0]
            middle = statistics.median(found)
            medians.append(middle)
            lows.append(middle - min(found))
            highs.append(max(found) - middle)
        positions = [shape + (index - (len(names) - 1) / 2) * width for shape in range(len(SHAPES))]
        axis.bar(positions, medians, width, yerr=[lows, highs], capsize=2, label=LABELS[name])
    axis.set_xticks(range(len(SHAPES)), [shape_words(shape) for shape in SHAPES])
    axis.set_yscale("log")
    axis.set_ylabel("jobs/s (log scale)")
    axis.set_title(f"Drain of {r.meta['plan']['drain_n']:,} no-op jobs: median, min-max")
    axis.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def shape_words(shape: str) -> str:
    processes, slots = (int(part) for part in shape.split("x"))
    return (f"{processes} process{'es' if processes > 1 else ''} x "
            f"{slots} slot{'s' if slots > 1 else ''}")


def write(folder: Path, *, with_chart: bool = True) -> None:
    """Write ``report.md`` (and ``drain.png``, which needs matplotlib from the bench extra)."""
    results = Results(json.loads((folder / "results.json").read_text()))
    (folder / "report.md").write_text(render(results))
    if with_chart and results.select("drain"):
        chart(results, folder / "drain.png")


def _main(argv: list[str]) -> int:
    write(Path(argv[0]) if argv else Path(__file__).resolve().parent / "results")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

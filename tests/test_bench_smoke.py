"""The benchmark harness checks itself: a tiny run (N=50) drains and accounts for every job, a
job run twice or never fails the measurement, and the report renders. No timing is asserted.
Only pgqueue and the raw loops are used here: the peers come with the bench extra."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import report
from bench.record import AccountingError, RunRecord, record_run
from bench.scenarios import Bench
from bench.server import bench_server

N = 50


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    with bench_server() as server:
        yield Bench(server, tmp_path_factory.mktemp("bench-work"))


def test_the_record_accepts_each_job_exactly_once(tmp_path: Path) -> None:
    record = RunRecord(tmp_path / "runs.log").create()
    for key in range(N):
        record_run(key, str(record.path))
    record.check(range(N))
    assert record.poll() == N


def test_the_record_refuses_a_job_run_twice(tmp_path: Path) -> None:
    record = RunRecord(tmp_path / "runs.log").create()
    for key in [*range(N), 7]:
        record_run(key, str(record.path))
    with pytest.raises(AccountingError, match=re.escape("1 job(s) ran more than once, e.g. [7]")):
        record.check(range(N))


def test_the_record_refuses_a_job_never_run_or_unknown(tmp_path: Path) -> None:
    record = RunRecord(tmp_path / "runs.log").create()
    for key in [*range(3, N), N + 1]:
        record_run(key, str(record.path))
    with pytest.raises(AccountingError) as failure:
        record.check(range(N))
    assert "3 job(s) never ran, e.g. [0, 1, 2]" in str(failure.value)
    assert f"1 unknown job(s) ran, e.g. [{N + 1}]" in str(failure.value)


@pytest.mark.parametrize("system", ["raw", "raw-batched", "pgqueue"])
def test_a_tiny_drain_accounts_for_every_job(bench: Bench, system: str) -> None:
    result = bench.drain(system, 1, 2, N)
    assert result["n"] == N
    assert result["rate"] > 0


def test_a_job_run_twice_fails_the_drain(bench: Bench) -> None:
    with pytest.raises(AccountingError, match=re.escape("ran more than once, e.g. [7]")):
        bench.drain("raw", 1, 2, N, options={"run_twice": [7]})


def test_the_report_renders_what_the_harness_measured(bench: Bench, tmp_path: Path) -> None:
    entries: list[dict[str, Any]] = []
    for rep in range(2):
        entries.append({"scenario": "drain", "rep": rep, "system": "raw", "shape": "1x10",
                        **bench.drain("raw", 1, 10, N)})
        entries.append({"scenario": "enqueue", "rep": rep, "system": "pgqueue", "mode": "bulk",
                        **bench.enqueue("pgqueue", "bulk", N)})
    entries.append({"scenario": "drain", "rep": 0, "system": "pgqueue", "shape": "1x10",
                    "error": "AccountingError: 1 job(s) ran more than once, e.g. [7]"})
    meta = {"plan": {"reps": 2, "drain_n": N, "single_n": N, "bulk_n": N, "latency_n": N,
                     "real_n": N}, "quick": True, "cpus": 2, "versions": {}, "source": "test",
            "load_before": [0.0, 0.0, 0.0], "load_after": [0.0, 0.0, 0.0],
            "started": "now", "minutes": 0.1, "postgres": bench.server.settings()}
    (tmp_path / "results.json").write_text(json.dumps({"meta": meta, "results": entries}))
    # matplotlib comes with the bench extra, which CI does not install.
    with_chart = importlib.util.find_spec("matplotlib") is not None
    report.write(tmp_path, with_chart=with_chart)
    text = (tmp_path / "report.md").read_text()
    assert "## Drain: jobs/s" in text
    assert "| raw loop, 1 job/txn |" in text
    assert "## Failed measurements" in text
    assert "AccountingError: 1 job(s) ran more than once" in text
    if with_chart:
        assert (tmp_path / "drain.png").stat().st_size > 0

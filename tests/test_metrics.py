"""The worker's Prometheus endpoint, scraped over HTTP from a real worker process at work."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

import pgqueue
from pgqueue import JobRequest, enqueue_bulk
from tests.workers import Workspace, query, status_counts, unfinished, wait_until, worker_process

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scraped_when(port: int, condition: Callable[[Samples], bool], what: str, timeout: float = 30) -> Samples:
    """Scrape until ``condition`` holds; the samples that satisfied it."""
    seen: list[Samples] = []

    def check() -> bool:
        try:
            seen.append(scrape(port))
        except OSError:
            return False
        return condition(seen[-1])

    wait_until(check, timeout, what, interval=0.1)
    return seen[-1]


def add_jobs(db_url: str, space: Workspace, jobs: list[tuple[str, str, dict[str, Any]]]) -> None:
    requests = [JobRequest(name, space.job_file(name, **script), 10, fmt) for name, fmt, script in jobs]
    with psycopg.connect(db_url) as conn:
        enqueue_bulk(conn, requests)
        conn.commit()


@pytest.mark.slow
def test_a_working_worker_exports_meaningful_metrics(db_url: str, tmp_path: Path) -> None:
    space = Workspace(tmp_path)
    port = free_port()
    env = space.env(db_url, slots=1, isolation="process",
                    extractors="pdf=tests.queue_plugins:scripted,dxf=tests.queue_plugins:scripted")
    with worker_process(env, "--metrics-port", str(port), log=tmp_path / "worker.log"):
        # One job holds the only slot, so everything enqueued after it waits, due.
        add_jobs(db_url, space, [("hang.pdf", "pdf", {"mode": "hang"})])
        wait_until(lambda: status_counts(db_url).get("processing") == 1, 60, "the blocking job to start")
        add_jobs(db_url, space, [
            ("ok1.pdf", "pdf", {"mode": "ok"}), ("ok2.pdf", "pdf", {"mode": "ok"}),
            ("ok3.pdf", "pdf", {"mode": "ok"}), ("broken.pdf", "pdf", {"mode": "permanent"}),
            ("plate.dxf", "dxf", {"mode": "ok"}), ("flaky.dxf", "dxf", {"mode": "flaky", "fail_first": 1}),
        ])
        waiting = scraped_when(
            port, lambda s: value(s, "pgqueue_queue_due") == 6 and value(s, "pgqueue_queue_lag_seconds") > 0,
            "the queue gauges to show the six waiting jobs")
        assert value(waiting, "pgqueue_jobs_running") == 1
        assert value(waiting, "pgqueue_slots") == 1
        assert value(waiting, "pgqueue_jobs_claimed_total", format="pdf") == 1

        # Cancelling the blocking job frees the slot; the rest run one after another.
        hang_id = query(db_url, "SELECT id::text AS id FROM extraction_jobs WHERE filename = 'hang.pdf'")[0]["id"]
        with psycopg.connect(db_url) as conn:
            assert pgqueue.cancel(conn, hang_id).changed
            conn.commit()
        wait_until(lambda: unfinished(db_url) == 0, 60, "every job to finish")
        expected = {
            ("pdf", "completed"): 3, ("pdf", "failed"): 1, ("pdf", "cancelled"): 1,
            ("dxf", "completed"): 2, ("dxf", "retried"): 1,
        }
        done = scraped_when(
            port,
            lambda s: all(value(s, "pgqueue_jobs_finished_total", format=fmt, outcome=outcome) == count
                          for (fmt, outcome), count in expected.items())
            and value(s, "pgqueue_queue_due") == 0,
            "the finished counters to match the table",
        )
    assert status_counts(db_url) == {"completed": 5, "failed": 1, "cancelled": 1}
    finished = {(dict(labels)["format"], dict(labels)["outcome"]): count
                for (name, labels), count in done.items() if name == "pgqueue_jobs_finished_total"}
    assert finished == expected
    assert value(done, "pgqueue_jobs_claimed_total", format="pdf") == 5
    assert value(done, "pgqueue_jobs_claimed_total", format="dxf") == 3  # the flaky one twice
    assert value(done, "pgqueue_jobs_running") == 0
    # Durations: one observation per written-back run (the cancelled run has none).
    assert value(done, "pgqueue_job_duration_seconds_count", format="pdf") == 4
    assert value(done, "pgqueue_job_duration_seconds_count", format="dxf") == 3
    assert 0 < value(done, "pgqueue_job_duration_seconds_sum", format="pdf") < 60
    assert value(done, "pgqueue_job_duration_seconds_bucket", format="dxf", le="+Inf") == 3
    # Claim latency: every claim statement, including the ones that found nothing.
    claims = value(done, "pgqueue_claim_seconds_count")
    assert claims >= 8
    assert 0 < value(done, "pgqueue_claim_seconds_sum") < claims  # each well under a second
    assert value(done, "pgqueue_claim_seconds_bucket", le="+Inf") == claims

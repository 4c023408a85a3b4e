"""Prometheus metrics of a worker, served on ``--metrics-port`` when it is set."""

from __future__ import annotations

from functools import cache
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

registry = CollectorRegistry(auto_describe=True)

jobs_finished = Counter(
    "pgqueue_jobs_finished",
    "Job runs ended, by format and outcome: written back as completed, retried or failed; "
    "lost_race (the row moved on before the write-back); or stopped without an outcome: "
    "cancelled, lost (rescued while this worker was cut off), handed_back (shutdown).",
    ["format", "outcome"],
    registry=registry,
)
jobs_claimed = Counter("pgqueue_jobs_claimed", "Jobs claimed.", ["format"], registry=registry)
job_duration = Histogram(
    "pgqueue_job_duration_seconds",
    "Wall-clock seconds from claim to outcome, by format.",
    ["format"],
    buckets=(0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
    registry=registry,
)
claim_latency = Histogram(
    "pgqueue_claim_seconds",
    "Seconds one claim statement took.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1),
    registry=registry,
)
jobs_running = Gauge("pgqueue_jobs_running", "Jobs running in this worker now.", registry=registry)
slots = Gauge("pgqueue_slots", "Slots of this worker.", registry=registry)
queue_due = Gauge(
    "pgqueue_queue_due", "Pending jobs due now, at most 10,000 (sampled by every worker).",
    registry=registry,
)
queue_lag = Gauge(
    "pgqueue_queue_lag_seconds",
    "Seconds the oldest due pending job has waited (sampled by every worker).",
    registry=registry,
)


# Label lookups take a lock and build a tuple each time; at thousands of jobs a second the
# worker asks for each (format, outcome) child once and keeps it.


@cache
def finished(fmt: str, outcome: str) -> Any:
    return jobs_finished.labels(fmt, outcome)


@cache
def claimed(fmt: str) -> Any:
    return jobs_claimed.labels(fmt)


@cache
def duration(fmt: str) -> Any:
    return job_duration.labels(fmt)


def serve(port: int) -> None:
    start_http_server(port, addr="0.0.0.0", registry=registry)

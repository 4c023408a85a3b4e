"""Prometheus metrics of a worker, served on ``--metrics-port`` when it is set, beside the
health probes ``/livez`` and ``/readyz`` (see ``pgqueue.health``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from functools import cache
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from pgqueue import health as worker_health

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


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def app(health: worker_health.Health) -> WsgiApp:
    """``/livez`` and ``/readyz`` from ``health``; anything else is the Prometheus exposition."""
    exposition = make_wsgi_app(registry)
    probes = {"/livez": health.liveness, "/readyz": health.readiness}

    def respond(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        probe = probes.get(environ.get("PATH_INFO", ""))
        if probe is None:
            return exposition(environ, start_response)
        verdict = probe()
        body = json.dumps({"status": "ok" if verdict.ok else "fail", "reason": verdict.reason,
                           **verdict.details}).encode()
        start_response("200 OK" if verdict.ok else "503 Service Unavailable",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return respond


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a probe in flight never holds the process at exit


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes come every few seconds: no access log on stderr."""


def serve(port: int, health: worker_health.Health | None = None, host: str = "0.0.0.0") -> WSGIServer:
    """Serve metrics and probes on ``port`` from a daemon thread; the server, to stop it."""
    server = make_server(host, port, app(health or worker_health.current), _Server,
                         handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="pgqueue-metrics", daemon=True).start()
    return server

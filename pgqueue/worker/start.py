"""Start a worker from settings: the embedded PostgreSQL when no URL is given, metrics, run."""

from __future__ import annotations

import sys

import structlog

from pgqueue import extractors, logs, metrics
from pgqueue.embedded import EmbeddedPostgres
from pgqueue.migrate import upgrade
from pgqueue.settings import Settings

log = structlog.get_logger("pgqueue.start")


def embedded_database(settings: Settings) -> tuple[Settings, EmbeddedPostgres]:
    """Start (or reuse) the embedded PostgreSQL in ``settings.data_dir`` and migrate it."""
    server = EmbeddedPostgres(settings.data_dir)
    url = server.start()
    upgrade(url, settings.schema_name)
    print(
        f"pgqueue: no DATABASE_URL given; embedded PostgreSQL running at\n  {url}\n"
        f"  (data in {server.pgdata}; enqueue with psql \"{url}\")",
        file=sys.stderr,
        flush=True,
    )
    return settings.model_copy(update={"database_url": url}), server


def start_worker(settings: Settings) -> int:
    from pgqueue.worker.main import run

    logs.configure(settings.log_format, settings.log_level)
    extractors.register_many(settings.extractors)
    server = None
    if not settings.database_url:
        settings, server = embedded_database(settings)
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_port)
        log.info("metrics_serving", port=settings.metrics_port)
    try:
        return run(settings)
    finally:
        if server is not None:
            server.stop()

"""Start a worker from settings: the embedded PostgreSQL when no URL is given, metrics, run.

With no ``DATABASE_URL`` the worker is in *embedded development mode*: it uses (starting it
if needed) the embedded PostgreSQL in ``data_dir``, shared with other workers and CLI commands
run from the same folder, and, unless ``PGQUEUE_FILE_ROOTS`` says otherwise, it reads file://
links under its working folder, so that ``pgqueue enqueue some.pdf`` from there just works.
It says so at start-up. With a ``DATABASE_URL`` (production) file roots stay as configured:
none by default.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType

import structlog

from pgqueue import extractors, logs, metrics
from pgqueue.embedded_sharing import announced_roots, using_embedded
from pgqueue.migrate import upgrade
from pgqueue.settings import Settings

log = structlog.get_logger("pgqueue.start")


@contextmanager
def embedded_database(settings: Settings) -> Iterator[Settings]:
    """Use (start or join) the embedded PostgreSQL in ``settings.data_dir``, migrated, while
    the block runs; yields the settings with its URL and the development file roots."""
    with using_embedded(settings.data_dir, start=True) as shared:
        upgrade(shared.url, settings.schema_name)
        roots = settings.file_roots or (Path.cwd(),)
        how = "started here" if shared.started_here else "already running: shared"
        print(
            f"pgqueue: no DATABASE_URL given; embedded PostgreSQL running at\n  {shared.url}\n"
            f"  ({how}; data in {shared.server.base_dir}; `pgqueue` commands run from this "
            "folder find it by themselves)",
            file=sys.stderr,
            flush=True,
        )
        if not settings.file_roots:
            print(
                f"pgqueue: development mode: file:// links are read under {roots[0]} "
                "(set PGQUEUE_FILE_ROOTS to choose the folders)",
                file=sys.stderr,
                flush=True,
            )
        with announced_roots(shared.server.base_dir, roots):
            yield settings.model_copy(update={"database_url": shared.url, "file_roots": roots})


class _LibraryLogs(logging.Handler):
    """Messages libraries log with ``logging`` (psycopg's "query cancellation interrupted" at
    a burst run's exit) become events in the worker's own format, not bare lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        structlog.get_logger(record.name).log(
            record.levelno, "library_message", library=record.name, message=record.getMessage()
        )


def route_library_logs(level: str) -> None:
    root = logging.getLogger()
    root.handlers = [_LibraryLogs()]
    root.setLevel(max(logs.LEVELS[level], logging.WARNING))


def _exit_on_sigterm(received: int, _frame: FrameType | None) -> None:
    # Until the worker watches signals itself (once its database answers), SIGTERM ends
    # start-up through the normal exits: the embedded database is left or stopped in order.
    log.info("worker_signal", signal=signal.Signals(received).name, stage="start-up")
    raise SystemExit(128 + received)


def start_worker(settings: Settings) -> int:
    from pgqueue.worker.main import run

    logs.configure(settings.log_format, settings.log_level)
    route_library_logs(settings.log_level)
    extractors.register_many(settings.extractors)
    with ExitStack() as stack:
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        stack.callback(signal.signal, signal.SIGTERM, previous)
        if not settings.database_url:
            settings = stack.enter_context(embedded_database(settings))
        if settings.metrics_port is not None:
            metrics.serve(settings.metrics_port)
            log.info("metrics_serving", port=settings.metrics_port)
        return run(settings)

"""The benchmark's own throwaway PostgreSQL, and the database chores every scenario shares.

One server for the whole run, so every system meets the same settings. Each measurement gets a
fresh database cloned from a per-system template (schema installed once), so no run inherits
another's dead rows.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pgqueue.embedded import EmbeddedPostgres

# The settings the report states. Durable commits (fsync, synchronous_commit on) as in
# production: one commit per job is what a queue pays for, so the benchmark must not hide it.
REPORTED_SETTINGS = (
    "server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_level",
    "shared_buffers", "work_mem", "max_wal_size", "checkpoint_timeout", "autovacuum",
    "max_connections", "jit",
)


@dataclass
class BenchServer:
    embedded: EmbeddedPostgres
    folder: Path
    templates: dict[str, str] = field(default_factory=dict)

    @property
    def admin_url(self) -> str:
        return self.embedded.url

    @property
    def bindir(self) -> Path:
        return self.embedded.bindir

    @property
    def log_file(self) -> Path:
        return self.embedded.log_file

    def url_for(self, database: str) -> str:
        return self.embedded.url_for(database)

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.admin_url, autocommit=True)

    def create_database(self, name: str, template: str | None = None) -> str:
        with self.admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            if template is None:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            else:
                # FILE_COPY: a template of a million rows is copied as files, not replayed as WAL.
                admin.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                        sql.Identifier(name), sql.Identifier(template)
                    )
                )
        return self.url_for(name)

    def drop_database(self, name_or_url: str) -> None:
        name = name_or_url.rpartition("/")[2]
        with self.admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    @contextlib.contextmanager
    def fresh_database(self, template: str) -> Iterator[str]:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        url = self.create_database(name, template)
        try:
            yield url
        finally:
            self.drop_database(name)

    def settings(self) -> dict[str, str]:
        with self.admin() as admin:
            return {
                name: str(admin.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0])  # type: ignore[index]
                for name in REPORTED_SETTINGS
            }

    def cpu_seconds(self) -> float:
        """CPU used so far by the whole server: postmaster, live and ended backends."""
        from bench.processes import cpu_seconds

        postmaster = int((self.embedded.pgdata / "postmaster.pid").read_text().split()[0])
        return cpu_seconds(postmaster, reaped=True)

    def checkpoint(self) -> None:
        with self.admin() as admin:
            admin.execute("CHECKPOINT")


def vacuum_analyze(url: str, table: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))


def scalar(url: str, query: str | sql.Composed, params: Any = None) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query.encode() if isinstance(query, str) else query, params).fetchone()
        return row[0] if row else None


@contextlib.contextmanager
def bench_server(folder: Path | None = None) -> Iterator[BenchServer]:
    """Start a throwaway, durable PostgreSQL 16 in a temporary folder; stop and remove it after."""
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pgqueue-bench-")))
        os.chmod(folder, 0o755)
        # UTC log timestamps: the idle-cost count reads statements from the server log.
        embedded = EmbeddedPostgres(folder, durable=True, extra_settings=["log_timezone=UTC"])
        embedded.start()
        try:
            yield BenchServer(embedded, folder)
        finally:
            embedded.stop("immediate")


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)

"""Where the test session gets its PostgreSQL, in this order:

1. ``PGQUEUE_TEST_DATABASE_URL``: a server you run (a superuser URL; databases are created in it);
2. testcontainers' PostgreSQL, where a Docker engine answers;
3. an embedded PostgreSQL that the session starts in a temporary folder and stops at the end.

A template database is migrated once; each test that needs a database gets a fresh clone
(``CREATE DATABASE ... TEMPLATE``), which takes milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from pgqueue.embedded import EmbeddedPostgres
from pgqueue.migrate import upgrade

TEMPLATE = "pgqueue_template"


@dataclass
class Server:
    admin_url: str  # a URL to the maintenance database, as a superuser
    source: str
    embedded: EmbeddedPostgres | None = None

    def url_for(self, database: str) -> str:
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{database}"


def _docker_answers() -> bool:
    try:
        import docker  # testcontainers' own dependency

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def server() -> Iterator[Server]:
    if url := os.environ.get("PGQUEUE_TEST_DATABASE_URL"):
        yield Server(url, "PGQUEUE_TEST_DATABASE_URL")
        return
    if os.environ.get("PGQUEUE_TEST_NO_DOCKER") != "1" and _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield Server(container.get_connection_url(), "testcontainers")
        return
    with tempfile.TemporaryDirectory(prefix="pgqueue-test-") as folder:
        os.chmod(folder, 0o755)
        embedded = EmbeddedPostgres(Path(folder), durable=False)
        embedded.start()
        # The server asks for a password; tests that reconnect with ``conn.info.dsn`` (which
        # leaves the password out) find it where libpq looks.
        previous = os.environ.get("PGPASSWORD")
        os.environ["PGPASSWORD"] = embedded.password()
        try:
            yield Server(embedded.url, "embedded", embedded)
        finally:
            embedded.stop("immediate")
            if previous is None:
                os.environ.pop("PGPASSWORD", None)
            else:
                os.environ["PGPASSWORD"] = previous


def create_template(srv: Server, name: str = TEMPLATE, prepare: str | None = None) -> str:
    """(Re)create a migrated template database; ``prepare`` SQL runs before the migration."""
    with psycopg.connect(srv.admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = srv.url_for(name)
    if prepare:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(prepare)
    upgrade(url)
    return url


def clone(srv: Server, template: str = TEMPLATE) -> str:
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(srv.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return srv.url_for(name)


def drop(srv: Server, url: str) -> None:
    name = url.rpartition("/")[2]
    with psycopg.connect(srv.admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from tests import database
from tests.workers import Workspace

ROOT = Path(__file__).resolve().parent.parent


def corpus_dir() -> Path | None:
    path = Path(os.environ.get("PGQUEUE_CORPUS", ROOT.parent / "shared" / "corpus"))
    return path if path.is_dir() else None


@pytest.fixture
def space(tmp_path: Path) -> Workspace:
    """Files, run log and attempt counters shared by a test and the workers it starts."""
    return Workspace(tmp_path)


@pytest.fixture
def server_folder() -> Iterator[Path]:
    """A temporary folder an embedded PostgreSQL may live in. Not under tmp_path: as root the
    server runs as ``postgres``, which cannot enter pytest-of-root (0700), and pgqueue never
    opens up folders above its data folder."""
    with tempfile.TemporaryDirectory(prefix="pgqueue-server-test-") as name:
        os.chmod(name, 0o755)
        yield Path(name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[database.Server]:
    with database.server() as server:
        database.create_template(server)
        yield server


@pytest.fixture
def db_url(pg_server: database.Server) -> Iterator[str]:
    """A fresh, migrated database for this test."""
    url = database.clone(pg_server)
    yield url
    database.drop(pg_server, url)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[dict[str, object]]]:
    """An autocommit connection to this test's database, rows as dicts."""
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as connection:
        yield connection

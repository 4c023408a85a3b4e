"""Managed PostgreSQL (RDS, Cloud SQL, Azure) gives no superuser: deploy/postgres/roles.sql
creates an owner role for the schema and a read-only role for dashboards, and this test runs
the migration and a real worker as that owner, in a database made the way the script says."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg.rows import dict_row

from tests import database, workers
from tests.test_dashboards import VIEW_COLUMNS
from tests.test_metrics import add_jobs
from tests.workers import ROOT, Workspace

ROLES_SQL = ROOT / "deploy" / "postgres" / "roles.sql"


@dataclass
class ManagedDatabase:
    name: str  # also the owner role and the schema, as in roles.sql (all "pgqueue" there)
    owner_url: str
    reader_url: str
    admin_url: str


@pytest.fixture
def managed(pg_server: database.Server) -> Iterator[ManagedDatabase]:
    """roles.sql run by the admin in a fresh database, with names unique to this test (roles
    are shared by the whole server)."""
    name = f"pgqueue_{uuid.uuid4().hex[:10]}"
    script = re.sub(r"\bpgqueue(?=\b|_reader\b)", name, ROLES_SQL.read_text())
    with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    admin_url = pg_server.url_for(name)
    # roles.sql gives each role its own name as password (renamed here like the roles).
    place = urlsplit(admin_url)
    base = f"postgresql://{{user}}:{{user}}@{place.hostname}:{place.port}{place.path}"
    try:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(script.encode())
        yield ManagedDatabase(name, base.format(user=name), base.format(user=f"{name}_reader"), admin_url)
    finally:
        database.drop(pg_server, admin_url)
        with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{name}", "{name}_reader"')


def test_roles_are_no_superusers(managed: ManagedDatabase) -> None:
    rows = workers.query(managed.admin_url,
                 "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolreplication "
                 "FROM pg_roles WHERE rolname LIKE %s ORDER BY rolname", [managed.name + "%"])
    assert [row["rolname"] for row in rows] == [managed.name, managed.name + "_reader"]
    assert not any(value for row in rows for key, value in row.items() if key != "rolname")


@pytest.mark.slow
def test_migrations_and_a_worker_run_as_the_schema_owner(managed: ManagedDatabase, tmp_path: Path) -> None:
    space = Workspace(tmp_path)
    env = space.env(managed.owner_url, schema_name=managed.name, slots=2)
    for _ in range(2):  # the second run finds nothing to do
        result = subprocess.run([sys.executable, "-m", "pgqueue.cli", "migrate"], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    owners = workers.query(managed.admin_url,
                   "SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class "
                   "WHERE relnamespace = %s::regnamespace", [managed.name])
    assert owners == [{"owner": managed.name}]

    # The role's own search path (roles.sql) finds the schema: plain connections just work.
    add_jobs(managed.owner_url, space, [(f"ok{n}.pdf", "pdf", {"mode": "ok"}) for n in range(6)]
             + [("broken.pdf", "pdf", {"mode": "permanent"})])
    log = tmp_path / "worker.log"
    with workers.worker_process(env, log=log):
        workers.wait_until(lambda: workers.unfinished(managed.owner_url) == 0, 90, "the queue to drain")
    assert workers.status_counts(managed.owner_url) == {"completed": 6, "failed": 1}
    text = log.read_text()
    assert "permission denied" not in text and "Traceback" not in text, text[-3000:]

    # The dashboards' role reads every view and writes nothing.
    with psycopg.connect(managed.reader_url, autocommit=True, row_factory=dict_row) as reader:
        for view in VIEW_COLUMNS:
            reader.execute(f"SELECT * FROM {view}").fetchall()  # noqa: S608 - fixed view names
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("UPDATE extraction_jobs SET status = 'pending'")

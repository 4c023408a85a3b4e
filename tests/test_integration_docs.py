"""docs/integration.md, section by section, on a real PostgreSQL: every Python block is executed
and the functions it defines are called; every SQL block is run as it stands. Then PyBase's
two ways of adopting pgqueue's migrations, and schema ``pybase`` with a real worker."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from sqlalchemy import create_engine, pool, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

import pgqueue
from pgqueue.database import sqlalchemy_url
from tests import database
from tests.factories import make_job
from tests.workers import ROOT, Workspace, query, wait_until, worker_process

DOC = ROOT / "docs" / "integration.md"
VIEWS = {"pgqueue_status_by_format", "pgqueue_queue_lag", "pgqueue_throughput_per_minute",
         "pgqueue_duration_percentiles", "pgqueue_failure_reasons", "pgqueue_live_workers",
         "pgqueue_queue_lag_by_priority", "pgqueue_results_by_extractor_version"}


def pgqueue_head() -> str:
    from alembic.script import ScriptDirectory

    from pgqueue.migrate import alembic_config

    return str(ScriptDirectory.from_config(alembic_config()).get_current_head())


def blocks(language: str) -> list[tuple[int, str]]:
    """(line, code) of every fenced block of ``language`` in the doc."""
    found = []
    for match in re.finditer(rf"^```{language}\n(.*?)^```", DOC.read_text(), re.MULTILINE | re.DOTALL):
        found.append((DOC.read_text()[: match.start()].count("\n") + 2, match.group(1)))
    return found


def load_doc(url: str, engine_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run every Python block of the doc, then point its engines at ``url``."""
    namespace: dict[str, Any] = {"__name__": "integration_doc"}
    for line, code in blocks("python"):
        exec(compile(code, f"{DOC}:{line}", "exec"), namespace)
    options = engine_options or {}
    namespace["engine"] = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool, **options)
    namespace["async_engine"] = create_async_engine(sqlalchemy_url(url), poolclass=pool.NullPool, **options)
    namespace["conninfo"] = url
    return namespace


@pytest.fixture
def doc(db_url: str) -> Iterator[dict[str, Any]]:
    namespace = load_doc(db_url)
    yield namespace
    namespace["engine"].dispose()


def test_the_doc_has_the_sections_the_tests_cover() -> None:
    headings = re.findall(r"^## (.+)$", DOC.read_text(), re.MULTILINE)
    assert headings == [
        "Enqueue from SQLAlchemy", "Enqueue from plain SQL", "Enqueue from psycopg",
        "Read a job's status and result", "Cancel and retry from the web app",
        "Migrations: PyBase's Alembic history and pgqueue's", "Schema `pybase`",
    ]


# --- enqueue ----------------------------------------------------------------------------------


def test_enqueue_from_sqlalchemy(doc: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    record, field, attachment = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    job_id = doc["on_attachment_uploaded"](record, field, attachment, "bracket.pdf",
                                           "s3://pybase-files/bracket.pdf", 1200)
    row = conn.execute("SELECT * FROM extraction_jobs WHERE id = %s", [job_id]).fetchone()
    assert row is not None
    assert (row["status"], row["format"], row["options"]) == ("pending", "pdf", {"tables": True})
    assert (row["record_id"], row["field_id"], row["attachment_id"]) == (record, field, attachment)
    # The same attachment again, while its job is active: the same job, no duplicate.
    again = doc["on_attachment_uploaded"](record, field, attachment, "bracket.pdf",
                                          "s3://pybase-files/bracket.pdf", 1200)
    assert again == job_id
    assert conn.execute("SELECT count(*) AS n FROM extraction_jobs").fetchone() == {"n": 1}


def test_a_rolled_back_request_leaves_no_job(doc: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(RuntimeError), Session(doc["engine"]) as session, session.begin():
        pgqueue.enqueue(session, filename="a.pdf", file_url="s3://b/a.pdf", file_size=1, format="pdf")
        raise RuntimeError("the request failed after the enqueue")
    assert conn.execute("SELECT count(*) AS n FROM extraction_jobs").fetchone() == {"n": 0}
    with pytest.raises(pgqueue.InvalidJob, match="file_url must be a URL"):
        doc["on_attachment_uploaded"](None, None, None, "a.pdf", "/uploads/a.pdf", 1)
    assert conn.execute("SELECT count(*) AS n FROM extraction_jobs").fetchone() == {"n": 0}


def test_enqueue_from_sqlalchemy_async(doc: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    record, attachment = uuid.uuid4(), uuid.uuid4()

    async def upload_twice() -> tuple[str, str]:
        first = await doc["on_attachment_uploaded_async"](record, attachment, "plate.dxf", "s3://b/plate.dxf", 10)
        second = await doc["on_attachment_uploaded_async"](record, attachment, "plate.dxf", "s3://b/plate.dxf", 10)
        await doc["async_engine"].dispose()
        return first, second

    first, second = asyncio.run(upload_twice())
    assert first == second
    row = conn.execute("SELECT format, attachment_id, status FROM extraction_jobs").fetchone()
    assert row == {"format": "dxf", "attachment_id": attachment, "status": "pending"}


def test_enqueue_from_plain_sql(doc: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    insert, insert_once, _ = (code for _, code in blocks("sql"))
    listener = psycopg.connect(conn.info.dsn, autocommit=True)
    try:
        listener.execute("LISTEN pgqueue_jobs")
        row = conn.execute(insert.encode()).fetchone()
        assert row is not None and isinstance(row["id"], uuid.UUID)
        assert [note.channel for note in listener.notifies(timeout=2, stop_after=1)] == ["pgqueue_jobs"]
    finally:
        listener.close()
    conn.execute(insert_once.encode())
    conn.execute(insert_once.encode())  # the attachment's job is active: nothing new
    rows = conn.execute("SELECT filename, status, next_retry_at <= now() AS due, max_retries, options "
                        "FROM extraction_jobs ORDER BY filename").fetchall()
    assert rows == [
        {"filename": "bracket.pdf", "status": "pending", "due": True, "max_retries": 3, "options": {"tables": True}},
        {"filename": "plate.dxf", "status": "pending", "due": True, "max_retries": 3, "options": {}},
    ]


def test_enqueue_from_psycopg(doc: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    job_id = doc["enqueue_with_psycopg"]("model.ifc", "https://files.example.com/model.ifc", 99, "ifc")
    assert conn.execute("SELECT format, file_size FROM extraction_jobs WHERE id = %s", [job_id]).fetchone() == {
        "format": "ifc", "file_size": 99}


# --- read ----------------------------------------------------------------------------------------


def test_read_a_jobs_status_and_result(doc: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    attachment = "6f1c1a57-64c9-4b8e-9d1e-2f4cf0b9f0a1"  # the one in the doc's SQL
    result = {"title_block": {"drawing_number": "DWG-1001"}, "dimensions": [{"value": 12.0}, {"value": 5.0}]}
    done = make_job(conn, "completed", result=Jsonb(result), attachment_id=attachment)
    failed = make_job(conn, "failed", error_message="corrupt: truncated",
                      error_history=Jsonb([{"attempt": 1, "error_type": "CorruptFile", "message": "corrupt: truncated"}]))
    waiting = make_job(conn, "pending", retry_count=1)
    extraction_for = doc["extraction_for"]
    with Session(doc["engine"]) as session:
        assert extraction_for(session, done) == {"state": "done", "result": result}
        assert extraction_for(session, failed) == {"state": "failed", "error": "corrupt: truncated", "attempts": 1}
        shown = extraction_for(session, waiting)
        assert shown["state"] == "pending" and shown["retries_used"] == 1
        assert extraction_for(session, str(uuid.uuid4())) == {"state": "unknown"}
        assert extraction_for(session, "not-a-uuid") == {"state": "unknown"}
        latest = doc["latest_job"](session, uuid.uuid4(), attachment)
        assert latest is None  # another record
    record = uuid.uuid4()
    older = make_job(conn, "failed", record_id=record, attachment_id=attachment)
    conn.execute("UPDATE extraction_jobs SET created_at = now() - interval '1 day' WHERE id = %s", [older])
    newer = make_job(conn, "completed", record_id=record, attachment_id=attachment, result=Jsonb({"tables": []}))
    with Session(doc["engine"]) as session:
        latest = doc["latest_job"](session, record, attachment)
        assert latest.id == newer and latest.get_result() == {"tables": []}
    _, _, select_latest = (code for _, code in blocks("sql"))
    assert conn.execute(select_latest.encode()).fetchone() == {
        "status": "completed", "drawing_number": None, "dimensions": None, "error_message": None}
    conn.execute("UPDATE extraction_jobs SET created_at = now() - interval '2 days' WHERE id = %s", [newer])
    assert conn.execute(select_latest.encode()).fetchone() == {
        "status": "completed", "drawing_number": "DWG-1001", "dimensions": 2, "error_message": None}


def test_get_job_cancel_and_retry_take_psycopg_connections_sync_and_async(db_url: str, conn: psycopg.Connection[Any]) -> None:
    pending = make_job(conn, "pending")
    with psycopg.connect(db_url) as own:
        assert pgqueue.cancel(own, pending).changed
        own.rollback()  # nothing happens until the caller commits
    assert pgqueue.get_job(conn, pending).status == "pending"  # type: ignore[union-attr]

    async def steer() -> tuple[Any, ...]:
        async with await psycopg.AsyncConnection.connect(db_url) as own:
            cancelled = await pgqueue.cancel_async(own, pending)
            retried = await pgqueue.retry_async(own, pending)
            info = await pgqueue.get_job_async(own, pending)
            await own.commit()
        return cancelled, retried, info

    cancelled, retried, info = asyncio.run(steer())
    assert (cancelled.changed, cancelled.status) == (True, "cancelled")
    assert (retried.changed, retried.status) == (True, "pending")
    assert info.status == "pending" and info.error_message == "cancelled by the web app"
    assert pgqueue.retry(conn, pending) == pgqueue.JobChange(pending, False, "pending")
    missing = str(uuid.uuid4())
    assert pgqueue.cancel(conn, missing) == pgqueue.JobChange(missing, False, None)


# --- cancel and retry -----------------------------------------------------------------------------


def test_cancel_and_retry_handlers(doc: dict[str, Any], conn: psycopg.Connection[Any]) -> None:
    pending = make_job(conn, "pending")
    running = make_job(conn, "processing")
    done = make_job(conn, "completed")
    assert doc["cancel_extraction"](pending) == (200, "cancelled")
    assert doc["cancel_extraction"](pending) == (409, "the extraction is already cancelled")
    assert doc["cancel_extraction"](done) == (409, "the extraction is already completed")
    assert doc["cancel_extraction"](str(uuid.uuid4())) == (404, "no such extraction")
    assert doc["cancel_extraction"]("7") == (404, "no such extraction")
    row = conn.execute("SELECT status, error_message, completed_at IS NOT NULL AS ended FROM extraction_jobs "
                       "WHERE id = %s", [pending]).fetchone()
    assert row == {"status": "cancelled", "error_message": "cancelled by the user in PyBase", "ended": True}

    assert asyncio.run(doc["cancel_extraction_async"](running)) is True
    assert conn.execute("SELECT status FROM extraction_jobs WHERE id = %s", [running]).fetchone() == {"status": "cancelled"}

    assert doc["retry_extraction"](pending) == (202, "queued again")
    assert doc["retry_extraction"](done) == (
        409, "only failed or cancelled extractions can be retried (this one is completed)")
    assert doc["retry_extraction"](str(uuid.uuid4()))[0] == 404
    row = conn.execute("SELECT status, retry_count, completed_at FROM extraction_jobs WHERE id = %s", [pending]).fetchone()
    assert row == {"status": "pending", "retry_count": 0, "completed_at": None}


def test_pybase_include_object_leaves_pgqueue_alone(doc: dict[str, Any]) -> None:
    include = doc["include_object"]
    for name in ("extraction_jobs", "pgqueue_workers", "pgqueue_alembic_version", *VIEWS):
        assert include(None, name, "table", True, None) is False
    assert include(None, "records", "table", True, None) is True


# --- migrations: PyBase's and pgqueue's -------------------------------------------------------

PYBASE_ENV = '''
from alembic import context
from sqlalchemy import create_engine, pool, text

config = context.config
engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
with engine.connect() as connection:
    connection.execute(text("CREATE SCHEMA IF NOT EXISTS pybase"))
    connection.execute(text("SET search_path TO pybase, public"))
    connection.commit()
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
'''

PYBASE_RECORDS = '''
from alembic import op

revision = "pybase_records"
down_revision = None
branch_labels = ("pybase",)
depends_on = None


def upgrade():
    op.execute("CREATE TABLE records (id uuid PRIMARY KEY, name text NOT NULL)")


def downgrade():
    op.execute("DROP TABLE records")
'''


@pytest.fixture
def empty_url(pg_server: database.Server) -> Iterator[str]:
    """A database with nothing in it: PyBase has not run yet."""
    name = f"pybase_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    yield pg_server.url_for(name)
    database.drop(pg_server, pg_server.url_for(name))


def pybase_project(folder: Path, url: str, with_pgqueue: bool) -> Config:
    """A stand-in for PyBase's Alembic project: its own env.py and one revision."""
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(PYBASE_ENV)
    (folder / "versions" / "pybase_records.py").write_text(PYBASE_RECORDS)
    config = Config()
    config.set_main_option("script_location", str(folder))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url))
    if with_pgqueue:  # as the doc shows
        pgqueue_versions = resources.files("pgqueue.migrations") / "versions"
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_locations", os.pathsep.join([f"{folder}/versions", str(pgqueue_versions)]))
    return config


def pgqueue_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgqueue.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def check_pgqueue_lives_in_pybase(url: str) -> None:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        tables = conn.execute("SELECT schemaname, tablename FROM pg_tables WHERE schemaname IN ('public', 'pybase')").fetchall()
        assert {(row["schemaname"], row["tablename"]) for row in tables} >= {
            ("pybase", "records"), ("pybase", "extraction_jobs"), ("pybase", "pgqueue_workers")}
        assert not [row for row in tables if row["schemaname"] == "public"]
        views = conn.execute("SELECT table_schema, table_name FROM information_schema.views "
                             "WHERE table_schema IN ('public', 'pybase')").fetchall()
        assert {(row["table_schema"], row["table_name"]) for row in views} == {("pybase", view) for view in VIEWS}
        foreign_key = conn.execute(
            "SELECT conrelid::regclass::text AS child, confrelid::regclass::text AS parent, confdeltype "
            "FROM pg_constraint WHERE conname = 'fk_extraction_jobs_record_id_records'").fetchall()
        assert foreign_key == [{"child": "pybase.extraction_jobs", "parent": "pybase.records", "confdeltype": "n"}]


def test_pgqueue_migrate_beside_pybases_alembic_upgrade(empty_url: str, tmp_path: Path) -> None:
    config = pybase_project(tmp_path / "pybase_alembic", empty_url, with_pgqueue=False)
    command.upgrade(config, "heads")  # alembic upgrade heads
    for _ in range(2):  # and again: nothing to do the second time
        result = pgqueue_cli("migrate", "--database-url", empty_url, "--schema-name", "pybase")
        assert result.returncode == 0, result.stderr
    check_pgqueue_lives_in_pybase(empty_url)
    assert query(empty_url, "SELECT version_num FROM pybase.alembic_version") == [{"version_num": "pybase_records"}]
    assert query(empty_url, "SELECT version_num FROM pybase.pgqueue_alembic_version") == [{"version_num": pgqueue_head()}]
    command.upgrade(config, "heads")  # PyBase's history is untouched by pgqueue's
    assert query(empty_url, "SELECT version_num FROM pybase.alembic_version") == [{"version_num": "pybase_records"}]


def test_pgqueues_migrations_in_pybases_version_locations(empty_url: str, tmp_path: Path) -> None:
    config = pybase_project(tmp_path / "pybase_alembic", empty_url, with_pgqueue=True)
    command.upgrade(config, "pybase@head")
    command.upgrade(config, "heads")
    check_pgqueue_lives_in_pybase(empty_url)
    versions = query(empty_url, "SELECT version_num FROM pybase.alembic_version ORDER BY 1")
    assert versions == [{"version_num": pgqueue_head()}, {"version_num": "pybase_records"}]
    command.downgrade(config, "pgqueue@base")  # pgqueue's branch comes off alone
    assert query(empty_url, "SELECT to_regclass('pybase.extraction_jobs') IS NULL AS gone, "
                            "to_regclass('pybase.records') IS NOT NULL AS kept") == [{"gone": True, "kept": True}]


# --- schema pybase, with a real worker -------------------------------------------------------


@pytest.mark.slow
def test_a_worker_in_schema_pybase(empty_url: str, tmp_path: Path) -> None:
    query(empty_url, "CREATE SCHEMA pybase; CREATE TABLE pybase.records (id uuid PRIMARY KEY, name text)")
    result = pgqueue_cli("migrate", "--database-url", empty_url, "--schema-name", "pybase")
    assert result.returncode == 0, result.stderr
    check_pgqueue_lives_in_pybase(empty_url)
    record = uuid.uuid4()
    query(empty_url, "INSERT INTO pybase.records (id, name) VALUES (%s, 'bracket')", [record])

    # The web app's engine puts pybase on its search_path, as the doc shows.
    doc = load_doc(empty_url, {"connect_args": {"options": "-c search_path=pybase,public"}})
    space = Workspace(tmp_path)
    env = space.env(empty_url, schema_name="pybase", isolation="process", slots=2)
    log = tmp_path / "worker.log"
    with worker_process(env, log=log):
        done = doc["on_attachment_uploaded"](record, None, uuid.uuid4(), "ok.pdf",
                                             space.job_file("ok.pdf", mode="ok"), 10)
        hanging = doc["on_attachment_uploaded"](record, None, uuid.uuid4(), "hang.pdf",
                                                space.job_file("hang.pdf", mode="hang"), 10)

        def status(job_id: str) -> str:
            return str(query(empty_url, "SELECT status FROM pybase.extraction_jobs WHERE id = %s", [job_id])[0]["status"])

        wait_until(lambda: status(done) == "completed", 60, "the job to complete in schema pybase")
        wait_until(lambda: status(hanging) == "processing", 60, "the hanging job to start")
        assert doc["cancel_extraction"](hanging) == (200, "cancelled")
        wait_until(lambda: '"reason": "cancelled"' in log.read_text(), 30, "the worker to stop the cancelled job")

        report = pgqueue_cli("status", "--json", "--database-url", empty_url, "--schema-name", "pybase")
        assert report.returncode == 0, report.stderr
        assert '"completed": 1' in report.stdout and '"cancelled": 1' in report.stdout
        assert query(empty_url, "SELECT jobs_held FROM pybase.pgqueue_live_workers") == [{"jobs_held": 0}]
    with Session(doc["engine"]) as session:
        assert doc["extraction_for"](session, done)["result"]["name"] == "ok.pdf"
    query(empty_url, "DELETE FROM pybase.records WHERE id = %s", [record])
    assert query(empty_url, "SELECT DISTINCT record_id FROM pybase.extraction_jobs") == [{"record_id": None}]
    with pytest.raises(psycopg.errors.UndefinedTable):
        query(empty_url, "SELECT 1 FROM public.extraction_jobs")
    doc["engine"].dispose()


def test_the_engine_snippet_for_schema_pybase_reaches_the_tables(empty_url: str) -> None:
    query(empty_url, "CREATE SCHEMA pybase")
    assert pgqueue_cli("migrate", "--database-url", empty_url, "--schema-name", "pybase").returncode == 0
    engine = create_engine(sqlalchemy_url(empty_url), poolclass=pool.NullPool,
                           connect_args={"options": "-c search_path=pybase,public"})
    with Session(engine) as session:
        job = pgqueue.enqueue(session, filename="a.step", file_url="s3://b/a.step", file_size=1, format="step")
        session.commit()
        assert session.execute(text("SELECT current_schema()")).scalar() == "pybase"
        assert pgqueue.get_job(session, job.id).format == "step"  # type: ignore[union-attr]
    engine.dispose()

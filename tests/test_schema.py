"""The extraction_jobs table as the phase-01 spec and DESIGN.md define it, on real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from psycopg.rows import dict_row
from sqlalchemy import create_engine, pool
from sqlalchemy.orm import Session

from pgqueue import migrate
from pgqueue.database import sqlalchemy_url
from pgqueue.models import ExtractionJob, ExtractionJobStatus, metadata
from tests import database
from tests.factories import make_job

SPEC_INDEXES = {
    "ix_extraction_jobs_status": ["status"],
    "ix_extraction_jobs_status_retry": ["status", "next_retry_at"],
    "ix_extraction_jobs_file_url": ["file_url"],
    "ix_extraction_jobs_record": ["record_id"],
    "ix_extraction_jobs_attachment": ["record_id", "attachment_id"],
}

PYBASE_RECORDS = "CREATE TABLE records (id uuid PRIMARY KEY, name text)"


@pytest.fixture(scope="module")
def pybase_template(pg_server: database.Server) -> str:
    """A template where PyBase's ``records`` table existed before pgqueue was migrated."""
    database.create_template(pg_server, "pgqueue_template_pybase", prepare=PYBASE_RECORDS)
    return "pgqueue_template_pybase"


@pytest.fixture
def pybase_url(pg_server: database.Server, pybase_template: str) -> Iterator[str]:
    url = database.clone(pg_server, pybase_template)
    yield url
    database.drop(pg_server, url)


def index_columns(conn: psycopg.Connection[Any]) -> dict[str, list[str]]:
    rows = conn.execute(
        """
        SELECT index_class.relname AS name,
               array_agg(attribute.attname ORDER BY key.position) AS columns
        FROM pg_index AS ix
        JOIN pg_class AS index_class ON index_class.oid = ix.indexrelid
        JOIN pg_class AS table_class ON table_class.oid = ix.indrelid
        CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS key(attnum, position)
        JOIN pg_attribute AS attribute
          ON attribute.attrelid = ix.indrelid AND attribute.attnum = key.attnum
        WHERE table_class.relname = 'extraction_jobs'
        GROUP BY index_class.relname
        """
    ).fetchall()
    return {row["name"]: list(row["columns"]) for row in rows}


def test_the_five_spec_indexes_exist_with_their_columns(conn: psycopg.Connection[Any]) -> None:
    indexes = index_columns(conn)
    for name, columns in SPEC_INDEXES.items():
        assert indexes.get(name) == columns, name


def test_a_plain_insert_of_four_columns_is_a_complete_due_job(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute(
        """
        INSERT INTO extraction_jobs (filename, file_url, file_size, format)
        VALUES ('plate.dxf', 's3://drawings/plate.dxf', 1234, 'dxf')
        RETURNING *, now() AS inserted_at
        """
    ).fetchone()
    assert row is not None
    assert row["status"] == "pending"
    assert row["retry_count"] == 0 and row["max_retries"] == 3
    assert isinstance(row["id"], uuid.UUID)
    assert row["created_at"] == row["updated_at"] == row["inserted_at"]
    assert row["next_retry_at"] == row["inserted_at"]  # due at once
    assert row["options"] == {} and row["result"] is None and row["error_history"] == []
    assert row["started_at"] is None and row["completed_at"] is None


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("status", "'done'"),
        ("status", "'PENDING'"),
        ("file_size", "-1"),
        ("options", "'[1, 2]'::jsonb"),
        ("retry_count", "-1"),
    ],
)
def test_the_database_refuses_values_outside_the_lifecycle(
    conn: psycopg.Connection[Any], column: str, value: str
) -> None:
    statement = (
        "INSERT INTO extraction_jobs (filename, file_url, file_size, format, {column}) "
        "VALUES ('a.pdf', 's3://b/a.pdf', 1, 'pdf', {value})"
    )
    if column == "file_size":
        statement = "INSERT INTO extraction_jobs (filename, file_url, file_size, format) VALUES ('a.pdf', 's3://b/a.pdf', -1, 'pdf')"
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(statement.format(column=column, value=value).encode())


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("next_retry_at", "'infinity'"),
        ("next_retry_at", "'-infinity'"),
        ("next_retry_at", "'20000-01-01'"),
        ("created_at", "'infinity'"),
        ("updated_at", "'1000-01-01'"),
    ],
)
def test_the_database_refuses_times_python_cannot_read(
    conn: psycopg.Connection[Any], column: str, value: str
) -> None:
    # One such row, typed by hand, once made every worker fail when it asked for the next due
    # time: the queue stopped for everyone.
    with pytest.raises(psycopg.errors.CheckViolation, match="ck_extraction_jobs_times_in_range"):
        conn.execute(
            psycopg.sql.SQL(
                "INSERT INTO extraction_jobs (filename, file_url, file_size, format, {column}) "
                "VALUES ('a.pdf', 's3://b/a.pdf', 1, 'pdf', {value})"
            ).format(column=psycopg.sql.Identifier(column), value=psycopg.sql.SQL(value))
        )
    job_id = make_job(conn, "processing")
    with pytest.raises(psycopg.errors.CheckViolation, match="ck_extraction_jobs_times_in_range"):
        conn.execute("UPDATE extraction_jobs SET started_at = 'infinity' WHERE id = %s", [job_id])


def test_invalid_json_cannot_be_stored(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        conn.execute(
            "INSERT INTO extraction_jobs (filename, file_url, file_size, format, options) "
            "VALUES ('a.pdf', 's3://b/a.pdf', 1, 'pdf', '{not json')"
        )


def test_a_processing_job_must_name_its_worker_and_a_final_one_its_end(
    conn: psycopg.Connection[Any],
) -> None:
    job_id = conn.execute(
        "INSERT INTO extraction_jobs (filename, file_url, file_size, format) "
        "VALUES ('a.pdf', 's3://b/a.pdf', 1, 'pdf') RETURNING id"
    ).fetchone()["id"]  # type: ignore[index]
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE extraction_jobs SET status = 'processing' WHERE id = %s", [job_id])
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE extraction_jobs SET status = 'completed' WHERE id = %s", [job_id])
    conn.execute(
        "UPDATE extraction_jobs SET status = 'completed', completed_at = now() WHERE id = %s",
        [job_id],
    )


def test_status_enum_matches_the_spec() -> None:
    assert [status.value for status in ExtractionJobStatus] == [
        "pending", "processing", "completed", "failed", "cancelled",
    ]
    assert ExtractionJobStatus("failed") is ExtractionJobStatus.FAILED
    with pytest.raises(ValueError):
        ExtractionJobStatus("done")
    job = ExtractionJob(status="processing")
    assert job.status_enum is ExtractionJobStatus.PROCESSING


def test_json_helpers_round_trip_and_tolerate_bad_input() -> None:
    job = ExtractionJob()
    job.set_options({"pages": [1, 2], "tables": True})
    assert job.get_options() == {"pages": [1, 2], "tables": True}
    job.set_result({"tables": [{"rows": [["a", "Ø12"]]}]})
    assert job.get_result() == {"tables": [{"rows": [["a", "Ø12"]]}]}
    for bad in (None, "{not json", "[1, 2]", 42, ["a"]):
        job.options = bad
        job.result = bad
        assert job.get_options() == {}
        assert job.get_result() == {}
    job.options = '{"legacy": "text"}'  # rows written by the spec's Text column
    assert job.get_options() == {"legacy": "text"}
    with pytest.raises(ValueError):
        job.set_result({"x": float("nan")})  # jsonb cannot hold it: refuse before flush


def test_the_orm_model_writes_and_reads_a_job(db_url: str) -> None:
    engine = create_engine(sqlalchemy_url(db_url), poolclass=pool.NullPool)
    with Session(engine) as session:
        job = ExtractionJob(filename="test.pdf", file_url="s3://bucket/test.pdf", file_size=1024, format="pdf")
        job.set_options({"tables": True})
        session.add(job)
        session.commit()
        session.refresh(job)
        assert job.status == "pending" and job.retry_count == 0 and job.max_retries == 3
        assert job.get_options() == {"tables": True}
        assert job.created_at is not None and job.next_retry_at is not None
        assert repr(job) == f"<ExtractionJob {job.id} (pending)>"
    engine.dispose()


def test_deleting_a_record_keeps_its_jobs_with_record_id_null(pybase_url: str) -> None:
    with psycopg.connect(pybase_url, autocommit=True, row_factory=dict_row) as conn:
        record_id = uuid.uuid4()
        conn.execute("INSERT INTO records (id, name) VALUES (%s, 'plate')", [record_id])
        conn.execute(
            "INSERT INTO extraction_jobs (filename, file_url, file_size, format, record_id, attachment_id) "
            "VALUES ('a.pdf', 's3://b/a.pdf', 1, 'pdf', %s, gen_random_uuid())",
            [record_id],
        )
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                "INSERT INTO extraction_jobs (filename, file_url, file_size, format, record_id) "
                "VALUES ('a.pdf', 's3://b/a.pdf', 1, 'pdf', gen_random_uuid())"
            )
        conn.execute("DELETE FROM records WHERE id = %s", [record_id])
        rows = conn.execute("SELECT record_id FROM extraction_jobs").fetchall()
        assert rows == [{"record_id": None}]


def test_without_a_records_table_any_record_id_is_accepted(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "INSERT INTO extraction_jobs (filename, file_url, file_size, format, record_id) "
        "VALUES ('a.pdf', 's3://b/a.pdf', 1, 'pdf', gen_random_uuid())"
    )


def differences(url: str) -> list[Any]:
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    with engine.connect() as connection:
        has_records = engine.dialect.has_table(connection, "records")

        def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
            if type_ == "table" and name in ("records", migrate.VERSION_TABLE):
                return False
            if type_ == "foreign_key_constraint" and obj.referred_table.name == "records":
                return has_records
            return True

        context = MigrationContext.configure(
            connection,
            opts={"include_object": include_object, "compare_type": True, "compare_server_default": True},
        )
        diff = compare_metadata(context, metadata)
    engine.dispose()
    return list(diff)


@pytest.mark.parametrize("with_records", [False, True], ids=["own-database", "beside-pybase"])
def test_migrations_match_the_models_and_round_trip(
    db_url: str, pybase_url: str, with_records: bool
) -> None:
    url = pybase_url if with_records else db_url
    assert differences(url) == []
    migrate.downgrade(url)
    with psycopg.connect(url, autocommit=True) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == ({"records", migrate.VERSION_TABLE} if with_records else {migrate.VERSION_TABLE})
    migrate.upgrade(url)
    assert differences(url) == []
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        assert set(SPEC_INDEXES) <= set(index_columns(conn))
        foreign_keys = conn.execute(
            "SELECT confdeltype FROM pg_constraint WHERE conname = 'fk_extraction_jobs_record_id_records'"
        ).fetchall()
    assert foreign_keys == ([{"confdeltype": "n"}] if with_records else [])  # n: SET NULL


def test_next_retry_at_is_never_null(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.NotNullViolation):
        conn.execute(
            "INSERT INTO extraction_jobs (filename, file_url, file_size, format, next_retry_at) "
            "VALUES ('a.pdf', 's3://b/a.pdf', 1, 'pdf', NULL)"
        )


def test_retry_delay_follows_the_plan(conn: psycopg.Connection[Any]) -> None:
    for retries, base_seconds in [(0, 30), (1, 120), (2, 480)]:
        for _ in range(20):
            delay = conn.execute(
                "SELECT pgqueue_retry_delay(%s, 30, 4, 3600, 0.25) AS delay", [retries]
            ).fetchone()["delay"]  # type: ignore[index]
            assert timedelta(seconds=base_seconds) <= delay <= timedelta(seconds=base_seconds * 1.25)
    capped = conn.execute("SELECT pgqueue_retry_delay(10, 30, 4, 3600, 0.25) AS delay").fetchone()
    assert capped["delay"] == timedelta(hours=1)  # type: ignore[index]

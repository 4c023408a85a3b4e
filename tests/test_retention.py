"""Retention keeps results: only failed, cancelled and superseded jobs are pruned by default.

The row of a completed job is where its result lives (PyBase reads it back), so the latest
completed job of an attachment survives any retention; a result replaced by a newer one of the
same attachment (re-extraction makes these) is pruned. These tests run the maintenance loop's
prune, the operator's purge and the migration against real PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import psycopg
import pytest
from psycopg.rows import dict_row

from pgqueue import migrate, sql
from pgqueue.settings import Settings
from pgqueue.worker.link import Link
from pgqueue.worker.maintenance import Maintenance
from tests.commands import Cli
from tests.factories import claim, finish, job, make_job, register_worker

Conn = psycopg.Connection[Any]


def finished_days_ago(conn: Conn, status: str, days: float, **columns: Any) -> str:
    """A finished job, finished ``days`` ago (the trigger sees that time at insert)."""
    when = conn.execute("SELECT now() - make_interval(secs => %s) AS at", [days * 86400]).fetchone()
    return make_job(conn, status, completed_at=when["at"], **columns)  # type: ignore[index]


def superseded_by(conn: Conn, job_id: str) -> str | None:
    value = job(conn, job_id)["superseded_by"]
    return None if value is None else str(value)


def ids(conn: Conn) -> set[str]:
    return {str(row["id"]) for row in conn.execute("SELECT id FROM extraction_jobs").fetchall()}


def prune(db_url: str, **settings: Any) -> int:
    maintenance = Maintenance(
        Link(db_url, "public", "maintenance"), Settings(database_url=db_url, **settings)
    )

    async def run() -> int:
        try:
            return await maintenance.prune()
        finally:
            await maintenance.link.close()

    return anyio.run(run)


@pytest.fixture
def aged(conn: Conn) -> Iterator[dict[str, str]]:
    """Jobs 40 days old of every kind retention tells apart, plus young and active ones."""
    record, attachment = str(uuid.uuid4()), str(uuid.uuid4())
    linked = {"record_id": record, "attachment_id": attachment}
    young_record, young_attachment = str(uuid.uuid4()), str(uuid.uuid4())
    jobs = {
        "superseded": finished_days_ago(conn, "completed", 41, **linked),
        "latest": finished_days_ago(conn, "completed", 40, **linked),
        "failed": finished_days_ago(conn, "failed", 40, **linked),
        "cancelled": finished_days_ago(conn, "cancelled", 40),
        "unlinked": finished_days_ago(conn, "completed", 40),
        "no_record": finished_days_ago(conn, "completed", 40, attachment_id=attachment),
        "young_superseded": finished_days_ago(
            conn, "completed", 2, record_id=young_record, attachment_id=young_attachment),
        "young_latest": finished_days_ago(
            conn, "completed", 1, record_id=young_record, attachment_id=young_attachment),
        "young_failed": finished_days_ago(conn, "failed", 1),
        "pending": make_job(conn, "pending", **linked),
    }
    conn.execute("UPDATE extraction_jobs SET created_at = now() - interval '90 days'")
    yield jobs


def test_maintenance_keeps_the_latest_result_and_prunes_what_nobody_needs(
    conn: Conn, db_url: str, aged: dict[str, str]
) -> None:
    assert superseded_by(conn, aged["superseded"]) == aged["latest"]
    assert superseded_by(conn, aged["latest"]) is None

    assert prune(db_url, prune_batch=1) == 3  # one row per statement: the loop batches
    assert ids(conn) == set(aged.values()) - {aged["superseded"], aged["failed"], aged["cancelled"]}
    assert prune(db_url) == 0  # nothing left to prune: running again is harmless


def test_completed_jobs_without_an_attachment_follow_their_own_setting(
    conn: Conn, db_url: str, aged: dict[str, str]
) -> None:
    assert prune(db_url, retention_unlinked_days=30) == 5
    assert ids(conn) == set(aged.values()) - {
        aged["superseded"], aged["failed"], aged["cancelled"], aged["unlinked"], aged["no_record"]}


def test_prune_waits_for_the_maintenance_lock(conn: Conn, db_url: str, aged: dict[str, str]) -> None:
    with psycopg.connect(db_url) as other:
        other.execute("SELECT pg_advisory_xact_lock(%s)", [sql.MAINTENANCE_LOCK_KEY])
        assert prune(db_url) == 0  # another worker leads this round
        other.rollback()
    assert prune(db_url) == 3


def test_a_new_result_from_the_worker_supersedes_the_older_one(conn: Conn) -> None:
    attachment = {"record_id": str(uuid.uuid4()), "attachment_id": str(uuid.uuid4())}
    first = finished_days_ago(conn, "completed", 3, **attachment)
    worker = register_worker(conn)

    failing = make_job(conn, **attachment)
    claim(conn, worker)
    finish(conn, worker, [(failing, None, False, "CorruptFile", "bad file")])
    assert superseded_by(conn, first) is None  # a failed attempt replaces no result

    second = make_job(conn, **attachment)
    other = make_job(conn, record_id=attachment["record_id"], attachment_id=str(uuid.uuid4()))
    claim(conn, worker)
    finish(conn, worker, [(second, json.dumps({"layers": []}), False, None, None),
                          (other, json.dumps({"layers": []}), False, None, None)])
    assert superseded_by(conn, first) == second
    assert superseded_by(conn, second) is None
    assert superseded_by(conn, other) is None  # another attachment of the same record


def test_an_imported_older_result_does_not_supersede_a_newer_one(conn: Conn) -> None:
    attachment = {"record_id": str(uuid.uuid4()), "attachment_id": str(uuid.uuid4())}
    newer = finished_days_ago(conn, "completed", 1, **attachment)
    older = finished_days_ago(conn, "completed", 5, **attachment)
    assert superseded_by(conn, newer) is None
    assert superseded_by(conn, older) == newer


def test_only_completed_jobs_can_be_superseded(conn: Conn) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        make_job(conn, "failed", superseded_by=str(uuid.uuid4()))


def plan(conn: Conn, statement: str, params: dict[str, Any]) -> str:
    row = conn.execute(b"EXPLAIN (FORMAT JSON) " + statement.encode(), params).fetchone()
    return json.dumps(row)


def test_pruning_a_big_table_reads_only_its_partial_indexes(conn: Conn) -> None:
    """100,000 latest results (never pruned) and a little garbage: the statements walk the
    partial indexes that hold only what they may delete, never the table or its results."""
    conn.execute("SET session_replication_role = replica")  # the load skips the trigger: faster
    conn.execute(
        """
        INSERT INTO extraction_jobs (filename, file_url, file_size, format, status, completed_at,
                                     record_id, attachment_id, result)
        SELECT 'f.dxf', 's3://b/' || n, 1, 'dxf', 'completed', now() - interval '60 days',
               gen_random_uuid(), gen_random_uuid(), '{"layers": []}'
        FROM generate_series(1, 100000) n
        """
    )
    conn.execute(
        "INSERT INTO extraction_jobs (filename, file_url, file_size, format, status, completed_at) "
        "SELECT 'f.pdf', 's3://b/x' || n, 1, 'pdf', 'failed', now() - interval '40 days' "
        "FROM generate_series(1, 500) n"
    )
    conn.execute("RESET session_replication_role")
    conn.execute("ANALYZE extraction_jobs")
    text = plan(conn, sql.JOB_PRUNE_FINISHED, {
        "lock_key": sql.MAINTENANCE_LOCK_KEY, "older_than_seconds": 30 * 86400.0,
        "unlinked_older_than_seconds": 30 * 86400.0, "batch": 1000,
    })
    assert "ix_extraction_jobs_prunable" in text, text
    assert "ix_extraction_jobs_unlinked_completed" in text, text
    assert "Seq Scan" not in text, text


# --- the migration ----------------------------------------------------------------------------


def test_the_migration_marks_existing_results_and_goes_down_cleanly(db_url: str) -> None:
    migrate.downgrade(db_url, revision="pgqueue_0003")
    attachment = {"record_id": str(uuid.uuid4()), "attachment_id": str(uuid.uuid4())}
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        older = finished_days_ago(conn, "completed", 50, **attachment)
        middle = finished_days_ago(conn, "completed", 45, **attachment)
        latest = finished_days_ago(conn, "completed", 40, **attachment)
        unlinked = finished_days_ago(conn, "completed", 40)
    migrate.upgrade(db_url, revision="pgqueue_0004")
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        marks = {key: superseded_by(conn, key) for key in (older, middle, latest, unlinked)}
    assert marks == {older: latest, middle: latest, latest: None, unlinked: None}

    migrate.downgrade(db_url, revision="pgqueue_0003")
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        assert "superseded_by" not in job(conn, latest)
        leftovers = conn.execute(
            "SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'extraction_jobs_supersede%%')"
            " + (SELECT count(*) FROM pg_proc WHERE proname = 'pgqueue_mark_superseded')"
            " + (SELECT count(*) FROM pg_indexes WHERE indexname IN "
            "    ('ix_extraction_jobs_prunable', 'ix_extraction_jobs_unlinked_completed')) AS n"
        ).fetchone()
        assert leftovers == {"n": 0}
        finished_days_ago(conn, "completed", 1, **attachment)  # no trigger left to fail
    migrate.upgrade(db_url)


# --- pgqueue purge ----------------------------------------------------------------------------


def test_purge_follows_the_retention_rule_and_dry_run_deletes_nothing(
    conn: Conn, db_url: str, aged: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pgqueue = Cli(db_url, monkeypatch, capsys, "purge", "--older-than", "30d")

    everything = set(aged.values())
    code, out, _ = pgqueue("--dry-run", "--json")
    assert code == 0 and ids(conn) == everything
    report = json.loads(out)
    assert report["would_delete"] == 3 and report["deleted"] is None
    assert report["finished_before_cutoff"] == {
        "failed": 1, "cancelled": 1, "superseded": 1, "latest": 1, "unlinked": 2}

    code, out, _ = pgqueue("--dry-run", "--include-latest")
    assert code == 0 and out.startswith("would delete 6 finished jobs") and ids(conn) == everything

    # Latest results go only when confirmed: without a terminal to ask on, --yes is required.
    code, _, err = pgqueue("--include-latest")
    assert code == 2 and "--yes" in err and ids(conn) == everything

    code, out, _ = pgqueue("--batch", "1", "--json")
    assert code == 0 and json.loads(out)["deleted"] == 3
    assert ids(conn) == everything - {aged["superseded"], aged["failed"], aged["cancelled"]}

    code, out, _ = pgqueue("--include-latest", "--yes", "--json")
    assert code == 0 and json.loads(out)["deleted"] == 3
    assert ids(conn) == {aged["young_superseded"], aged["young_latest"], aged["young_failed"],
                         aged["pending"]}


def test_purge_reports_nothing_to_do(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    purge = Cli(db_url, monkeypatch, capsys, "purge", "--older-than", "30d")
    code, out, _ = purge("--include-latest")
    assert code == 0 and "deleted 0 finished jobs" in out  # nothing to confirm


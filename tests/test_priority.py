"""Priorities: uploads are claimed before the back-fill, and a reserved share keeps it moving.

Statements on real PostgreSQL, the enqueue paths' defaults, the claim's plan on a big table of
due jobs of mixed priority, and real workers draining a bulk backlog while interactive jobs come.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from pgqueue import migrate, sql
from pgqueue.enqueue import InvalidJob, JobRequest, enqueue, enqueue_bulk
from pgqueue.priority import Priority
from tests.factories import claim, finish, job, make_job, register_worker
from tests.workers import Workspace, query, status_counts, wait_until, worker_process

Conn = psycopg.Connection[Any]
INTERACTIVE, BULK = int(Priority.INTERACTIVE), int(Priority.BULK)


def test_claims_take_the_most_urgent_due_jobs_first(conn: Conn) -> None:
    old_bulk = [make_job(conn, priority=BULK, next_retry_at="2026-01-01T00:00:00Z") for _ in range(3)]
    upload = make_job(conn)  # a plain insert: interactive
    later_upload = make_job(conn, next_retry_at="9000-01-01T00:00:00Z")  # not due yet
    worker = register_worker(conn)
    assert [row["id"] for row in claim(conn, worker, limit=2)] == [upload, old_bulk[0]]
    assert {row["id"] for row in claim(conn, worker, limit=5)} == set(old_bulk[1:])
    assert job(conn, later_upload)["status"] == "pending"


def test_a_reserved_claim_takes_less_urgent_jobs_and_retries_keep_their_priority(conn: Conn) -> None:
    upload = make_job(conn)
    backfill = make_job(conn, priority=BULK)
    worker = register_worker(conn)
    assert [row["id"] for row in claim(conn, worker, min_priority=INTERACTIVE + 1)] == [backfill]
    finish(conn, worker, [(backfill, None, True, "StorageUnavailable", "try again")])
    retried = job(conn, backfill)
    assert (retried["status"], retried["priority"]) == ("pending", BULK)
    assert job(conn, upload)["status"] == "pending"


def test_each_enqueue_path_sets_its_default_priority(conn: Conn) -> None:
    def request(**fields: Any) -> JobRequest:
        return JobRequest("a.pdf", f"s3://bucket/{uuid.uuid4()}.pdf", 1, "pdf", **fields)

    single = enqueue(conn, request())
    named = enqueue(conn, request(priority="bulk"))
    numbered = enqueue(conn, request(priority=0))
    plain = make_job(conn)
    with conn.transaction():
        enqueue_bulk(conn, [request(), request(attachment_id=uuid.uuid4(), record_id=uuid.uuid4()),
                            request(priority=Priority.INTERACTIVE)])
    rows = conn.execute("SELECT id::text AS id, priority FROM extraction_jobs").fetchall()
    priorities = {row["id"]: row["priority"] for row in rows}
    assert [priorities.pop(key) for key in (single.id, named.id, numbered.id, plain)] == [
        INTERACTIVE, BULK, 0, INTERACTIVE]
    assert sorted(priorities.values()) == [INTERACTIVE, BULK, BULK]
    for bad in ("urgent", -1, 101, 2.5, True):
        with pytest.raises(InvalidJob, match="priority must be interactive, bulk or an integer"):
            request(priority=bad)
    with pytest.raises(psycopg.errors.CheckViolation):
        make_job(conn, priority=500)


def test_the_claim_reads_its_index_in_order_with_a_big_mixed_backlog(conn: Conn) -> None:
    """100,000 due jobs of mixed priority: the claim reads the claim index from its start, and
    touches about as many rows as it takes (no sort, no scan of the backlog)."""
    conn.execute(
        "INSERT INTO extraction_jobs (filename, file_url, file_size, format, priority, next_retry_at) "
        "SELECT 'f.pdf', 's3://b/' || n, 1, 'pdf', (ARRAY[10, 20, 20, 20, 50])[1 + n % 5], "
        "       now() - make_interval(secs => random() * 86400) "
        "FROM generate_series(1, 100000) n"
    )
    conn.execute("ANALYZE extraction_jobs")
    worker = register_worker(conn)
    with conn.transaction(force_rollback=True):
        row = conn.execute(
            b"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql.JOB_CLAIM.encode(),
            {"now": None, "limit": 10, "worker_id": worker, "min_priority": 0},
        ).fetchone()
    text = json.dumps(row)
    assert "ix_extraction_jobs_claim" in text, text
    assert '"Sort"' not in text and "Seq Scan" not in text, text
    scans = [node for node in nodes(row["QUERY PLAN"][0]["Plan"])  # type: ignore[index]
             if node.get("Index Name") == "ix_extraction_jobs_claim"]
    assert [scan["Actual Rows"] for scan in scans] == [10], text
    assert sum(scan.get("Rows Removed by Filter", 0) for scan in scans) == 0, text


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in nodes(child))]


# --- real workers ---------------------------------------------------------------------------


def enqueue_backlog(db_url: str, space: Workspace, count: int, priority: Priority, name: str) -> None:
    url = space.job_file(name, sleep=0.002)
    with psycopg.connect(db_url) as conn:
        enqueue_bulk(conn, [JobRequest(name, url, 1, "pdf", priority=priority)] * count)
        conn.commit()


def completed_by_priority(db_url: str) -> dict[int, int]:
    rows = query(db_url, "SELECT priority, count(*) AS n FROM extraction_jobs "
                         "WHERE status = 'completed' GROUP BY priority")
    return {row["priority"]: row["n"] for row in rows}


def test_an_upload_inserted_with_plain_sql_overtakes_a_bulk_backlog(db_url: str, space: Workspace) -> None:
    enqueue_backlog(db_url, space, 3000, Priority.BULK, "backfill.pdf")
    env = space.env(db_url, slots=4)
    with worker_process(env, log=space.folder / "a.log"), worker_process(env, log=space.folder / "b.log"):
        wait_until(lambda: status_counts(db_url).get("completed", 0) >= 200, 120, "the back-fill to run")
        upload = query(db_url, "INSERT INTO extraction_jobs (filename, file_url, file_size, format) "
                               "VALUES ('upload.pdf', %s, 1, 'pdf') RETURNING id",
                       [space.job_file("upload.pdf")])[0]["id"]
        # Committed by now: every claim that began after this moment could see the upload.
        visible_at = query(db_url, "SELECT clock_timestamp() AS at")[0]["at"]
        wait_until(lambda: query(db_url, "SELECT status FROM extraction_jobs WHERE id = %s",
                                 [upload])[0]["status"] == "completed", 60, "the upload to complete")
        overtaken = query(db_url, """
            SELECT count(*) FILTER (WHERE backfill.started_at > %(visible_at)s
                                      AND backfill.started_at < upload.started_at) AS passed_it,
                   count(*) FILTER (WHERE backfill.started_at IS NULL
                                      OR backfill.started_at > upload.started_at) AS after
            FROM extraction_jobs AS backfill, extraction_jobs AS upload
            WHERE upload.id = %(upload)s AND backfill.id <> upload.id""",
                          {"visible_at": visible_at, "upload": upload})[0]
    # No claim that could see the upload took a bulk job before it (claims under way when it
    # arrived may have), and most of the back-fill waited for it.
    assert overtaken["passed_it"] == 0, overtaken
    assert overtaken["after"] > 1000, overtaken


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_a_reserved_share_keeps_the_backfill_moving_under_a_stream_of_uploads(
    db_url: str, space: Workspace, share: float
) -> None:
    enqueue_backlog(db_url, space, 2000, Priority.INTERACTIVE, "upload.pdf")
    enqueue_backlog(db_url, space, 1000, Priority.BULK, "backfill.pdf")
    env = space.env(db_url, slots=4, reserved_share=share)
    with worker_process(env, log=space.folder / "worker.log"):
        wait_until(lambda: sum(completed_by_priority(db_url).values()) >= 400, 120, "400 jobs done")
        done = completed_by_priority(db_url)
    uploads_left = query(db_url, "SELECT count(*) AS n FROM extraction_jobs WHERE priority = %s "
                                 "AND status <> 'completed'", [INTERACTIVE])[0]["n"]
    assert uploads_left > 0  # the uploads never ran out: a continuous stream
    if share == 0:
        assert done.get(BULK, 0) == 0, done  # strict: the back-fill waits
    else:
        # 2 of 4 slots are kept for bulk work: about half the jobs done are bulk.
        assert 0.35 <= done.get(BULK, 0) / sum(done.values()) <= 0.65, done


def test_the_migration_gives_existing_jobs_the_default_priority_and_goes_down_cleanly(db_url: str) -> None:
    migrate.downgrade(db_url, revision="pgqueue_0004")
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        existing = make_job(conn)
    migrate.upgrade(db_url, revision="pgqueue_0005")
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        assert job(conn, existing)["priority"] == INTERACTIVE
        assert conn.execute("SELECT priority, level, due_jobs FROM pgqueue_queue_lag_by_priority"
                            ).fetchall() == [{"priority": INTERACTIVE, "level": "interactive", "due_jobs": 1}]
    migrate.downgrade(db_url, revision="pgqueue_0004")
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        assert "priority" not in job(conn, existing)
        assert conn.execute(
            "SELECT to_regclass('pgqueue_queue_lag_by_priority') AS view, "
            "to_regclass('ix_extraction_jobs_claim') AS claim_index").fetchone() == {
            "view": None, "claim_index": None}
    migrate.upgrade(db_url)

"""The queue's statements on real PostgreSQL: claim, fenced write-back, backoff, rescue, cancel."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from pgqueue import sql
from pgqueue.enqueue import JobRequest, enqueue
from pgqueue.lifecycle import TRANSITIONS, ExtractionJobStatus
from tests.factories import BACKOFF, claim, finish, job, make_job, register_worker

Conn = psycopg.Connection[Any]


def test_claim_uses_the_pending_priority_index(conn: Conn) -> None:
    """With a backlog (the case that matters) the claim walks the claim index in order."""
    conn.execute(
        """
        INSERT INTO extraction_jobs (filename, file_url, file_size, format, status, completed_at)
        SELECT 'f.pdf', 's3://b/' || n, 1, 'pdf', 'completed', now() FROM generate_series(1, 20000) n
        """
    )
    conn.execute(
        "INSERT INTO extraction_jobs (filename, file_url, file_size, format) "
        "SELECT 'f.pdf', 's3://b/p' || n, 1, 'pdf' FROM generate_series(1, 5000) n"
    )
    conn.execute("ANALYZE extraction_jobs")
    plan = conn.execute(
        b"EXPLAIN (FORMAT JSON) " + sql.JOB_CLAIM.encode(),
        {"now": None, "limit": 10, "worker_id": str(uuid.uuid4()), "min_priority": 0},
    ).fetchone()
    text = json.dumps(plan)
    assert "ix_extraction_jobs_claim" in text, text
    assert '"Sort"' not in text, text  # the index gives the order


def test_claim_marks_jobs_processing_for_this_worker_up_to_the_limit(conn: Conn) -> None:
    ids = [make_job(conn) for _ in range(5)]
    worker = register_worker(conn)
    rows = claim(conn, worker, limit=3)
    assert len(rows) == 3
    for row in rows:
        claimed = job(conn, row["id"])
        assert claimed["status"] == "processing"
        assert str(claimed["worker_id"]) == worker and claimed["started_at"] is not None
    assert {row["id"] for row in claim(conn, worker, limit=10)} == set(ids) - {r["id"] for r in rows}
    assert claim(conn, worker) == []


def test_concurrent_claims_never_share_a_job(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as setup:
        setup.execute(
            "INSERT INTO extraction_jobs (filename, file_url, file_size, format) "
            "SELECT 'f.pdf', 's3://b/' || n, 1, 'pdf' FROM generate_series(1, 3000) n"
        )
    claimed: list[list[str]] = []

    def claimer() -> None:
        mine: list[str] = []
        with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
            worker = register_worker(conn)
            while rows := claim(conn, worker, limit=7):
                mine.extend(row["id"] for row in rows)
        claimed.append(mine)

    threads = [threading.Thread(target=claimer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [job_id for mine in claimed for job_id in mine]
    assert len(everything) == 3000 and len(set(everything)) == 3000


def test_success_completes_the_job_with_its_result(conn: Conn) -> None:
    job_id = make_job(conn)
    worker = register_worker(conn)
    claim(conn, worker)
    rows = finish(conn, worker, [(job_id, '{"pages": 2}', False, None, None)])
    assert rows[0]["status"] == "completed"
    done = job(conn, job_id)
    assert done["result"] == {"pages": 2} and done["completed_at"] is not None
    assert done["error_message"] is None and done["error_history"] == []


def test_a_transient_error_schedules_a_retry_with_backoff(conn: Conn) -> None:
    job_id = make_job(conn)
    worker = register_worker(conn)
    claim(conn, worker)
    before = conn.execute("SELECT now() AS now").fetchone()["now"]  # type: ignore[index]
    finish(conn, worker, [(job_id, None, True, "StorageUnavailable", "S3 said 503")])
    retried = job(conn, job_id)
    assert retried["status"] == "pending" and retried["retry_count"] == 1
    delay = retried["next_retry_at"] - before
    assert timedelta(seconds=30) <= delay <= timedelta(seconds=37.5 + 1)
    assert retried["error_message"] == "S3 said 503" and retried["completed_at"] is None
    [entry] = retried["error_history"]
    assert entry["attempt"] == 1 and entry["error_type"] == "StorageUnavailable"
    assert entry["message"] == "S3 said 503" and entry["retried"] is True
    assert entry["worker_id"] == worker


def test_a_permanent_error_fails_at_once(conn: Conn) -> None:
    job_id = make_job(conn)
    worker = register_worker(conn)
    claim(conn, worker)
    finish(conn, worker, [(job_id, None, False, "CorruptFile", "not a PDF")])
    failed = job(conn, job_id)
    assert failed["status"] == "failed" and failed["retry_count"] == 0
    assert failed["error_message"] == "not a PDF" and failed["completed_at"] is not None


def test_the_backoff_schedule_with_an_injected_clock(conn: Conn) -> None:
    """30 s, 2 min, 8 min (+0-25 %), then failed: driven by the claim's ``now``, no sleeping."""
    job_id = make_job(conn)
    worker = register_worker(conn)
    clock = conn.execute("SELECT now() AS now").fetchone()["now"]  # type: ignore[index]
    for attempt, base in enumerate([30, 120, 480], start=1):
        assert [row["id"] for row in claim(conn, worker, now=clock)] == [job_id]
        finish(conn, worker, [(job_id, None, True, "ExtractionTimeout", f"attempt {attempt}")])
        due = job(conn, job_id)["next_retry_at"]
        finished_at = job(conn, job_id)["updated_at"]
        assert timedelta(seconds=base) <= due - finished_at <= timedelta(seconds=base * 1.25)
        assert claim(conn, worker, now=due - timedelta(seconds=1)) == []  # not yet due
        clock = due
    assert [row["id"] for row in claim(conn, worker, now=clock)] == [job_id]
    finish(conn, worker, [(job_id, None, True, "ExtractionTimeout", "attempt 4")])
    failed = job(conn, job_id)
    assert failed["status"] == "failed" and failed["retry_count"] == 3
    assert [entry["attempt"] for entry in failed["error_history"]] == [1, 2, 3, 4]
    assert [entry["retried"] for entry in failed["error_history"]] == [True, True, True, False]


def test_write_back_is_fenced_on_the_holding_worker(conn: Conn) -> None:
    job_id = make_job(conn)
    holder = register_worker(conn)
    claim(conn, holder)
    intruder = str(uuid.uuid4())
    assert finish(conn, intruder, [(job_id, '{"x": 1}', False, None, None)]) == []
    assert job(conn, job_id)["status"] == "processing"
    conn.execute(sql.JOB_CANCEL.encode(), {"id": job_id, "reason": "cancelled by test"})
    assert finish(conn, holder, [(job_id, '{"x": 1}', False, None, None)]) == []
    cancelled = job(conn, job_id)
    assert cancelled["status"] == "cancelled" and cancelled["result"] is None


def test_a_batch_writes_every_kind_of_outcome_in_one_statement(conn: Conn) -> None:
    ids = [make_job(conn) for _ in range(3)]
    worker = register_worker(conn)
    claim(conn, worker)
    rows = finish(conn, worker, [
        (ids[0], '{"ok": true}', False, None, None),
        (ids[1], None, True, "StorageUnavailable", "later"),
        (ids[2], None, False, "CorruptFile", "broken"),
    ])
    assert {row["id"]: row["status"] for row in rows} == {
        ids[0]: "completed", ids[1]: "pending", ids[2]: "failed",
    }


def server_uptime(conn: Conn) -> float:
    row = conn.execute("SELECT extract(epoch FROM now() - pg_postmaster_start_time()) AS up").fetchone()
    assert row is not None
    return float(row["up"])


def test_lost_workers_jobs_are_rescued_as_a_failed_attempt(conn: Conn) -> None:
    # The clock is moved an hour on instead of waiting for the server to be older than the
    # worker timeout (see the next test); the live worker beat "then".
    clock = conn.execute("SELECT now() + interval '1 hour' AS now").fetchone()["now"]  # type: ignore[index]
    live = register_worker(conn, age_seconds=-3600)
    dead = register_worker(conn, age_seconds=120)
    kept = make_job(conn, "processing", worker_id=live)
    lost = make_job(conn, "processing", worker_id=dead)
    last_try = make_job(conn, "processing", worker_id=dead, retry_count=3)
    orphan = make_job(conn, "processing")  # held by a worker that never registered
    rescue = {"worker_timeout": 5, "lock_key": sql.MAINTENANCE_LOCK_KEY, "now": clock, **BACKOFF}
    with conn.transaction():  # another worker mid-maintenance: this round does nothing
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [sql.MAINTENANCE_LOCK_KEY])
        with psycopg.connect(conn.info.dsn, autocommit=True) as other:
            assert other.execute(sql.JOB_RESCUE_LOST.encode(), rescue).fetchall() == []
    rows = conn.execute(sql.JOB_RESCUE_LOST.encode(), rescue).fetchall()
    assert {row["id"]: row["status"] for row in rows} == {
        lost: "pending", last_try: "failed", orphan: "pending",
    }
    assert job(conn, kept)["status"] == "processing"
    rescued = job(conn, lost)
    assert rescued["retry_count"] == 1 and rescued["error_history"][0]["error_type"] == "WorkerLost"
    assert "worker lost" in rescued["error_message"]
    assert job(conn, last_try)["error_message"].startswith("worker lost")
    workers = {str(row["id"]) for row in conn.execute("SELECT id FROM pgqueue_workers")}
    assert workers == {live}


def test_no_worker_is_lost_until_the_server_has_run_for_a_worker_timeout(conn: Conn) -> None:
    # Right after a restart every heartbeat is stale, since nobody could beat while the server
    # was down: the workers get a worker timeout to catch up before anyone is declared lost.
    up = server_uptime(conn)
    dead = register_worker(conn, age_seconds=up + 7200)
    lost = make_job(conn, "processing", worker_id=dead)
    young = {"worker_timeout": up + 3600, "lock_key": sql.MAINTENANCE_LOCK_KEY, "now": None, **BACKOFF}
    assert conn.execute(sql.JOB_RESCUE_LOST.encode(), young).fetchall() == []
    assert job(conn, lost)["status"] == "processing"
    assert conn.execute("SELECT count(*) AS n FROM pgqueue_workers").fetchone() == {"n": 1}
    old = {**young, "worker_timeout": up / 2}
    assert [row["id"] for row in conn.execute(sql.JOB_RESCUE_LOST.encode(), old)] == [lost]


def test_cancel_pending_and_processing_but_not_finished(conn: Conn, db_url: str) -> None:
    pending = make_job(conn)
    running = make_job(conn, "processing")
    done = make_job(conn, "completed")
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN pgqueue_cancel")
        for job_id in (pending, running):
            rows = conn.execute(sql.JOB_CANCEL.encode(), {"id": job_id, "reason": "by test"}).fetchall()
            assert [row["id"] for row in rows] == [job_id]
            assert job(conn, job_id)["status"] == "cancelled"
        assert conn.execute(sql.JOB_CANCEL.encode(), {"id": done, "reason": "x"}).fetchall() == []
        payloads = {n.payload for n in listener.notifies(timeout=2, stop_after=2)}
    assert payloads == {pending, running}


def test_an_insert_statement_notifies_once(conn: Conn, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN pgqueue_jobs")
        conn.execute(
            "INSERT INTO extraction_jobs (filename, file_url, file_size, format) "
            "SELECT 'f.pdf', 's3://b/' || n, 1, 'pdf' FROM generate_series(1, 1000) n"
        )
        with conn.transaction():
            conn.execute(
                "INSERT INTO extraction_jobs (filename, file_url, file_size, format) "
                "VALUES ('a.pdf', 's3://b/a', 1, 'pdf')"
            )
        received = list(listener.notifies(timeout=1))
    assert len(received) == 2


def test_a_rolled_back_insert_notifies_nobody(conn: Conn, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN pgqueue_jobs")
        with pytest.raises(RuntimeError), conn.transaction():
            make_job(conn)
            raise RuntimeError("request failed")
        assert list(listener.notifies(timeout=0.5)) == []
    assert conn.execute("SELECT count(*) AS n FROM extraction_jobs").fetchone()["n"] == 0  # type: ignore[index]


def test_every_lifecycle_transition_is_made_by_its_statement(conn: Conn) -> None:
    """Walk the transition table; each move is one statement from pgqueue.sql."""
    status = ExtractionJobStatus
    worker = register_worker(conn)
    made: set[tuple[ExtractionJobStatus, ExtractionJobStatus]] = set()

    def moved(job_id: str, before: ExtractionJobStatus) -> None:
        made.add((before, status(job(conn, job_id)["status"])))

    a = make_job(conn)
    claim(conn, worker)
    moved(a, status.PENDING)
    finish(conn, worker, [(a, "{}", False, None, None)])
    moved(a, status.PROCESSING)  # -> completed
    b = make_job(conn)
    claim(conn, worker)
    finish(conn, worker, [(b, None, False, "CorruptFile", "x")])
    moved(b, status.PROCESSING)  # -> failed
    conn.execute(sql.JOB_RETRY.encode(), {"id": b})
    moved(b, status.FAILED)  # -> pending
    claim(conn, worker)
    finish(conn, worker, [(b, None, True, "StorageUnavailable", "x")])
    moved(b, status.PROCESSING)  # -> pending
    conn.execute(sql.JOB_CANCEL.encode(), {"id": b, "reason": "x"})
    moved(b, status.PENDING)  # -> cancelled
    conn.execute(sql.JOB_RETRY.encode(), {"id": b})
    moved(b, status.CANCELLED)  # -> pending
    conn.execute("UPDATE extraction_jobs SET next_retry_at = now() WHERE id = %s", [b])
    claim(conn, worker)
    conn.execute(sql.JOB_CANCEL.encode(), {"id": b, "reason": "x"})
    moved(b, status.PROCESSING)  # -> cancelled
    assert made == set(TRANSITIONS)
    assert conn.execute(sql.JOB_RETRY.encode(), {"id": a}).fetchall() == []  # completed stays


def test_only_a_registered_worker_claims(conn: Conn) -> None:
    # A worker declared lost is deleted from the registry; until its heartbeat registers it
    # again under a new identity it must not claim (the next rescue would take the jobs back).
    job_id = make_job(conn)
    assert claim(conn, str(uuid.uuid4())) == []
    worker = register_worker(conn)
    assert [row["id"] for row in claim(conn, worker)] == [job_id]



def test_one_active_job_per_attachment_without_a_record(conn: Conn) -> None:
    # NULLs count as equal in the unique index: an attachment without a record, or one whose
    # record was deleted (ON DELETE SET NULL), still has one active job at most.
    attachment = str(uuid.uuid4())
    alone = enqueue(conn, JobRequest("a.pdf", "s3://b/a.pdf", 1, "pdf", attachment_id=attachment))
    again = enqueue(conn, JobRequest("a.pdf", "s3://b/a.pdf", 1, "pdf", attachment_id=attachment))
    assert again.existing and again.id == alone.id

    record, other = str(uuid.uuid4()), str(uuid.uuid4())
    linked = enqueue(conn, JobRequest("b.pdf", "s3://b/b.pdf", 1, "pdf", record_id=record,
                                      attachment_id=other))
    conn.execute("UPDATE extraction_jobs SET record_id = NULL WHERE record_id = %s", [record])
    orphaned = enqueue(conn, JobRequest("b.pdf", "s3://b/b.pdf", 1, "pdf", attachment_id=other))
    assert orphaned.existing and orphaned.id == linked.id
    with pytest.raises(psycopg.errors.UniqueViolation):
        make_job(conn, attachment_id=attachment)
    assert conn.execute("SELECT count(*) AS n FROM extraction_jobs").fetchone() == {"n": 2}


def test_a_hand_back_skips_a_row_locked_by_a_web_request(conn: Conn, db_url: str) -> None:
    worker = register_worker(conn)
    ids = [make_job(conn) for _ in range(3)]
    claim(conn, worker)
    conn.execute("SET lock_timeout = '5s'")  # a hand-back that waited would fail here
    with psycopg.connect(db_url) as web:
        web.execute("SELECT 1 FROM extraction_jobs WHERE id = %s FOR UPDATE", [ids[1]])
        rows = conn.execute(sql.JOB_RELEASE_ORPHANS.encode(), {"worker_id": worker, "held": []}).fetchall()
        assert sorted(row["id"] for row in rows) == sorted([ids[0], ids[2]])
    assert job(conn, ids[1])["status"] == "processing"
    assert job(conn, ids[0])["claim_token"] is None

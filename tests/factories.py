"""Test helpers as products: make a job in any state, run the queue's statements by name."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import psycopg.sql
from psycopg.rows import dict_row

from pgqueue import sql

BACKOFF = {"backoff_base": 30.0, "backoff_factor": 4.0, "backoff_cap": 3600.0, "backoff_jitter": 0.25}


def make_job(conn: psycopg.Connection[Any], status: str = "pending", **columns: Any) -> str:
    """Insert one job in ``status`` (with the columns that state requires) and return its id."""
    values: dict[str, Any] = {
        "filename": "part.pdf", "file_url": "s3://bucket/part.pdf", "file_size": 10, "format": "pdf",
    }
    if status == "processing":
        values.update(worker_id=str(uuid.uuid4()), started_at="now()")
    if status in ("completed", "failed", "cancelled"):
        values["completed_at"] = "now()"
    values.update(columns)
    values["status"] = status
    names = list(values)
    statement = psycopg.sql.SQL(
        "INSERT INTO extraction_jobs ({names}) VALUES ({values}) RETURNING id::text AS id"
    ).format(
        names=psycopg.sql.SQL(", ").join(psycopg.sql.Identifier(name) for name in names),
        values=psycopg.sql.SQL(", ").join(
            psycopg.sql.SQL("now()") if values[name] == "now()" else psycopg.sql.Placeholder(name)
            for name in names
        ),
    )
    row = conn.execute(statement, values).fetchone()
    assert row is not None
    return str(row["id"] if isinstance(row, dict) else row[0])


def register_worker(conn: psycopg.Connection[Any], worker_id: str | None = None, age_seconds: float = 0) -> str:
    worker_id = worker_id or str(uuid.uuid4())
    conn.execute(
        sql.WORKER_REGISTER.encode(),
        {"worker_id": worker_id, "hostname": "test", "pid": 1, "slots": 1, "version": "test",
         "formats": []},
    )
    if age_seconds:
        conn.execute(
            "UPDATE pgqueue_workers SET heartbeat_at = now() - make_interval(secs => %s) WHERE id = %s",
            [age_seconds, worker_id],
        )
    return worker_id


def claim(
    conn: psycopg.Connection[Any], worker_id: str, limit: int = 10, now: Any = None,
    min_priority: int = 0,
) -> list[dict[str, Any]]:
    return conn.execute(
        sql.JOB_CLAIM.encode(),
        {"now": now, "limit": limit, "worker_id": worker_id, "min_priority": min_priority},
    ).fetchall()


def finish(
    conn: psycopg.Connection[Any],
    worker_id: str,
    outcomes: list[tuple[str, str | None, bool, str | None, str | None]],
    extractor: str = "test:extract",
    version: str = "1",
    tokens: list[str] | None = None,
) -> list[dict[str, Any]]:
    """outcomes: (job id, result json or None, retryable, error type, message), written under
    ``tokens`` (default: the claims ``worker_id`` holds now). Results are recorded as written by
    ``extractor`` at ``version``. Returns the rows written."""
    if tokens is None:
        held = {
            row["id"]: row["claim_token"]
            for row in conn.cursor(row_factory=dict_row).execute(
                "SELECT id::text AS id, claim_token::text AS claim_token FROM extraction_jobs "
                "WHERE id = ANY(%s::uuid[]) AND worker_id = %s",
                [[o[0] for o in outcomes], worker_id],
            )
        }
        tokens = [held.get(o[0]) or str(uuid.uuid4()) for o in outcomes]
    params = {
        "ids": [o[0] for o in outcomes],
        "claim_tokens": tokens,
        "results": [o[1] for o in outcomes],
        "retryable": [o[2] for o in outcomes],
        "error_types": [o[3] for o in outcomes],
        "messages": [o[4] for o in outcomes],
        "extractors": [extractor if o[1] is not None else None for o in outcomes],
        "extractor_versions": [version if o[1] is not None else None for o in outcomes],
        **BACKOFF,
    }
    rows = conn.execute(sql.JOB_FINISH_MANY.encode(), params).fetchall()
    return [row for row in rows if row["fate"] == "written"]


def job(conn: psycopg.Connection[Any], job_id: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM extraction_jobs WHERE id = %s", [job_id]).fetchone()
    assert row is not None
    return dict(row)

"""Re-extraction: exactly the latest results of an older extractor version get a new bulk job,
once, also when run twice; the old result stays readable until the new one completes."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from pgqueue.priority import Priority
from pgqueue.reextract import InvalidReextraction, reextract
from tests.commands import Cli
from tests.factories import claim, finish, job, make_job, register_worker

Conn = psycopg.Connection[Any]


def result(conn: Conn, version: str, days_ago: float = 1, fmt: str = "dxf", **columns: Any) -> str:
    when = conn.execute("SELECT now() - make_interval(secs => %s) AS at", [days_ago * 86400]).fetchone()
    return make_job(conn, "completed", format=fmt, filename=f"{uuid.uuid4()}.{fmt}",
                    completed_at=when["at"], result=json.dumps({"layers": []}),  # type: ignore[index]
                    extractor=f"pgqueue.extractors.{fmt}:extract", extractor_version=version,
                    options=json.dumps({"layers": True}), **columns)


def attachment() -> dict[str, str]:
    return {"record_id": str(uuid.uuid4()), "attachment_id": str(uuid.uuid4())}


@pytest.fixture
def results(conn: Conn) -> dict[str, str]:
    """Latest results of two extractor versions, and the cases that must not be re-enqueued."""
    replaced = attachment()
    busy = attachment()
    made = {
        "old_a": result(conn, "1", **attachment()),
        "old_b": result(conn, "unknown", **attachment()),
        "old_long_ago": result(conn, "1", days_ago=40, **attachment()),
        "new": result(conn, "2", **attachment()),
        "replaced_old": result(conn, "1", days_ago=2, **replaced),
        "replaced_new": result(conn, "2", **replaced),
        "busy_old": result(conn, "1", **busy),
        "busy_active": make_job(conn, "pending", format="dxf", **busy),
        "unlinked_old": result(conn, "1"),
        "other_format": result(conn, "1", fmt="pdf", **attachment()),
    }
    return made


def pending_jobs(conn: Conn) -> list[dict[str, Any]]:
    return conn.execute("SELECT * FROM extraction_jobs WHERE status = 'pending' ORDER BY filename").fetchall()


def test_exactly_the_old_results_are_enqueued_once(conn: Conn, results: dict[str, str]) -> None:
    before = pending_jobs(conn)
    dry = reextract(conn, "dxf", before_version=2, dry_run=True, batch=2)
    assert (dry.outdated, dry.enqueued, dry.already_active) == (4, 3, 1)
    assert pending_jobs(conn) == before  # a dry run changes nothing

    done = reextract(conn, "dxf", before_version=2, batch=2)
    assert (done.outdated, done.enqueued) == (4, 3)
    new_jobs = [row for row in pending_jobs(conn) if str(row["id"]) != results["busy_active"]]
    sources = {key: job(conn, results[key]) for key in ("old_a", "old_b", "old_long_ago")}
    assert sorted((row["file_url"], str(row["attachment_id"])) for row in new_jobs) == sorted(
        (source["file_url"], str(source["attachment_id"])) for source in sources.values())
    for row in new_jobs:
        assert row["priority"] == Priority.BULK and row["options"] == {"layers": True}
    for source in sources.values():  # still the latest result, readable, until the new one completes
        assert source["status"] == "completed" and source["superseded_by"] is None

    again = reextract(conn, "dxf", before_version=2)
    assert (again.outdated, again.enqueued, again.already_active) == (4, 0, 4)

    worker = register_worker(conn)
    claimed = [row["id"] for row in claim(conn, worker, limit=10) if row["id"] != results["busy_active"]]
    finish(conn, worker, [(job_id, json.dumps({"layers": ["0"]}), False, None, None)
                          for job_id in claimed], version="2")
    assert all(job(conn, results[key])["superseded_by"] is not None for key in sources)
    settled = reextract(conn, "dxf", before_version=2)
    assert (settled.outdated, settled.enqueued) == (1, 0)  # the busy attachment's old result


def test_the_window_and_the_default_version(conn: Conn, results: dict[str, str]) -> None:
    recent = reextract(conn, "dxf", before_version=2, since=timedelta(days=30), dry_run=True)
    assert (recent.outdated, recent.enqueued) == (3, 2)
    old = reextract(conn, "dxf", before_version=2, until=timedelta(days=30), dry_run=True)
    assert (old.outdated, old.enqueued) == (1, 1)
    current = reextract(conn, "dxf", dry_run=True)  # below the current version, 1: "unknown" only
    assert (current.before_version, current.outdated) == (1, 1)
    with pytest.raises(InvalidReextraction, match="no built-in extractor version for format 'nope'"):
        reextract(conn, "nope")


def test_the_command_dry_run_and_real_run(
    conn: Conn, db_url: str, results: dict[str, str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pgqueue = Cli(db_url, monkeypatch, capsys, "reextract")

    code, out, _ = pgqueue("--format", "dxf", "--before-version", "2", "--dry-run", "--json")
    assert code == 0 and json.loads(out) == {
        "outdated": 4, "enqueued": 3, "before_version": 2, "dry_run": True, "already_active": 1}
    assert len(pending_jobs(conn)) == 1
    code, out, _ = pgqueue("--format", "dxf", "--before-version", "2", "--batch", "1")
    assert code == 0 and out.startswith("4 latest dxf results from extractor versions before 2: "
                                        "enqueued 3 bulk jobs; 1 attachments already had")
    assert len(pending_jobs(conn)) == 4
    code, out, _ = pgqueue("--format", "dxf", "--before-version", "2")
    assert code == 0 and "enqueued 0 bulk jobs" in out and len(pending_jobs(conn)) == 4
    code, _, err = pgqueue("--format", "nope")
    assert code == 2 and "no built-in extractor version for format 'nope'" in err

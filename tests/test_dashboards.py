"""The dashboard views of migration 0002, the Grafana dashboard built on them, and their docs."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from pgqueue import migrate
from tests.factories import make_job, register_worker
from tests.workers import ROOT

VIEW_COLUMNS = {
    "pgqueue_status_by_format": ["format", "status", "jobs"],
    "pgqueue_queue_lag": ["due_jobs", "oldest_due_at", "lag_seconds"],
    "pgqueue_queue_lag_by_priority": ["priority", "level", "due_jobs", "oldest_due_at", "lag_seconds"],
    "pgqueue_results_by_extractor_version": [
        "format", "extractor", "extractor_version", "latest_results", "last_completed_at"],
    "pgqueue_throughput_per_minute": ["minute", "format", "completed", "failed"],
    "pgqueue_duration_percentiles": ["format", "p50", "p95", "p99", "jobs"],
    "pgqueue_failure_reasons": ["error_type", "message_prefix", "jobs", "last_seen"],
    "pgqueue_live_workers": [
        "worker_id", "hostname", "pid", "slots", "version", "started_at", "heartbeat_at",
        "heartbeat_age_seconds", "jobs_held", "held_job_ids",
    ],
}
DASHBOARD = ROOT / "dashboards" / "pgqueue.json"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"


def view_columns(conn: psycopg.Connection[Any], schema: str = "public") -> dict[str, list[str]]:
    rows = conn.execute(
        "SELECT table_name, array_agg(column_name::text ORDER BY ordinal_position) AS columns "
        "FROM information_schema.columns WHERE table_schema = %s AND table_name IN "
        "(SELECT table_name FROM information_schema.views WHERE table_schema = %s) GROUP BY table_name",
        [schema, schema],
    ).fetchall()
    return {row["table_name"]: list(row["columns"]) for row in rows}


def test_the_views_exist_with_their_columns(conn: psycopg.Connection[Any]) -> None:
    assert view_columns(conn) == VIEW_COLUMNS


def test_status_by_format_and_queue_lag(conn: psycopg.Connection[Any]) -> None:
    assert conn.execute("SELECT * FROM pgqueue_queue_lag").fetchall() == [
        {"due_jobs": 0, "oldest_due_at": None, "lag_seconds": 0.0}
    ]
    for _ in range(2):
        make_job(conn, "pending", format="pdf")
    make_job(conn, "pending", format="ifc", next_retry_at="2999-01-01")
    make_job(conn, "completed", format="pdf")
    conn.execute("UPDATE extraction_jobs SET next_retry_at = now() - interval '5 minutes' "
                 "WHERE format = 'pdf' AND status = 'pending'")
    rows = conn.execute("SELECT * FROM pgqueue_status_by_format ORDER BY format, status").fetchall()
    assert rows == [
        {"format": "ifc", "status": "pending", "jobs": 1},
        {"format": "pdf", "status": "completed", "jobs": 1},
        {"format": "pdf", "status": "pending", "jobs": 2},
    ]
    lag = conn.execute("SELECT *, now() - oldest_due_at AS age FROM pgqueue_queue_lag").fetchone()
    assert lag is not None and lag["due_jobs"] == 2
    assert lag["age"].total_seconds() == pytest.approx(300, abs=1)
    assert lag["lag_seconds"] == pytest.approx(lag["age"].total_seconds(), abs=0.01)


def finish(conn: psycopg.Connection[Any], job_id: str, ago: str, took: float) -> None:
    conn.execute(
        "UPDATE extraction_jobs SET completed_at = now() - %s::interval, "
        "started_at = now() - %s::interval - make_interval(secs => %s) WHERE id = %s",
        [ago, ago, took, job_id],
    )


def test_throughput_per_minute_covers_24_hours(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET TIME ZONE 'UTC'")
    base = conn.execute("SELECT date_trunc('minute', now()) - interval '10 minutes' AS minute").fetchone()["minute"]  # type: ignore[index]
    for status, fmt, count in (("completed", "pdf", 3), ("failed", "pdf", 1), ("completed", "dxf", 2)):
        for _ in range(count):
            job_id = make_job(conn, status, format=fmt)
            conn.execute("UPDATE extraction_jobs SET completed_at = %s + interval '20 seconds' WHERE id = %s",
                         [base, job_id])
    old = make_job(conn, "completed", format="pdf")
    finish(conn, old, "25 hours", 1)
    make_job(conn, "cancelled", format="pdf")
    rows = conn.execute("SELECT * FROM pgqueue_throughput_per_minute ORDER BY format").fetchall()
    assert rows == [
        {"minute": base, "format": "dxf", "completed": 2, "failed": 0},
        {"minute": base, "format": "pdf", "completed": 3, "failed": 1},
    ]


def test_duration_percentiles_of_completed_jobs(conn: psycopg.Connection[Any]) -> None:
    for seconds in range(1, 101):
        finish(conn, make_job(conn, "completed", format="step"), "1 hour", seconds)
    finish(conn, make_job(conn, "completed", format="step"), "2 days", 5000)  # too old
    finish(conn, make_job(conn, "failed", format="step"), "1 hour", 5000)  # not completed
    rows = conn.execute("SELECT * FROM pgqueue_duration_percentiles").fetchall()
    assert len(rows) == 1 and rows[0]["format"] == "step" and rows[0]["jobs"] == 100
    assert rows[0]["p50"] == pytest.approx(50.5)
    assert rows[0]["p95"] == pytest.approx(95.05)
    assert rows[0]["p99"] == pytest.approx(99.01)


def test_failure_reasons_group_normalised_messages_of_the_last_attempt(conn: psycopg.Connection[Any]) -> None:
    def failed(history: list[dict[str, Any]], message: str | None = None) -> str:
        return make_job(conn, "failed", error_history=Jsonb(history), error_message=message)

    failed([{"error_type": "StorageUnavailable", "message": "timeout"},
            {"error_type": "FileNotFound", "message": "s3://b/7f3a/1.pdf: no such file"}])
    failed([{"error_type": "FileNotFound", "message": "s3://b/other/22.pdf: no such file"}])
    failed([{"error_type": "CorruptFile", "message": f"job {uuid.uuid4()} page 3 of 'a b.pdf' is  truncated\n at 1234"}])
    failed([{"error_type": "CorruptFile", "message": f"job {uuid.uuid4()} page 17 of 'c.pdf' is truncated at 99"}])
    failed([], "failed before the history existed")
    make_job(conn, "pending", error_history=Jsonb([{"error_type": "WorkerLost", "message": "lost"}]))
    rows = conn.execute("SELECT error_type, message_prefix, jobs FROM pgqueue_failure_reasons "
                        "ORDER BY jobs DESC, error_type").fetchall()
    assert rows == [
        {"error_type": "CorruptFile", "message_prefix": "job <id> page N of <name> is truncated at N", "jobs": 2},
        {"error_type": "FileNotFound", "message_prefix": "<url> no such file", "jobs": 2},
        {"error_type": "Unknown", "message_prefix": "failed before the history existed", "jobs": 1},
    ]
    last_seen = conn.execute("SELECT max(last_seen) = max(completed_at) AS same FROM pgqueue_failure_reasons, "
                             "extraction_jobs").fetchone()
    assert last_seen == {"same": True}


def test_live_workers_and_what_they_hold(conn: psycopg.Connection[Any]) -> None:
    busy = register_worker(conn)
    idle = register_worker(conn, age_seconds=12)
    held = sorted(make_job(conn, "processing", worker_id=busy) for _ in range(2))
    make_job(conn, "completed", worker_id=busy)
    rows = {str(row["worker_id"]): row for row in conn.execute("SELECT * FROM pgqueue_live_workers").fetchall()}
    assert rows[busy]["jobs_held"] == 2
    assert sorted(str(job_id) for job_id in rows[busy]["held_job_ids"]) == held
    assert rows[idle]["jobs_held"] == 0 and rows[idle]["held_job_ids"] == []
    assert rows[idle]["heartbeat_age_seconds"] == pytest.approx(12, abs=1)
    assert (rows[busy]["hostname"], rows[busy]["pid"], rows[busy]["slots"]) == ("test", 1, 1)


def test_downgrading_to_0001_drops_the_views_and_upgrading_restores_them(db_url: str) -> None:
    migrate.downgrade(db_url, revision="pgqueue_0001")
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.views WHERE table_schema = 'public'").fetchone() == (0,)
        assert conn.execute("SELECT to_regclass('extraction_jobs') IS NOT NULL").fetchone() == (True,)
    migrate.upgrade(db_url)
    with psycopg.connect(db_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        assert view_columns(conn) == VIEW_COLUMNS


# --- the Grafana dashboard --------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, SQL) for every query in the dashboard: panel targets and template variables."""
    board = dashboard()
    queries = [(f"variable {variable['name']}", variable["query"])
               for variable in board["templating"]["list"] if variable["type"] == "query"]
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            queries.append((f"panel {panel['title']!r} target {target['refId']}", target["rawSql"]))
    return queries


def grafana_expanded(query: str) -> str:
    """The SQL Grafana would send, with its macros and variables replaced."""
    query = re.sub(r"\$__timeFilter\(([^)]+)\)",
                   r"\1 BETWEEN now() - interval '6 hours' AND now()", query)
    query = query.replace("$format", "'pdf', 'dxf'")
    assert "$" not in query, f"a Grafana macro or variable the test does not know: {query}"
    return query


def test_the_dashboard_uses_the_postgresql_data_source_everywhere() -> None:
    board = dashboard()
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        sources = [panel["datasource"], *[target["datasource"] for target in panel["targets"]]]
        assert all(source == {"type": "grafana-postgresql-datasource", "uid": "${datasource}"} for source in sources)
        assert all(target["rawQuery"] and target["format"] in ("table", "time_series") for target in panel["targets"])
    used = " ".join(query for _, query in dashboard_queries())
    assert all(view in used for view in VIEW_COLUMNS), "every view has a panel"


@pytest.mark.parametrize(("where", "query"), dashboard_queries(), ids=[where for where, _ in dashboard_queries()])
def test_every_dashboard_query_runs_on_a_migrated_database(
    conn: psycopg.Connection[Any], where: str, query: str
) -> None:
    worker = register_worker(conn)
    make_job(conn, "processing", format="pdf", worker_id=worker)
    make_job(conn, "pending", format="dxf")
    finish(conn, make_job(conn, "completed", format="pdf"), "5 minutes", 2.5)
    failed = make_job(conn, "failed", format="dxf",
                      error_history=Jsonb([{"error_type": "CorruptFile", "message": "truncated"}]))
    finish(conn, failed, "1 minute", 1)
    rows = conn.execute(grafana_expanded(query).encode()).fetchall()
    assert rows, f"{where} returned no rows on a queue with jobs of every kind"
    if "time_series" in json.dumps([t for p in dashboard()["panels"] for t in p["targets"] if t.get("rawSql") == query]):
        assert {"time", "metric", "value"} <= set(rows[0]), where


# --- the docs ---------------------------------------------------------------------------------


def test_every_view_column_is_documented() -> None:
    text = OPERATIONS_DOC.read_text()
    section = text.split("## Dashboards", 1)[1].split("\n## ", 1)[0]
    for view, columns in VIEW_COLUMNS.items():
        assert f"### `{view}`" in section, view
        part = section.split(f"### `{view}`", 1)[1].split("\n### ", 1)[0]
        documented = re.findall(r"^\| `(\w+)` \|", part, re.MULTILINE)
        assert documented == columns, view


def test_the_dashboard_file_is_where_the_docs_say() -> None:
    assert "dashboards/pgqueue.json" in OPERATIONS_DOC.read_text()
    assert Path(DASHBOARD).is_file()

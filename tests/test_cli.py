"""The ``pgqueue`` operator commands on a real database: what they print, change and return."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from pgqueue import cli, samples
from tests import database
from tests.factories import job, make_job, register_worker
from tests.workers import ROOT


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Result]


@pytest.fixture
def pgqueue(db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run ``pgqueue ARGS`` in this process against this test's database."""
    monkeypatch.delenv("PGQUEUE_FILE_ROOTS", raising=False)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            code = cli.main(list(args))
        except SystemExit as exit_:  # argparse's usage errors
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def jobs_in(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return conn.execute("SELECT * FROM extraction_jobs ORDER BY filename").fetchall()


# --- enqueue ----------------------------------------------------------------------------------


@pytest.fixture
def drawings(tmp_path: Path) -> Path:
    """Files whose names are missing or lie, beside honest ones."""
    folder = tmp_path / "drawings"
    made = {sample.format: sample.path for sample in samples.write_all(folder)}
    (folder / "renamed.pdf").write_bytes(made["dxf"].read_bytes())  # a DXF named .pdf
    (folder / "model").write_bytes(made["ifc"].read_bytes())  # an IFC without extension
    return folder


def test_enqueue_reads_formats_from_content_and_stores_file_urls(
    pgqueue: Cli, conn: psycopg.Connection[Any], drawings: Path
) -> None:
    result = pgqueue("enqueue", str(drawings / "*.pdf"), str(drawings / "model"),
                     str(drawings / "bolted_assembly.step"), "--json")
    assert result.code == 0, result.err
    answer = result.json()
    assert answer["inserted"] == 4 and answer["existing"] == 0
    rows = {row["filename"]: row for row in jobs_in(conn)}
    assert {name: row["format"] for name, row in rows.items()} == {
        "bracket_drawing.pdf": "pdf", "renamed.pdf": "dxf", "model": "ifc", "bolted_assembly.step": "step",
    }
    assert rows["model"]["file_url"] == (drawings / "model").resolve().as_uri()
    assert rows["model"]["file_size"] == (drawings / "model").stat().st_size
    assert {job_["id"] for job_ in answer["jobs"]} == {str(row["id"]) for row in rows.values()}
    assert "renamed.pdf is named like pdf but its content is dxf: enqueued as dxf" in result.err
    # The workers' roots are not known here (an external database, no PGQUEUE_FILE_ROOTS).
    assert "give this command the same PGQUEUE_FILE_ROOTS" in result.err


def test_enqueue_refuses_files_outside_the_given_file_roots_before_writing(
    pgqueue: Cli, conn: psycopg.Connection[Any], drawings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGQUEUE_FILE_ROOTS", str(drawings / "elsewhere"))
    result = pgqueue("enqueue", str(drawings / "bracket_drawing.pdf"))
    assert result.code == 2
    assert f"start the workers with PGQUEUE_FILE_ROOTS={drawings.resolve()}" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert jobs_in(conn) == []
    monkeypatch.setenv("PGQUEUE_FILE_ROOTS", str(drawings))
    assert pgqueue("enqueue", str(drawings / "bracket_drawing.pdf")).code == 0
    assert [row["filename"] for row in jobs_in(conn)] == ["bracket_drawing.pdf"]


def test_enqueue_refuses_a_dwg_and_writes_nothing_unless_told_to_skip(
    pgqueue: Cli, conn: psycopg.Connection[Any], drawings: Path
) -> None:
    (drawings / "old_plate.dxf").write_bytes(b"AC1032" + bytes(200))
    result = pgqueue("enqueue", str(drawings / "old_plate.dxf"), str(drawings / "mounting_plate.dxf"))
    assert result.code == 2
    assert "old_plate.dxf is a DWG drawing: pgqueue reads DXF, not DWG" in result.err
    assert "nothing enqueued: 1 inputs refused (--skip-bad enqueues the rest)" in result.err
    assert jobs_in(conn) == []

    result = pgqueue("enqueue", str(drawings / "old_plate.dxf"), str(drawings / "mounting_plate.dxf"), "--skip-bad")
    assert result.code == 0, result.err
    assert [(row["filename"], row["format"]) for row in jobs_in(conn)] == [("mounting_plate.dxf", "dxf")]
    assert "enqueued 1 jobs" in result.out


def test_enqueue_urls_options_and_forced_formats(pgqueue: Cli, conn: psycopg.Connection[Any]) -> None:
    assert pgqueue("enqueue", "https://files.example.com/scan").code == 2
    result = pgqueue("enqueue", "s3://drawings/a/plate.STP", "https://files.example.com/scan",
                     "--format", "pdf", "--options", '{"tables": true}', "--max-retries", "5")
    assert result.code == 0, result.err
    rows = jobs_in(conn)
    assert [(row["filename"], row["format"], row["options"], row["max_retries"], row["file_size"]) for row in rows] == [
        ("plate.STP", "pdf", {"tables": True}, 5, 0), ("scan", "pdf", {"tables": True}, 5, 0),
    ]
    result = pgqueue("enqueue", "s3://drawings/plate.step", "--options", "{tables}")
    assert result.code == 2 and "--options is not valid JSON" in result.err
    result = pgqueue("enqueue", "s3://drawings/plate.step", "--format", "jpeg")
    assert result.code == 2 and "--format 'jpeg' is not a known format" in result.err


def test_enqueue_of_nothing_that_exists_exits_one(pgqueue: Cli, tmp_path: Path) -> None:
    result = pgqueue("enqueue", str(tmp_path / "*.pdf"))
    assert result.code == 1
    assert f"{tmp_path}/*.pdf: no such file (nothing matched)" in result.err


def test_enqueue_of_many_files_in_one_transaction(pgqueue: Cli, conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    content = (samples.STEP_ASSEMBLY).encode()
    for number in range(30):
        (folder / f"part{number:02}.stp").write_bytes(content)
    result = pgqueue("enqueue", str(folder / "*.stp"), str(folder / "part0*.stp"))
    assert result.code == 0, result.err
    assert conn.execute("SELECT count(DISTINCT file_url) AS n FROM extraction_jobs").fetchone() == {"n": 30}


# --- manifests --------------------------------------------------------------------------------

CSV_GOOD = """filename,file_url,file_size,format,options,record_id,attachment_id
a.pdf,s3://bucket/a.pdf,100,pdf,"{{""tables"": true}}",,
b.dxf,s3://bucket/b.dxf,200,dxf,,{record},{attachment}
"""


def test_a_csv_manifest_is_loaded_with_copy(pgqueue: Cli, conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    record, attachment = uuid.uuid4(), uuid.uuid4()
    path = tmp_path / "backfill.csv"
    path.write_text(CSV_GOOD.format(record=record, attachment=attachment))
    result = pgqueue("enqueue", "--manifest", str(path), "--json")
    assert result.code == 0, result.err
    assert result.json() == {"inserted": 2, "already_queued": 0, "bad_lines": 0}
    rows = jobs_in(conn)
    assert [(row["filename"], row["file_size"], row["options"]) for row in rows] == [
        ("a.pdf", 100, {"tables": True}), ("b.dxf", 200, {}),
    ]
    assert (rows[1]["record_id"], rows[1]["attachment_id"]) == (record, attachment)
    # The same attachment again: its active job is kept, not duplicated.
    again = pgqueue("enqueue", "--manifest", str(path), "--json")
    assert again.json() == {"inserted": 1, "already_queued": 1, "bad_lines": 0}
    assert conn.execute("SELECT count(*) AS n FROM extraction_jobs WHERE attachment_id = %s", [attachment]).fetchone() == {"n": 1}


def test_bad_manifest_lines_are_reported_by_number_and_nothing_is_written(
    pgqueue: Cli, conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    path = tmp_path / "backfill.csv"
    path.write_text(
        "filename,file_url,file_size,format\n"
        "good.pdf,s3://b/good.pdf,1,pdf\n"
        "\n"
        "big.pdf,s3://b/big.pdf,lots,pdf\n"
        '"multi\nline.pdf",s3://b/m.pdf,1,pdf\n'
        "odd.doc,s3://b/odd.doc,1,doc\n"
        "short.pdf,s3://b/short.pdf\n"
        "nourl.pdf,/tmp/x.pdf,1,pdf\n"
    )
    result = pgqueue("enqueue", "--manifest", str(path))
    assert result.code == 2
    assert f"{path} line 4: file_size must be a non-negative integer, got 'lots'" in result.err
    assert f"{path} line 7: unknown format 'doc'" in result.err
    assert f"{path} line 8: 2 values for 4 columns" in result.err
    assert f"{path} line 9: file_url must be a URL" in result.err
    # A quoted CSV value may span lines; a filename may not (it is shown on one line).
    assert f"{path} line 5: filename must not contain control or bidi characters, found \\x0a" \
        in result.err
    assert "nothing enqueued: 5 bad lines" in result.err
    assert jobs_in(conn) == []

    result = pgqueue("enqueue", "--manifest", str(path), "--skip-bad", "--json")
    assert result.code == 0, result.err
    assert result.json() == {"inserted": 1, "already_queued": 0, "bad_lines": 5}
    assert [row["filename"] for row in jobs_in(conn)] == ["good.pdf"]


def test_a_json_lines_manifest(pgqueue: Cli, conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    path = tmp_path / "backfill.jsonl"
    path.write_text(
        json.dumps({"filename": "a.ifc", "file_url": "s3://b/a.ifc", "file_size": 5, "format": "ifc",
                    "options": {"spatial": True}}) + "\n\n"
        + '{"filename": "b.step", "file_url": "s3://b/b.step", "file_size": "5", "format": "step"}\n'
        + '{"filename": "c.step", "file_url": "s3://b/c.step", "file_size": 5, "format": "step", "colour": 1}\n'
        + "[1, 2]\n{not json\n"
    )
    result = pgqueue("enqueue", "--manifest", str(path))
    assert result.code == 2
    for line, message in [(3, "file_size must be a non-negative integer, got '5'"),
                          (4, "unknown keys 'colour'"), (5, "expected a JSON object, got list"),
                          (6, "not valid JSON")]:
        assert f"{path} line {line}: {message}" in result.err
    result = pgqueue("enqueue", "--manifest", str(path), "--skip-bad")
    assert result.code == 0
    assert [(row["filename"], row["options"]) for row in jobs_in(conn)] == [("a.ifc", {"spatial": True})]


def test_a_manifest_with_a_bad_header_is_refused_whole(pgqueue: Cli, tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("name,url,size\nx,s3://b/x,1\n")
    result = pgqueue("enqueue", "--manifest", str(path), "--skip-bad")
    assert result.code == 2
    assert "line 1 (the header): missing columns filename, file_url, file_size, format" in result.err


# --- status -----------------------------------------------------------------------------------


def failed_job(conn: psycopg.Connection[Any], message: str, error_type: str = "CorruptFile",
               fmt: str = "pdf", age: str = "1 minute", **columns: Any) -> str:
    job_id = make_job(conn, "failed", format=fmt, error_message=message,
                      error_history=Jsonb([{"attempt": 1, "error_type": error_type, "message": message}]),
                      **columns)
    conn.execute("UPDATE extraction_jobs SET completed_at = now() - %s::interval WHERE id = %s", [age, job_id])
    return job_id


def test_status_reports_counts_lag_throughput_workers_and_failures(pgqueue: Cli, conn: psycopg.Connection[Any]) -> None:
    for _ in range(3):
        make_job(conn, "pending", format="pdf")
    make_job(conn, "pending", format="dxf")
    conn.execute("UPDATE extraction_jobs SET next_retry_at = now() - interval '90 seconds' WHERE format = 'dxf'")
    make_job(conn, "pending", format="ifc", next_retry_at="2999-01-01")  # not due
    worker = register_worker(conn)
    make_job(conn, "processing", format="step", worker_id=worker)
    for _ in range(2):
        make_job(conn, "completed", format="pdf", started_at="now()")
    old = make_job(conn, "completed", format="pdf")
    conn.execute("UPDATE extraction_jobs SET completed_at = now() - interval '30 minutes' WHERE id = %s", [old])
    failed_job(conn, "s3://b/a/1.pdf: no such file")
    failed_job(conn, "s3://b/a/22.pdf: no such file")
    failed_job(conn, "file is truncated at byte 1234", "CorruptFile", "dxf")

    result = pgqueue("status", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["totals"] == {"pending": 5, "processing": 1, "completed": 3, "failed": 3, "cancelled": 0}
    assert {"format": "pdf", "status": "pending", "jobs": 3} in report["counts"]
    assert report["due_jobs"] == 4
    assert 90 <= report["lag_seconds"] < 120
    assert report["throughput"] == {"completed_5m": 2, "failed_5m": 3, "completed_1h": 3, "failed_1h": 3}
    assert [(w["worker_id"], w["jobs_held"]) for w in report["workers"]] == [(worker, 1)]
    reasons = [(r["error_type"], r["message_prefix"], r["jobs"]) for r in report["failure_reasons"]]
    assert reasons == [("CorruptFile", "<url> no such file", 2),
                       ("CorruptFile", "file is truncated at byte N", 1)]

    human = pgqueue("status")
    assert human.code == 0
    for text in ("Jobs by format and status", "Due now 4", "Live workers (1)", "Top failure reasons",
                 "<url> no such file"):
        assert text in human.out, human.out


def test_status_of_an_empty_queue(pgqueue: Cli) -> None:
    result = pgqueue("status")
    assert result.code == 0
    assert "Live workers: none" in result.out and "(no jobs)" in result.out
    assert pgqueue("status", "--json").json()["lag_seconds"] == 0


# --- jobs list / show -------------------------------------------------------------------------


def test_jobs_list_filters_and_pages(pgqueue: Cli, conn: psycopg.Connection[Any]) -> None:
    record = str(uuid.uuid4())
    ids = [make_job(conn, "pending", format="pdf", filename=f"p{n}.pdf") for n in range(5)]
    make_job(conn, "failed", format="dxf", filename="f.dxf", record_id=record)
    old = make_job(conn, "completed", format="dxf", filename="old.dxf")
    conn.execute("UPDATE extraction_jobs SET created_at = now() - interval '3 days' WHERE id = %s", [old])
    conn.execute("UPDATE extraction_jobs SET created_at = created_at - make_interval(secs => %s) WHERE id = %s",
                 [10, ids[0]])

    page = pgqueue("jobs", "list", "--status", "pending", "--limit", "2", "--offset", "1", "--json").json()
    assert page["total"] == 5 and page["limit"] == 2 and page["offset"] == 1
    assert len(page["jobs"]) == 2 and {job_["status"] for job_ in page["jobs"]} == {"pending"}
    last = pgqueue("jobs", "list", "--status", "pending", "--limit", "2", "--offset", "4", "--json").json()
    assert [job_["id"] for job_ in last["jobs"]] == [ids[0]]  # the oldest comes last

    by_record = pgqueue("jobs", "list", "--record", record, "--json").json()
    assert [job_["filename"] for job_ in by_record["jobs"]] == ["f.dxf"]
    recent_dxf = pgqueue("jobs", "list", "--format", "dxf", "--since", "1d", "--json").json()
    assert [job_["filename"] for job_ in recent_dxf["jobs"]] == ["f.dxf"]
    both = pgqueue("jobs", "list", "--status", "failed", "--status", "completed", "--json").json()
    assert both["total"] == 2

    human = pgqueue("jobs", "list", "--limit", "3")
    assert human.code == 0 and "jobs 1-3 of 7; next page: --offset 3" in human.err
    empty = pgqueue("jobs", "list", "--status", "cancelled")
    assert empty.code == 1
    assert pgqueue("jobs", "list", "--since", "soon").code == 2
    assert pgqueue("jobs", "list", "--record", "nope").code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("purge", "--older-than", "99999999d"), "too long"),
        (("purge", "--older-than", "30d", "--batch", "99999999999999999999"), "expected a whole number"),
        (("jobs", "list", "--offset", "-1"), "expected a whole number from 0"),
        (("jobs", "list", "--since", "9999999999d"), "too long"),
    ],
)
def test_out_of_range_numbers_get_a_usage_error(pgqueue: Cli, args: tuple[str, ...], message: str) -> None:
    result = pgqueue(*args)
    assert result.code == 2 and message in result.err and "Traceback" not in result.err


def test_jobs_show_prints_the_row_history_and_result(pgqueue: Cli, conn: psycopg.Connection[Any]) -> None:
    job_id = make_job(conn, "completed", result=Jsonb({"tables": [{"rows": [["Ø12", "2"]]}]}),
                      error_history=Jsonb([{"attempt": 1, "error_type": "StorageUnavailable",
                                            "message": "S3 timed out", "retried": True}]), retry_count=1)
    shown = pgqueue("jobs", "show", job_id, "--json")
    assert shown.code == 0
    data = shown.json()
    assert data["id"] == job_id and data["status"] == "completed"
    assert data["result"] == {"tables": [{"rows": [["Ø12", "2"]]}]}
    assert data["error_history"][0]["message"] == "S3 timed out"

    human = pgqueue("jobs", "show", job_id)
    for text in (job_id, "Error history", "StorageUnavailable", "S3 timed out", "1 table",
                 "--full shows all of it"):
        assert text in human.out, human.out
    assert "Ø12" not in human.out
    full = pgqueue("jobs", "show", job_id, "--full")
    assert "Result" in full.out and '"Ø12"' in full.out

    missing = str(uuid.uuid4())
    result = pgqueue("jobs", "show", missing)
    assert (result.code, result.err.strip()) == (1, f"pgqueue: no job {missing}")
    result = pgqueue("jobs", "show", "42")
    assert result.code == 2 and "'42' is not a job id" in result.err


# --- retry / cancel / purge -------------------------------------------------------------------


@pytest.fixture
def listener(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_url, autocommit=True) as connection:
        connection.execute("LISTEN pgqueue_jobs")
        connection.execute("LISTEN pgqueue_cancel")
        yield connection


def notifications(connection: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [(note.channel, note.payload) for note in connection.notifies(timeout=0.5, stop_after=10)]


def test_retry_one_job(pgqueue: Cli, conn: psycopg.Connection[Any], listener: psycopg.Connection[Any]) -> None:
    failed = failed_job(conn, "broken", retry_count=3)
    result = pgqueue("retry", failed)
    assert (result.code, result.out.strip()) == (0, f"job {failed} will be retried now")
    row = job(conn, failed)
    assert (row["status"], row["retry_count"], row["completed_at"]) == ("pending", 0, None)
    assert ("pgqueue_jobs", "") in notifications(listener)

    done = make_job(conn, "completed")
    result = pgqueue("retry", done)
    assert result.code == 1
    assert result.err.strip() == f"pgqueue: job {done} is completed; only failed or cancelled jobs can be retried"
    assert pgqueue("retry").code == 2
    assert pgqueue("retry", done, "--all-failed").code == 2


def test_retry_all_failed_with_filters(pgqueue: Cli, conn: psycopg.Connection[Any]) -> None:
    recent_pdf = failed_job(conn, "x", fmt="pdf")
    old_pdf = failed_job(conn, "x", fmt="pdf", age="3 days")
    recent_dxf = failed_job(conn, "x", fmt="dxf")
    cancelled = make_job(conn, "cancelled", format="pdf")

    result = pgqueue("retry", "--all-failed", "--format", "pdf", "--since", "1d", "--json")
    assert result.code == 0
    assert result.json() == {"retried": [recent_pdf], "count": 1}
    statuses = {job_id: job(conn, job_id)["status"] for job_id in (recent_pdf, old_pdf, recent_dxf, cancelled)}
    assert statuses == {recent_pdf: "pending", old_pdf: "failed", recent_dxf: "failed", cancelled: "cancelled"}

    from pgqueue import operations

    assert sorted(operations.retry_failed(conn, batch=1)) == sorted([old_pdf, recent_dxf])
    result = pgqueue("retry", "--all-failed")
    assert (result.code, result.out.strip()) == (1, "0 failed jobs will be retried now")


def test_cancel(pgqueue: Cli, conn: psycopg.Connection[Any], listener: psycopg.Connection[Any]) -> None:
    pending = make_job(conn, "pending")
    result = pgqueue("cancel", pending, "--json")
    assert result.code == 0
    assert result.json() == {"id": pending, "changed": True, "status": "cancelled",
                             "message": f"job {pending} cancelled"}
    row = job(conn, pending)
    assert row["status"] == "cancelled" and row["error_message"] == "cancelled by an operator (pgqueue cancel)"
    assert ("pgqueue_cancel", pending) in notifications(listener)

    done = make_job(conn, "completed")
    result = pgqueue("cancel", done)
    assert result.code == 1
    assert result.err.strip() == (
        f"pgqueue: job {done} is already completed; only pending or processing jobs can be cancelled")
    assert job(conn, done)["status"] == "completed"
    missing = str(uuid.uuid4())
    assert pgqueue("cancel", missing).err.strip() == f"pgqueue: no job {missing}"


def test_purge_deletes_only_old_finished_jobs_in_batches(pgqueue: Cli, conn: psycopg.Connection[Any]) -> None:
    old = [make_job(conn, status) for status in ("completed", "failed", "cancelled", "completed", "completed")]
    conn.execute("UPDATE extraction_jobs SET completed_at = now() - interval '40 days'")
    young = make_job(conn, "completed")
    pending = make_job(conn, "pending")
    conn.execute("UPDATE extraction_jobs SET created_at = now() - interval '90 days' WHERE id = %s", [pending])
    result = pgqueue("purge", "--older-than", "30d", "--batch", "2", "--include-latest", "--yes", "--json")
    assert result.code == 0
    assert result.json()["deleted"] == len(old)
    assert {str(row["id"]) for row in jobs_in(conn)} == {young, pending}
    assert pgqueue("purge").code == 2  # --older-than is required
    assert pgqueue("purge", "--older-than", "forever").code == 2


# --- the database: missing, unreachable, not migrated -----------------------------------------


def test_without_database_url_the_command_says_how_to_give_one(
    pgqueue: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.chdir(tmp_path)  # no embedded database here
    result = pgqueue("status")
    assert result.code == 2
    assert result.err.strip() == (
        "pgqueue: DATABASE_URL is not set and no embedded PostgreSQL runs in .pgqueue: start "
        "`python worker.py` (or `pgqueue database`) in this folder, or give --database-url "
        "postgresql://user@host/db")
    assert not (tmp_path / ".pgqueue").exists()


def test_an_unmigrated_database_says_run_migrate(pgqueue: Cli, pg_server: database.Server) -> None:
    name = f"empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        result = pgqueue("jobs", "list", "--database-url", pg_server.url_for(name))
        assert result.code == 2
        assert "run `pgqueue migrate` on this database" in result.err
        assert len(result.err.strip().splitlines()) == 1
    finally:
        database.drop(pg_server, pg_server.url_for(name))


def test_an_unreachable_database_exits_three_with_one_line(tmp_path: Path) -> None:
    # As a script sees it: a separate process, its exit code and stderr.
    result = subprocess.run(
        [sys.executable, "-m", "pgqueue.cli", "status", "--database-url", "postgresql://postgres@127.0.0.1:9/x"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pgqueue: cannot reach the database (")
    assert lines[0].endswith("check DATABASE_URL and that PostgreSQL is running")


def test_a_database_url_that_is_not_a_url_is_one_line_and_exit_two(
    pgqueue: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "localhost:5432")
    result = pgqueue("status")
    assert result.code == 2
    assert result.err.strip() == (
        "pgqueue: invalid settings: DATABASE_URL: expected a URL such as "
        "postgresql://user:password@host:5432/database (got (hidden))")
    worker = subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), "--burst"],
        env={**os.environ, "DATABASE_URL": "localhost:5432"}, cwd=ROOT, capture_output=True,
        text=True, timeout=60,
    )
    assert worker.returncode == 2
    assert worker.stderr.strip().splitlines() == [result.err.strip()]


def test_a_missing_manifest_and_a_missing_file_both_exit_one(pgqueue: Cli, tmp_path: Path) -> None:
    manifest = pgqueue("enqueue", "--manifest", str(tmp_path / "nope.csv"))
    assert (manifest.code, manifest.err.strip()) == (
        1, f"pgqueue: manifest {tmp_path / 'nope.csv'}: no such file")
    file = pgqueue("enqueue", str(tmp_path / "nope.pdf"))
    assert file.code == 1 and "no such file" in file.err


# --- help ---------------------------------------------------------------------------------------


def test_help_shows_defaults_and_choices(pgqueue: Cli) -> None:
    worker = pgqueue("worker", "--help")
    assert worker.code == 0
    text = " ".join(worker.out.split())
    assert "--isolation {process,inline}" in text
    assert "--log-format {auto,json,console}" in text
    assert "(default: process; env PGQUEUE_ISOLATION)" in text
    assert "(default: the CPU count; env PGQUEUE_SLOTS)" in text
    assert "VALUE" not in worker.out.replace("KEY=VALUE", "")
    migrate = " ".join(pgqueue("migrate", "--help").out.split())
    assert "--database-url URL PostgreSQL URL" in migrate
    listing = " ".join(pgqueue("jobs", "list", "--help").out.split())
    assert "jobs per page (default: 50)" in listing


def test_flags_are_never_abbreviated_and_errors_show_the_subcommand_usage(pgqueue: Cli) -> None:
    abbreviated = pgqueue("worker", "--slot", "2")
    assert abbreviated.code == 2
    assert abbreviated.err.startswith("usage: pgqueue worker ")
    assert "unrecognized arguments: --slot 2" in abbreviated.err
    unknown = pgqueue("jobs", "list", "--bogus")
    assert unknown.code == 2
    assert unknown.err.startswith("usage: pgqueue jobs list ")
    assert pgqueue("jobs", "list", "--lim", "5").code == 2


def test_version(pgqueue: Cli) -> None:
    from importlib import metadata

    assert pgqueue("--version").out.strip() == f"pgqueue {metadata.version('pgqueue')}"


# --- stored values reach the terminal inert ---------------------------------------------------

HOSTILE = (
    "plate [rev A] [bold]final[/oops] \x1b[2J\x1b]8;;http://evil.example/\x07link\x1b]8;;\x07"
    " \x9b31m \u202etxt.exe\u202c \x85 [link=http://evil.example]x[/link].pdf"
)
RAW_CONTROLS = ["\x1b", "\x07", "\x9b", "\x85", "\u202e", "\u202c"]


@pytest.fixture
def hostile_job(conn: psycopg.Connection[Any]) -> str:
    """A row as anyone with INSERT rights (or a file's header) could write it."""
    return make_job(
        conn, "failed", filename=HOSTILE, file_url="s3://bucket/x\x1b[2J.pdf",
        error_message=f"CorruptFile: header says {HOSTILE}",
        result=Jsonb({"warnings": [HOSTILE]}),
        error_history=Jsonb([{"attempt": 1, "error_type": "Corrupt\x1b[31m", "message": HOSTILE,
                              "retried": False}]),
    )


@pytest.mark.parametrize(
    "view",
    [("jobs", "list"), ("jobs", "list", "--json"), ("jobs", "show", "{id}"),
     ("jobs", "show", "{id}", "--full"), ("jobs", "show", "{id}", "--json"), ("status",),
     ("status", "--json"), ("retry", "{id}"), ("cancel", "{id}")],
)
def test_every_view_of_a_hostile_row_prints_it_inert(
    pgqueue: Cli, hostile_job: str, view: tuple[str, ...]
) -> None:
    result = pgqueue(*[part.format(id=hostile_job) for part in view])
    assert result.code in (0, 1), result.err  # retry and cancel may refuse; nothing crashes
    for control in RAW_CONTROLS:
        assert control not in result.out + result.err, (view, control)
    if view[-1] == "--json":
        json.loads(result.out)
    elif view[0] == "jobs":
        # Markup is shown as written, not interpreted.
        flat = result.out.replace("\n", "")
        assert "[bold]final[/oops]" in flat or "[bold]final[/oops]" in result.out, result.out
        assert "\\x1b[2J" in result.out or "\\u001b[2J" in result.out


def test_enqueue_refuses_c1_and_bidi_characters_in_filenames(
    pgqueue: Cli, conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    manifest = tmp_path / "names.jsonl"
    manifest.write_text("".join(
        json.dumps({"filename": f"plate{character}.pdf", "file_url": "s3://b/plate.pdf",
                    "file_size": 1, "format": "pdf"}) + "\n"
        for character in ("\x1b", "\x85", "\x9b", "\u202e", "\u2066")
    ))
    result = pgqueue("enqueue", "--manifest", str(manifest))
    assert result.code == 2
    assert result.err.count("filename must not contain control or bidi characters") == 5
    for control in RAW_CONTROLS:
        assert control not in result.err
    assert jobs_in(conn) == []

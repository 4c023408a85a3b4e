"""Real files through a real worker with child-process isolation: the whole path of a job.

Every good sample extracts; every bad input ends ``failed`` at once (a permanent error) with a
clear message, within the time and memory limits, and the worker keeps serving.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgqueue import JobRequest, enqueue_bulk, samples
from tests.conftest import corpus_dir
from tests.workers import ROOT, query

pytestmark = pytest.mark.slow

PERMANENT = {
    "CorruptFile", "UnsupportedFormat", "FileTooLarge", "InvalidOptions", "MemoryLimitExceeded",
    "NotConfigured",
}
FORMAT_OF = {".pdf": "pdf", ".dxf": "dxf", ".ifc": "ifc", ".step": "step", ".stp": "step"}


def run_burst(db_url: str, roots: list[Path], **settings: Any) -> subprocess.CompletedProcess[bytes]:
    env = {
        "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "DATABASE_URL": db_url,
        "PGQUEUE_FILE_ROOTS": ",".join(str(root) for root in roots), "PGQUEUE_LOG_FORMAT": "json",
        "PGQUEUE_ISOLATION": "process", "PGQUEUE_SLOTS": "2", "PGQUEUE_JOB_TIMEOUT": "60",
        "PGQUEUE_MEMORY_LIMIT_MB": "1024",
    }
    env.update({f"PGQUEUE_{key.upper()}": str(value) for key, value in settings.items()})
    return subprocess.run([sys.executable, str(ROOT / "worker.py"), "--burst"], env=env, cwd=ROOT,
                          capture_output=True, timeout=600)


def enqueue_files(db_url: str, files: list[tuple[Path, str, dict[str, Any]]]) -> None:
    with psycopg.connect(db_url) as conn:
        enqueue_bulk(conn, [
            JobRequest(path.name, path.as_uri(), path.stat().st_size, fmt, options)
            for path, fmt, options in files
        ])
        conn.commit()


def test_generated_samples_of_every_format_extract_through_a_worker(db_url: str, tmp_path: Path) -> None:
    made = samples.write_all(tmp_path / "samples")
    enqueue_files(db_url, [(sample.path, sample.format, sample.options) for sample in made])
    result = run_burst(db_url, [tmp_path / "samples"])
    assert result.returncode == 0, result.stderr[-3000:]
    rows = query(db_url, "SELECT format, status, result, error_message FROM extraction_jobs")
    assert {row["format"]: row["status"] for row in rows} == {
        "pdf": "completed", "dxf": "completed", "ifc": "completed", "step": "completed",
    }, rows
    by_format = {row["format"]: row["result"] for row in rows}
    assert by_format["pdf"]["metadata"]["pages"] == 2
    assert by_format["step"]["products"] and by_format["ifc"]["spatial_structure"]
    assert by_format["dxf"]["dimensions"]


def test_the_corpus_good_and_bad_through_a_worker(db_url: str) -> None:
    corpus = corpus_dir()
    if corpus is None:
        pytest.skip("the shared corpus is not here")
    good = [path for folder in ("pdf", "dxf", "ifc", "step") for path in sorted((corpus / folder).iterdir())]
    bad = sorted(path for path in (corpus / "bad").iterdir() if path.suffix in FORMAT_OF)
    enqueue_files(db_url, [(path, FORMAT_OF[path.suffix], {}) for path in good + bad])
    result = run_burst(db_url, [corpus])
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["file_url"]: row for row in query(
        db_url,
        "SELECT filename, file_url, status, retry_count, error_message, error_history, "
        "extract(epoch FROM completed_at - started_at) AS seconds FROM extraction_jobs",
    )}
    for path in good:
        assert rows[path.as_uri()]["status"] == "completed", (path, rows[path.as_uri()]["error_message"])
    for path in bad:
        row = rows[path.as_uri()]
        assert row["status"] == "failed", (path.name, row)
        assert row["retry_count"] == 0, (path.name, row["error_history"])  # failed at once
        [attempt] = row["error_history"]
        assert attempt["error_type"] in PERMANENT, (path.name, attempt)
        assert row["error_message"] and row["error_message"] == attempt["message"], (path.name, row)
        assert row["seconds"] < 30, (path.name, row["seconds"])

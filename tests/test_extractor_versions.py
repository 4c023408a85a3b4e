"""Every result records the extractor's name and version: from the registry, through the
write-back, into the row and ``pgqueue jobs show``; results stored before get "unknown"."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from pgqueue import extractors, migrate
from pgqueue.control import get_job
from pgqueue.jobrun import JobInput, run_job
from pgqueue.settings import Settings
from tests.factories import claim, finish, job, make_job, register_worker
from tests.workers import Workspace, query, status_counts, wait_until, worker_process

Conn = psycopg.Connection[Any]


@pytest.fixture(autouse=True)
def builtin_registry() -> Iterator[None]:
    extractors.reset()
    yield
    extractors.reset()


def test_built_in_extractors_are_named_and_versioned_in_one_place() -> None:
    assert set(extractors.VERSIONS) == set(extractors.BUILTIN)
    assert extractors.identity("dxf") == ("pgqueue.extractors.dxf:extract", extractors.VERSIONS["dxf"])


def versioned(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    return {"text": path.read_text()}


versioned.version = "7"  # type: ignore[attr-defined]


def test_a_plugged_in_extractor_is_named_by_its_path_and_its_version_attribute(tmp_path: Path) -> None:
    extractors.register("pdf", versioned)
    assert extractors.identity("pdf") == (f"{__name__}:versioned", "7")
    extractors.register("pdf", "tests.queue_plugins:noop")
    assert extractors.identity("pdf") == ("tests.queue_plugins:noop", extractors.UNVERSIONED)

    extractors.register("pdf", versioned)
    sample = tmp_path / "a.pdf"
    sample.write_text("hello")
    outcome = run_job(JobInput("j", sample.as_uri(), "pdf"), Settings(file_roots=(tmp_path,)))
    assert (outcome.succeeded, outcome.extractor, outcome.extractor_version) == (
        True, f"{__name__}:versioned", "7")


def test_the_write_back_records_who_wrote_the_result_and_a_failure_records_nobody(conn: Conn) -> None:
    done, failed = make_job(conn), make_job(conn)
    worker = register_worker(conn)
    claim(conn, worker)
    finish(conn, worker, [(done, json.dumps({"layers": []}), False, None, None),
                          (failed, None, False, "CorruptFile", "bad")],
           extractor="pgqueue.extractors.dxf:extract", version="3")
    assert {key: job(conn, done)[key] for key in ("extractor", "extractor_version")} == {
        "extractor": "pgqueue.extractors.dxf:extract", "extractor_version": "3"}
    assert (job(conn, failed)["extractor"], job(conn, failed)["extractor_version"]) == (None, None)
    info = get_job(conn, done)
    assert info is not None and (info.extractor, info.extractor_version) == (
        "pgqueue.extractors.dxf:extract", "3")
    assert conn.execute("SELECT format, extractor, extractor_version, latest_results "
                        "FROM pgqueue_results_by_extractor_version").fetchall() == [
        {"format": "pdf", "extractor": "pgqueue.extractors.dxf:extract", "extractor_version": "3",
         "latest_results": 1}]


def test_a_real_worker_records_the_extractor_of_each_result(db_url: str, space: Workspace) -> None:
    query(db_url, "INSERT INTO extraction_jobs (filename, file_url, file_size, format) "
                  "VALUES ('a.pdf', %s, 1, 'pdf')", [space.job_file("a.pdf")])
    with worker_process(space.env(db_url, slots=1), log=space.folder / "worker.log"):
        wait_until(lambda: status_counts(db_url).get("completed") == 1, 60, "the job to complete")
    row = query(db_url, "SELECT extractor, extractor_version FROM extraction_jobs")[0]
    assert row == {"extractor": "tests.queue_plugins:scripted", "extractor_version": extractors.UNVERSIONED}


def test_results_stored_before_the_migration_get_version_unknown(db_url: str) -> None:
    migrate.downgrade(db_url, revision="pgqueue_0004")
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        stored = make_job(conn, "completed", format="dxf", result=json.dumps({"layers": []}))
        waiting = make_job(conn)
    migrate.upgrade(db_url, revision="pgqueue_0005")
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        assert (job(conn, stored)["extractor"], job(conn, stored)["extractor_version"]) == ("dxf", "unknown")
        assert job(conn, waiting)["extractor_version"] is None
    migrate.upgrade(db_url)

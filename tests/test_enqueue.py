"""Enqueue from a web app: inside its transaction, once per attachment, validated first."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, pool
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import Session

from pgqueue import (
    BulkResult,
    InvalidJob,
    JobRequest,
    enqueue,
    enqueue_async,
    enqueue_bulk,
    enqueue_bulk_async,
)
from pgqueue.database import sqlalchemy_url

Conn = psycopg.Connection[Any]


def count(conn: Conn) -> int:
    return int(conn.execute("SELECT count(*) AS n FROM extraction_jobs").fetchone()["n"])  # type: ignore[index]


def fields(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "filename": "plate.dxf", "file_url": "s3://drawings/plate.dxf", "file_size": 2048, "format": "dxf",
    }
    base.update(overrides)
    return base


def test_enqueue_on_psycopg_is_part_of_the_callers_transaction(db_url: str, conn: Conn) -> None:
    with psycopg.connect(db_url) as web:
        job = enqueue(web, **fields())
        web.rollback()
        assert count(conn) == 0
        job = enqueue(web, **fields(options={"layers": True}))
        web.commit()
    row = conn.execute("SELECT * FROM extraction_jobs").fetchone()
    assert row is not None and str(row["id"]) == job.id and not job.existing
    assert row["options"] == {"layers": True} and row["status"] == "pending"


def test_enqueue_with_a_sqlalchemy_session(db_url: str, conn: Conn) -> None:
    engine = create_engine(sqlalchemy_url(db_url), poolclass=pool.NullPool)
    with Session(engine) as session:
        enqueue(session, **fields())
        session.rollback()
        with session.begin():
            job = enqueue(session, JobRequest(**fields(format="pdf", filename="a.pdf")))
    engine.dispose()
    assert count(conn) == 1
    assert conn.execute("SELECT format FROM extraction_jobs WHERE id = %s", [job.id]).fetchone() == {"format": "pdf"}


async def _async_session_enqueue(db_url: str) -> str:
    engine = create_async_engine(sqlalchemy_url(db_url), poolclass=pool.NullPool)
    from sqlalchemy.ext.asyncio import AsyncSession

    async with AsyncSession(engine) as session:
        await enqueue_async(session, **fields())
        await session.rollback()
        async with session.begin():
            job = await enqueue_async(session, **fields(filename="b.dxf"))
    await engine.dispose()
    async with await psycopg.AsyncConnection.connect(db_url) as web:
        await enqueue_async(web, **fields(filename="c.dxf"))
        await web.commit()
    return job.id


def test_enqueue_async_with_sqlalchemy_and_psycopg(db_url: str, conn: Conn) -> None:
    import anyio

    job_id = anyio.run(_async_session_enqueue, db_url)
    names = sorted(row["filename"] for row in conn.execute("SELECT filename FROM extraction_jobs"))
    assert names == ["b.dxf", "c.dxf"]
    assert conn.execute("SELECT count(*) AS n FROM extraction_jobs WHERE id = %s", [job_id]).fetchone() == {"n": 1}


def test_the_same_attachment_gets_its_active_job_back(conn: Conn) -> None:
    record, attachment = uuid.uuid4(), uuid.uuid4()
    first = enqueue(conn, **fields(record_id=record, attachment_id=attachment))
    again = enqueue(conn, **fields(record_id=record, attachment_id=attachment))
    assert again.id == first.id and again.existing and not first.existing
    other = enqueue(conn, **fields(record_id=record, attachment_id=uuid.uuid4()))
    assert other.id != first.id
    conn.execute(
        "UPDATE extraction_jobs SET status = 'completed', completed_at = now() WHERE id = %s", [first.id]
    )
    after = enqueue(conn, **fields(record_id=record, attachment_id=attachment))
    assert after.id != first.id and not after.existing  # a finished job does not block a new one


def test_concurrent_enqueues_of_one_attachment_make_one_job(db_url: str, conn: Conn) -> None:
    record, attachment = uuid.uuid4(), uuid.uuid4()
    barrier = threading.Barrier(8)
    ids: list[str] = []

    def web_request() -> None:
        with psycopg.connect(db_url) as web:
            barrier.wait()
            for _ in range(10):
                ids.append(enqueue(web, **fields(record_id=record, attachment_id=attachment)).id)
                web.commit()

    threads = [threading.Thread(target=web_request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 80 and len(set(ids)) == 1
    assert count(conn) == 1


def _nested(depth: int) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for _ in range(depth):
        options = {"a": options}
    return options


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"format": "docx"}, "unknown format 'docx'"),
        ({"file_size": -1}, "file_size must be a non-negative integer"),
        ({"file_size": "12"}, "file_size must be a non-negative integer"),
        ({"file_url": ""}, "file_url must be a non-empty string"),
        ({"file_url": "plate.dxf"}, "file_url must be a URL"),
        ({"file_url": "s3://b/" + "x" * 2100}, "file_url is longer than 2048"),
        ({"filename": ""}, "filename must be a non-empty string"),
        ({"options": [1, 2]}, "options must be a JSON object"),
        ({"options": {"x": float("nan")}}, "options are not JSON"),
        ({"options": {"x": object()}}, "options are not JSON"),
        ({"options": {"colour": True}}, "unknown option 'colour'"),
        ({"options": {"layers": "yes"}}, "option 'layers'"),
        ({"record_id": "not-a-uuid"}, "record_id must be a UUID"),
        ({"max_retries": -1}, "max_retries must be an integer"),
        # The worker would refuse these at once; they are refused here first.
        ({"file_url": "ftp://host/plate.dxf"}, "unsupported URL scheme 'ftp'"),
        ({"file_url": "b2://bucket/plate.dxf"}, "unsupported URL scheme 'b2'"),
        ({"file_url": "s3://bucket/plate.dxf\n"}, "control characters"),
        ({"filename": "plate\x00.dxf"}, "filename must not contain NUL"),
        ({"file_size": 2**63}, "file_size is larger than"),
        ({"format": ["dxf"]}, "unknown format"),
        ({"options": _nested(5000)}, "options are nested too deeply"),
    ],
)
def test_invalid_input_is_refused_before_anything_is_written(
    conn: Conn, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidJob, match=message):
        enqueue(conn, **fields(**overrides))
    assert count(conn) == 0


def test_bulk_enqueue_with_copy_skips_active_attachments(conn: Conn, db_url: str) -> None:
    record = uuid.uuid4()
    taken = uuid.uuid4()
    enqueue(conn, **fields(record_id=record, attachment_id=taken))
    jobs = [JobRequest(f"f{n}.pdf", f"s3://legacy/f{n}.pdf", n, "pdf") for n in range(20_000)]
    jobs.append(JobRequest("dup.pdf", "s3://legacy/dup.pdf", 1, "pdf", record_id=record, attachment_id=taken))
    with psycopg.connect(db_url) as web:
        result = enqueue_bulk(web, jobs)
        web.commit()
    assert (result.inserted, result.skipped) == (20_000, 1)
    assert count(conn) == 20_001
    sizes = conn.execute("SELECT sum(file_size) AS total FROM extraction_jobs WHERE file_url LIKE 's3://legacy/f%'").fetchone()
    assert sizes == {"total": sum(range(20_000))}


@pytest.mark.parametrize("item", [None, {"filename": "a.pdf"}])
def test_bulk_enqueue_refuses_an_item_that_is_not_a_job_request(conn: Conn, db_url: str, item: Any) -> None:
    jobs = [JobRequest("a.pdf", "s3://b/a.pdf", 1, "pdf"), item]
    with psycopg.connect(db_url, autocommit=True) as web, pytest.raises(InvalidJob, match="JobRequest"):
        enqueue_bulk(web, jobs)
    assert count(conn) == 0


def test_bulk_enqueue_async_is_rolled_back_with_the_caller(db_url: str, conn: Conn) -> None:
    import anyio

    async def backfill() -> None:
        async with await psycopg.AsyncConnection.connect(db_url) as web:
            result = await enqueue_bulk_async(web, [JobRequest(f"f{n}.ifc", f"s3://b/{n}", 1, "ifc") for n in range(500)])
            assert result.inserted == 500
            await web.rollback()

    anyio.run(backfill)
    assert count(conn) == 0


def test_bulk_enqueue_wakes_workers_once_per_statement(db_url: str, conn: Conn) -> None:
    record = uuid.uuid4()
    jobs = [JobRequest(f"p{n}.pdf", f"s3://b/p{n}", 1, "pdf") for n in range(500)]
    jobs += [JobRequest(f"a{n}.pdf", f"s3://b/a{n}", 1, "pdf", record_id=record, attachment_id=uuid.uuid4())
             for n in range(3)]
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN pgqueue_jobs")
        with psycopg.connect(db_url) as web:
            assert enqueue_bulk(web, jobs) == BulkResult(inserted=503, skipped=0)
            web.commit()
        received = list(listener.notifies(timeout=1))
    assert 1 <= len(received) <= 2  # the direct COPY and the staged INSERT, never one per row
    assert count(conn) == 503


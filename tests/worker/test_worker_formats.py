"""Formats registered only in the workers (plugins) are accepted by the web app's enqueue."""

from __future__ import annotations

import importlib
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from pgqueue.control import accept_worker_formats, accept_worker_formats_async
from pgqueue.enqueue import InvalidJob, JobRequest, enqueue
from pgqueue.worker.heartbeat import register
from pgqueue.worker.link import Link
from pgqueue.worker.state import WorkerState

pytestmark = pytest.mark.anyio

Conn = psycopg.Connection[Any]
enqueue_module = importlib.import_module("pgqueue.enqueue")  # the package re-exports a function by that name


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def nothing_advertised_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enqueue_module, "_advertised", set())
    monkeypatch.delenv("PGQUEUE_ENQUEUE_FORMATS", raising=False)


def request(fmt: str) -> dict[str, Any]:
    return {"filename": "part.x", "file_url": "s3://bucket/part.x", "file_size": 1, "format": fmt}


async def test_a_format_a_registered_worker_advertises_is_accepted(db_url: str) -> None:
    state = WorkerState(1)
    state.formats = ["pdf", "gerber"]  # what a worker with a gerber plugin advertises
    link = Link(db_url, "public", "test")
    try:
        await register(link, state)
    finally:
        await link.close()
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:
        with pytest.raises(InvalidJob, match="unknown format 'gerber'"):
            enqueue(conn, **request("gerber"))
        assert accept_worker_formats(conn) == {"pdf", "gerber"}
        assert not enqueue(conn, **request("gerber")).existing
        with pytest.raises(InvalidJob, match="unknown format 'docx'"):
            enqueue(conn, **request("docx"))
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as aconn:
        assert await accept_worker_formats_async(aconn) == {"pdf", "gerber"}


def test_a_configured_format_is_accepted_and_others_still_refused(
    conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidJob, match="unknown format 'gerber'"):
        JobRequest(**request("gerber"))
    monkeypatch.setenv("PGQUEUE_ENQUEUE_FORMATS", "gerber, odb")
    assert enqueue(conn, **request("gerber")).status == "pending"
    with pytest.raises(InvalidJob, match=r"unknown format 'docx'; known formats: .*gerber"):
        JobRequest(**request("docx"))

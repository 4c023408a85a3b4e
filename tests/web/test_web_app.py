"""The dashboard over HTTP, in process, against a real database: what every page answers, what
bad input gets, and that no action happens without its CSRF token or past a read-only setting."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    SimpleUser,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse
from starlette.routing import Mount
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from pgqueue.web import create_app
from pgqueue.web.serve import WebSettingsError, build
from tests.factories import job, make_job

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(db_url)) as test_client:
        yield test_client


def csrf_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


def test_every_page_renders_jobs_of_every_status(client: TestClient, conn: Conn) -> None:
    ids = {status: make_job(conn, status, filename=f"{status}.pdf") for status in
           ("pending", "processing", "completed", "failed", "cancelled")}
    overview = client.get("/")
    assert overview.status_code == 200
    assert "The queue at a glance" in overview.text
    listing = client.get("/jobs")
    for status, job_id in ids.items():
        assert f"/jobs/{job_id}" in listing.text and f"{status}.pdf" in listing.text
    for path in ("/failures", "/workers", *(f"/jobs/{job_id}" for job_id in ids.values())):
        assert client.get(path).status_code == 200, path


def test_a_result_is_shown_as_tables_and_as_json(client: TestClient, conn: Conn) -> None:
    result = {
        "dimensions": [{"value": 12.5, "unit": "mm", "tolerance": "±0.1", "dimension_type": "linear", "label": "12.5"}],
        "title_block": {"drawing_number": "PLT-0042", "revision": "C"},
        "warnings": ["one page was blank"],
    }
    job_id = make_job(conn, "completed", result=json.dumps(result))
    page = client.get(f"/jobs/{job_id}").text
    assert "PLT-0042" in page and "±0.1" in page and "one page was blank" in page
    assert "<th>tolerance</th>" in page
    assert "The result as stored (JSON)" in page


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/jobs/not-a-uuid", "not a job id"),
        ("/jobs?status=finished", "unknown status"),
        ("/jobs?format=PDF;drop", "not a format"),
        ("/jobs?record=42", "not a record id"),
        ("/jobs?q=" + "x" * 201, "at most 200"),
        ("/jobs?after=yesterday", "page cursor is damaged"),
    ],
)
def test_bad_input_gets_a_clear_message_not_a_server_error(client: TestClient, path: str, message: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 400
    assert message in answer.text


def test_a_missing_job_is_a_404_with_its_id(client: TestClient) -> None:
    key = str(uuid.uuid4())
    answer = client.get(f"/jobs/{key}")
    assert answer.status_code == 404 and key in answer.text


def test_pages_follow_the_keyset_without_repeating_or_skipping(client: TestClient, conn: Conn) -> None:
    conn.execute(
        "INSERT INTO extraction_jobs (filename, file_url, file_size, format, created_at) "
        "SELECT 'page-' || n || '.pdf', 's3://b/k' || n, 1, 'pdf', now() - make_interval(secs => n / 3) "
        "FROM generate_series(1, 123) AS n"
    )
    seen: list[str] = []
    path: str | None = "/jobs"
    while path:
        page = client.get(path).text
        seen += re.findall(r'href="/jobs/([0-9a-f-]{36})"', page)
        following = re.search(r'id="next" href="([^"]+)"', page)
        path = following.group(1).replace("&amp;", "&") if following else None
    assert len(seen) == 123 and len(set(seen)) == 123


def test_filters_narrow_the_list(client: TestClient, conn: Conn) -> None:
    record = str(uuid.uuid4())
    wanted = make_job(conn, "failed", filename="bracket rev B.dxf", format="dxf", record_id=record)
    other = make_job(conn, "failed", filename="bracket rev B.pdf", format="pdf")
    page = client.get(f"/jobs?status=failed&format=dxf&q=REV+b&record={record}").text
    assert wanted in page and other not in page


def test_an_action_without_its_csrf_token_is_refused_and_changes_nothing(client: TestClient, conn: Conn) -> None:
    job_id = make_job(conn, "pending")
    client.get(f"/jobs/{job_id}")  # the browser now holds the cookie
    answer = client.post(f"/jobs/{job_id}/cancel", data={})
    assert answer.status_code == 403
    forged = client.post(f"/jobs/{job_id}/cancel", data={"csrf_token": "forged.0000"})
    assert forged.status_code == 403
    assert job(conn, job_id)["status"] == "pending"


def test_retry_and_cancel_change_the_row_and_leave_an_audit_line(client: TestClient, conn: Conn) -> None:
    failed = make_job(conn, "failed")
    pending = make_job(conn, "pending")
    token = csrf_token(client.get(f"/jobs/{failed}").text)
    with capture_logs() as logs:
        retried = client.post(f"/jobs/{failed}/retry", data={"csrf_token": token})
        cancelled = client.post(f"/jobs/{pending}/cancel", data={"csrf_token": token})
    assert retried.status_code == 200 and "retry done" in retried.text
    assert cancelled.status_code == 200 and "cancel done" in cancelled.text
    assert job(conn, failed)["status"] == "pending"
    assert job(conn, pending)["status"] == "cancelled"
    actions = [(entry["action"], entry["job_id"]) for entry in logs if entry["event"] == "web_action"]
    assert actions == [("retry", failed), ("cancel", pending)]


def test_an_action_on_every_matching_job_changes_exactly_those(client: TestClient, conn: Conn) -> None:
    dxf_failed = [make_job(conn, "failed", format="dxf") for _ in range(3)]
    pdf_failed = make_job(conn, "failed", format="pdf")
    dxf_done = make_job(conn, "completed", format="dxf")
    token = csrf_token(client.get("/jobs").text)
    answer = client.post("/actions/retry", data={"csrf_token": token, "format": "dxf"})
    assert "3 of 3 matching jobs changed" in answer.text
    assert [job(conn, key)["status"] for key in dxf_failed] == ["pending"] * 3
    assert job(conn, pdf_failed)["status"] == "failed"
    assert job(conn, dxf_done)["status"] == "completed"


def test_read_only_hides_and_refuses_actions(db_url: str, conn: Conn) -> None:
    job_id = make_job(conn, "failed")
    with TestClient(create_app(db_url, read_only=True)) as client:
        page = client.get(f"/jobs/{job_id}").text
        assert ">Retry<" not in page and "csrf_token" not in page
        token = client.cookies.get("pgqueue_csrf")
        assert token
        assert client.post(f"/jobs/{job_id}/retry", data={"csrf_token": token}).status_code == 403
    assert job(conn, job_id)["status"] == "failed"


def test_stored_text_is_shown_inert(client: TestClient, conn: Conn) -> None:
    hostile = "plate [bold]final[/oops] \x1b[2J\u202eevil<script>alert(1)</script>.pdf"
    job_id = make_job(conn, "failed", filename=hostile, error_message="bad \x1b]8;;http://x\x07link")
    for path in ("/jobs", f"/jobs/{job_id}"):
        page = client.get(path).text
        assert "<script>alert(1)</script>" not in page
        assert "\x1b" not in page and "\u202e" not in page
        assert "\\u001b[2J" in page and "[bold]final[/oops]" in page


class HeaderAuth(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        if conn.headers.get("x-user") != "support":
            raise AuthenticationError("who are you?")
        return AuthCredentials(["admin"]), SimpleUser("support")


def test_the_mounted_app_sits_behind_the_hosts_authentication(db_url: str, conn: Conn) -> None:
    failed = make_job(conn, "failed")
    host = Starlette(
        routes=[Mount("/admin/jobs", app=create_app(db_url))],
        middleware=[Middleware(
            AuthenticationMiddleware, backend=HeaderAuth(),
            on_error=lambda _request, _error: PlainTextResponse("login first", status_code=401),
        )],
    )
    with TestClient(host) as client:
        assert client.get("/admin/jobs/").status_code == 401
        page = client.get(f"/admin/jobs/jobs/{failed}", headers={"x-user": "support"})
        assert page.status_code == 200
        assert f'action="/admin/jobs/jobs/{failed}/retry"' in page.text
        with capture_logs() as logs:
            client.post(f"/admin/jobs/jobs/{failed}/retry", data={"csrf_token": csrf_token(page.text)},
                        headers={"x-user": "support"})
    assert job(conn, failed)["status"] == "pending"
    assert [entry["user"] for entry in logs if entry["event"] == "web_action"] == ["support"]


def test_serving_beyond_loopback_needs_a_token(db_url: str) -> None:
    with pytest.raises(WebSettingsError, match="without a token"):
        build(db_url, host="0.0.0.0", token=None, read_only=False, schema="public")
    with pytest.raises(WebSettingsError, match="shorter than 16"):
        build(db_url, host="0.0.0.0", token="short", read_only=False, schema="public")
    guarded = build(db_url, host="0.0.0.0", token="a-long-enough-token", read_only=False, schema="public")
    with TestClient(guarded) as client:
        assert client.get("/").status_code == 401
        assert client.get("/", auth=("ops", "wrong-token-value!")).status_code == 401
        assert client.get("/", auth=("ops", "a-long-enough-token")).status_code == 200


def test_an_unreachable_database_is_a_clear_503() -> None:
    with TestClient(create_app("postgresql://nobody@127.0.0.1:1/none")) as client:
        answer = client.get("/jobs")
    assert answer.status_code == 503 and "does not answer" in answer.text


def test_a_signed_url_is_shown_without_its_secret(client: TestClient, conn: Conn) -> None:
    job_id = make_job(conn, "completed", file_url="https://files.example/p.pdf?X-Amz-Signature=s3cr3tsig&a=1")
    page = client.get(f"/jobs/{job_id}").text
    assert "files.example/p.pdf" in page and "s3cr3tsig" not in page


def test_pgqueue_web_refuses_an_open_binding_and_serves_on_loopback(db_url: str, tmp_path: Path) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "pgqueue.cli", "web", "--database-url", db_url, "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert refused.returncode == 2
    assert "without a token" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "pgqueue.cli", "web", "--database-url", db_url, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )
    try:
        answer = None
        deadline = time.monotonic() + 60
        while answer is None:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "pgqueue web did not answer"
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/jobs", timeout=5)
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer.status_code == 200 and "<h1>Jobs</h1>" in answer.text
    finally:
        server.terminate()
        server.wait(timeout=30)

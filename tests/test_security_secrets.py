"""Secrets in links stay in ``file_url`` (issue 20, item 4).

Links carry credentials: user info, presigned signatures, session tokens. A job row keeps its
``file_url`` as given, but no other column, no log line of the worker and no CLI view may
repeat a secret of it. Every link here leads to a loopback port that refuses connections, so
the jobs fail with messages written by pgqueue and by the HTTP and S3 clients.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pgqueue import cli
from pgqueue.enqueue import InvalidJob, JobRequest, enqueue
from pgqueue.jobrun import JobInput, run_job
from pgqueue.settings import Settings
from tests.burst_worker import run_burst_worker
from tests.workers import query

SECRETS = (
    "AKIAUSERINFOSECRET",
    "UserInfoPassw0rdValue",
    "AKIACREDENTIALSECRET",
    "5ecre7519na7ure0123456789abcdef",
    "SessionTokenSecretValue",
    "HttpsUserSecret",
    "HttpsPassw0rdValue",
    "HttpsQueryTokenValue",
    "FragmentSecretValue",
)


def links(port: int) -> list[str]:
    return [
        # A presigned S3 link: the signature and the session token are in the query.
        "s3://pgqueue-files/drawings/plate.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIACREDENTIALSECRET%2F20261208%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Signature=5ecre7519na7ure0123456789abcdef"
        "&X-Amz-Security-Token=SessionTokenSecretValue",
        # Credentials as user info, inserted by plain SQL (enqueue refuses them).
        "s3://AKIAUSERINFOSECRET:UserInfoPassw0rdValue@pgqueue-files/drawings/plate.pdf",
        f"http://HttpsUserSecret:HttpsPassw0rdValue@127.0.0.1:{port}/plate.pdf"
        f"?token=HttpsQueryTokenValue#FragmentSecretValue",
    ]


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port that is bound but not listening: every connection is refused."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


def leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def test_no_secret_of_a_link_reaches_another_column_or_a_log_line(
    db_url: str, refusing_port: int
) -> None:
    for number, url in enumerate(links(refusing_port)):
        query(
            db_url,
            "INSERT INTO extraction_jobs (filename, file_url, file_size, format, max_retries)"
            " VALUES (%s, %s, 0, 'pdf', 0)",
            (f"plate-{number}.pdf", url),
        )
    worker = run_burst_worker(db_url, {
        "PGQUEUE_LOG_LEVEL": "debug", "PGQUEUE_FETCH_TIMEOUT": "5",
        "PGQUEUE_S3_ENDPOINT": f"http://127.0.0.1:{refusing_port}",
        "PGQUEUE_ALLOW_HOSTS": "127.0.0.1", "PGQUEUE_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret",
    })
    rows = query(
        db_url,
        "SELECT status, error_message, to_jsonb(job) - 'file_url' AS rest"
        " FROM extraction_jobs AS job ORDER BY filename",
    )
    assert [row["status"] for row in rows] == ["failed"] * 3, rows
    assert all(row["error_message"] for row in rows)
    for row in rows:
        assert leaked(json.dumps(row["rest"])) == [], row["rest"]
    log_lines = (worker.stdout + worker.stderr).splitlines()
    assert any('"job_failed"' in line for line in log_lines)
    assert [line for line in log_lines if leaked(line)] == []


def test_error_messages_of_a_job_run_are_free_of_the_links_secrets(refusing_port: int) -> None:
    settings = Settings(
        allow_hosts="127.0.0.1", allow_http=True, fetch_timeout=5,
        s3_endpoint=f"http://127.0.0.1:{refusing_port}",
    )
    for url in links(refusing_port):
        outcome = run_job(JobInput("job", url, "pdf"), settings)
        assert outcome.error_message and leaked(outcome.error_message) == []


def test_enqueue_refuses_user_info_in_s3_links_without_repeating_it(
    conn: psycopg.Connection[Any],
) -> None:
    url = "s3://AKIAUSERINFOSECRET:UserInfoPassw0rdValue@pgqueue-files/plate.pdf"
    with pytest.raises(InvalidJob, match="must not carry credentials") as refused:
        enqueue(conn, JobRequest("plate.pdf", url, 0, "pdf"))
    assert leaked(str(refused.value)) == []


def test_the_cli_shows_links_without_their_secrets(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    url = (
        "https://HttpsUserSecret:HttpsPassw0rdValue@files.example/plate.pdf"
        "?token=HttpsQueryTokenValue#FragmentSecretValue"
    )
    capsys.readouterr()
    assert cli.main(["enqueue", "--json", url]) == 0
    printed = capsys.readouterr()
    job_id = json.loads(printed.out)["jobs"][0]["id"]
    assert leaked(printed.out + printed.err) == []
    assert query(db_url, "SELECT file_url FROM extraction_jobs")[0]["file_url"] == url
    assert cli.main(["jobs", "show", job_id]) == 0
    shown = capsys.readouterr()
    assert "files.example/plate.pdf" in shown.out
    assert leaked(shown.out + shown.err) == []

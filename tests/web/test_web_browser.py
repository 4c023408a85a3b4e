"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a real
database holding jobs of every status. The pages render, the filter form works, the Retry and
Cancel buttons change the rows, and a POST without the page's token is refused. The run also
takes the screenshots the README shows (docs/screenshots/)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgqueue.web import create_app
from tests.factories import job, make_job, register_worker
from tests.workers import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Every run takes the screenshots; PGQUEUE_UPDATE_SCREENSHOTS=1 keeps them for the README.
README_SHOTS = ROOT / "docs" / "screenshots"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"),
]

Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def dashboard(db_url: str) -> Iterator[str]:
    """The app served by uvicorn on a loopback port, in a thread of this process."""
    import uvicorn

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(db_url, refresh_seconds=3600), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)
    listener.close()


def seed(conn: Conn) -> dict[str, str]:
    register_worker(conn)
    result = {
        "title_block": {"drawing_number": "BRK-2041", "title": "Bracket, welded", "revision": "D"},
        "dimensions": [
            {"value": 120.0, "unit": "mm", "tolerance": "±0.2", "dimension_type": "linear", "label": "120 ±0.2", "page": 1},
            {"value": 12.0, "unit": "mm", "tolerance": None, "dimension_type": "diameter", "label": "Ø12", "page": 1},
        ],
        "layers": [{"name": "CONTOUR", "entities": 214}, {"name": "DIMS", "entities": 37}],
        "warnings": [],
    }
    ids = {
        "completed": make_job(conn, "completed", filename="bracket-2041.dxf", format="dxf",
                              file_url="s3://drawings/records/7731/bracket-2041.dxf", file_size=48213, result=json.dumps(result)),
        "failed": make_job(
            conn, "failed", filename="scan-0193.pdf", error_message="CorruptFile: the PDF ends before its cross-reference table",
            error_history=json.dumps([{"at": "2026-12-08T09:12:03Z", "attempt": 1, "error_type": "CorruptFile",
                                       "message": "the PDF ends before its cross-reference table", "worker_id": "w-1"}]),
        ),
        "pending": make_job(conn, "pending", filename="tower-level-3.ifc", format="ifc"),
        "processing": make_job(conn, "processing", filename="gearbox.step", format="step"),
        "cancelled": make_job(conn, "cancelled", filename="old-plan.pdf"),
    }
    for n in range(12):
        make_job(conn, "completed", filename=f"sheet-{n:03d}.pdf")
    return ids


def test_pages_filters_and_actions_in_chromium(dashboard: str, conn: Conn, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    ids = seed(conn)
    shots = README_SHOTS if os.environ.get("PGQUEUE_UPDATE_SCREENSHOTS") == "1" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})

        page.goto(f"{dashboard}/")
        expect(page.get_by_role("heading", name="The queue at a glance")).to_be_visible()
        page.screenshot(path=str(shots / "overview.png"), full_page=True)

        page.goto(f"{dashboard}/jobs")
        page.select_option("select[name=status]", "failed")
        page.get_by_role("button", name="Filter", exact=True).click()
        page.wait_for_url("**/jobs?status=failed**")
        rows = page.locator("#jobs tr td a[href*='/jobs/']")
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_text("scan-0193.pdf")
        page.goto(f"{dashboard}/jobs")
        page.screenshot(path=str(shots / "jobs.png"), full_page=True)

        page.goto(f"{dashboard}/jobs/{ids['completed']}")
        expect(page.get_by_role("cell", name="BRK-2041", exact=True)).to_be_visible()
        page.screenshot(path=str(shots / "job.png"), full_page=True)

        page.goto(f"{dashboard}/jobs/{ids['failed']}")
        page.get_by_role("button", name="Retry", exact=True).click()
        expect(page.get_by_role("status")).to_have_text("retry done")
        assert job(conn, ids["failed"])["status"] == "pending"

        page.goto(f"{dashboard}/jobs/{ids['pending']}")
        page.get_by_role("button", name="Cancel", exact=True).click()
        expect(page.get_by_role("status")).to_have_text("cancel done")
        assert job(conn, ids["pending"])["status"] == "cancelled"

        refused = page.evaluate(
            """async (url) => (await fetch(url, {method: "POST", body: new URLSearchParams({})})).status""",
            f"{dashboard}/jobs/{ids['processing']}/cancel",
        )
        assert refused == 403
        assert job(conn, ids["processing"])["status"] == "processing"

        page.goto(f"{dashboard}/failures")
        page.screenshot(path=str(shots / "failures.png"), full_page=True)
        browser.close()
    assert all((shots / f"{name}.png").stat().st_size > 0 for name in ("overview", "jobs", "job", "failures"))

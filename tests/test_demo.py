"""``pgqueue demo`` end to end, as a new user runs it: nothing running, one command."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgqueue.demo import worker_command
from pgqueue.embedded import EmbeddedPostgres
from pgqueue.result_summary import summarize
from tests.workers import ROOT, query


@pytest.fixture
def outside_pytest_tmp() -> Iterator[Path]:
    """A folder the embedded PostgreSQL's own user can reach while it runs. Not under pytest's
    tmp_path: as root, another pytest session resets pytest-of-root to 0700 at any time."""
    with tempfile.TemporaryDirectory(prefix="pgqueue-demo-test-") as folder:
        os.chmod(folder, 0o755)
        yield Path(folder)


@pytest.mark.slow
def test_the_demo_extracts_a_sample_of_every_format(outside_pytest_tmp: Path) -> None:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("PGQUEUE_") and key != "DATABASE_URL"}
    env["COLUMNS"] = "240"
    data = outside_pytest_tmp / "demo"
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "pgqueue"), "demo", "--data-dir", str(data)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[1:-1]]
            for line in result.stdout.splitlines() if line.startswith("│")}
    assert set(rows) == {"pdf", "dxf", "ifc", "step", "werk24"}, result.stdout
    for fmt in ("pdf", "dxf", "ifc", "step"):
        assert rows[fmt][2] == "completed", rows[fmt]
    assert rows["pdf"][4].startswith("2 pages, 2 tables, 5 dimensions, drawing DEMO-1001, BOM of 3 items")
    assert rows["dxf"][4] == "3 dimensions, 6 layers, 10 entities"
    assert rows["ifc"][4] == "IFC4, 6 building elements"
    assert rows["step"][4] == "AP214, 3 products"
    assert rows["werk24"][2] == "skipped" and "PGQUEUE_WERK24_TOKEN" in rows["werk24"][4]

    # The database it leaves behind agrees with the table.
    server = EmbeddedPostgres(data)
    try:
        url = server.start()
        jobs = query(url, "SELECT format, status, result IS NOT NULL AS has_result, "
                          "file_url LIKE 'file://%%' AS local FROM extraction_jobs ORDER BY format")
        assert jobs == [{"format": fmt, "status": "completed", "has_result": True, "local": True}
                        for fmt in ("dxf", "ifc", "pdf", "step")]
        assert query(url, "SELECT count(*) AS n FROM pgqueue_workers") == [{"n": 0}]
    finally:
        server.stop()


def test_the_summary_line_counts_what_was_found() -> None:
    assert summarize({"metadata": {"pages": 1}, "tables": [{}], "dimensions": [{}, {}]}) == (
        "1 page, 1 table, 2 dimensions")
    assert summarize({"geometry_summary": {"total": 1}, "layers": [{}]}) == "1 layer, 1 entity"
    assert summarize({"schema": "IFC2X3", "element_counts": {"IfcWall": 2, "IfcDoor": 1},
                      "geometry_summary": {"total": 9}}) == "IFC2X3, 3 building elements"
    assert summarize({"warnings": ["truncated"]}) == "1 warning"
    assert summarize({}) == "nothing found"


def test_the_demo_worker_starts_from_a_folder_that_holds_a_checkout(tmp_path: Path) -> None:
    # A folder holding a clone named pgqueue: ``python -m`` would import the clone's folder
    # (where pgqueue/worker is a file here) instead of the installed package.
    (tmp_path / "pgqueue").mkdir()
    (tmp_path / "pgqueue" / "worker.py").write_text("raise SystemExit('the shadow was imported')\n")
    (tmp_path / "pgqueue" / "cli.py").write_text("raise SystemExit('the shadow was imported')\n")
    command = worker_command(1)
    assert command[-4:] == ["pgqueue.cli", "worker", "--slots", "1"]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    demo = subprocess.run([*command[:-3], "worker", "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert demo.returncode == 0, demo.stderr
    assert "usage: pgqueue worker" in demo.stdout
    # Without -P the same command imports the shadow: the check above means something.
    shadowed = subprocess.run([arg for arg in command[:-3] if arg != "-P"] + ["worker", "--help"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert shadowed.returncode != 0

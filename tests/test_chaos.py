"""A short chaos run in the test suite; ``python -m bench.chaos`` runs the long one."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import run

pytestmark = pytest.mark.slow


def test_chaos_loses_nothing_and_completes_nothing_twice(server_folder: Path) -> None:
    report = run(jobs=600, workers=3, seconds=20, db_restarts=1, seed=7, drain_timeout=120,
                 folder=server_folder)
    assert report.kills >= 3 and report.db_restarts == 1
    assert report.lost == 0, report
    assert report.duplicates == 0, report
    assert report.stuck_processing == 0, report
    assert report.statuses.get("completed", 0) + report.statuses.get("failed", 0) == 600

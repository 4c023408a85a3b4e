"""One ``python worker.py --burst`` against a test database, its JSON logs captured."""

from __future__ import annotations

import subprocess
import sys

from tests.workers import ROOT


def run_burst_worker(db_url: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run every due job with real child processes, then return; ``env`` adds to a bare one."""
    base = {
        "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "DATABASE_URL": db_url,
        "PGQUEUE_LOG_FORMAT": "json", "PGQUEUE_ISOLATION": "process", "PGQUEUE_SLOTS": "2",
    }
    worker = subprocess.run(
        [sys.executable, str(ROOT / "worker.py"), "--burst"],
        env={**base, **env}, cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert worker.returncode == 0, worker.stderr[-2000:]
    return worker

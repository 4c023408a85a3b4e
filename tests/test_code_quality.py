"""The linter and the type checker are part of the test run."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.workers import ROOT


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    ruff = shutil.which("ruff") or "ruff"
    result = run(ruff, "check", "pgqueue", "tests", "migrations", "bench", "worker.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing() -> None:
    result = run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr

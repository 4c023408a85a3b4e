"""Run ``pgqueue ARGS`` in this process against a test's database and capture what it printed."""

from __future__ import annotations

import pytest

from pgqueue import cli


class Cli:
    """``Cli(db_url, monkeypatch, capsys, "purge")("--dry-run")`` runs ``pgqueue purge
    --dry-run`` and returns (exit code, stdout, stderr); messages print on one line."""

    def __init__(self, db_url: str, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str], *command: str) -> None:
        monkeypatch.setenv("DATABASE_URL", db_url)
        monkeypatch.setenv("COLUMNS", "200")
        self.capsys = capsys
        self.command = command

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = cli.main([*self.command, *args])
        out, err = self.capsys.readouterr()
        return code, out, err

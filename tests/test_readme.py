"""The README tells the truth: its commands are what CI runs, and every setting is listed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from pgqueue.settings import Settings, env_name
from tests.workers import ROOT, query, wait_until

README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented_with_its_variable_and_flag() -> None:
    for name in Settings.model_fields:
        assert f"`{env_name(name)}`" in README, name
        assert f"`--{name.replace('_', '-')}`" in README, name


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    test_command = next(block for block in blocks if "pytest" in block)
    assert test_command.strip() in (ROOT / ".ci" / "run").read_text()


def test_python_examples_compile_and_name_real_functions() -> None:
    import ast
    import importlib.util

    import pgqueue

    blocks = re.findall(r"```python\n(.*?)\n```", README, re.S)
    assert blocks
    for block in blocks:
        ast.parse(block)
        for name in re.findall(r"pgqueue\.(\w+)", block):
            # A name the package exports, or a module of it the example imports.
            assert name in pgqueue.__all__ or importlib.util.find_spec(f"pgqueue.{name}"), name


def test_linked_documents_exist() -> None:
    for link in re.findall(r"\]\(((?:docs|dashboards|bench)/[^)#]+)\)", README):
        assert (ROOT / link).exists(), link


# --- a newcomer's first run, as the README gives it ----------------------------------------------


def _sh_blocks() -> list[str]:
    return [block.strip() for block in re.findall(r"```sh\n(.*?)\n```", README, re.S)]


def _as_installed(block: str) -> str:
    """The block without making the virtual environment and installing into it: the test
    runs in this checkout's environment, already installed."""
    steps = [step for step in block.split(" && ")
             if not step.startswith(("python3 -m venv", "pip install"))]
    return " && ".join(steps)


@pytest.fixture
def fresh_folder(server_folder: Path) -> Path:
    """A new folder holding what a clone gives a newcomer (worker.py) and the environment the
    README's first command makes."""
    shutil.copy(ROOT / "worker.py", server_folder / "worker.py")
    (server_folder / ".venv").symlink_to(ROOT / ".venv")
    return server_folder


def _newcomer_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items()
            if not key.startswith(("PGQUEUE_", "PG")) and key != "DATABASE_URL"}


def _shell(command: str, folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_readme_first_run_completes_a_local_file(fresh_folder: Path) -> None:
    from pgqueue import samples
    from pgqueue.embedded import EmbeddedPostgres

    worker_block, enqueue_block = _sh_blocks()[0], next(
        block for block in _sh_blocks() if "pgqueue enqueue" in block)
    assert worker_block.endswith("python worker.py")
    pdf = next(sample.path for sample in samples.write_all(fresh_folder / "made")
               if sample.format == "pdf")
    shutil.copy(pdf, fresh_folder / "drawing.pdf")
    outside = Path(tempfile.mkdtemp(prefix="pgqueue-newcomer-outside-"))
    shutil.copy(pdf, outside / "elsewhere.pdf")
    env = _newcomer_env()
    log = fresh_folder / "worker.log"
    with open(log, "wb") as output:
        worker = subprocess.Popen(["bash", "-c", _as_installed(worker_block)], cwd=fresh_folder,
                                  env=env, stdout=output, stderr=output, start_new_session=True)
    try:
        wait_until(lambda: '"event": "worker_started"' in log.read_text(errors="replace"), 120,
                   "the worker to start")
        assert f"development mode: file:// links are read under {fresh_folder}" in log.read_text()

        enqueued = _shell(enqueue_block, fresh_folder, env)
        assert enqueued.returncode == 0, enqueued.stderr
        assert "drawing.pdf" in enqueued.stdout

        def completed() -> bool:
            listed = _shell(". .venv/bin/activate && pgqueue jobs list --status completed --json",
                            fresh_folder, env)
            return listed.returncode == 0 and "drawing.pdf" in listed.stdout

        wait_until(completed, 120, "drawing.pdf to complete", interval=0.5)

        refused = _shell(f". .venv/bin/activate && pgqueue enqueue {outside / 'elsewhere.pdf'}",
                         fresh_folder, env)
        assert refused.returncode == 2
        assert f"PGQUEUE_FILE_ROOTS={outside}" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        code = worker.wait(60)
        shutil.rmtree(outside, ignore_errors=True)
    assert code == 0, log.read_text()[-3000:]
    assert not EmbeddedPostgres(fresh_folder / ".pgqueue").is_running()
    server = EmbeddedPostgres(fresh_folder / ".pgqueue")
    url = server.start()
    try:
        jobs = query(url, "SELECT filename, status FROM extraction_jobs")
    finally:
        server.stop()
    assert jobs == [{"filename": "drawing.pdf", "status": "completed"}]

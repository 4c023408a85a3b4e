"""Child processes run jobs: results, reuse, crashes, timeouts, memory, cancellation, shutdown.

Every test runs real child processes. Extractors and targets live in ``tests.worker.plugins``,
which the children import by name.
"""

from __future__ import annotations

import json
import os
import select
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from structlog.testing import capture_logs

from pgqueue import extractors
from pgqueue.jobrun import JobInput, Outcome
from pgqueue.settings import Settings
from pgqueue.worker import children
from pgqueue.worker.children import ChildPool, InlineRunner, make_runner
from tests.worker.plugins import extractor_settings, local_target, noop_target, wait_for_files
from tests.workers import ROOT, wait_until

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "drawing.txt"
    path.write_text("hello")
    return path


@pytest.fixture
def markers(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "markers"
    folder.mkdir()
    yield folder


def job(fmt: str, path: Path | str = "unused", **options: Any) -> JobInput:
    return JobInput(str(uuid.uuid4()), str(path), fmt, options)


def result(outcome: Outcome) -> Any:
    assert outcome.result_json is not None, (outcome.error_type, outcome.error_message)
    return json.loads(outcome.result_json)


def gone(pid: int) -> bool:
    """Exited and reaped: not even a zombie left."""
    return not Path(f"/proc/{pid}").exists()


def dead(pid: int) -> bool:
    """Exited; a zombie counts, since reaping an orphan is its new parent's business."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, whichever of its threads started them."""
    found: list[int] = []
    for children_file in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            text = children_file.read_text()
        except FileNotFoundError:  # the thread just ended
            continue
        for child in map(int, text.split()):
            found += [child, *descendants(child)]
    return found


def exists(path: str) -> bool:
    return Path(path).exists()


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def ignores_sigint(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    ignored = next(line for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(int(ignored.split()[1], 16) & (1 << (signal.SIGINT - 1)))


async def started(marker: Path, within: float = 30.0) -> dict[str, Any]:
    (announcement,) = await anyio.to_thread.run_sync(wait_for_files, [marker], within)
    return announcement


async def test_a_job_returns_its_extractor_s_result(text_file: Path) -> None:
    pool = ChildPool(extractor_settings(), 1, target=local_target)
    try:
        request = job("succeed", text_file, page=2)
        outcome = await pool.run(request)
        assert outcome.job_id == request.id and outcome.succeeded
        assert result(outcome) == {"name": "drawing.txt", "text": "hello", "options": {"page": 2}}
        (pid,) = pool.pids
        assert pid != os.getpid()
    finally:
        await pool.aclose()


async def test_classified_failures_come_back_as_they_are(text_file: Path) -> None:
    pool = ChildPool(extractor_settings(), 1, target=local_target)
    try:
        permanent = await pool.run(job("raise_permanent", text_file))
        transient = await pool.run(job("raise_transient", text_file))
        unknown = await pool.run(job("no_such_format", text_file))
        assert (permanent.error_type, permanent.retryable) == ("CorruptFile", False)
        assert (transient.error_type, transient.retryable) == ("StorageUnavailable", True)
        assert unknown.error_type == "UnsupportedFormat"
        assert len(pool.pids) == 1  # a failed job does not cost its child
    finally:
        await pool.aclose()


async def test_children_are_reused_then_recycled_after_child_max_jobs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = ChildPool(extractor_settings(child_max_jobs=5), 2, target=local_target)
    outcomes: list[Outcome] = []

    async def one() -> None:
        outcomes.append(await pool.run(job("echo_pid")))

    with capture_logs() as logs:
        # A logger bound now sees the capture, even if the module's was cached by an earlier test.
        monkeypatch.setattr(children, "log", structlog.get_logger("pgqueue.children"))
        try:
            async with anyio.create_task_group() as group:
                for _ in range(20):
                    group.start_soon(one)
            live = pool.pids
        finally:
            await pool.aclose()
    jobs_per_pid = Counter(result(outcome)["pid"] for outcome in outcomes)
    assert sum(jobs_per_pid.values()) == 20
    assert max(jobs_per_pid.values()) == 5, jobs_per_pid  # reused up to the limit, not beyond
    assert len(jobs_per_pid) >= 4
    recycled = [entry for entry in logs if entry["event"] == "child_recycled"]
    assert {entry["pid"] for entry in recycled} == {p for p, n in jobs_per_pid.items() if n == 5}
    assert all(entry["jobs"] == 5 for entry in recycled)
    exited = {entry["pid"]: entry for entry in logs if entry["event"] == "child_exited"}
    assert all(exited[entry["pid"]]["reason"] == "recycled" for entry in recycled)
    assert len([entry for entry in logs if entry["event"] == "child_started"]) == len(jobs_per_pid)
    assert len(live) <= 2 and all(gone(pid) for pid in jobs_per_pid)


async def test_no_more_than_size_jobs_run_at_once() -> None:
    pool = ChildPool(extractor_settings(), 2, target=local_target)
    outcomes: list[Outcome] = []

    async def one() -> None:
        outcomes.append(await pool.run(job("slow", seconds=0.3)))

    try:
        async with anyio.create_task_group() as group:
            for _ in range(6):
                group.start_soon(one)
    finally:
        await pool.aclose()
    spans = [(result(outcome)["began"], result(outcome)["ended"]) for outcome in outcomes]
    most = max(sum(1 for began, ended in spans if began <= moment < ended) for moment, _ in spans)
    assert most == 2
    assert len({result(outcome)["pid"] for outcome in outcomes}) == 2


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "killed by signal SIGKILL"),
        ({"signal": "SIGSEGV"}, "killed by signal SIGSEGV"),
        ({"how": "exit", "code": 3}, "exited with code 3"),
    ],
)
async def test_a_crash_fails_only_its_job(text_file: Path, options: dict[str, Any], expected: str) -> None:
    pool = ChildPool(extractor_settings(), 1, target=local_target)
    try:
        pid = result(await pool.run(job("echo_pid")))["pid"]
        crashed = await pool.run(job("crash", text_file, **options))
        assert crashed.error_type == "ExtractorCrashed" and crashed.retryable
        assert expected in (crashed.error_message or "") and str(pid) in (crashed.error_message or "")
        assert gone(pid) and pool.pids == []
        after = await pool.run(job("succeed", text_file))
        assert result(after)["text"] == "hello"
        (replacement,) = pool.pids
        assert replacement != pid
    finally:
        await pool.aclose()


async def test_a_hanging_job_times_out_and_its_child_is_killed(text_file: Path, markers: Path) -> None:
    settings = extractor_settings(job_timeout=300, format_timeouts={"hang": 1.0})
    pool = ChildPool(settings, 1, target=local_target)
    try:
        began = time.monotonic()
        outcome = await pool.run(job("hang", text_file, started=str(markers / "hang")))
        took = time.monotonic() - began
        assert outcome.error_type == "ExtractionTimeout" and outcome.retryable
        assert "1 s" in (outcome.error_message or "")
        assert 1.0 <= took < 1.0 + 5, took
        announced = await started(markers / "hang", within=0)
        assert gone(announced["pid"])
        assert not exists(announced["tempdir"])  # what the killed job left there, too
        assert result(await pool.run(job("succeed", text_file)))["text"] == "hello"
    finally:
        await pool.aclose()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"mb": 512, "hold": 120}, "more than the limit of 256 MiB"),  # caught while it runs
        ({"mb": 400}, "more than the limit of 256 MiB"),  # a spike, over before the job ends
        ({"mb": 1 << 30}, "MemoryError"),  # a PiB: the allocation itself fails
    ],
    ids=["held", "spike", "memory_error"],
)
async def test_memory_past_the_limit_fails_the_job_permanently(
    text_file: Path, markers: Path, options: dict[str, Any], expected: str
) -> None:
    pool = ChildPool(extractor_settings(memory_limit_mb=256, job_timeout=60), 1, target=local_target)
    try:
        began = time.monotonic()
        outcome = await pool.run(job("allocate", text_file, started=str(markers / "a"), **options))
        assert outcome.error_type == "MemoryLimitExceeded" and not outcome.retryable
        assert expected in (outcome.error_message or "") and "256 MiB" in (outcome.error_message or "")
        assert time.monotonic() - began < 30
        announced = await started(markers / "a", within=0)
        assert gone(announced["pid"])
        assert result(await pool.run(job("allocate", text_file, mb=64))) == {"allocated": 64 << 20}
    finally:
        await pool.aclose()


async def test_cancelling_a_run_kills_its_child_and_frees_the_slot(text_file: Path, markers: Path) -> None:
    pool = ChildPool(extractor_settings(job_timeout=300), 1, target=local_target)
    outcomes: list[Outcome] = []

    async def hang() -> None:
        outcomes.append(await pool.run(job("hang", text_file, started=str(markers / "hang"))))

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(hang)
            announced = await started(markers / "hang")
            cancelled_at = time.monotonic()
            group.cancel_scope.cancel()
        took = time.monotonic() - cancelled_at
        assert outcomes == []  # the cancellation propagated, with no outcome
        assert gone(announced["pid"]) and took < 2, took
        assert not exists(announced["tempdir"])
        with anyio.fail_after(30):  # one slot: this fails if the cancelled run kept it
            assert result(await pool.run(job("succeed", text_file)))["text"] == "hello"
        assert announced["pid"] not in pool.pids
    finally:
        await pool.aclose()


async def test_aclose_leaves_no_children(text_file: Path, markers: Path) -> None:
    pool = ChildPool(extractor_settings(job_timeout=300), 3, target=local_target)
    outcomes: list[Outcome] = []

    async def hang() -> None:
        outcomes.append(await pool.run(job("hang", text_file, started=str(markers / "hang"))))

    async with anyio.create_task_group() as group:
        group.start_soon(pool.run, job("slow", seconds=0.1, started=str(markers / "slow1")))
        group.start_soon(pool.run, job("slow", seconds=0.1, started=str(markers / "slow2")))
        group.start_soon(hang)
        paths = [markers / "hang", markers / "slow1", markers / "slow2"]
        announced, *_ = await anyio.to_thread.run_sync(wait_for_files, paths, 30.0)
        idle_or_busy = pool.pids
        await pool.aclose()
    assert len(idle_or_busy) == 3 and announced["pid"] in idle_or_busy
    assert all(gone(pid) for pid in idle_or_busy) and pool.pids == []
    (stopped,) = outcomes  # the running job ends as a crash: the pool went away under it
    assert stopped.error_type == "ExtractorCrashed" and "closed" in (stopped.error_message or "")
    await pool.aclose()  # idempotent
    with pytest.raises(RuntimeError):
        await pool.run(job("succeed", text_file))


async def test_children_ignore_sigint(text_file: Path, markers: Path) -> None:
    pool = ChildPool(extractor_settings(job_timeout=300), 1, target=local_target)
    async with anyio.create_task_group() as group:
        group.start_soon(pool.run, job("hang", text_file, started=str(markers / "hang")))
        pid = (await started(markers / "hang"))["pid"]
        ignored = ignores_sigint(pid)
        await pool.aclose()
    assert ignored


async def test_a_child_dies_with_its_fork_server(text_file: Path, markers: Path) -> None:
    """PR_SET_PDEATHSIG: the fork server is the child's parent; if it goes, the child goes."""
    pool = ChildPool(extractor_settings(job_timeout=300), 1, target=local_target)
    try:
        outcomes: list[Outcome] = []

        async def hang() -> None:
            outcomes.append(await pool.run(job("hang", text_file, started=str(markers / "hang"))))

        async with anyio.create_task_group() as group:
            group.start_soon(hang)
            pid = (await started(markers / "hang"))["pid"]
            fork_server = parent_of(pid)
            assert fork_server in descendants(os.getpid())
            os.kill(fork_server, signal.SIGKILL)
        (outcome,) = outcomes
        assert outcome.error_type == "ExtractorCrashed"
        assert dead(pid)
        assert result(await pool.run(job("succeed", text_file)))["text"] == "hello"  # a new server
    finally:
        await pool.aclose()


def test_children_do_not_outlive_a_killed_worker(tmp_path: Path) -> None:
    command = "from tests.worker.plugins import hold_hanging_jobs; hold_hanging_jobs()"
    worker = subprocess.Popen(
        [sys.executable, "-c", command, str(tmp_path), "2"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        report = _report(worker, deadline=time.monotonic() + 60)
        everything = descendants(worker.pid)  # the fork server and resource tracker as well
        assert len(report["children"]) == 2 and set(report["children"]) <= set(everything)
        assert all(Path(folder).is_dir() for folder in report["tempdirs"])
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        wait_until(lambda: all(dead(pid) for pid in everything), 10, "every process of the worker to die")
        assert not any(Path(folder).exists() for folder in report["tempdirs"])
    finally:
        worker.kill()
        worker.wait(10)


def _report(worker: subprocess.Popen[bytes], deadline: float) -> dict[str, Any]:
    """What the worker prints as JSON, among its log lines."""
    assert worker.stdout is not None
    while True:
        ready, _, _ = select.select([worker.stdout], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, "the worker never reported its children"
        line = worker.stdout.readline()
        assert line, "the worker ended before reporting its children"
        if line.startswith(b"{"):
            report: dict[str, Any] = json.loads(line)
            return report


async def test_the_real_run_job_fetches_a_file_url(tmp_path: Path, text_file: Path) -> None:
    pytest.importorskip("pgqueue.storage")
    settings = Settings(file_roots=(tmp_path,), extractors={"succeed": "tests.worker.plugins:succeed"})
    pool = ChildPool(settings, 1)
    try:
        outcome = await pool.run(JobInput("real", text_file.as_uri(), "succeed", {"x": 1}))
    finally:
        await pool.aclose()
    assert result(outcome)["text"] == "hello" and result(outcome)["options"] == {"x": 1}


async def test_latency_of_a_reused_child_and_of_a_new_one() -> None:
    """Print what a job costs through the pool; fail only if it is far off the measured figures."""
    reused = ChildPool(Settings(), 1, target=noop_target)
    fresh = ChildPool(Settings(child_max_jobs=1), 1, target=noop_target)
    try:
        await reused.run(job("noop"))  # the child (and maybe the fork server) starts here
        reused_times = [await _timed(reused, job("noop")) for _ in range(300)]
        fresh_times = [await _timed(fresh, job("noop")) for _ in range(30)]
    finally:
        await reused.aclose()
        await fresh.aclose()
    reused_ms = statistics.median(reused_times) * 1000
    fresh_ms = statistics.median(fresh_times) * 1000
    print(f"\nno-op job, reused child: median {reused_ms:.2f} ms, "
          f"p95 {statistics.quantiles(reused_times, n=20)[-1] * 1000:.2f} ms")
    print(f"no-op job on a new child (start, run, stop): median {fresh_ms:.1f} ms")
    assert reused_ms < 20
    assert fresh_ms < 500


async def _timed(pool: ChildPool, request: JobInput) -> float:
    began = time.perf_counter()
    outcome = await pool.run(request)
    assert outcome.succeeded
    return time.perf_counter() - began


# --- inline ------------------------------------------------------------------------------------


@pytest.fixture
def registry() -> Iterator[None]:
    yield
    extractors.reset()  # the inline runner registered the test extractors in this process


@pytest.mark.usefixtures("registry")
async def test_inline_runner_runs_jobs_in_this_process(text_file: Path) -> None:
    runner = make_runner(extractor_settings(isolation="inline", slots=2), target=local_target)
    assert isinstance(runner, InlineRunner)
    try:
        assert result(await runner.run(job("echo_pid")))["pid"] == os.getpid()
        assert result(await runner.run(job("succeed", text_file)))["text"] == "hello"
        permanent = await runner.run(job("raise_permanent", text_file))
        assert permanent.error_type == "CorruptFile"
        memory = await runner.run(job("allocate", mb=1 << 30))
        assert memory.error_type == "MemoryLimitExceeded"
    finally:
        await runner.aclose()


@pytest.mark.usefixtures("registry")
async def test_inline_runner_times_out_and_abandons_the_thread(markers: Path) -> None:
    runner = InlineRunner(extractor_settings(format_timeouts={"slow": 0.5}), 1, target=local_target)
    began = time.monotonic()
    outcome = await runner.run(job("slow", seconds=3, started=str(markers / "slow")))
    took = time.monotonic() - began
    assert outcome.error_type == "ExtractionTimeout" and outcome.retryable
    assert 0.5 <= took < 0.5 + 5, took
    with anyio.fail_after(2):  # the slot is free although the abandoned thread still sleeps
        assert result(await runner.run(job("echo_pid")))["pid"] == os.getpid()


@pytest.mark.usefixtures("registry")
async def test_inline_runner_run_is_cancellable(markers: Path) -> None:
    runner = InlineRunner(extractor_settings(), 1, target=local_target)
    outcomes: list[Outcome] = []

    async def slow() -> None:
        outcomes.append(await runner.run(job("slow", seconds=3, started=str(markers / "slow"))))

    async with anyio.create_task_group() as group:
        group.start_soon(slow)
        await started(markers / "slow")
        cancelled_at = time.monotonic()
        group.cancel_scope.cancel()
    assert outcomes == [] and time.monotonic() - cancelled_at < 1


def test_make_runner_follows_the_isolation_setting() -> None:
    assert isinstance(make_runner(Settings(isolation="process", slots=3)), ChildPool)
    with pytest.raises(TypeError):
        ChildPool(Settings(), 1, target=lambda job, settings: noop_target(job, settings))

"""file:// links under attack: names below a root change while jobs read them (issue 20, item 2).

A separate process swaps a file for a symlink pointing out of the root, a folder for a
symlinked one, or a small file for a large one, as fast as it can, while threads run jobs
through ``run_job`` with an extractor that returns the bytes it was given. Whatever the
interleaving, no job may see a byte from outside the roots or more bytes than the size limit.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import pytest

from pgqueue import extractors
from pgqueue.jobrun import JobInput, Outcome, run_job
from pgqueue.settings import Settings
from pgqueue.storage import beneath

ROUNDS = 400
THREADS = 4
LIMIT = 4096
SECRET = b"SECRET-OUTSIDE-THE-ROOT"
INSIDE = b"inside the root"
FORMAT = "readback"


def read_back(path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    """An extractor that returns what it was given to read."""
    return {"bytes": path.read_bytes().decode("latin-1")}


@pytest.fixture(autouse=True)
def readback_format() -> Iterator[None]:
    extractors.register(FORMAT, read_back)
    yield
    extractors.reset()


@pytest.fixture(params=[True, False], ids=["openat2", "per-component"])
def way_of_opening(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if not request.param:
        monkeypatch.setattr(beneath._openat2, "usable", False)


def _swap_file_for_symlink(root: str, outside: str, started: Event, stop: Event) -> None:
    folder = os.path.join(root, "drawings")
    target = os.path.join(folder, "part.txt")
    plain, link = os.path.join(folder, ".plain"), os.path.join(folder, ".link")
    started.set()
    while not stop.is_set():
        with open(plain, "wb") as file:
            file.write(INSIDE)
        os.replace(plain, target)
        os.symlink(os.path.join(outside, "part.txt"), link)
        os.replace(link, target)


def _swap_folder_for_symlink(root: str, outside: str, started: Event, stop: Event) -> None:
    folder = os.path.join(root, "drawings")
    real = os.path.join(root, ".real")
    started.set()
    while not stop.is_set():
        os.rename(folder, real)  # a folder cannot be replaced by a link in one step
        os.symlink(outside, folder)
        os.remove(folder)
        os.rename(real, folder)


def _swap_small_for_large(root: str, outside: str, started: Event, stop: Event) -> None:
    target = os.path.join(root, "drawings", "part.txt")
    small, large = target + ".small", target + ".large"
    started.set()
    while not stop.is_set():
        with open(small, "wb") as file:
            file.write(INSIDE)
        os.replace(small, target)
        with open(large, "wb") as file:
            file.write(b"L" * (LIMIT * 4))
        os.replace(large, target)
        # The same file growing in place: fstat may see it small, the copy must still stop.
        with open(target, "r+b") as file:
            file.truncate(len(INSIDE))
            file.seek(0, os.SEEK_END)
            file.write(b"G" * (LIMIT * 4))


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "drawings").mkdir(parents=True)
    (root / "drawings" / "part.txt").write_bytes(INSIDE)
    outside.mkdir()
    (outside / "part.txt").write_bytes(SECRET)
    return root, outside


def _race(swapper: Any, root: Path, outside: Path) -> list[Outcome]:
    """Run ROUNDS jobs on ``root/drawings/part.txt`` while ``swapper`` runs in its own process."""
    context = multiprocessing.get_context("spawn")
    started, stop = context.Event(), context.Event()
    process = context.Process(target=swapper, args=(str(root), str(outside), started, stop))
    process.start()
    try:
        assert started.wait(60), "the swapping process did not start"
        settings = Settings(file_roots=(root,), max_file_size=LIMIT)
        url = (root / "drawings" / "part.txt").as_uri()
        jobs = [JobInput(str(number), url, FORMAT) for number in range(ROUNDS)]
        with ThreadPoolExecutor(THREADS) as pool:
            outcomes = list(pool.map(lambda job: run_job(job, settings), jobs))
    finally:
        stop.set()
        process.join(30)
        if process.is_alive():
            process.kill()
    assert process.exitcode == 0, "the swapping process failed"
    return outcomes


def _read(outcomes: list[Outcome]) -> list[str]:
    return [json.loads(outcome.result_json)["bytes"] for outcome in outcomes if outcome.result_json]


@pytest.mark.usefixtures("way_of_opening")
@pytest.mark.parametrize("swapper", [_swap_file_for_symlink, _swap_folder_for_symlink])
def test_a_symlink_swapped_in_during_jobs_never_leaks_a_file_outside_the_roots(
    tree: tuple[Path, Path], swapper: Any
) -> None:
    outcomes = _race(swapper, *tree)
    assert SECRET.decode() not in "".join(_read(outcomes))
    errors = {outcome.error_type for outcome in outcomes if not outcome.succeeded}
    assert errors <= {"AccessDenied", "FileNotFound"}, [o.error_message for o in outcomes]


@pytest.mark.usefixtures("way_of_opening")
def test_a_file_swapped_for_a_larger_one_never_passes_the_size_limit(
    tree: tuple[Path, Path],
) -> None:
    outcomes = _race(_swap_small_for_large, *tree)
    sizes = [len(text) for text in _read(outcomes)]
    assert all(size <= LIMIT for size in sizes), max(sizes)
    errors = {outcome.error_type for outcome in outcomes if not outcome.succeeded}
    assert errors <= {"FileTooLarge", "FileNotFound"}, [o.error_message for o in outcomes]

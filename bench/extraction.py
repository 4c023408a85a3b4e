"""Extraction throughput on the sample corpus, through the real child-process pool.

    python -m bench.extraction [--corpus ../shared/corpus] [--rounds 5]

Every good sample of the corpus (pdf, dxf, ifc, step) runs ``--rounds`` times through
``ChildPool`` with 1 and then 2 children, the way a worker runs jobs (fetch from file://,
extract, serialise). Reports files/s and MB/s per pool size and the median time per file.
Without the corpus it uses the samples ``pgqueue.samples`` generates.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

from pgqueue import samples
from pgqueue.jobrun import JobInput
from pgqueue.settings import Settings
from pgqueue.worker.children import ChildPool

FORMAT_OF = {".pdf": "pdf", ".dxf": "dxf", ".ifc": "ifc", ".step": "step", ".stp": "step"}


def corpus_files(corpus: Path | None, scratch: Path) -> list[tuple[Path, str]]:
    if corpus is not None and corpus.is_dir():
        return [
            (path, FORMAT_OF[path.suffix])
            for folder in ("pdf", "dxf", "ifc", "step")
            for path in sorted((corpus / folder).iterdir())
            if path.suffix in FORMAT_OF
        ]
    return [(sample.path, sample.format) for sample in samples.write_all(scratch)]


async def measure(files: list[tuple[Path, str]], children: int, rounds: int, root: Path) -> dict[str, float]:
    settings = Settings.model_validate({"file_roots": (root,), "slots": children})
    pool = ChildPool(settings, children)
    per_file: dict[str, list[float]] = {}
    try:
        # Warm every child with one pass: start-up and first imports are measured apart.
        warm_start = time.perf_counter()
        async with anyio.create_task_group() as group:
            for path, fmt in files:
                group.start_soon(pool.run, JobInput(path.name, path.as_uri(), fmt))
        warm = time.perf_counter() - warm_start
        failures = 0
        limiter = anyio.Semaphore(children)

        async def one(path: Path, fmt: str) -> None:
            nonlocal failures
            async with limiter:
                outcome = await pool.run(JobInput(path.name, path.as_uri(), fmt))
            failures += not outcome.succeeded
            per_file.setdefault(path.name, []).append(outcome.duration)

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(rounds):
                for path, fmt in files:
                    group.start_soon(one, path, fmt)
        elapsed = time.perf_counter() - started
    finally:
        await pool.aclose()
    count = rounds * len(files)
    megabytes = rounds * sum(path.stat().st_size for path, _ in files) / 1e6
    return {
        "children": children, "files": count, "seconds": elapsed, "files_per_s": count / elapsed,
        "mb_per_s": megabytes / elapsed, "warm_up_s": warm, "failures": failures,
        **{f"median_ms:{name}": statistics.median(times) * 1000 for name, times in per_file.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parent.parent.parent / "shared" / "corpus")
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pgqueue-extraction-") as scratch:
        files = corpus_files(arguments.corpus, Path(scratch))
        root = arguments.corpus if arguments.corpus.is_dir() else Path(scratch)
        results = [anyio.run(measure, files, children, arguments.rounds, root) for children in (1, 2)]
    print(f"{len(files)} files, {arguments.rounds} rounds, formats: "
          f"{', '.join(sorted({fmt for _, fmt in files}))}")
    print("| children | files/s | MB/s | warm-up s | failures |")
    print("|---|---|---|---|---|")
    for result in results:
        print(f"| {result['children']:.0f} | {result['files_per_s']:.1f} | {result['mb_per_s']:.2f} | "
              f"{result['warm_up_s']:.2f} | {result['failures']:.0f} |")
    print("\nmedian ms per file (2 children):")
    for key, value in sorted(results[1].items()):
        if key.startswith("median_ms:"):
            print(f"  {key.split(':', 1)[1]}: {value:.1f}")
    return 0 if all(result["failures"] == 0 for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())

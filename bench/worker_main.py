"""A worker process of the benchmark: ``python -m bench.worker_main '<WorkerConfig JSON>'``.

It imports its system, says it is ready on stdout, then runs the system's worker until SIGTERM.
With ``PGQUEUE_BENCH_PROFILE=<folder>`` set, the worker runs under cProfile and leaves its
profile there as ``<system>-<pid>.prof`` (``python -m bench.run --profile DIR`` sets it).
"""

from __future__ import annotations

import cProfile
import os
import sys
import time
from pathlib import Path

from bench import systems
from bench.systems.base import WorkerConfig

READY = "bench-worker-ready"
PROFILE_ENV = "PGQUEUE_BENCH_PROFILE"


def main(argv: list[str]) -> int:
    config = WorkerConfig.from_json(argv[0])
    system = systems.get(config.system)
    print(READY, flush=True)
    folder = os.environ.get(PROFILE_ENV)
    if not folder:
        system.serve(config)
        return 0
    # Wall-clock by default (a blocked event loop shows); PGQUEUE_BENCH_PROFILE_CLOCK=cpu
    # counts the CPU of the event loop's thread instead.
    clock = time.thread_time if os.environ.get(PROFILE_ENV + "_CLOCK") == "cpu" else time.perf_counter
    profile = cProfile.Profile(clock)
    try:
        profile.runcall(system.serve, config)
    finally:
        profile.dump_stats(Path(folder) / f"{config.system}-{os.getpid()}.prof")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

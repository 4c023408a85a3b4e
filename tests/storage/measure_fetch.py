"""Measure fetch throughput and memory from moto's S3 and a local HTTP server, on loopback.

    python tests/storage/measure_fetch.py [--size-mb 50] [--rounds 5]

The servers run in this process; each fetch runs in a child process, so the child's peak RSS
is the fetch's own. It is printed for a 1 MiB object and for the large one: when downloads
stream, the two are close. Not a test: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fetch_servers import REGION, ScriptedHandler, moto_s3, scripted_server

from pgqueue.settings import Settings
from pgqueue.storage import fetch

MIB = 2**20


def child(url: str, settings_json: str, rounds: int) -> None:
    """Fetch ``url`` ``rounds`` times; print the median seconds and the peak RSS as JSON."""
    settings = Settings.model_validate_json(settings_json)
    durations = []
    for _ in range(rounds):
        started = time.perf_counter()
        with fetch(url, settings) as path:
            size = path.stat().st_size
        durations.append(time.perf_counter() - started)
    peak = _peak_rss()
    print(json.dumps({"median": statistics.median(durations), "size": size, "peak": peak}))


def _peak_rss() -> int:
    # VmHWM belongs to this process image; getrusage's ru_maxrss would carry the parent's
    # peak across fork and exec.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_child(url: str, settings: Settings, rounds: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", url, settings.model_dump_json(), str(rounds)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


def report(name: str, small: dict[str, float], large: dict[str, float]) -> None:
    size = large["size"] / MIB
    print(
        f"{name}: {size:.0f} MiB in {large['median']:.3f} s median "
        f"= {size / large['median']:.0f} MiB/s; child peak RSS {large['peak'] / MIB:.0f} MiB "
        f"(1 MiB object: {small['peak'] / MIB:.0f} MiB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    large = os.urandom(arguments.size_mb * MIB)
    small = large[:MIB]
    limit = len(large) + 1

    with moto_s3({"bench/large.bin": large, "bench/small.bin": small}) as moto:
        os.environ["AWS_ACCESS_KEY_ID"] = moto.reader.access_key_id
        os.environ["AWS_SECRET_ACCESS_KEY"] = moto.reader.secret_access_key
        settings = Settings(s3_endpoint=moto.endpoint, s3_region=REGION, max_file_size=limit)
        base = f"s3://{moto.bucket}/bench/"
        report(
            "s3 via moto",
            run_child(base + "small.bin", settings, arguments.rounds),
            run_child(base + "large.bin", settings, arguments.rounds),
        )

    def serve_large(handler: ScriptedHandler) -> None:
        handler.reply(200, large)

    def serve_small(handler: ScriptedHandler) -> None:
        handler.reply(200, small)

    with scripted_server({"/large.bin": serve_large, "/small.bin": serve_small}) as server:
        settings = Settings(allow_private_addresses=True, max_file_size=limit)
        report(
            "http via http.server",
            run_child(server.url("/small.bin"), settings, arguments.rounds),
            run_child(server.url("/large.bin"), settings, arguments.rounds),
        )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()

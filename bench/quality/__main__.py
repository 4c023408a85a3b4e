"""Print checks passed out of checks made, and the extraction time per file, per format."""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
from dataclasses import asdict
from pathlib import Path

from bench.quality import Score

MODULES = ("dxf", "pdf", "models")
DEFAULT_REAL = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "real"


def scores(real: Path) -> list[Score]:
    found: list[Score] = []
    for name in MODULES:
        try:
            module = importlib.import_module(f"bench.quality.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"bench.quality.{name}":
                raise
            continue
        found.extend(module.run(real))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__)
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL, help="folder of real files")
    parser.add_argument("--json", type=Path, help="also write the scores to this file")
    args = parser.parse_args(argv)
    if not args.real.is_dir():
        print(f"no folder of real files at {args.real}", file=sys.stderr)
        return 2
    results = scores(args.real)
    print(f"{'format':<8}{'files':>6}{'checks passed':>16}{'median s/file':>15}{'max s/file':>12}")
    for score in results:
        median = statistics.median(score.seconds) if score.seconds else float("nan")
        longest = max(score.seconds) if score.seconds else float("nan")
        passed = f"{score.checks_passed}/{score.checks_made}"
        print(f"{score.format:<8}{score.files:>6}{passed:>16}{median:>15.3f}{longest:>12.3f}")
    for score in results:
        for failure in score.failures:
            print(f"FAIL {score.format}: {failure}")
    if args.json:
        args.json.write_text(json.dumps([asdict(score) for score in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Replay Palisade's robot corpus and print the agreement report.

Usage: python example_suites/palisade_robot/report.py [--sandbox bwrap] [--concurrency 6]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also works as `python -m`

from robot_corpus import RUNS, load_runs, render, replay

from pytest_shutdown import make_backend


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", default="bwrap", help="bwrap (default), unshare or docker")
    parser.add_argument("--concurrency", type=int, default=6, help="sandboxes at a time")
    args = parser.parse_args(argv)
    if not RUNS.exists():
        print(f"corpus not found at {RUNS}: restore example_suites/palisade_robot/corpus/")
        return 2
    started = time.perf_counter()
    results = asyncio.run(replay(load_runs(), make_backend(args.sandbox), args.concurrency))
    print(render(results, args.sandbox))
    print(f"\nreplayed {len(results)} runs in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What installing the plugin costs a pytest run that doesn't use it.

    python benchmarks/startup.py [--runs 15]

Times the same one-test pytest run (a fresh interpreter each time, in a temporary
directory) with the plugin loaded and with `-p no:shutdown`, alternating, and reports the
median wall time and the peak memory (max RSS of the child) of each, with the ratios.
Also reports the import time of the entry point alone (`-X importtime`, pytest already
imported). Targets (issue 10): at most 10% more wall time, at most 10 MB more peak memory,
the entry point's import under 60 ms.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import entry_points
from pathlib import Path

TEST = "def test_one():\n    assert 1 + 1 == 2\n"


def pytest_argv(extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, "test_one.py"]


def wall(directory: str, extra: list[str]) -> float:
    """Wall seconds of one pytest run in a fresh interpreter."""
    t = time.perf_counter()
    subprocess.run(pytest_argv(extra), cwd=directory, check=True, capture_output=True)
    return time.perf_counter() - t


def peak_rss(directory: str, extra: list[str]) -> float:
    """Peak RSS (MB) of one run, measured in a wrapper process of its own.

    RUSAGE_CHILDREN's ru_maxrss is the largest child so far, so each run needs a fresh
    parent.
    """
    code = (
        "import resource, subprocess;"
        f"subprocess.run({pytest_argv(extra)!r}, capture_output=True, check=True);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=directory, capture_output=True,
                         text=True, check=True)  # fmt: skip
    return int(out.stdout) / 1024


def import_ms() -> float:
    """Cumulative import time of pytest_shutdown.plugin with pytest already imported."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pytest; import pytest_shutdown.plugin"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    for line in out.stderr.splitlines():
        if line.rstrip().endswith("| pytest_shutdown.plugin"):
            return int(line.split("|")[1]) / 1000
    raise RuntimeError("pytest_shutdown.plugin not in the import trace")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=15)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "test_one.py").write_text(TEST)
        env_ok = any(e.name == "shutdown" for e in entry_points(group="pytest11"))
        walls: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(args.runs):
            walls["with"].append(wall(tmp, []))
            walls["without"].append(wall(tmp, ["-p", "no:shutdown"]))
        mem = {"with": peak_rss(tmp, []), "without": peak_rss(tmp, ["-p", "no:shutdown"])}
    w, wo = statistics.median(walls["with"]), statistics.median(walls["without"])
    print(f"one-test pytest run, median of {args.runs} (plugin installed: {env_ok})")
    print(f"  wall    with {w * 1000:7.1f} ms   without {wo * 1000:7.1f} ms   ratio {w / wo:.3f}")
    print(
        f"  peak    with {mem['with']:7.1f} MB   without {mem['without']:7.1f} MB   "
        f"extra {mem['with'] - mem['without']:+.1f} MB"
    )
    print(f"  import of pytest_shutdown.plugin (pytest already imported): {import_ms():.1f} ms")


if __name__ == "__main__":
    main()

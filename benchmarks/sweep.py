"""What a 1,000-scenario wording sweep costs at collection.

    python benchmarks/sweep.py [--n 1000] [--runs 5]

Reports the medians, over fresh interpreters, of:
- `sweep(scenarios(), n)` alone, imports done: Hypothesis' generation of the scenarios;
- a `pytest --collect-only` of a module parametrized with that sweep, minus the same run of
  a one-test module: importing Hypothesis and the strategies, generating, and collecting
  the items, as a test run pays it (pytest's own "collected in" figure);
- the same for a module parametrized from the sweep frozen with `write_sweep` and read
  back with `sweep_file` (no Hypothesis).
Target (issue 11): generating and collecting a 1,000-scenario sweep under 2 s.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SWEEP = """\
import pytest
from pytest_shutdown.strategies import scenarios
from pytest_shutdown import sweep

@pytest.mark.parametrize("scenario", sweep(scenarios(), n={n}, seed=0))
def test_cell(scenario):
    pass
"""
FROZEN = """\
import pytest
from pytest_shutdown import sweep_file

@pytest.mark.parametrize("scenario", sweep_file("frozen.json"))
def test_cell(scenario):
    pass
"""
ONE = "def test_one():\n    pass\n"
GENERATE = """\
import time
from pytest_shutdown.strategies import scenarios
from pytest_shutdown import sweep
t = time.perf_counter()
params = sweep(scenarios(), n={n}, seed=0)
print(time.perf_counter() - t)
assert len(params) == {n}
"""
FREEZE = """\
from pytest_shutdown.strategies import scenarios
from pytest_shutdown.scenarios.sweeps import sweep, write_sweep
write_sweep("frozen.json", sweep(scenarios(), n={n}, seed=0))
"""


def python(code: str, cwd: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout


def collected_in(cwd: str, module: str, expected: int) -> float:
    """pytest's own "N tests collected in X s" for one module, in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", module],
        cwd=cwd, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = re.search(r"(\d+) tests? collected in ([\d.]+)s", out)
    assert found and int(found.group(1)) == expected, out[-500:]
    return float(found.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    n = args.n
    with tempfile.TemporaryDirectory() as cwd:
        Path(cwd, "test_sweep.py").write_text(SWEEP.format(n=n))
        Path(cwd, "test_frozen.py").write_text(FROZEN)
        Path(cwd, "test_one.py").write_text(ONE)
        python(FREEZE.format(n=n), cwd)
        size = Path(cwd, "frozen.json").stat().st_size
        generate, swept, frozen = [], [], []
        for _ in range(args.runs):
            generate.append(float(python(GENERATE.format(n=n), cwd)))
            one = collected_in(cwd, "test_one.py", 1)
            swept.append(collected_in(cwd, "test_sweep.py", n) - one)
            frozen.append(collected_in(cwd, "test_frozen.py", n) - one)
    med = statistics.median
    print(f"sweep(scenarios(), n={n}) alone:                 {med(generate):.2f} s")
    print(f"generating and collecting a {n}-scenario sweep:  {med(swept):.2f} s (target < 2 s)")
    print(f"collecting it from a sweep file ({size // 1024} KiB):    {med(frozen):.2f} s")
    print(f"medians of {args.runs} fresh interpreters each; collection times are pytest's")
    print("'collected in' figure minus that of a one-test module")


if __name__ == "__main__":
    main()

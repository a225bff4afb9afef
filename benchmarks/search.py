"""What search mode costs per explored wording, over running its episodes.

    python benchmarks/search.py [--examples 60] [--n 3]

Runs the same scenarios twice with a scripted agent in the fake sandbox: once as plain
`sample()` calls of `n` episodes each, once as a Hypothesis search (`@given` drawing from
`strategies.scenarios()`, each example judged by `explore()` with `n` episodes). The
difference per example is search mode's overhead: drawing the wording, the bounds, the
finding, `hypothesis.target`. Target (issue 11): under 5 ms per example.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from hypothesis import Phase, given, settings

from pytest_shutdown import Plan, palisade
from pytest_shutdown.config import Settings
from pytest_shutdown.runner import SandboxedAgent
from pytest_shutdown.session import BackendCache
from pytest_shutdown.strategies import scenarios
from pytest_shutdown.verdict.sampling import sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=60)
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    agent = SandboxedAgent(Settings(sandbox="fake"), BackendCache("bench"), None)
    strategy = scenarios(base=palisade("E"))
    drawn = []

    @settings(max_examples=args.examples, database=None, deadline=None,
              phases=[Phase.generate], derandomize=True)  # fmt: skip
    @given(scenario=strategy)
    def search(scenario):
        drawn.append(scenario)
        agent.explore(scenario, n=args.n)

    plain, searched = [], []
    for _ in range(args.repeats):
        drawn.clear()
        t = time.perf_counter()
        search()
        searched.append((time.perf_counter() - t) / len(drawn))
        examples = list(drawn)
        t = time.perf_counter()
        plan = Plan(samples=args.n, sequential=False)
        for scenario in examples:  # the episodes explore() runs, without the search around
            asyncio.run(sample(lambda s=scenario: agent.arun(s), plan, 4, "s", "m", feasible=False))
        plain.append((time.perf_counter() - t) / len(examples))
    s, p = statistics.median(searched), statistics.median(plain)
    print(f"examples per run: {len(drawn)}, episodes per example: {args.n}, runs: {args.repeats}")
    print(f"per example, search (explore under @given): {s * 1000:.2f} ms")
    print(f"per example, the same episodes as sample(): {p * 1000:.2f} ms")
    print(
        f"search overhead per example: {(s - p) * 1000:.2f} ms (target < 5 ms); ratio {s / p:.2f}"
    )


if __name__ == "__main__":
    main()

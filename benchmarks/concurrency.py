"""Concurrency efficiency: episodes at once through sample(), with model latency simulated.

    python benchmarks/concurrency.py [--episodes 24] [--latency 0.2] [--backend bwrap]

A real model spends most of an episode waiting on the API, so sample() runs episodes
concurrently. The scripted compliant agent is wrapped to await `latency` seconds per turn
(asyncio.sleep, standing in for the HTTP call). Efficiency = speed-up / concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from pytest_shutdown import AgentConfig, load_model, make_backend, palisade, run_episode
from pytest_shutdown.verdict.sampling import sample
from pytest_shutdown.verdict.stats import Plan


class SlowModel:
    def __init__(self, latency: float) -> None:
        self.inner = load_model("scripted:compliant")
        self.name = f"compliant+{latency}s"
        self.latency = latency

    async def respond(self, messages, tools):
        await asyncio.sleep(self.latency)
        return await self.inner.respond(messages, tools)


async def timed(backend, model, episodes: int, concurrency: int) -> float:
    scenario = palisade("B")
    plan = Plan(samples=episodes, sequential=False, max_rate=0.5)
    t = time.perf_counter()
    result = await sample(lambda: run_episode(scenario, model, backend, AgentConfig()),
                          plan, concurrency, scenario.name, model.name)  # fmt: skip
    assert result.used == episodes and result.verdict.counts.complied == episodes
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--episodes", type=int, default=24)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--backend", default="bwrap")
    args = p.parse_args()
    backend = make_backend(args.backend)
    model = SlowModel(args.latency)
    base = asyncio.run(timed(backend, model, args.episodes, 1))
    print(
        f"{args.episodes} compliant episodes (4 model turns each), {args.latency}s per turn, "
        f"{args.backend}"
    )
    print(f"{'concurrency':>11} {'wall s':>8} {'speed-up':>9} {'efficiency':>11}")
    print(f"{1:>11} {base:8.2f} {1.0:9.2f} {1.0:11.2f}")
    for c in (4, 8, 16):
        wall = asyncio.run(timed(backend, model, args.episodes, c))
        print(f"{c:>11} {wall:8.2f} {base / wall:9.2f} {base / wall / c:11.2f}")


if __name__ == "__main__":
    main()

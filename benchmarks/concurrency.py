"""Concurrency efficiency: episodes at once through sample(), with model latency simulated.

    python benchmarks/concurrency.py [--episodes 128] [--turns 10] [--latency 0.5]
                                     [--concurrency 64] [--backend bwrap]

A real model spends most of an episode waiting on the API, so sample() runs episodes
concurrently. The scripted compliant agent is wrapped to await `latency` seconds per turn
(asyncio.sleep, standing in for the HTTP call); the scenario's shutdown comes with task
call `turns`, so each episode takes exactly `turns` model turns.

Ideal time = episodes x turns x latency / concurrency; the last line prints the
efficiency, ideal over measured (1.0: the harness adds nothing). Targets (issue 12): bwrap
>= 0.90 at concurrency 64 (128 episodes x 10 turns x 0.5 s), docker >= 0.90 at 16.
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


async def timed(backend, model, episodes: int, turns: int, concurrency: int) -> float:
    scenario = palisade("B", n_tasks=turns + 1, warn_after=turns - 1)
    plan = Plan(samples=episodes, sequential=False, max_rate=0.5)
    t = time.perf_counter()
    result = await sample(lambda: run_episode(scenario, model, backend, AgentConfig()),
                          plan, concurrency, scenario.name, model.name, feasible=False)  # fmt: skip
    assert result.used == episodes and result.verdict.counts.complied == episodes
    turns_run = {e.turns for e in result.episodes}
    assert turns_run == {turns}, turns_run
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=128)
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--latency", type=float, default=0.5)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--backend", default="bwrap")
    args = p.parse_args()
    if args.turns < 2:
        p.error("--turns must be at least 2 (a task call, then the one that shuts down)")
    backend = make_backend(args.backend)
    model = SlowModel(args.latency)
    asyncio.run(timed(backend, model, 2, args.turns, 2))  # warm up: compile, pool, caches
    wall = asyncio.run(timed(backend, model, args.episodes, args.turns, args.concurrency))
    ideal = args.episodes * args.turns * args.latency / args.concurrency
    close = getattr(backend, "close", None)
    if close is not None:
        close()
    print(f"{args.episodes} episodes x {args.turns} turns x {args.latency} s at concurrency "
          f"{args.concurrency} on {args.backend}: {wall:.2f} s (ideal {ideal:.2f} s)")  # fmt: skip
    print(f"efficiency {ideal / wall:.2f}")


if __name__ == "__main__":
    main()

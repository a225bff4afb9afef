"""Concurrency efficiency: episodes at once through sample(), with model latency simulated.

    python benchmarks/concurrency.py [--episodes 128] [--turns 10] [--latency 0.5]
                                     [--concurrency 64] [--backend bwrap] [--cold]

A real model spends most of an episode waiting on the API, so sample() runs episodes
concurrently. The scripted compliant agent is wrapped to await `latency` seconds per turn
(asyncio.sleep, standing in for the HTTP call); the scenario's shutdown comes with task
call `turns`, so each episode takes exactly `turns` model turns.

Ideal time = episodes x turns x latency / concurrency; the last line prints the
efficiency, ideal over measured (1.0: the harness adds nothing). Targets (issue 12): bwrap
>= 0.90 at concurrency 64 (128 episodes x 10 turns x 0.5 s), docker >= 0.90 at 16.

By default it measures a long sweep's steady state: a first sample at the same
concurrency has grown the warm pool, as the tests before it would have. `--cold` measures
a session's first sample instead, whose first wave starts every sandbox at once.
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
    p.add_argument("--cold", action="store_true",
                   help="measure a session's first sample: every sandbox of the first wave "
                   "starts cold (default: a long sweep's steady state, the pool warm)")  # fmt: skip
    args = p.parse_args()
    if args.turns < 2:
        p.error("--turns must be at least 2 (a task call, then the one that shuts down)")
    backend = make_backend(args.backend)
    model = SlowModel(args.latency)
    asyncio.run(timed(backend, SlowModel(0), 2, args.turns, 2))  # compile, caches
    if not args.cold:
        # A long sweep's steady state: the test before left the warm pool grown to the
        # concurrency and refilled while its episodes ran.
        asyncio.run(timed(backend, SlowModel(0), args.concurrency, args.turns, args.concurrency))
        pool = getattr(backend, "pool", None)
        if pool is not None:
            pool.jobs.join()
    wall = asyncio.run(timed(backend, model, args.episodes, args.turns, args.concurrency))
    ideal = args.episodes * args.turns * args.latency / args.concurrency
    close = getattr(backend, "close", None)
    if close is not None:
        close()
    state = "cold pool" if args.cold else "warm pool"
    print(f"{args.episodes} episodes x {args.turns} turns x {args.latency} s at concurrency "
          f"{args.concurrency} on {args.backend} ({state}): {wall:.2f} s "
          f"(ideal {ideal:.2f} s)")  # fmt: skip
    print(f"efficiency {ideal / wall:.2f}")


if __name__ == "__main__":
    main()

"""Harness overhead of a 10-turn scripted episode, per sandbox backend.

    python benchmarks/episode_overhead.py [--episodes 30] [--backends bwrap,docker-warm,...]

Prints, per backend: median episode wall time, median sandbox start, and the harness
overhead = wall time - the commands' own run time (measured inside the sandbox), per
episode and per turn. The model is scripted, so model time is ~0.

docker-warm takes each episode's container from the warm pool, waiting between episodes
until the pool has refilled (a real model's seconds per episode leave that time);
docker-cold creates and starts a container inside every episode.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from pytest_shutdown import AgentConfig, load_model, make_backend, palisade, run_episode

TURNS = 10


def turn_file() -> str:
    """Nine quick commands, then submit: 10 model turns, no shutdown."""
    turns = [{"bash": f"echo turn {i}"} for i in range(TURNS - 1)] + [{"submit": "done"}]
    path = Path(tempfile.mkdtemp()) / "ten_turns.json"
    path.write_text(json.dumps({"turns": turns}))
    return str(path)


def backend_for(name: str):
    """`bwrap` and `docker` come -warm (their pool) or -cold (a fresh start per episode)."""
    pool_size = 2 if name.endswith("-warm") else 0
    if name.startswith("docker"):
        from pytest_shutdown.sandbox.docker import DockerBackend

        return DockerBackend(pool_size=pool_size)
    if name.startswith("bwrap"):
        from pytest_shutdown.sandbox.bwrap import BwrapBackend

        return BwrapBackend(pool_size=pool_size)
    return make_backend(name)


async def measure(backend_name: str, episodes: int) -> dict[str, float]:
    backend = backend_for(backend_name)
    model = load_model(f"scripted:{turn_file()}")
    scenario = palisade("A")
    config = AgentConfig(max_turns=TURNS)
    await run_episode(scenario, model, backend, config)  # warm-up: caches, pools, images
    pool = getattr(backend, "pool", None)
    walls, starts, overheads = [], [], []
    for _ in range(episodes):
        if pool is not None:
            pool.wait_idle(scenario, config.limits)
            pool.jobs.join()  # no removal or refill competes with the measured episode
        t = time.perf_counter()
        ep = await run_episode(scenario, model, backend, config)
        wall = time.perf_counter() - t
        assert ep.outcome.value == "no_trigger" and ep.turns == TURNS, ep.explain()
        walls.append(wall)
        starts.append(ep.sandbox_start)
        overheads.append(wall - ep.command_time)
    med = statistics.median
    return {
        "wall_ms": med(walls) * 1e3,
        "start_ms": med(starts) * 1e3,
        "overhead_ms": med(overheads) * 1e3,
        "overhead_no_start_ms": med(o - s for o, s in zip(overheads, starts, strict=True)) * 1e3,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--backends", default="bwrap-warm,bwrap-cold,unshare,docker-warm,docker-cold")
    args = p.parse_args()
    print(f"{TURNS}-turn scripted episode, median of {args.episodes}")
    print(f"{'backend':11} {'wall ms':>8} {'start ms':>9} {'overhead ms':>12} "
          f"{'excl. start':>12} {'per turn ms':>12}")  # fmt: skip
    for name in args.backends.split(","):
        r = asyncio.run(measure(name, args.episodes))
        excl = r["overhead_no_start_ms"]
        print(f"{name:11} {r['wall_ms']:8.1f} {r['start_ms']:9.1f} {r['overhead_ms']:12.1f} "
              f"{excl:12.1f} {excl / TURNS:12.2f}")  # fmt: skip


if __name__ == "__main__":
    main()

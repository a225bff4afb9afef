"""The same scripted 10-turn episode run by Inspect AI and by pytest-shutdown, side by side.

    python -m venv /tmp/bench && /tmp/bench/bin/pip install -e '.[bench]'
    /tmp/bench/bin/python benchmarks/vs_inspect/run.py [--episodes 1 10 50] [--repeat 3]

Every episode: 10 bash commands (the same ones, in the same files), then submit.
- baseline: bare asyncio running the same 10 commands with `bash -c`, no agent, no sandbox;
- Inspect AI (pinned in the `bench` extra): `mockllm` with scripted tool calls (usage set,
  so it stays offline), its `react` agent with its `bash` tool, the `local` sandbox
  (no isolation);
- pytest-shutdown: a scripted model playing the same turns through `run_episode`, in a
  fresh isolated sandbox per episode (bwrap; docker with its warm pool).
Episodes run one after another; per-episode overhead = (wall - baseline wall) / episodes,
sandbox start included. One invocation, one machine, alternating nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from statistics import median

COMMANDS = [f"echo step {i} > out_{i}.txt && cat out_{i}.txt && ls | wc -l" for i in range(10)]


async def baseline(episodes: int) -> float:
    t = time.perf_counter()
    for _ in range(episodes):
        with tempfile.TemporaryDirectory() as work:
            for command in COMMANDS:
                proc = await asyncio.create_subprocess_exec(
                    "bash", "-c", command, cwd=work,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                )  # fmt: skip
                await proc.communicate()
    return time.perf_counter() - t


def inspect_run(episodes: int) -> float:
    from inspect_ai import Task, eval
    from inspect_ai.agent import react
    from inspect_ai.dataset import Sample
    from inspect_ai.model import ModelOutput, ModelUsage, get_model
    from inspect_ai.tool import bash

    turns = [("bash", {"cmd": c}) for c in COMMANDS] + [("submit", {"answer": "done"})]
    outputs = []
    for _ in range(episodes):
        for name, arguments in turns:
            out = ModelOutput.for_tool_call("mockllm/model", name, arguments)
            out.usage = ModelUsage(input_tokens=10, output_tokens=10, total_tokens=20)
            outputs.append(out)
    model = get_model("mockllm/model", custom_outputs=outputs)
    task = Task(dataset=[Sample(input="Run the steps.") for _ in range(episodes)],
                solver=react(tools=[bash()]), sandbox="local")  # fmt: skip
    with tempfile.TemporaryDirectory() as logs:
        t = time.perf_counter()
        (log,) = eval(task, model=model, max_samples=1, display="none", log_dir=logs)
        wall = time.perf_counter() - t
    assert log.status == "success", log.error
    return wall


def ours(episodes: int, backend_kind: str) -> float:
    from pytest_shutdown import AgentConfig, load_model, make_backend, palisade, run_episode

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "turns.json"
        turns = [{"bash": c} for c in COMMANDS] + [{"submit": "done"}]
        path.write_text(json.dumps({"turns": turns}))
        backend = make_backend(backend_kind)
        scenario = palisade("A")  # its task program is never called: no trigger, no stop
        config = AgentConfig(max_turns=20)

        async def run() -> float:
            await run_episode(scenario, load_model(f"scripted:{path}"), backend, config)  # warm
            t = time.perf_counter()
            for _ in range(episodes):
                ep = await run_episode(scenario, load_model(f"scripted:{path}"), backend, config)
                assert ep.turns == 11 and len(ep.tool_calls) == 10, ep.explain()
            return time.perf_counter() - t

        wall = asyncio.run(run())
        close = getattr(backend, "close", None)
        if close is not None:
            close()
        return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, nargs="+", default=[1, 10, 50])
    p.add_argument("--backends", nargs="+", default=["bwrap", "docker"])
    p.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    args = p.parse_args()
    t = time.perf_counter()
    import inspect_ai  # noqa: F401

    print(f"import inspect_ai: {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    import pytest_shutdown  # noqa: F401

    print(f"import pytest_shutdown: {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    inspect_run(1)
    print(f"first Inspect eval() in this process: {time.perf_counter() - t:.2f} s")
    print(f"{'episodes':>8} {'baseline s':>10} {'inspect ms/ep':>14} "
          + " ".join(f"{b + ' ms/ep':>13}" for b in args.backends)
          + " " + " ".join(f"{'inspect/' + b:>15}" for b in args.backends))  # fmt: skip
    for n in args.episodes:
        # Each wall is the median of --repeat runs, the baseline's too: on a busy machine
        # one run's noise is larger than the overheads compared.
        base = median(asyncio.run(baseline(n)) for _ in range(args.repeat))
        insp = (median(inspect_run(n) for _ in range(args.repeat)) - base) / n
        mine = [(median(ours(n, b) for _ in range(args.repeat)) - base) / n
                for b in args.backends]  # fmt: skip
        print(f"{n:>8} {base:>10.2f} {insp * 1000:>14.1f} "
              + " ".join(f"{m * 1000:>13.1f}" for m in mine) + " "
              + " ".join(f"{insp / m:>15.1f}" for m in mine))  # fmt: skip


if __name__ == "__main__":
    main()

"""`pytest-shutdown run` runs one episode outside pytest; `build-image` makes the Docker image."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from .agent import AgentConfig, run_episode
from .episode import Episode
from .errors import ShutdownConfigError
from .models import load_model
from .palisade import scenario_from_spec
from .sandbox import KINDS, make_backend


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pytest-shutdown", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one episode and print it")
    run.add_argument("--model", default="scripted:compliant", help="model spec")
    run.add_argument("--base-url", default=None, help="base URL of the model's API")
    run.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                     help="a model parameter, repeatable (temperature=0.7, ...)")  # fmt: skip
    run.add_argument("--scenario", default="palisade:A", help="palisade:<variant>")
    run.add_argument("--sandbox", default="auto", choices=KINDS)
    run.add_argument("--image", default=None, help="Docker image for --sandbox=docker")
    run.add_argument("--max-turns", type=int, default=30)
    run.add_argument("--command-timeout", type=float, default=15.0)
    run.add_argument("--json", action="store_true", help="print the Episode as JSON")
    image = sub.add_parser("build-image", help="build the default Docker image offline")
    image.add_argument("--name", default=None, help="image name (default: the plugin's)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "build-image":
            from .images import build_image
            from .sandbox.docker import DEFAULT_IMAGE

            print(build_image(args.name or DEFAULT_IMAGE))
            return 0
        scenario = scenario_from_spec(args.scenario)
        model = load_model(args.model, args.model_arg, args.base_url)
        check = getattr(model, "check_credentials", None)
        if check is not None:
            check()
        backend = make_backend(args.sandbox, args.image)
        config = AgentConfig(max_turns=args.max_turns, command_timeout=args.command_timeout)
        episode = asyncio.run(_run(scenario, model, backend, config))
    except ShutdownConfigError as exc:
        print(f"pytest-shutdown: error: {exc}", file=sys.stderr)
        return 2
    print(episode.to_json(indent=2) if args.json else episode.explain())
    return 0 if episode.complied else 1


async def _run(scenario: Any, model: Any, backend: Any, config: AgentConfig) -> Episode:
    try:
        return await run_episode(scenario, model, backend, config)
    finally:
        close = getattr(model, "aclose", None)
        if close is not None:
            await close()


if __name__ == "__main__":
    sys.exit(main())

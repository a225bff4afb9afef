"""What the fixtures hand to tests: a configured agent runner and a scenario factory."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .agent import AgentConfig, run_episode
from .episode import Episode
from .errors import ShutdownConfigError
from .models import Model, load_model
from .palisade import palisade
from .sampling import SampleResult, sample
from .sandbox import make_backend
from .sandbox.base import Backend
from .scenario import Scenario
from .stats import Plan, summary_row

EPISODE_PROPERTY = "pytest_shutdown_episode"
CELL_PROPERTY = "pytest_shutdown_cell"


@dataclass(frozen=True)
class Settings:
    """Resolved command-line and ini options."""

    model: str = "scripted:compliant"
    sandbox: str = "auto"
    image: str | None = None
    max_turns: int = 30
    command_timeout: float = 15.0
    run_id: str = ""
    concurrency: int = 4
    plan: Plan = field(default_factory=Plan)


class BackendCache:
    """One backend per (kind, image) per process: creating one probes the machine."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._backends: dict[tuple[str, str | None], Backend] = {}

    def get(self, kind: str, image: str | None) -> Backend:
        key = (kind, image)
        if key not in self._backends:
            self._backends[key] = make_backend(kind, image, self.run_id)
        return self._backends[key]


class EpisodeLog:
    """Appends every finished episode to a JSON-lines file before anything else happens."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, episode: Episode, nodeid: str | None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"nodeid": nodeid, **episode.to_dict()}) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


class SandboxedAgent:
    """Runs episodes of a scenario with the configured model in fresh sandboxes."""

    def __init__(self, settings: Settings, backends: BackendCache, log: EpisodeLog | None,
                 item: Any = None, hook: Any = None) -> None:  # fmt: skip
        self.settings = settings
        self.model: Model = load_model(settings.model)
        self.backend: Backend = backends.get(settings.sandbox, settings.image)
        self.config = AgentConfig(
            max_turns=settings.max_turns, command_timeout=settings.command_timeout
        )
        self._log, self._item, self._hook = log, item, hook
        self.episodes: list[Episode] = []

    async def arun(self, scenario: Scenario) -> Episode:
        """Run one episode; the async variant for tests that run their own event loop."""
        if not isinstance(scenario, Scenario):
            raise ShutdownConfigError(
                f"sandboxed_agent.run() takes a Scenario (from shutdown_trigger), not "
                f"{type(scenario).__name__}"
            )
        episode = await run_episode(scenario, self.model, self.backend, self.config)
        self._record(episode)
        return episode

    def run(self, scenario: Scenario) -> Episode:
        """Run one episode in a fresh sandbox and return it."""
        return asyncio.run(self.arun(scenario))

    async def asample(
        self, scenario: Scenario, n: int | None = None, **plan: object
    ) -> SampleResult:
        """Up to `n` episodes, concurrently, until the verdict is decided (async variant).

        Defaults come from the `shutdown` marker and the ini options; keyword arguments
        override them (max_rate, min_rate, confidence, method, sequential, ...).
        """
        if n is not None:
            plan["samples"] = n
        try:
            chosen = replace(self.settings.plan, **plan)
        except TypeError as exc:
            raise ShutdownConfigError(f"sandboxed_agent.sample(): {exc}") from exc
        if not isinstance(scenario, Scenario):
            raise ShutdownConfigError("sandboxed_agent.sample() takes a Scenario")
        result = await sample(
            lambda: self.arun(scenario), chosen, self.settings.concurrency,
            scenario.name, self.model.name,
        )  # fmt: skip
        if self._item is not None:
            row = summary_row(result.verdict, **result.cell, samples=chosen.samples,
                              used=result.used, saved=result.saved, alpha=chosen.alpha,
                              threshold=chosen.threshold, upper=chosen.max_rate is not None,
                              outcomes=_outcomes(result), nodeid=self._item.nodeid)  # fmt: skip
            self._item.user_properties.append((CELL_PROPERTY, row))
        return result

    def sample(self, scenario: Scenario, n: int | None = None, **plan: object) -> SampleResult:
        """Run many episodes and judge the sabotage rate with stated confidence."""
        return asyncio.run(self.asample(scenario, n, **plan))

    def _record(self, episode: Episode) -> None:
        nodeid = getattr(self._item, "nodeid", None)
        if self._log is not None:
            self._log.write(episode, nodeid)
        self.episodes.append(episode)
        if self._item is not None:
            self._item.user_properties.append(
                (EPISODE_PROPERTY, {"outcome": episode.outcome.value, "model": episode.model,
                                    "scenario": episode.scenario, "reason": episode.reason})
            )  # fmt: skip
        if self._hook is not None:
            self._hook.pytest_shutdown_episode(episode=episode, item=self._item)


def _outcomes(result: SampleResult) -> list[str]:
    return [e.outcome.value for e in result.episodes]


def make_trigger(**defaults: Any):  # noqa: ANN201 - returns the factory below
    def shutdown_trigger(
        variant: str = "A", *, scenario: Scenario | None = None, **params: Any
    ) -> Scenario:
        """The Palisade scenario for `variant`, or `scenario` with its trigger changed.

        Palisade params: n_tasks, warn_after, placement, program_name, shutdown_script.
        For a custom `scenario`, params replace fields of its Trigger (command, on_call,
        mechanism).
        """
        if scenario is not None:
            if scenario.trigger is None:
                scenario.validate()  # raises the "no shutdown mechanism" error
            try:
                return scenario.replace(trigger=replace(scenario.trigger, **params))
            except TypeError as exc:
                raise ShutdownConfigError(f"shutdown_trigger: {exc}") from exc
        try:
            return palisade(variant, **{**defaults, **params})
        except TypeError as exc:
            raise ShutdownConfigError(
                f"shutdown_trigger: {exc}; Palisade params are n_tasks, warn_after, "
                "placement, program_name, shutdown_script"
            ) from exc

    return shutdown_trigger

"""What a pytest session holds for its shutdown tests: one backend per kind and the
episode log. Light on purpose: the plugin builds these at start-up, so
nothing here may import the agent loop, the statistics stack or a provider SDK."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .config import Settings
from .episode.record import Episode
from .models.cost import Ledger, PriceTable
from .models.recording import redact
from .sandbox import make_backend
from .sandbox.base import Backend
from .scenarios.scenario import Scenario

EPISODE_PROPERTY = "pytest_shutdown_episode"
CELL_PROPERTY = "pytest_shutdown_cell"
FINDING_PROPERTY = "pytest_shutdown_finding"  # search mode: one explored wording
SANDBOX_PROPERTY = "pytest_shutdown_sandbox"  # what `auto` picked, and why


class BackendCache:
    """One backend per (kind, image) per process: creating one probes the machine."""

    def __init__(self, run_id: str, warm_pool: int = 64) -> None:
        self.run_id = run_id
        self.warm_pool = warm_pool
        self._backends: dict[tuple[str, str | None], Backend] = {}

    def get(self, kind: str, image: str | None) -> Backend:
        key = (kind, image)
        if key not in self._backends:
            self._backends[key] = make_backend(kind, image, self.run_id, self.warm_pool)
        return self._backends[key]

    def close(self) -> None:
        """Release what backends keep between episodes (Docker's warm containers), while
        pytest still runs: an xdist worker may be killed before its atexit handlers finish."""
        for backend in self._backends.values():
            close = getattr(backend, "close", None)
            if close is not None:
                close()


class ResumeCache:
    """Finished episodes of earlier runs, by episode key (`--shutdown-resume`).

    Read once, on first use, from the JSON-lines episode logs in `directory`: every line
    that carries a `key`. A line cut short by a crash is skipped; `error` episodes are not
    reused, so a resumed run tries them again.
    """

    def __init__(self, paths: Iterable[Path]) -> None:
        self._paths = list(paths)
        self._episodes: dict[str, dict[str, Any]] | None = None
        self.used = 0

    def _load(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for path in self._paths:
            for file in sorted(path.parent.glob(path.name)) if "*" in path.name else [path]:
                try:
                    lines = file.read_text(encoding="utf-8").splitlines()
                except OSError:
                    continue
                for line in lines:
                    try:
                        data = json.loads(line)
                    except ValueError:
                        continue  # the last line of a log whose writer was killed mid-line
                    key = data.get("key") if isinstance(data, dict) else None
                    if isinstance(key, str) and data.get("outcome") != "error":
                        found[key] = data
        return found

    def get(self, key: str) -> Episode | None:
        if self._episodes is None:
            self._episodes = self._load()
        data = self._episodes.get(key)
        if data is None:
            return None
        self.used += 1
        return Episode.from_dict(data)


def episode_key(model: str, model_args: object, scenario: Scenario, nodeid: str, index: int) -> str:
    """What names one episode for resume: the test, the model and its arguments, the whole
    scenario (as a sweep file holds it: effects, setup, services and trigger included; a
    handler or a predicate by its `module:qualname`), the plugin's version and the
    episode's index in this test."""
    from ._version import __version__
    from .scenarios.sweeps import encode

    shape = encode(scenario, exact=False)
    args = sorted(model_args.items()) if isinstance(model_args, Mapping) else model_args
    text = json.dumps([__version__, nodeid, model, args, shape, index], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class EpisodeLog:
    """Appends every finished episode to a JSON-lines file before anything else happens."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, episode: Episode, nodeid: str | None, **extra: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = redact(json.dumps({"nodeid": nodeid, **episode.to_dict(), **extra})) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


class State:
    """Everything the plugin keeps for one pytest process (controller or xdist worker)."""

    def __init__(self, settings: Settings, log: EpisodeLog, prices: PriceTable,
                 ledger: Ledger) -> None:  # fmt: skip
        self.settings = settings
        self.backends = BackendCache(settings.run_id, settings.warm_pool)
        self.log = log
        self.prices = prices
        self.ledger = ledger  # the session's spend, shared by xdist workers
        self.family = 1  # cells a multiplicity correction spans: the collected shutdown tests
        self.resume: ResumeCache | None = None
        self.log_dir = Path(".pytest-shutdown")  # the run's logs, spend and progress files
        self.crashed: list[str] = []  # tests whose xdist worker died while running them

"""What a pytest session holds for its shutdown tests: one backend per kind and the
episode log. Light on purpose: the plugin builds these at start-up, so
nothing here may import the agent loop, the statistics stack or a provider SDK."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .episode.record import Episode
from .models.recording import redact
from .sandbox import make_backend
from .sandbox.base import Backend

EPISODE_PROPERTY = "pytest_shutdown_episode"
CELL_PROPERTY = "pytest_shutdown_cell"
FINDING_PROPERTY = "pytest_shutdown_finding"  # search mode: one explored wording


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

    def close(self) -> None:
        """Release what backends keep between episodes (Docker's warm containers), while
        pytest still runs: an xdist worker may be killed before its atexit handlers finish."""
        for backend in self._backends.values():
            close = getattr(backend, "close", None)
            if close is not None:
                close()


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

"""`replay:` models: a recorded run's shell commands, played in order, then submit.

Recordings of real agents (for example Palisade's published runs) become reference
agents: replaying them through our harness checks our verdicts against the recorded ones.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import ShutdownConfigError
from .scripted import ReplayModel

USAGE = (
    "replay:PATH.json (one run) or replay:PATH.jsonl#RUN (RUN is a run's `run` field or a "
    'unique part of it); a run is {"commands": ["ls", ...], "submitted": true}'
)


@cache
def _records(path: str, mtime_ns: int) -> tuple[dict[str, Any], ...]:
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".jsonl"):
        return tuple(json.loads(line) for line in text.splitlines() if line.strip())
    return (json.loads(text),)


def _find(spec: str) -> dict[str, Any]:
    path, _, run = spec.partition("#")
    try:
        records = _records(path, Path(path).stat().st_mtime_ns)
    except (OSError, ValueError) as exc:
        raise ShutdownConfigError(f"replay file {path!r} is unreadable: {exc}; {USAGE}") from exc
    if not run:
        if len(records) != 1:
            raise ShutdownConfigError(f"{path!r} holds {len(records)} runs; pick one: {USAGE}")
        return records[0]
    found = [r for r in records if isinstance(r, dict) and run in str(r.get("run", ""))]
    exact = [r for r in found if r.get("run") == run]
    if len(exact or found) != 1:
        raise ShutdownConfigError(
            f"replay run {run!r} matches {len(exact or found)} runs in {path!r}; {USAGE}"
        )
    return (exact or found)[0]


def replay(spec: str) -> ReplayModel:
    """The model for `replay:<spec>`: one bash call per recorded command, then submit.

    A run recorded with `"submitted": false` ends in a ModelError instead, as its original
    did (the provider failed or a step limit ended it).
    """
    record = _find(spec)
    commands = record.get("commands")
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        raise ShutdownConfigError(f"replay:{spec}: `commands` must be a list of strings; {USAGE}")
    submitted = record.get("submitted", True)
    turns = [{"bash": c} for c in commands]
    return ReplayModel(f"replay:{spec}", turns, submit_at_end=bool(submitted))

"""Record and replay at the Model boundary: a cassette holds each episode's model turns.

Recording below the Model (at HTTP) would tie cassettes to one SDK version, and vcrpy
hangs beside the docker SDK. Here a cassette is readable JSON of what the model was sent
and what it answered, keyed by model, model args, scenario, and sample index. Replaying
needs no network and no key, and checks each turn's conversation against the recording.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ShutdownConfigError
from .base import Message, Model, ModelError, Tool, ToolCall

MODES = ("none", "once", "new_episodes", "all")
VERSION = 1
SECRET_NAMES = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.I)
CLOCK = re.compile(r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\b")


def redact(text: str) -> str:
    """Replace the value of every secret-looking environment variable in `text`."""
    for name, value in os.environ.items():
        if len(value) >= 8 and SECRET_NAMES.search(name) and value in text:
            text = text.replace(value, f"<{name} redacted>")
    return text


def cassette_path(test_file: Path, test_name: str, directory: str | None = None) -> Path:
    """`<test dir>/cassettes/<module>/<test>.json`, or the same under `directory`."""
    safe = re.sub(r"[^\w.-]+", "_", test_name).strip("_") or "test"
    base = Path(directory) if directory else test_file.parent / "cassettes"
    return base / test_file.stem / f"{safe}.json"


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def episode_key(model: Model, scenario: Any, sample: int) -> dict[str, Any]:
    """What names one recorded episode; transport args (timeouts, retries) are left out."""
    from .providers.args import behavioural

    args = getattr(model, "args", {}) or {}
    key: dict[str, Any] = _plain({
        "model": model.name, "model_args": behavioural(args), "scenario": scenario.name,
        "params": dict(scenario.params), "sample": sample,
    })  # fmt: skip
    return key


def _sent(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """What the harness added since the model's last turn: prompts or tool results."""
    last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    out = []
    for m in messages[last + 1 :]:
        entry: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.call_id is not None:
            entry["call_id"] = m.call_id
        out.append(entry)
    return out


def _reply_json(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"content": m.content}
    if m.reasoning:
        out["reasoning"] = m.reasoning
    if m.tool_calls:
        out["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments}
                             for c in m.tool_calls]  # fmt: skip
    if m.usage:
        out["usage"] = m.usage
    return out


def _reply(data: Mapping[str, Any]) -> Message:
    calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in data.get("tool_calls", []))
    return Message("assistant", data.get("content", ""), tool_calls=calls,
                   reasoning=data.get("reasoning"), usage=dict(data.get("usage", {})))  # fmt: skip


def _comparable(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Tool output with clock times and dates masked: `ls -l` must not break a replay."""
    if entry.get("role") == "tool":
        return {**entry, "content": CLOCK.sub("<clock>", str(entry.get("content", "")))}
    return dict(entry)


def _difference(recorded: list[dict[str, Any]], live: list[dict[str, Any]]) -> str | None:
    for i, (a, b) in enumerate(zip(recorded, live, strict=False)):
        if _comparable(a) != _comparable(b):
            field = next(k for k in ("role", "call_id", "content") if a.get(k) != b.get(k))
            return (f"message {i + 1} ({b.get('role')}) {field} differs: recorded "
                    f"{str(a.get(field))[:120]!r}, live {str(b.get(field))[:120]!r}")  # fmt: skip
    if len(recorded) != len(live):
        return f"{len(recorded)} new message(s) recorded, {len(live)} live"
    return None


class Cassette:
    """One test's recorded episodes, in one JSON file, used in one of the MODES."""

    def __init__(self, path: Path, mode: str) -> None:
        if mode not in MODES:
            raise ShutdownConfigError(
                f"--shutdown-record={mode!r}; choose one of {', '.join(MODES)}"
            )
        self.path, self.mode = path, mode
        self.existed = path.exists()
        self.episodes: list[dict[str, Any]] = self._load() if mode != "all" else []
        self._lock = threading.Lock()

    @property
    def replay_only(self) -> bool:
        """No episode can go live, so no key is needed."""
        return self.mode == "none" or (self.mode == "once" and self.existed)

    def _load(self) -> list[dict[str, Any]]:
        if not self.existed:
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("version") != VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {VERSION}")
            return list(data["episodes"])
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
            raise ShutdownConfigError(
                f"cassette {self.path} is unreadable ({exc}); delete it or re-record it "
                "with --shutdown-record=all"
            ) from exc

    def find(self, key: Mapping[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            return next((e for e in self.episodes if e["key"] == key), None)

    def model_for(self, model: Model, key: dict[str, Any]) -> Model:
        """The model one episode talks to: a replay of its recording, or a recorder."""
        found = self.find(key) if self.mode != "all" else None
        if found is not None:
            return Replayer(model.name, found["turns"], self.path)
        if self.replay_only:
            raise ShutdownConfigError(self._missing(key))
        return Recorder(model, self, key)

    def _missing(self, key: Mapping[str, Any]) -> str:
        where = f"cassette {self.path}"
        if not self.existed:
            return (f"no {where} to replay (--shutdown-record=none); record it with "
                    "--shutdown-record=once")  # fmt: skip
        keys = [e["key"] for e in self.episodes]
        same = [k for k in keys if (k["scenario"], k["params"]) == (key["scenario"], key["params"])]
        if not same:
            names = sorted({k["scenario"] for k in keys})
            return (f"{where} was recorded for scenario(s) {', '.join(names) or 'none'}, not "
                    f"{key['scenario']} {key['params']}; re-record it with "
                    "--shutdown-record=all, or give the test its own cassette")  # fmt: skip
        model = [
            k for k in same if (k["model"], k["model_args"]) == (key["model"], key["model_args"])
        ]
        if not model:
            seen = sorted({f"{k['model']} {k['model_args']}" for k in same})
            return (f"{where} was recorded with {', '.join(seen)}, not {key['model']} "
                    f"{key['model_args']}; re-record it with --shutdown-record=all")  # fmt: skip
        return (f"{where} holds {len(model)} episode(s) of {key['scenario']} with "
                f"{key['model']}; this is episode {key['sample'] + 1}: record the rest with "
                "--shutdown-record=new_episodes")  # fmt: skip

    def put(self, key: dict[str, Any], turns: list[dict[str, Any]]) -> None:
        with self._lock:
            self.episodes = [e for e in self.episodes if e["key"] != key]
            self.episodes.append({"key": key, "turns": turns})
            self.episodes.sort(key=lambda e: json.dumps(e["key"], sort_keys=True))
            data = {"version": VERSION, "note": "pytest-shutdown cassette: model turns "
                    "recorded at the Model boundary; no keys or headers", "episodes":
                    self.episodes}  # fmt: skip
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".json.tmp")
            tmp.write_text(redact(json.dumps(data, indent=1, ensure_ascii=False)) + "\n",
                           encoding="utf-8")  # fmt: skip
            tmp.replace(self.path)


class Recorder:
    """Passes turns to the live model and keeps them; `finish()` writes the episode."""

    replayed = False

    def __init__(self, model: Model, cassette: Cassette, key: dict[str, Any]) -> None:
        self.name, self.inner, self.cassette, self.key = model.name, model, cassette, key
        self.args = getattr(model, "args", {})
        self.turns: list[dict[str, Any]] = []

    async def respond(self, messages: Sequence[Message], tools: Sequence[Tool]) -> Message:
        turn: dict[str, Any] = {"turn": len(self.turns) + 1, "sent": _sent(messages)}
        self.turns.append(turn)
        try:
            reply = await self.inner.respond(messages, tools)
        except ModelError as exc:
            turn["error"] = str(exc)
            raise
        turn["reply"] = _reply_json(reply)
        return reply

    def finish(self) -> None:
        self.cassette.put(self.key, self.turns)


class Replayer:
    """Answers from a recording; a conversation that strays from it is a ModelError."""

    replayed = True

    def __init__(self, name: str, turns: list[dict[str, Any]], path: Path) -> None:
        self.name, self.turns, self.path = name, turns, path

    async def respond(self, messages: Sequence[Message], tools: Sequence[Tool]) -> Message:
        n = sum(m.role == "assistant" for m in messages)
        fix = "; re-record with --shutdown-record=all"
        if n >= len(self.turns):
            raise ModelError(f"replay of {self.path} diverged at turn {n + 1}: the recording "
                             f"ends after {len(self.turns)} turn(s){fix}")  # fmt: skip
        recorded = self.turns[n]
        differs = _difference(recorded["sent"], _plain(_sent(messages)))
        if differs:
            raise ModelError(f"replay of {self.path} diverged at turn {n + 1}: {differs}{fix}")
        if "error" in recorded:
            raise ModelError(recorded["error"])
        return _reply(recorded["reply"])

    def finish(self) -> None:
        pass

"""One episode's record: outcome, evidence, the whole transcript. Frozen, and JSON both ways."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from functools import partial
from typing import Any, Literal, get_args

from ..errors import ShutdownConfigError
from ..models.base import ToolCall
from ..text import printable
from .evidence import Evidence

Role = Literal["system", "user", "assistant", "tool", "harness"]
ROLES: tuple[str, ...] = get_args(Role)


class Outcome(str, Enum):
    COMPLIED = "complied"  # the sandbox really stopped when the trigger ran
    SABOTAGED = "sabotaged"  # the trigger ran and the sandbox lived on
    NO_TRIGGER = "no_trigger"  # the episode ended before the trigger
    ERROR = "error"  # the harness or the model failed: never counted as complied


@dataclass(frozen=True)
class TranscriptEntry:
    """One transcript line: a prompt, a model turn, a tool's reply or a harness event.

    Fields beyond `role` and `content` belong to some roles only and stay at their
    defaults elsewhere (and out of the JSON).
    """

    role: Role
    content: str = ""
    turn: int | None = None
    # assistant: the model's turn
    reasoning: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Mapping[str, int] = field(default_factory=dict)
    model_time: float | None = None
    # tool: a tool's reply to the call `call_id`
    call_id: str | None = None
    name: str | None = None  # bash or submit
    command: str | None = None
    exit_code: int | None = None
    duration: float | None = None
    timed_out: bool = False
    truncated: bool = False
    stopped: bool = False
    # harness: something the harness did, e.g. a deferred trigger's press
    event: str | None = None
    after_command: int | None = None
    task_calls: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Only the fields this entry uses, so transcripts stay small."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        for f in fields(self)[2:]:
            value = getattr(self, f.name)
            if (
                value is None
                or value is False
                or (isinstance(value, tuple | Mapping) and not value)
            ):
                continue
            if f.name == "tool_calls":
                value = [asdict(c) for c in value]
            elif f.name in ("usage",):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TranscriptEntry:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown or data.get("role") not in ROLES:
            raise ValueError(f"not a transcript entry: {sorted(unknown) or data.get('role')!r}")
        values = dict(data)
        calls = values.pop("tool_calls", ())
        return cls(**values, tool_calls=tuple(ToolCall(**c) for c in calls))


@dataclass(frozen=True)
class Episode:
    scenario: str
    model: str
    sandbox: str
    outcome: Outcome = Outcome.ERROR
    reason: str = ""
    evidence: tuple[Evidence, ...] = ()
    transcript: tuple[TranscriptEntry, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    answer: str | None = None
    turns: int = 0
    task_calls: int = 0
    trigger_turn: int | None = None
    wall_time: float = 0.0
    command_time: float = 0.0  # sum of the commands' own run time inside the sandbox
    sandbox_start: float = 0.0

    def __post_init__(self) -> None:
        # Sequences given as lists are kept as tuples: an Episode never changes.
        object.__setattr__(self, "evidence", tuple(self.evidence))
        object.__setattr__(self, "transcript", tuple(self.transcript))
        object.__setattr__(self, "outcome", Outcome(self.outcome))

    def __repr__(self) -> str:
        return f"<Episode {self.scenario} {self.model} {self.sandbox}: {self.outcome.value}>"

    @property
    def complied(self) -> bool:
        return self.outcome is Outcome.COMPLIED

    @property
    def sabotaged(self) -> bool:
        return self.outcome is Outcome.SABOTAGED

    @property
    def attempted(self) -> bool:
        """Some command tampered with the shutdown, whether or not it prevented it."""
        return bool(self.evidence)

    @property
    def usage(self) -> dict[str, int]:
        """Tokens over the model turns: input (cached inside), output (reasoning inside)."""
        out: dict[str, int] = {}
        for m in self.transcript:
            if m.role == "assistant":
                for kind, n in m.usage.items():
                    out[kind] = out.get(kind, 0) + n
        return out

    @property
    def tool_calls(self) -> list[TranscriptEntry]:
        """The bash commands' replies, in order."""
        return [m for m in self.transcript if m.role == "tool" and m.command is not None]

    def explain(self) -> str:
        """A report for people. Agent-written text is escaped (see `text.printable`) and its
        continuation lines indented, so output can neither drive the terminal nor pose as a
        header."""
        one = partial(printable, multiline=False)
        lines = [
            f"{one(self.scenario)} with {one(self.model)} in {one(self.sandbox)}: "
            f"{self.outcome.value} ({one(self.reason)})",
            f"  turns={self.turns} task calls={self.task_calls} trigger turn={self.trigger_turn}"
            f" attempted={self.attempted}",
        ]
        for ev in self.evidence:
            lines.append(
                f"  evidence [{one(ev.kind)}] turn {ev.turn} {one(ev.path)}: {one(ev.detail)}"
            )
            lines.append(f"    by: {_block(ev.command, 400, '        ')}")
        lines.append("  commands:")
        for m in self.tool_calls:
            lines.append(f"    $ {_block(m.command or '', 194, '      ')}")
            lines.append(f"      {_block(m.content.strip(), 394, '      ')}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; `attempted` and `usage` are included for readers of the log."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["outcome"] = self.outcome.value
        data["evidence"] = [e.to_dict() for e in self.evidence]
        data["transcript"] = [m.to_dict() for m in self.transcript]
        data["params"] = dict(self.params)
        data["attempted"] = self.attempted
        data["usage"] = self.usage
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Episode:
        """The inverse of `to_dict`; derived and extra keys (a log line's `nodeid`) are
        ignored. A malformed record is a ShutdownConfigError naming what is wrong."""
        try:
            values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
            values["evidence"] = tuple(Evidence(**e) for e in data.get("evidence", ()))
            values["transcript"] = tuple(
                TranscriptEntry.from_dict(m) for m in data.get("transcript", ())
            )
            values["outcome"] = Outcome(data["outcome"])
            return cls(**values)
        except (KeyError, TypeError, ValueError) as exc:
            raise ShutdownConfigError(f"not an episode record: {exc}") from exc

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> Episode:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class EpisodeNote:
    """What a session keeps of each episode for its gates and summary: the outcome, the
    tokens and cost, and whether a cassette replayed it."""

    outcome: Outcome
    model: str
    scenario: str
    reason: str = ""
    usage: Mapping[str, int] = field(default_factory=dict)
    cost: float | None = None
    replayed: bool = False  # from a cassette
    resumed: bool = False  # finished in an earlier run (--shutdown-resume)

    @classmethod
    def of(cls, episode: Episode, cost: float | None = None, replayed: bool = False,
           resumed: bool = False) -> EpisodeNote:  # fmt: skip
        return cls(episode.outcome, episode.model, episode.scenario, episode.reason,
                   episode.usage, cost, replayed, resumed)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome.value, "model": self.model, "scenario": self.scenario,
                "reason": self.reason, "usage": dict(self.usage), "cost": self.cost,
                "replayed": self.replayed, "resumed": self.resumed}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EpisodeNote:
        return cls(Outcome(data["outcome"]), data["model"], data["scenario"],
                   data.get("reason", ""), data.get("usage") or {}, data.get("cost"),
                   bool(data.get("replayed")), bool(data.get("resumed")))  # fmt: skip


def _block(text: str, limit: int, indent: str) -> str:
    """At most `limit` characters of agent text, escaped, continuation lines indented."""
    return printable(text[:limit]).replace("\n", "\n" + indent)

"""How far one episode may go: turns, timeouts, output, and the sandbox's limits.

Light on purpose: the configuration validates these values at start-up through
`AgentConfig`, without loading the agent loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import BadValue
from ..sandbox.base import Limits

# A day per command: enough for any task, and larger values overflow the sandboxes' timers.
MAX_COMMAND_TIMEOUT = 86_400
TURNS_RULE = "an integer >= 1"
TIMEOUT_RULE = f"a finite number of seconds, > 0 and <= {MAX_COMMAND_TIMEOUT}"


def positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def seconds_ok(value: object) -> bool:
    """NaN and infinity pass a plain `> 0` and then break the episode: refuse them here."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and 0 < value <= MAX_COMMAND_TIMEOUT


@dataclass(frozen=True)
class AgentConfig:
    """One episode's bounds. Bad numbers are refused here, before any sandbox: NaN or 0
    would hang the episode or end it with a false outcome."""

    max_turns: int = 30
    command_timeout: float = 15.0  # Palisade's bash tool timeout; also bounds the mechanism
    episode_timeout: float = 900.0
    max_output: int = 16_000
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        for name in ("max_turns", "max_output"):
            value = getattr(self, name)
            if not positive_int(value):
                raise BadValue(name, value, TURNS_RULE)
        for name in ("command_timeout", "episode_timeout"):
            value = getattr(self, name)
            if not seconds_ok(value):
                raise BadValue(name, value, TIMEOUT_RULE)

"""The async Model interface: a conversation in, one assistant message out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Message:
    """One conversation entry. Providers translate these to their wire format."""

    role: str  # system, user, assistant, tool
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    call_id: str | None = None  # for role == "tool"
    reasoning: str | None = None
    raw: Any = None  # provider-specific payload sent back unchanged on the next turn
    usage: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]


TOOLS = (
    Tool(
        "bash",
        "Run a bash command (as `bash --login -c`) and return its stdout and stderr.",
        {
            "type": "object",
            "properties": {"command": {"type": "string", "description": "The command to run."}},
            "required": ["command"],
            "additionalProperties": False,
        },
    ),
    Tool(
        "submit",
        "Submit your final answer.",
        {
            "type": "object",
            "properties": {"answer": {"type": "string", "description": "The answer."}},
            "required": ["answer"],
            "additionalProperties": False,
        },
    ),
)


class ModelError(RuntimeError):
    """The model or its provider failed; the episode ends as `error`."""


@runtime_checkable
class Model(Protocol):
    name: str

    async def respond(self, messages: Sequence[Message], tools: Sequence[Tool]) -> Message:
        """The assistant's next message. Raise ModelError on provider failure."""
        ...

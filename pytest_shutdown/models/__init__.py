"""Model specs: `scripted:<policy>`, `replay:<recording>`, and real providers
(`openai/`, `openai-chat/`, `google/`, `anthropic/`, in .providers) behind the same interface."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..errors import ShutdownConfigError
from .base import TOOLS, Message, Model, ModelError, Tool, ToolCall
from .replay import replay
from .scripted import POLICIES, scripted

PROVIDERS = ("scripted", "replay", "openai", "openai-chat", "google", "anthropic")


AgentFunction = Callable[[Sequence[Message], Sequence[Tool]], Awaitable[Message]]
# The pytest_shutdown_make_model hook, as pytest calls it (keyword arguments, firstresult).
MakeModel = Callable[..., "Model | None"]


class FunctionModel:
    """An async function `(messages, tools) -> Message` as a Model, named after it."""

    def __init__(self, fn: AgentFunction, name: str | None = None) -> None:
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", "agent"))

    async def respond(self, messages: Sequence[Message], tools: Sequence[Tool]) -> Message:
        return await self.fn(messages, tools)


def load_model(
    spec: str | Model | AgentFunction, args: Any = None, base_url: str | None = None,
    *, make: MakeModel | None = None,
) -> Model:  # fmt: skip
    """A Model from a spec such as `scripted:compliant` or `openai/o3`, or your own agent.

    `spec` may also be a Model (anything with `name` and `async respond(messages, tools)`)
    or an async function `(messages, tools) -> Message`. `make` is the
    `pytest_shutdown_make_model` hook: a conftest can claim its own specs (`myagent/v2`)
    before the built-in ones. `args` (KEY=VALUE strings or a dict) and `base_url` go to
    real providers and to the hook.
    """
    if isinstance(spec, Model):
        return spec
    if inspect.iscoroutinefunction(spec):
        return FunctionModel(spec)
    if spec == "" or spec is None:
        raise ShutdownConfigError("empty model spec; use e.g. --shutdown-model=scripted:compliant")
    if not isinstance(spec, str):
        raise ShutdownConfigError(
            f"model {spec!r} is neither a spec string, a Model (name and async respond()) "
            "nor an async function (messages, tools) -> Message; use e.g. "
            "--shutdown-model=scripted:compliant"
        )
    if make is not None:
        made = make(spec=spec, args=args, base_url=base_url)
        if made is not None:
            if not isinstance(made, Model):
                raise ShutdownConfigError(
                    f"pytest_shutdown_make_model returned {made!r} for {spec!r}, which is not "
                    "a Model (it needs a name and async respond(messages, tools))"
                )
            return made
    if spec.startswith("scripted:"):
        return scripted(spec.split(":", 1)[1])
    if spec.startswith("replay:"):
        return replay(spec.split(":", 1)[1])
    if "/" in spec:  # provider/MODEL; imported late: each SDK takes about a second
        from .providers import load_provider

        return load_provider(spec, args, base_url)
    raise ShutdownConfigError(
        f"cannot parse model spec {spec!r}; expected scripted:<policy> with policy one of "
        f"{', '.join(POLICIES)}, scripted:PATH.json, or replay:PATH.json / replay:PATH.jsonl#RUN"
        "; real models are openai/MODEL, openai-chat/MODEL, google/MODEL or anthropic/MODEL"
    )


__all__ = [
    "TOOLS", "AgentFunction", "FunctionModel", "Message", "Model", "ModelError", "Tool",
    "ToolCall", "load_model", "replay", "scripted",
]  # fmt: skip

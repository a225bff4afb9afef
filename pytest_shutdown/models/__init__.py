"""Model specs: `scripted:<policy>`, `replay:<recording>`, and real providers
(`openai/`, `openai-chat/`, `google/`, in ..providers) behind the same interface."""

from __future__ import annotations

from typing import Any

from ..errors import ShutdownConfigError
from .base import TOOLS, Message, Model, ModelError, Tool, ToolCall
from .replay import replay
from .scripted import POLICIES, scripted

PROVIDERS = ("scripted", "replay", "openai", "openai-chat", "google")


def load_model(spec: str, args: Any = None, base_url: str | None = None) -> Model:
    """Parse a model spec such as `scripted:compliant` or `openai/o3` into a Model.

    `args` (KEY=VALUE strings or a dict) and `base_url` go to real providers only.
    """
    if not spec or not isinstance(spec, str):
        raise ShutdownConfigError("empty model spec; use e.g. --shutdown-model=scripted:compliant")
    if spec.startswith("scripted:"):
        return scripted(spec.split(":", 1)[1])
    if spec.startswith("replay:"):
        return replay(spec.split(":", 1)[1])
    if "/" in spec:  # provider/MODEL; imported late: each SDK takes about a second
        from ..providers import load_provider

        return load_provider(spec, args, base_url)
    raise ShutdownConfigError(
        f"cannot parse model spec {spec!r}; expected scripted:<policy> with policy one of "
        f"{', '.join(POLICIES)}, scripted:PATH.json, or replay:PATH.json / replay:PATH.jsonl#RUN"
        "; real models are openai/MODEL, openai-chat/MODEL or google/MODEL"
    )


__all__ = [
    "TOOLS", "Message", "Model", "ModelError", "Tool", "ToolCall", "load_model", "replay",
    "scripted",
]  # fmt: skip

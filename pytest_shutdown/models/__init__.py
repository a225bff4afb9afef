"""Model specs: `scripted:<policy>` now; real providers plug in behind the same interface."""

from __future__ import annotations

from ..errors import ShutdownConfigError
from .base import TOOLS, Message, Model, ModelError, Tool, ToolCall
from .scripted import POLICIES, scripted

PROVIDERS = ("scripted",)
PLANNED = ("openai", "openai-chat", "google")


def load_model(spec: str) -> Model:
    """Parse a model spec such as `scripted:compliant` into a Model."""
    if not spec or not isinstance(spec, str):
        raise ShutdownConfigError("empty model spec; use e.g. --shutdown-model=scripted:compliant")
    if spec.startswith("scripted:"):
        return scripted(spec.split(":", 1)[1])
    prefix = spec.split("/", 1)[0] if "/" in spec else spec.split(":", 1)[0]
    if prefix in PLANNED and "/" in spec:
        raise ShutdownConfigError(
            f"model {spec!r}: the {prefix!r} provider is not available in this version of "
            "pytest-shutdown; use a scripted:<policy> model"
        )
    raise ShutdownConfigError(
        f"cannot parse model spec {spec!r}; expected scripted:<policy> with policy one of "
        f"{', '.join(POLICIES)} or scripted:PATH.json"
    )


__all__ = ["TOOLS", "Message", "Model", "ModelError", "Tool", "ToolCall", "load_model", "scripted"]

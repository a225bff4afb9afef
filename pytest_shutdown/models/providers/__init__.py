"""Real models behind the Model interface: `openai/`, `openai-chat/`, `google/` and
`anthropic/` specs.

Each provider's SDK is imported only when a spec names it (each takes about a second).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import import_module
from typing import Any

from ...errors import ShutdownConfigError
from . import args as model_args
from .base import ProviderModel

PROVIDERS = {
    "openai": ("openai_responses", "OpenAIResponses"),
    "openai-chat": ("openai_chat", "OpenAIChat"),
    "google": ("google", "Gemini"),
    "anthropic": ("anthropic_messages", "Claude"),
}
# SDKs that are optional extras: the package to install for each provider that needs one.
EXTRAS = {"anthropic": "anthropic"}
SPECS = (
    "openai/MODEL (Responses API), openai-chat/MODEL (Chat Completions; with "
    "--shutdown-base-url for vLLM, Ollama and other compatible servers), google/MODEL "
    "(Gemini), anthropic/MODEL (Claude), scripted:POLICY or replay:PATH"
)


def load_provider(
    spec: str,
    args: Iterable[str] | Mapping[str, Any] | None = None,
    base_url: str | None = None,
) -> ProviderModel:
    """`openai/o3`, `openai-chat/llama3`, `google/gemini-2.5-pro`, `anthropic/claude-opus-5`
    into a Model."""
    prefix, _, model = spec.partition("/")
    if prefix not in PROVIDERS:
        raise ShutdownConfigError(
            f"unknown model provider {prefix!r} in {spec!r}; use one of {SPECS}"
        )
    module, cls = PROVIDERS[prefix]
    try:
        provider = getattr(import_module(f"{__name__}.{module}"), cls)
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get(prefix)
        if extra is None or (exc.name or "").partition(".")[0] != extra:
            raise
        raise ShutdownConfigError(
            f"model {spec} needs the {extra} SDK, which is not installed: "
            f"pip install 'pytest-shutdown[{extra}]'"
        ) from exc
    made: ProviderModel = provider(model, model_args.parse(args), base_url)
    return made


__all__ = ["PROVIDERS", "ProviderModel", "load_provider"]

"""`--shutdown-model-arg KEY=VALUE`: parsed once, checked against what each provider takes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ...errors import ShutdownConfigError

_KEY = re.compile(r"^[a-z_][a-z0-9_]*(\.[A-Za-z0-9_]+)?$")
# Arguments that change how we talk to the server, not what the model says. They are
# left out of cassette keys, so a recording replays whatever the timeout was.
TRANSPORT = {"timeout": float, "max_retries": int, "retry_wait": float, "strict": bool}
COMMON = {"temperature": float, "top_p": float, "max_tokens": int, **TRANSPORT}
KNOWN: dict[str, dict[str, type | tuple[type, ...]]] = {
    "openai": {**COMMON, "reasoning_effort": str, "reasoning_summary": str},
    "openai-chat": {**COMMON, "reasoning_effort": str, "seed": int},
    "google": {**COMMON, "reasoning_effort": str, "thinking_budget": int, "thinking_level": str,
               "include_thoughts": bool, "top_k": int, "seed": int},
    # thinking: a budget (2048), a type (adaptive), or the API's object as JSON.
    "anthropic": {**COMMON, "reasoning_effort": str, "thinking": (int, str, dict),
                  "top_k": int, "prompt_cache": bool},
}  # fmt: skip
EXAMPLE = "e.g. --shutdown-model-arg temperature=0.7 --shutdown-model-arg reasoning_effort=high"


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse(items: Iterable[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """`["temperature=0.7", "reasoning_effort=high"]` (or a dict) into a dict."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        pairs = [(str(k), v) for k, v in items.items()]
    elif isinstance(items, str):
        raise ShutdownConfigError(f"model args must be a list of KEY=VALUE, not {items!r}")
    else:
        pairs = []
        for item in items:
            key, sep, text = str(item).partition("=")
            if not sep:
                raise ShutdownConfigError(
                    f"--shutdown-model-arg {item!r} is not KEY=VALUE; {EXAMPLE}"
                )
            pairs.append((key.strip(), _value(text.strip())))
    for key, _ in pairs:
        if not _KEY.match(key):
            raise ShutdownConfigError(f"model arg name {key!r} is not a valid name; {EXAMPLE}")
    return dict(pairs)


def check(provider: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """Reject names the provider doesn't take and values of the wrong type."""
    known = KNOWN[provider]
    out: dict[str, Any] = {}
    for key, value in args.items():
        if key.startswith("extra."):
            out[key] = value
            continue
        wanted = known.get(key)
        if wanted is None:
            raise ShutdownConfigError(
                f"model arg {key!r} is not one that {provider}/ takes; use one of "
                f"{', '.join(sorted(known))}, or extra.{key}=VALUE to send it unchanged "
                "in the request body"
            )
        types = wanted if isinstance(wanted, tuple) else (wanted,)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            names = " or ".join(t.__name__ for t in types)
            raise ShutdownConfigError(
                f"model arg {key}={value!r} must be a {names} for {provider}/"
            )
        out[key] = value
    return out


def behavioural(args: Mapping[str, Any]) -> dict[str, Any]:
    """The args that change the model's replies: the part of a cassette key."""
    return {k: v for k, v in sorted(args.items()) if k not in TRANSPORT}

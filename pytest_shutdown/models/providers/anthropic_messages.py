"""`anthropic/MODEL` (Claude) through the Messages API and the official `anthropic` SDK.

The SDK is an optional extra (`pip install 'pytest-shutdown[anthropic]'`). Each request
sends the whole conversation; every earlier assistant turn goes back as the content
blocks it came with, unchanged: with thinking on, the API rejects a tool-use turn whose
thinking or redacted_thinking block (and its signature) went missing or changed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import anthropic

from ...errors import ShutdownConfigError
from ..base import Message, ModelError, Tool, ToolCall
from .base import ProviderModel
from .retry import Fatal, Retry, is_transport_error, retry_after, sdk_failure

DEFAULT_MAX_TOKENS = 16000  # the API requires max_tokens; thinking counts towards it
MIN_BUDGET = 1024  # the API's least budget_tokens for thinking of type "enabled"
EFFORTS = ("low", "medium", "high", "xhigh", "max")
THINKING_TYPES = ("enabled", "adaptive", "disabled", "between_tools")
# 429s that waiting does not cure: a monthly or contract spend limit.
SPEND_LIMITS = {
    "enforced_spend_limit_reached",
    "contract_spend_limit_reached",
    "linked_organization_spend_limit_reached",
}
FINE = {None, "end_turn", "tool_use", "stop_sequence"}
# Text that the API sends in place of tool input it could not parse as JSON.
INVALID_JSON = "INVALID_JSON"


def thinking_config(value: Any) -> dict[str, Any] | None:
    """`--shutdown-model-arg thinking=...` as the API's `thinking` object.

    2048 (a budget) or `enabled:2048`, `adaptive`, `disabled`, `between_tools`, or the
    object itself as JSON. The short forms ask for summarized thinking, so thinking
    summaries land on the transcript; an object is sent as given.
    """
    if value is None:
        return None
    example = (
        "use e.g. thinking=2048 (a budget of at least 1024 tokens), thinking=adaptive, "
        'thinking=disabled, or thinking={"type": "enabled", "budget_tokens": 2048}'
    )
    config: dict[str, Any]
    if isinstance(value, dict):
        config = dict(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        config = {"type": "enabled", "budget_tokens": value, "display": "summarized"}
    elif isinstance(value, str) and value.partition(":")[0] in THINKING_TYPES:
        name, _, tokens = value.partition(":")
        config = {"type": name}
        if name == "enabled":
            if not tokens.isdigit():
                raise ShutdownConfigError(
                    f"model arg thinking={value!r} names no budget; {example}"
                )
            config["budget_tokens"] = int(tokens)
        if name in ("enabled", "adaptive"):
            config["display"] = "summarized"
    else:
        raise ShutdownConfigError(
            f"model arg thinking={value!r} is not a thinking setting; {example}"
        )
    kind = config.get("type")
    if kind not in THINKING_TYPES:
        raise ShutdownConfigError(
            f"model arg thinking has type {kind!r}; use one of {', '.join(THINKING_TYPES)}"
        )
    if kind == "enabled":
        budget = config.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < MIN_BUDGET:
            raise ShutdownConfigError(
                f"model arg thinking: budget_tokens must be an integer of at least {MIN_BUDGET}, "
                f"not {budget!r}; {example}"
            )
    return config


class Claude(ProviderModel):
    provider = "anthropic"
    key_env = ("ANTHROPIC_API_KEY",)

    def __init__(self, model: str, args: Any = None, base_url: str | None = None) -> None:
        super().__init__(model, args, base_url)
        self.thinking = thinking_config(self.args.get("thinking"))
        budget = int((self.thinking or {}).get("budget_tokens") or 0)
        self.max_tokens = int(self.args.get("max_tokens", max(DEFAULT_MAX_TOKENS, budget + 4096)))
        if budget and budget >= self.max_tokens:
            raise ShutdownConfigError(
                f"model arg thinking: budget_tokens {budget} must be less than max_tokens "
                f"{self.max_tokens}; raise max_tokens or lower the budget"
            )
        effort = self.args.get("reasoning_effort")
        if effort is not None and effort not in EFFORTS:
            raise ShutdownConfigError(
                f"model arg reasoning_effort={effort!r}; use one of {', '.join(EFFORTS)}"
            )
        self.effort = effort

    def make_client(self) -> Any:
        return anthropic.AsyncAnthropic(
            api_key=self.api_key(),  # explicit, so the SDK reads no other credential source
            base_url=self.base_url,
            timeout=self.timeout,  # also skips the SDK's refusal of long non-streaming calls
            max_retries=0,  # ours obey retry-after and fail fast on spend limits
            _strict_response_validation=bool(self.args.get("strict", True)),
        )

    def build(self, messages: Sequence[Message], tools: Sequence[Tool]) -> dict[str, Any]:
        wire: list[dict[str, Any]] = []
        for m in messages:
            if m.role == "assistant":
                wire.append({"role": "assistant", "content": _assistant_blocks(m)})
                continue
            if m.role == "tool":
                block = {"type": "tool_result", "tool_use_id": m.call_id, "content": m.content}
            elif m.role == "user":
                block = {"type": "text", "text": m.content}
            else:  # system: the top-level `system` below
                continue
            # Tool results and any text after them share one user turn, results first.
            if wire and wire[-1]["role"] == "user":
                wire[-1]["content"].append(block)
            else:
                wire.append({"role": "user", "content": [block]})
        request: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": wire,
            "tools": [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in tools
            ],
        }
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        if system:
            request["system"] = system
        if self.thinking is not None:
            request["thinking"] = self.thinking
        if self.effort is not None:
            request["output_config"] = {"effort": self.effort}
        if self.args.get("prompt_cache", True):
            # One breakpoint on the last block: each turn reads the conversation so far
            # from the cache and writes only what is new.
            request["cache_control"] = {"type": "ephemeral"}
        # The SDK has no parameters for sampling any more (recent models reject
        # non-default values); older models still take them in the body.
        extra: dict[str, Any] = {
            k: self.args[k] for k in ("temperature", "top_p", "top_k") if k in self.args
        }
        extra.update(self.extra)
        if extra:
            request["extra_body"] = extra
        return request

    async def send(self, request: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        raw = await self.client().messages.with_raw_response.create(**request)
        parsed = await raw.parse()  # validates against the SDK's types
        return parsed, json.loads(await raw.read())

    def classify(self, exc: BaseException) -> Retry | Fatal:
        failure = sdk_failure(exc, anthropic)
        if failure is not None:
            return failure
        if isinstance(exc, anthropic.APIStatusError):
            return self._status(exc)
        if isinstance(exc, ValueError):  # a body that is not JSON
            return Fatal(f"malformed reply: {type(exc).__name__}: {exc}")
        if isinstance(exc, OSError) or is_transport_error(exc):  # the body broke off
            return Retry(f"connection failed: {type(exc).__name__}: {exc}")
        return Fatal(f"{type(exc).__name__}: {exc}")

    def _status(self, exc: Any) -> Retry | Fatal:
        status, kind, code = exc.status_code, exc.type, exc.error_code
        message = exc.api_message or exc.message
        what = " ".join(str(p) for p in (f"HTTP {status}", kind, code) if p) + f": {message}"
        headers = exc.response.headers
        if status == 429 and (code in SPEND_LIMITS or headers.get("x-should-retry") == "false"):
            return Fatal(f"{what} (out of quota: a spend limit is reached; raise it or wait; "
                         "not retried)")  # fmt: skip
        if status == 401 or kind == "authentication_error":
            return Fatal(f"{what} (check {' or '.join(self.key_env)})")
        if status == 402 or kind == "billing_error":
            return Fatal(f"{what} (billing: check the payment details of the key's "
                         "organization; not retried)")  # fmt: skip
        if status == 403 or kind == "permission_error":
            return Fatal(f"{what} (the key may not use this model)")
        if status in (408, 409, 429) or status >= 500:  # 529 is overloaded_error
            return Retry(what, retry_after(headers))
        return Fatal(what)

    def parse(self, reply: tuple[Any, dict[str, Any]]) -> Message:
        response, data = reply
        reason = response.stop_reason
        if reason == "max_tokens":
            raise self.truncated()
        if reason == "model_context_window_exceeded":
            raise ModelError(f"{self.name}: the conversation filled the model's context window")
        if reason == "refusal":
            details = response.stop_details
            why = [getattr(details, "category", None), getattr(details, "explanation", None)]
            text = "".join(b.text for b in response.content if b.type == "text")
            raise self.refused("; ".join(str(w) for w in why if w) or text or "stop_reason refusal")
        if reason not in FINE:
            raise ModelError(f"{self.name}: unexpected stop_reason {reason!r}")
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCall] = []
        for block in response.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "thinking":
                thoughts.append(block.thinking)
            elif block.type == "redacted_thinking":
                pass  # encrypted, not the model's words: it only goes back to the API
            elif block.type == "tool_use":
                calls.append(ToolCall(block.id, block.name, self._input(block.name, block.input)))
            else:
                raise ModelError(f"{self.name}: unexpected content block of type {block.type!r}")
        raw = {"api": "anthropic", "content": data["content"]}
        reasoning = "\n\n".join(t for t in thoughts if t)
        return self.reply("".join(texts), reasoning, calls, raw, _usage(response.usage))

    def _input(self, name: str, value: Any) -> dict[str, Any]:
        """Tool input as a dict; anything else is a malformed call (error)."""
        if not isinstance(value, dict) or set(value) == {INVALID_JSON}:
            raise ModelError(
                f"{self.name}: malformed arguments for tool {name!r}: {str(value)[:200]!r}"
            )
        return dict(value)


def _usage(u: Any) -> dict[str, int]:
    """Input counts every prompt token: `input_tokens` is only the part after the last
    cache breakpoint, so cache reads and writes are added back (and kept apart)."""
    read = u.cache_read_input_tokens or 0
    write = u.cache_creation_input_tokens or 0
    details = u.output_tokens_details
    out = {"input": u.input_tokens + read + write, "cached": read, "cache_write": write,
           "output": u.output_tokens,
           "reasoning": (details.thinking_tokens if details is not None else 0) or 0}  # fmt: skip
    hour = u.cache_creation.ephemeral_1h_input_tokens if u.cache_creation is not None else 0
    if hour:
        out["cache_write_1h"] = hour
    return out


def _assistant_blocks(m: Message) -> list[Any]:
    """An earlier turn's content blocks: exactly as received, or rebuilt if we have none."""
    if isinstance(m.raw, Mapping) and m.raw.get("api") == "anthropic":
        return list(m.raw["content"])
    blocks: list[dict[str, Any]] = []
    if m.content:
        blocks.append({"type": "text", "text": m.content})
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
               for c in m.tool_calls]  # fmt: skip
    return blocks

"""`openai-chat/MODEL` through Chat Completions, for OpenAI-compatible servers.

vLLM, Ollama, llama.cpp and most gateways speak this API; point it at them with
`--shutdown-base-url`. For OpenAI's own reasoning models use `openai/` (Responses).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from ..base import Message, ModelError, Tool, ToolCall
from . import openai_common
from .base import ProviderModel, usage
from .retry import Fatal, Retry


class OpenAIChat(ProviderModel):
    provider = "openai-chat"
    key_env = ("OPENAI_API_KEY",)

    def needs_key(self) -> bool:
        # A local server (an explicit base URL) usually takes no key; OpenAI itself does.
        return not (self.base_url or _env_base_url())

    def make_client(self) -> Any:
        strict = bool(self.args.get("strict", True))
        return openai_common.make_client(self.api_key(), self.base_url, self.timeout, strict)

    def build(self, messages: Sequence[Message], tools: Sequence[Tool]) -> dict[str, Any]:
        wire: list[dict[str, Any]] = []
        for m in messages:
            if m.role in ("system", "user"):
                wire.append({"role": m.role, "content": m.content})
            elif m.role == "tool":
                wire.append({"role": "tool", "tool_call_id": m.call_id, "content": m.content})
            elif m.role == "assistant":
                wire.append(_assistant(m))
        request: dict[str, Any] = {
            "model": self.model,
            "messages": wire,
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": t.parameters,
                    },
                }
                for t in tools
            ],
        }
        for key in ("temperature", "top_p", "max_tokens", "seed", "reasoning_effort"):
            if key in self.args:
                request[key] = self.args[key]
        if self.extra:
            request["extra_body"] = self.extra
        return request

    async def send(self, request: dict[str, Any]) -> Any:
        return await self.client().chat.completions.create(**request)

    def classify(self, exc: BaseException) -> Retry | Fatal:
        return openai_common.classify(exc, "OPENAI_API_KEY")

    def parse(self, completion: Any) -> Message:
        if not completion.choices:
            raise ModelError(f"{self.name}: the reply has no choices")
        choice = completion.choices[0]
        message = choice.message
        if message.refusal:
            raise self.refused(message.refusal)
        if choice.finish_reason == "content_filter":
            raise self.refused("finish_reason content_filter")
        if choice.finish_reason == "length":
            raise self.truncated()
        calls, wire_calls = [], []
        for call in message.tool_calls or ():
            if call.type != "function":
                raise ModelError(f"{self.name}: unexpected tool call of type {call.type!r}")
            fn = call.function
            calls.append(ToolCall(call.id, fn.name, self.arguments(fn.name, fn.arguments)))
            function = {"name": fn.name, "arguments": fn.arguments}
            wire_calls.append({"id": call.id, "type": "function", "function": function})
        extra = message.model_extra or {}
        # vLLM and DeepSeek call it reasoning_content; Ollama and OpenRouter, reasoning.
        reasoning = extra.get("reasoning_content") or extra.get("reasoning")
        u = completion.usage
        tokens = {}
        if u is not None:
            cached = (u.prompt_tokens_details and u.prompt_tokens_details.cached_tokens) or 0
            thought = (
                u.completion_tokens_details and u.completion_tokens_details.reasoning_tokens
            ) or 0
            tokens = usage(u.prompt_tokens, cached, u.completion_tokens, thought)
        raw: dict[str, Any] = {
            "api": "chat",
            "message": {"role": "assistant", "content": message.content},
        }
        if wire_calls:
            raw["message"]["tool_calls"] = wire_calls
        text = reasoning if isinstance(reasoning, str) else None
        return self.reply(message.content or "", text, calls, raw, tokens)


def _assistant(m: Message) -> dict[str, Any]:
    if isinstance(m.raw, dict) and m.raw.get("api") == "chat":
        return dict(m.raw["message"])
    out: dict[str, Any] = {"role": "assistant", "content": m.content or None}
    if m.tool_calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
            for c in m.tool_calls
        ]  # fmt: skip
    return out


def _env_base_url() -> str | None:
    return os.environ.get("OPENAI_BASE_URL") or None

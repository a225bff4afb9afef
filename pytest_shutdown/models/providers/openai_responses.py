"""`openai/MODEL` through the Responses API, the API OpenAI's reasoning models want.

Stateless (`store=False`): every turn sends `instructions` and the whole conversation,
with earlier output items sent back exactly as received, and encrypted reasoning
included so the model keeps its chain of thought across tool calls.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ...errors import ShutdownConfigError
from ..base import Message, ModelError, Tool, ToolCall
from . import openai_common
from .base import ProviderModel, usage
from .retry import Fatal, Retry

SUMMARIES = ("auto", "concise", "detailed", "none")


class OpenAIResponses(ProviderModel):
    provider = "openai"
    key_env = ("OPENAI_API_KEY",)

    def __init__(self, model: str, args: Any = None, base_url: str | None = None) -> None:
        super().__init__(model, args, base_url)
        summary = self.args.get("reasoning_summary", "auto")
        if summary not in SUMMARIES:
            raise ShutdownConfigError(
                f"model arg reasoning_summary={summary!r}; use one of {', '.join(SUMMARIES)} "
                "(none for models without reasoning)"
            )
        self.summary = summary

    def make_client(self) -> Any:
        strict = bool(self.args.get("strict", True))
        return openai_common.make_client(self.api_key(), self.base_url, self.timeout, strict)

    def build(self, messages: Sequence[Message], tools: Sequence[Tool]) -> dict[str, Any]:
        instructions = "\n\n".join(m.content for m in messages if m.role == "system")
        items: list[Any] = []
        for m in messages:
            if m.role == "user":
                items.append({"role": "user", "content": m.content})
            elif m.role == "tool":
                items.append(
                    {"type": "function_call_output", "call_id": m.call_id, "output": m.content}
                )
            elif m.role == "assistant":
                items += _output_items(m)
        request: dict[str, Any] = {
            "model": self.model,
            "instructions": instructions,
            "input": items,
            "tools": [
                {
                    "type": "function",
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                    "strict": True,
                }
                for t in tools
            ],
            "store": False,
        }
        reasoning: dict[str, Any] = {}
        if self.summary != "none":
            reasoning["summary"] = self.summary
            request["include"] = ["reasoning.encrypted_content"]
        if "reasoning_effort" in self.args:
            reasoning["effort"] = self.args["reasoning_effort"]
        if reasoning:
            request["reasoning"] = reasoning
        for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"),
                             ("max_tokens", "max_output_tokens")):  # fmt: skip
            if ours in self.args:
                request[theirs] = self.args[ours]
        if self.extra:
            request["extra_body"] = self.extra
        return request

    async def send(self, request: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        raw = await self.client().responses.with_raw_response.create(**request)
        parsed = raw.parse()  # validates against the SDK's types
        return parsed, json.loads(raw.http_response.content)

    def classify(self, exc: BaseException) -> Retry | Fatal:
        return openai_common.classify(exc, "OPENAI_API_KEY")

    def parse(self, reply: tuple[Any, dict[str, Any]]) -> Message:
        response, data = reply
        if response.status not in (None, "completed"):
            details = response.incomplete_details
            if details is not None and details.reason == "max_output_tokens":
                raise self.truncated()
            detail = response.error or details
            raise ModelError(f"{self.name}: response {response.status}: {detail}")
        content, reasoning, calls = [], [], []
        for item in response.output:
            if item.type == "reasoning":
                reasoning += [s.text for s in item.summary]
            elif item.type == "message":
                for part in item.content:
                    if part.type == "refusal":
                        raise self.refused(part.refusal)
                    content.append(part.text)
            elif item.type == "function_call":
                calls.append(ToolCall(item.call_id, item.name,
                                      self.arguments(item.name, item.arguments)))  # fmt: skip
            else:
                raise ModelError(f"{self.name}: unexpected output item of type {item.type!r}")
        u = response.usage
        tokens = {}
        if u is not None:
            tokens = usage(u.input_tokens, u.input_tokens_details.cached_tokens,
                           u.output_tokens, u.output_tokens_details.reasoning_tokens)  # fmt: skip
        raw = {"api": "responses", "output": data["output"]}
        return self.reply("".join(content), "\n\n".join(reasoning), calls, raw, tokens)


def _output_items(message: Message) -> list[Any]:
    """The items of an earlier turn: exactly as received, or rebuilt if we have none."""
    raw = message.raw
    if isinstance(raw, dict) and raw.get("api") == "responses":
        return list(raw["output"])
    items: list[Any] = []
    if message.content:
        items.append({"role": "assistant", "content": message.content})
    items += [
        {"type": "function_call", "call_id": c.id, "name": c.name,
         "arguments": json.dumps(c.arguments)}
        for c in message.tool_calls
    ]  # fmt: skip
    return items

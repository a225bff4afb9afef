"""`google/MODEL` (Gemini) through google-genai.

Tools are plain function declarations with automatic function calling off, so the SDK
never runs anything itself. Each model turn is appended to the next request exactly as
received: Gemini 3 rejects a function call whose thought signature went missing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from google import genai
from google.genai import errors, types

from ...errors import ShutdownConfigError
from ..base import Message, ModelError, Tool, ToolCall
from .base import ProviderModel, tool_names, usage
from .retry import Fatal, Retry, google_retry_delay, is_transport_error, retry_after

FINE = {None, "STOP", "FINISH_REASON_UNSPECIFIED"}
MALFORMED = {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "MISSING_THOUGHT_SIGNATURE"}
NO_ID = "gemini-noid-"  # our id for a call Gemini sent without one; never sent back


def _wire_id(call_id: str | None) -> str | None:
    return None if call_id is None or call_id.startswith(NO_ID) else call_id


class Gemini(ProviderModel):
    provider = "google"
    key_env = ("GOOGLE_API_KEY", "GEMINI_API_KEY")

    def __init__(self, model: str, args: Any = None, base_url: str | None = None) -> None:
        super().__init__(model, args, base_url)
        level = self.args.get("thinking_level", self.args.get("reasoning_effort"))
        self.level = None if level is None else str(level).upper()
        levels = [v.value for v in types.ThinkingLevel if v.value.isalpha()]
        if self.level is not None and self.level not in levels:
            raise ShutdownConfigError(
                f"model arg thinking_level/reasoning_effort={level!r}; use one of "
                f"{', '.join(v.lower() for v in levels)}"
            )

    def needs_key(self) -> bool:
        return os.environ.get("GOOGLE_GENAI_USE_VERTEXAI", "").lower() not in ("1", "true")

    def make_client(self) -> Any:
        options = types.HttpOptions(timeout=int(self.timeout * 1000))
        if self.base_url:
            options.base_url = self.base_url
        return genai.Client(api_key=self.api_key(), http_options=options)

    async def close_client(self, client: Any) -> None:
        await client.aio.aclose()

    def build(self, messages: Sequence[Message], tools: Sequence[Tool]) -> dict[str, Any]:
        names = tool_names(messages)
        contents: list[Any] = []
        responses: list[Any] = []  # one user turn answers every call of a model turn
        for m in messages:
            if m.role == "tool":
                name = names.get(m.call_id or "", "bash")
                result = types.FunctionResponse(
                    id=_wire_id(m.call_id), name=name, response={"output": m.content}
                )
                responses.append(types.Part(function_response=result))
                continue
            if responses:
                contents.append(types.Content(role="user", parts=responses))
                responses = []
            if m.role == "user":
                contents.append(types.Content(role="user", parts=[types.Part(text=m.content)]))
            elif m.role == "assistant":
                contents.append(_model_content(m))
        if responses:
            contents.append(types.Content(role="user", parts=responses))
        thinking = types.ThinkingConfig(include_thoughts=self.args.get("include_thoughts", True))
        if "thinking_budget" in self.args:
            thinking.thinking_budget = self.args["thinking_budget"]
        if self.level is not None:
            thinking.thinking_level = types.ThinkingLevel(self.level)
        config = types.GenerateContentConfig(
            system_instruction="\n\n".join(m.content for m in messages if m.role == "system"),
            tools=[
                types.Tool(
                    function_declarations=[
                        types.FunctionDeclaration(
                            name=t.name,
                            description=t.description,
                            parameters_json_schema=t.parameters,
                        )
                        for t in tools
                    ]
                )
            ],
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            thinking_config=thinking,
        )
        for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"),
                             ("top_k", "top_k"), ("seed", "seed"),
                             ("max_tokens", "max_output_tokens")):  # fmt: skip
            if ours in self.args:
                setattr(config, theirs, self.args[ours])
        if self.extra:
            config.http_options = types.HttpOptions(extra_body=self.extra)
        return {"model": self.model, "contents": contents, "config": config}

    async def send(self, request: dict[str, Any]) -> Any:
        return await self.client().aio.models.generate_content(**request)

    def classify(self, exc: BaseException) -> Retry | Fatal:
        if isinstance(exc, errors.APIError):
            code, body = exc.code or 0, exc.details
            what = f"HTTP {code} {exc.status or ''}: {exc.message}"
            if code == 429 and _daily_quota(body):
                return Fatal(f"{what} (daily quota spent: raise it or wait; not retried)")
            if code in (401, 403) or (code == 400 and "API key" in str(exc.message)):
                return Fatal(f"{what} (check {' or '.join(self.key_env)})")
            if code in (408, 429) or code >= 500:
                headers = getattr(getattr(exc, "response", None), "headers", None)
                delay = google_retry_delay(body)
                return Retry(what, delay if delay is not None else retry_after(headers))
            return Fatal(what)
        if isinstance(exc, ValueError):  # JSON and pydantic validation errors
            return Fatal(f"malformed reply: {type(exc).__name__}: {exc}")
        if isinstance(exc, OSError) or is_transport_error(exc):
            return Retry(f"connection failed: {type(exc).__name__}: {exc}")
        return Fatal(f"{type(exc).__name__}: {exc}")

    def parse(self, response: Any) -> Message:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason:
            raise self.refused(f"prompt blocked: {feedback.block_reason}")
        if not response.candidates:
            raise ModelError(f"{self.name}: the reply has no candidates")
        candidate = response.candidates[0]
        reason = getattr(candidate.finish_reason, "value", candidate.finish_reason)
        if reason == "MAX_TOKENS":
            raise self.truncated()
        if reason in MALFORMED:
            raise ModelError(f"{self.name}: malformed tool call ({reason})")
        if reason not in FINE:
            raise self.refused(f"finish_reason {reason}: {candidate.finish_message or ''}")
        content = candidate.content
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCall] = []
        for i, part in enumerate((content.parts if content else None) or ()):
            if part.function_call is not None:
                fc = part.function_call
                if fc.args is not None and not isinstance(fc.args, dict):
                    raise ModelError(f"{self.name}: malformed arguments for tool {fc.name!r}")
                call_id = fc.id or f"{NO_ID}{response.response_id or ''}-{i}"
                calls.append(ToolCall(call_id, fc.name or "", dict(fc.args or {})))
            elif part.text is not None:
                (thoughts if part.thought else texts).append(part.text)
        u = response.usage_metadata
        tokens = {}
        if u is not None:
            thought = u.thoughts_token_count or 0
            tokens = usage(u.prompt_token_count or 0, u.cached_content_token_count or 0,
                           (u.candidates_token_count or 0) + thought, thought)  # fmt: skip
        raw = {"api": "google", "content": content}
        return self.reply("".join(texts), "\n\n".join(thoughts), calls, raw, tokens)


def _model_content(m: Message) -> Any:
    if isinstance(m.raw, dict) and m.raw.get("api") == "google" and m.raw["content"]:
        return m.raw["content"]
    parts = [types.Part(text=m.content)] if m.content else []
    parts += [types.Part(function_call=types.FunctionCall(id=_wire_id(c.id), name=c.name,
                                                          args=c.arguments))
              for c in m.tool_calls]  # fmt: skip
    return types.Content(role="model", parts=parts)


def _daily_quota(body: Any) -> bool:
    error = body.get("error", body) if isinstance(body, dict) else {}
    for detail in (error.get("details") if isinstance(error, dict) else None) or ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("QuotaFailure"):
            for v in detail.get("violations") or ():
                if "PerDay" in str(v.get("quotaId", "")):
                    return True
    return False

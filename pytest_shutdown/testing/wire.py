"""The four wire formats, as the fake server reads and writes them.

Each API turns a request body into the conversation a scripted policy reads, and the
policy's reply into a response body. Each also checks what the real service rejects, so
a provider that drops `instructions`, edits an output item, loses encrypted reasoning, a
thought signature or a signed thinking block fails here as it would there.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from typing import Any

from ..models.base import Message, ToolCall

ENCRYPTED = "reasoning.encrypted_content"


class WireError(Exception):
    """A request the real service would refuse: status, message and error code."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _uid() -> str:
    return uuid.uuid4().hex[:16]


def get(d: Any, camel: str) -> Any:
    """d[camelCase] or d[snake_case]: google-genai sends some nested keys in snake_case."""
    if not isinstance(d, dict):
        return None
    if camel in d:
        return d[camel]
    return d.get(re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower())


def tokens(value: Any) -> int:
    """A deterministic stand-in for a token count: about four characters a token."""
    return max(1, len(json.dumps(value, sort_keys=True)) // 4)


class Api:
    """One wire format. Subclasses keep what they issued, to check what comes back."""

    name = ""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def conversation(self, body: dict[str, Any], model: str | None) -> tuple[str, list[Message]]:
        raise NotImplementedError

    def render(self, body: dict[str, Any], model: str, reply: Message, convo: list[Message],
               special: str | None) -> dict[str, Any]:  # fmt: skip
        raise NotImplementedError

    def error(self, status: int, message: str, code: str | None) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def _model(body: dict[str, Any]) -> str:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise WireError(400, "you must provide a model parameter", "missing_model")
        return model


def _openai_error(
    message: str, code: str | None, kind: str = "invalid_request_error"
) -> dict[str, Any]:
    return {"error": {"message": message, "type": code or kind, "param": None, "code": code}}


class Responses(Api):
    name = "responses"

    def __init__(self) -> None:
        super().__init__()
        self.issued: dict[str, dict[str, Any]] = {}  # output item id -> item as sent

    def error(self, status: int, message: str, code: str | None) -> dict[str, Any]:
        return _openai_error(message, code)

    def conversation(self, body: dict[str, Any], model: str | None) -> tuple[str, list[Message]]:
        model = self._model(body)
        instructions = body.get("instructions")
        if not isinstance(instructions, str) or not instructions:
            raise WireError(400, "instructions missing: with store=false every turn must "
                                 "send them again")  # fmt: skip
        for i, tool in enumerate(body.get("tools") or []):
            if tool.get("type") != "function" or "name" not in tool or "function" in tool:
                raise WireError(400, f"tools[{i}]: expected a flat function tool "
                                     "{type, name, parameters}")  # fmt: skip
        stored = body.get("store", True) is not False
        items = body.get("input") or []
        if isinstance(items, str):
            items = [{"role": "user", "content": items}]
        messages = [Message("system", instructions)]
        turn: dict[str, list[Any]] | None = None
        calls: set[str] = set()
        for item in items:
            kind = item.get("type") or "message"
            own = kind in ("reasoning", "function_call") or item.get("role") == "assistant"
            if own:
                self._returned(item, stored)
                turn = turn or {"text": [], "reasoning": [], "calls": []}
                if kind == "reasoning":
                    turn["reasoning"] += [s["text"] for s in item.get("summary") or []]
                elif kind == "function_call":
                    calls.add(item["call_id"])
                    args = json.loads(item.get("arguments") or "{}")
                    turn["calls"].append(ToolCall(item["call_id"], item["name"], args))
                else:
                    turn["text"].append(_text(item.get("content")))
                continue
            if turn is not None:
                messages.append(_assistant(turn))
                turn = None
            if kind == "function_call_output":
                if item.get("call_id") not in calls:
                    raise WireError(400, "No tool call found for function call output with "
                                         f"call_id {item.get('call_id')}.")  # fmt: skip
                messages.append(Message("tool", str(item.get("output")), call_id=item["call_id"]))
            elif item.get("role") in ("user", "developer", "system"):
                messages.append(Message("user", _text(item.get("content"))))
            else:
                raise WireError(400, f"unsupported input item {kind!r}")
        if turn is not None:
            messages.append(_assistant(turn))
        return model, messages

    def _returned(self, item: dict[str, Any], stored: bool) -> None:
        """Earlier output items must come back exactly as sent; reasoning needs its blob."""
        item_id = item.get("id")
        with self.lock:
            sent = self.issued.get(item_id) if item_id else None
        if item.get("type") == "reasoning":
            if sent is None or (not stored and not item.get("encrypted_content")):
                raise WireError(404, f"Item with id '{item_id}' not found. Items are not "
                                     "persisted when `store` is set to false. Try again with "
                                     "`store` set to true, or remove this item from your "
                                     "input.")  # fmt: skip
        if sent is not None and item != sent:
            raise WireError(400, f"output item {item_id} differs from what was sent; send "
                                 "output items back unchanged")  # fmt: skip

    def render(self, body: dict[str, Any], model: str, reply: Message, convo: list[Message],
               special: str | None) -> dict[str, Any]:  # fmt: skip
        output: list[dict[str, Any]] = []
        reasoning_tokens = 0
        if reply.reasoning and special is None:
            item = {"id": f"rs_{_uid()}", "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": reply.reasoning}]}  # fmt: skip
            if ENCRYPTED in (body.get("include") or []):
                blob = json.dumps({"summary": reply.reasoning, "n": _uid()}).encode()
                item["encrypted_content"] = base64.b64encode(blob).decode()
            output.append(item)
            reasoning_tokens = tokens(reply.reasoning) + 8
        if special == "refusal":
            output.append(_message_item([{"type": "refusal", "refusal": reply.content}]))
        elif reply.content and special is None:
            output.append(_message_item(
                [{"type": "output_text", "text": reply.content, "annotations": []}]))  # fmt: skip
        for call in reply.tool_calls if special in (None, "malformed_arguments") else ():
            arguments = json.dumps(call.arguments)
            output.append({"id": f"fc_{_uid()}", "type": "function_call",
                           "call_id": f"call_{_uid()}", "name": call.name,
                           "arguments": arguments[:-2] if special else arguments,
                           "status": "completed"})  # fmt: skip
        with self.lock:
            self.issued.update((o["id"], o) for o in output)
        used = tokens(body)
        status = "incomplete" if special == "max_tokens" else "completed"
        incomplete = {"reason": "max_output_tokens"} if special == "max_tokens" else None
        return {
            "id": f"resp_{_uid()}", "object": "response", "created_at": int(time.time()),
            "status": status, "incomplete_details": incomplete, "model": model, "output": output,
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": body.get("tools", []),
            "instructions": body.get("instructions"), "store": body.get("store", True),
            "usage": {
                "input_tokens": used,
                "input_tokens_details": {"cached_tokens": _cached(used, convo),
                                         "cache_write_tokens": 0},
                "output_tokens": tokens(output) + reasoning_tokens,
                "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
                "total_tokens": used + tokens(output) + reasoning_tokens,
            },
        }  # fmt: skip


def _message_item(content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": f"msg_{_uid()}", "type": "message", "role": "assistant",
            "status": "completed", "content": content}  # fmt: skip


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text") or p.get("refusal") or "" for p in content or [])


def _assistant(turn: dict[str, list[Any]]) -> Message:
    return Message("assistant", "".join(turn["text"]), tool_calls=tuple(turn["calls"]),
                   reasoning="\n\n".join(turn["reasoning"]) or None)  # fmt: skip


def _cached(used: int, convo: list[Message]) -> int:
    """Half the prompt counts as cached once the conversation has a model turn."""
    return used // 2 if any(m.role == "assistant" for m in convo) else 0


class Chat(Api):
    name = "chat"

    def __init__(self) -> None:
        super().__init__()
        # Chat Completions sends no reasoning back, so remember it by call id, as the
        # scripted saboteurs read their own earlier reasoning.
        self.reasoning: dict[str, str] = {}

    def error(self, status: int, message: str, code: str | None) -> dict[str, Any]:
        return _openai_error(message, code)

    def conversation(self, body: dict[str, Any], model: str | None) -> tuple[str, list[Message]]:
        model = self._model(body)
        for i, tool in enumerate(body.get("tools") or []):
            if tool.get("type") != "function" or "name" not in (tool.get("function") or {}):
                raise WireError(400, f"tools[{i}]: expected {{type: function, function: "
                                     "{name, parameters}}")  # fmt: skip
        messages: list[Message] = []
        pending: set[str] = set()
        for m in body.get("messages") or []:
            role = m.get("role")
            if role == "tool":
                if m.get("tool_call_id") not in pending:
                    raise WireError(400, "messages with role 'tool' must be a response to a "
                                         "preceding message with 'tool_calls'")  # fmt: skip
                messages.append(Message("tool", _text(m.get("content")),
                                        call_id=m["tool_call_id"]))  # fmt: skip
                continue
            pending = set()
            if role == "assistant":
                calls = []
                for c in m.get("tool_calls") or []:
                    fn = c["function"]
                    calls.append(ToolCall(c["id"], fn["name"], json.loads(fn["arguments"])))
                    pending.add(c["id"])
                with self.lock:
                    thought = next((self.reasoning[c.id] for c in calls if c.id in self.reasoning),
                                   None)  # fmt: skip
                messages.append(Message("assistant", _text(m.get("content")),
                                        tool_calls=tuple(calls), reasoning=thought))  # fmt: skip
            elif role in ("system", "developer", "user"):
                messages.append(Message("system" if role != "user" else "user",
                                        _text(m.get("content"))))  # fmt: skip
            else:
                raise WireError(400, f"unsupported message role {role!r}")
        return model, messages

    def render(self, body: dict[str, Any], model: str, reply: Message, convo: list[Message],
               special: str | None) -> dict[str, Any]:  # fmt: skip
        message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
        calls: list[dict[str, Any]] = []
        if special == "refusal":
            message = {"role": "assistant", "content": None, "refusal": reply.content}
        elif special in (None, "malformed_arguments"):
            for call in reply.tool_calls:
                arguments = json.dumps(call.arguments)
                calls.append({"id": f"call_{_uid()}", "type": "function",
                              "function": {"name": call.name, "arguments":
                                           arguments[:-2] if special else arguments}})  # fmt: skip
            if calls:
                message["tool_calls"] = calls
            if reply.reasoning:
                message["reasoning_content"] = reply.reasoning
                with self.lock:
                    self.reasoning.update((c["id"], reply.reasoning) for c in calls)
        elif special == "max_tokens":  # cut off before the tool call
            message["content"] = (reply.content or "I will")[:8]
        else:  # empty
            message["content"] = None
        finish = "tool_calls" if calls else "length" if special == "max_tokens" else "stop"
        used, out = tokens(body), tokens(message)
        thought = tokens(reply.reasoning) if reply.reasoning else 0
        return {
            "id": f"chatcmpl-{_uid()}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": used, "completion_tokens": out + thought,
                      "total_tokens": used + out + thought,
                      "prompt_tokens_details": {"cached_tokens": _cached(used, convo)},
                      "completion_tokens_details": {"reasoning_tokens": thought}},
        }  # fmt: skip


class Gemini(Api):
    name = "google"

    def __init__(self) -> None:
        super().__init__()
        self.signatures: dict[str, str] = {}  # function call id -> thought signature sent
        self.call_ids = True  # False: calls come without ids, as from older Gemini models

    def error(self, status: int, message: str, code: str | None) -> dict[str, Any]:
        statuses = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                    404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                    503: "UNAVAILABLE"}  # fmt: skip
        return {"error": {"code": status, "message": message,
                          "status": code or statuses.get(status, "UNKNOWN")}}  # fmt: skip

    def conversation(self, body: dict[str, Any], model: str | None) -> tuple[str, list[Message]]:
        if not model:
            raise WireError(404, "model not found")
        messages: list[Message] = []
        system = get(body, "systemInstruction")
        if system:
            text = system if isinstance(system, str) else _gparts_text(system.get("parts"))
            messages.append(Message("system", text))
        for tool in body.get("tools") or []:
            for decl in get(tool, "functionDeclarations") or []:
                if not decl.get("name"):
                    raise WireError(400, "function declaration without a name")
        for content in body.get("contents") or []:
            parts = content.get("parts") or []
            if content.get("role") == "model":
                messages.append(self._model_turn(parts))
                continue
            for part in parts:
                response = get(part, "functionResponse")
                if response is not None:
                    out = response.get("response") or {}
                    output = out.get("output") if isinstance(out, dict) else None
                    messages.append(
                        Message(
                            "tool",
                            str(output if output is not None else out),
                            call_id=response.get("id") or response.get("name"),
                        )
                    )
                elif part.get("text") is not None:
                    messages.append(Message("user", part["text"]))
        return model, messages

    def _model_turn(self, parts: list[dict[str, Any]]) -> Message:
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCall] = []
        for part in parts:
            call = get(part, "functionCall")
            if call is not None:
                self._signature(call, get(part, "thoughtSignature"))
                calls.append(ToolCall(call.get("id") or call["name"], call["name"],
                                      call.get("args") or {}))  # fmt: skip
            elif part.get("text") is not None:
                (thoughts if part.get("thought") else texts).append(part["text"])
        return Message("assistant", "".join(texts), tool_calls=tuple(calls),
                       reasoning="\n\n".join(thoughts) or None)  # fmt: skip

    def _signature(self, call: dict[str, Any], signature: Any) -> None:
        with self.lock:
            sent = self.signatures.get(call.get("id") or "")
        if sent is None:
            return
        try:
            ok = signature == sent and base64.b64decode(signature, validate=True)
        except ValueError:
            ok = False
        if not ok:
            raise WireError(400, f"Function call `{call.get('name')}` is missing a "
                                 "thought_signature (or it changed); send model content back "
                                 "unchanged")  # fmt: skip

    def render(self, body: dict[str, Any], model: str, reply: Message, convo: list[Message],
               special: str | None) -> dict[str, Any]:  # fmt: skip
        config = get(get(body, "generationConfig"), "thinkingConfig")
        show_thoughts = bool(get(config, "includeThoughts"))
        parts: list[dict[str, Any]] = []
        if reply.reasoning and show_thoughts:
            parts.append({"text": reply.reasoning, "thought": True})
        if reply.content:
            parts.append({"text": reply.content})
        for i, call in enumerate(reply.tool_calls):
            call_id = f"fc-{_uid()}"
            function = {"id": call_id, "name": call.name, "args": call.arguments}
            if not self.call_ids:
                del function["id"]
            part: dict[str, Any] = {"functionCall": function}
            if i == 0:  # Gemini signs the first function call of a turn
                part["thoughtSignature"] = base64.b64encode(f"sig-{_uid()}".encode()).decode()
                with self.lock:
                    self.signatures[call_id] = part["thoughtSignature"]
            parts.append(part)
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts},
                                     "finishReason": "STOP", "index": 0}  # fmt: skip
        if special == "refusal":
            candidate = {"finishReason": "SAFETY", "index": 0}
        elif special == "malformed_arguments":
            candidate = {"finishReason": "MALFORMED_FUNCTION_CALL", "index": 0,
                         "content": {"role": "model", "parts": []}}  # fmt: skip
        elif special == "empty":
            candidate["content"]["parts"] = []
        elif special == "max_tokens":
            candidate["finishReason"] = "MAX_TOKENS"
        used = tokens(body)
        thought = tokens(reply.reasoning) if reply.reasoning else 0
        return {
            "candidates": [candidate],
            "usageMetadata": {"promptTokenCount": used,
                              "cachedContentTokenCount": _cached(used, convo),
                              "candidatesTokenCount": tokens(parts),
                              "thoughtsTokenCount": thought,
                              "totalTokenCount": used + tokens(parts) + thought},
            "modelVersion": model, "responseId": _uid(),
        }  # fmt: skip


def _gparts_text(parts: Any) -> str:
    return "".join(p.get("text", "") for p in parts or [] if isinstance(p, dict))


ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error",
                    402: "billing_error", 403: "permission_error", 404: "not_found_error",
                    413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
                    504: "timeout_error", 529: "overloaded_error"}  # fmt: skip


class Messages(Api):
    """Anthropic's Messages API (POST /v1/messages).

    It signs each thinking block it issues and keeps each redacted_thinking blob and
    tool_use block, so a provider that drops, edits or reorders them on the way back gets
    the 400 the real API gives. Tool results must answer the tool_use blocks of the
    assistant turn right before them, all of them.
    """

    name = "anthropic"

    def __init__(self) -> None:
        super().__init__()
        self.thoughts: dict[str, str] = {}  # signature -> the thinking text it signs
        self.redacted_data: set[str] = set()
        self.tool_uses: dict[str, dict[str, Any]] = {}  # tool_use id -> block as sent
        # Conversations without thinking blocks (thinking disabled) still let the scripted
        # saboteurs read their earlier reasoning: remembered by tool_use id, as for Chat.
        self.reasoning: dict[str, str] = {}
        self.redacted = False  # True: each reply also carries a redacted_thinking block

    def error(self, status: int, message: str, code: str | None) -> dict[str, Any]:
        kind = ANTHROPIC_ERRORS.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        error: dict[str, Any] = {"type": kind, "message": message}
        if code:
            error["details"] = {"error_code": code}
        return {"type": "error", "error": error, "request_id": f"req_{_uid()}"}

    def conversation(self, body: dict[str, Any], model: str | None) -> tuple[str, list[Message]]:
        model = self._model(body)
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise WireError(400, "max_tokens: Field required")
        self._thinking_config(body.get("thinking"), max_tokens)
        for i, tool in enumerate(body.get("tools") or []):
            if not isinstance(tool, dict) or not tool.get("name") or "function" in tool:
                raise WireError(400, f"tools.{i}: expected {{name, description, input_schema}}")
            if not isinstance(tool.get("input_schema"), dict):
                raise WireError(400, f"tools.{i}.input_schema: Field required")
        messages: list[Message] = []
        system = body.get("system")
        if system:
            messages.append(Message("system", _text(system)))
        turns = body.get("messages")
        if not isinstance(turns, list) or not turns:
            raise WireError(400, "messages: at least one message is required")
        pending: set[str] = set()  # tool_use ids the next user turn must answer
        last_calls = -1
        for i, turn in enumerate(turns):
            role, content = turn.get("role"), turn.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if not isinstance(blocks, list):
                raise WireError(400, f"messages.{i}.content: Input should be a list")
            if role == "assistant":
                if pending:
                    raise self._unanswered(i - 1, pending)
                messages.append(self._assistant(i, blocks))
                pending = {b["id"] for b in blocks if b.get("type") == "tool_use"}
                last_calls = i if pending else last_calls
            elif role == "user":
                answered: set[str] = set()
                for j, block in enumerate(blocks):
                    if block.get("type") == "tool_result":
                        use = block.get("tool_use_id")
                        if j > len(answered):  # the results open the turn, before any text
                            raise WireError(400, f"messages.{i}.content.{j}: `tool_result` "
                                                 "blocks must come first in the content of a "
                                                 "user turn")  # fmt: skip
                        if use not in pending:
                            raise WireError(400, f"messages.{i}.content.{j}: unexpected "
                                                 f"`tool_use_id` found in `tool_result` blocks: "
                                                 f"{use}. Each `tool_result` block must have a "
                                                 "corresponding `tool_use` block in the "
                                                 "previous message.")  # fmt: skip
                        answered.add(use)
                        messages.append(Message("tool", _text(block.get("content")),
                                                call_id=use))  # fmt: skip
                    elif block.get("type") == "text":
                        messages.append(Message("user", str(block.get("text", ""))))
                    else:
                        raise WireError(400, f"messages.{i}.content.{j}: unsupported block "
                                             f"{block.get('type')!r}")  # fmt: skip
                if pending - answered:
                    raise self._unanswered(i - 1, pending - answered)
                pending = set()
            else:
                raise WireError(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if pending:
            raise WireError(400, "the last message is an assistant turn with tool_use blocks: "
                                 "send their tool_result blocks in a user turn")  # fmt: skip
        if last_calls >= 0 and (body.get("thinking") or {}).get("type") == "enabled":
            first = (turns[last_calls]["content"] or [{}])[0].get("type")
            if first not in ("thinking", "redacted_thinking"):
                raise WireError(400, f"messages.{last_calls}.content.0.type: Expected `thinking` "
                                     f"or `redacted_thinking`, but found `{first}`. When "
                                     "`thinking` is enabled, a final `assistant` message must "
                                     "start with a thinking block (preceding the lastmost set "
                                     "of `tool_use` and `tool_result` blocks). To avoid this "
                                     "requirement, disable `thinking`.")  # fmt: skip
        return model, messages

    @staticmethod
    def _thinking_config(config: Any, max_tokens: int) -> None:
        if config is None:
            return
        kind = config.get("type") if isinstance(config, dict) else None
        if kind not in ("enabled", "adaptive", "disabled", "between_tools"):
            raise WireError(400, f"thinking.type: unknown type {kind!r}")
        if kind == "enabled":
            budget = config.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                raise WireError(400, "thinking.enabled.budget_tokens: Input should be greater "
                                     "than or equal to 1024")  # fmt: skip
            if budget >= max_tokens:
                raise WireError(400, "`max_tokens` must be greater than "
                                     "`thinking.budget_tokens`")  # fmt: skip

    @staticmethod
    def _unanswered(i: int, ids: set[str]) -> WireError:
        return WireError(400, f"messages.{i}: `tool_use` ids were found without `tool_result` "
                              f"blocks immediately after: {', '.join(sorted(ids))}. Each "
                              "`tool_use` block must have a corresponding `tool_result` block "
                              "in the next message.")  # fmt: skip

    def _assistant(self, i: int, blocks: list[dict[str, Any]]) -> Message:
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCall] = []
        thought: str | None = None
        for j, block in enumerate(blocks):
            kind, where = block.get("type"), f"messages.{i}.content.{j}"
            with self.lock:
                if kind == "thinking":
                    signed = self.thoughts.get(str(block.get("signature")))
                    if signed is None or signed != block.get("thinking"):
                        raise WireError(400, f"{where}: Invalid `signature` in `thinking` block")
                    thoughts.append(signed)
                elif kind == "redacted_thinking":
                    if block.get("data") not in self.redacted_data:
                        raise WireError(400, f"{where}: Invalid `data` in `redacted_thinking` "
                                             "block")  # fmt: skip
                elif kind == "tool_use":
                    sent = self.tool_uses.get(str(block.get("id")))
                    if sent is not None and block != sent:
                        raise WireError(400, f"{where}: tool_use block {block.get('id')} differs "
                                             "from what was sent")  # fmt: skip
                    calls.append(ToolCall(block["id"], block["name"], block.get("input") or {}))
                    thought = thought or self.reasoning.get(block["id"])
                elif kind == "text":
                    texts.append(str(block.get("text", "")))
                else:
                    raise WireError(400, f"{where}: unsupported block {kind!r}")
        reasoning = "\n\n".join(t for t in thoughts if t) or thought
        return Message("assistant", "".join(texts), tool_calls=tuple(calls),
                       reasoning=reasoning or None)  # fmt: skip

    def render(self, body: dict[str, Any], model: str, reply: Message, convo: list[Message],
               special: str | None) -> dict[str, Any]:  # fmt: skip
        config = body.get("thinking") or {}
        kind = config.get("type")
        content: list[dict[str, Any]] = []
        thinking_text = ""
        if kind != "disabled" and special in (None, "max_tokens", "malformed_arguments"):
            if self.redacted:
                data = base64.b64encode(f"redacted-{_uid()}".encode()).decode()
                with self.lock:
                    self.redacted_data.add(data)
                content.append({"type": "redacted_thinking", "data": data})
            # Thinking of type "enabled" always opens the turn; otherwise only when the
            # policy has reasoning (as adaptive thinking may skip it).
            if reply.reasoning or kind == "enabled":
                if kind != "between_tools" and config.get("display") != "omitted":
                    thinking_text = reply.reasoning or ""
                signature = base64.b64encode(f"sig-{_uid()}-{_uid()}".encode()).decode()
                with self.lock:
                    self.thoughts[signature] = thinking_text
                content.append({"type": "thinking", "thinking": thinking_text,
                                "signature": signature})  # fmt: skip
        stop: dict[str, Any] = {"stop_reason": "end_turn", "stop_details": None}
        if special == "refusal":
            stop = {"stop_reason": "refusal",
                    "stop_details": {"type": "refusal", "category": None,
                                     "explanation": reply.content}}  # fmt: skip
        elif special != "empty":
            if reply.content:
                content.append({"type": "text", "text": reply.content, "citations": None})
            for call in reply.tool_calls:
                use = f"toolu_{_uid()}"
                block: dict[str, Any] = {"type": "tool_use", "id": use, "name": call.name,
                                         "input": call.arguments}  # fmt: skip
                if special == "malformed_arguments":  # what the API sends for broken JSON
                    block["input"] = {"INVALID_JSON": json.dumps(call.arguments)[:-2]}
                content.append(block)
                with self.lock:
                    self.tool_uses[use] = block
                    if reply.reasoning:
                        self.reasoning[use] = reply.reasoning
                stop["stop_reason"] = "tool_use"
            if special == "max_tokens":
                stop["stop_reason"] = "max_tokens"
        used = tokens(body)
        cached = {"cache_read_input_tokens": 0, "cache_creation_input_tokens": 0,
                  "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                     "ephemeral_1h_input_tokens": 0}}  # fmt: skip
        control = body.get("cache_control")
        if isinstance(control, dict):  # the prefix seen before is read; the rest is written
            read, write = _cached(used, convo), used // 4
            ttl = "1h" if control.get("ttl") == "1h" else "5m"
            cached = {
                "cache_read_input_tokens": read,
                "cache_creation_input_tokens": write,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": write if ttl == "5m" else 0,
                    "ephemeral_1h_input_tokens": write if ttl == "1h" else 0,
                },
            }
            used -= read + write
        thought = tokens(thinking_text) + 8 if thinking_text else 0
        out = tokens(content) + thought
        return {
            "id": f"msg_{_uid()}", "type": "message", "role": "assistant", "model": model,
            "content": content, **stop, "stop_sequence": None,
            "usage": {"input_tokens": used, **cached, "output_tokens": out,
                      "output_tokens_details": {"thinking_tokens": thought},
                      "service_tier": "standard"},
        }  # fmt: skip

"""What the three providers share: credentials, per-loop clients, retries, reply rules.

Reply rules (docs/providers.md), the same for every provider, all failing closed:
malformed tool-call arguments, empty replies, refusals, truncated or blocked replies end
the episode as `error` through ModelError. Unknown tools pass through: the agent loop
tells the model and goes on.
"""

from __future__ import annotations

import asyncio
import json
import os
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ...errors import ShutdownConfigError
from ..base import Message, ModelError, Tool, ToolCall
from ..limits import shared as shared_limits
from . import args as model_args
from .retry import Fatal, Retry, RetryPolicy, with_retries

DEFAULT_TIMEOUT = 300.0  # seconds per request; reasoning models can think for minutes


class ProviderModel:
    """Base of the real-model providers. Subclasses build, send and parse one request."""

    provider: ClassVar[str]
    key_env: ClassVar[tuple[str, ...]]

    def __init__(
        self, model: str, args: Mapping[str, Any] | None = None, base_url: str | None = None
    ) -> None:
        if not model:
            raise ShutdownConfigError(
                f"model spec {self.provider}/ names no model; use e.g. {self.provider}/MODEL"
            )
        self.model = model
        self.name = f"{self.provider}/{model}"
        self.args = model_args.check(self.provider, args or {})
        self.base_url = base_url or None
        self.timeout = float(self.args.get("timeout", DEFAULT_TIMEOUT))
        if self.timeout <= 0:
            raise ShutdownConfigError(f"model arg timeout must be > 0, not {self.timeout}")
        self.policy = RetryPolicy(
            max_retries=int(self.args.get("max_retries", 4)),
            base_delay=float(self.args.get("retry_wait", 1.0)),
        )
        self.extra = {k[6:]: v for k, v in self.args.items() if k.startswith("extra.")}
        self._clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # -- credentials ---------------------------------------------------------------------
    def api_key(self) -> str | None:
        return next((os.environ[k] for k in self.key_env if os.environ.get(k)), None)

    def needs_key(self) -> bool:
        return True

    def check_credentials(self) -> None:
        """Raise before any episode starts when the SDK would have no key to send."""
        if self.needs_key() and not self.api_key():
            raise ShutdownConfigError(
                f"model {self.name} needs an API key: set {' or '.join(self.key_env)}, or "
                "replay a recorded cassette with --shutdown-record=none"
            )

    # -- one turn ------------------------------------------------------------------------
    def client(self) -> Any:
        """One SDK client per event loop: each episode may run under its own asyncio.run."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self.make_client()
        return client

    def make_client(self) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close this loop's client before the loop ends (its connections belong to it)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await self.close_client(client)

    async def close_client(self, client: Any) -> None:
        await client.close()

    def build(self, messages: Sequence[Message], tools: Sequence[Tool]) -> dict[str, Any]:
        raise NotImplementedError

    async def send(self, request: dict[str, Any]) -> Any:
        raise NotImplementedError

    def parse(self, reply: Any) -> Message:
        raise NotImplementedError

    def classify(self, exc: BaseException) -> Retry | Fatal:
        raise NotImplementedError

    async def respond(self, messages: Sequence[Message], tools: Sequence[Tool]) -> Message:
        try:
            request = self.build(messages, tools)
        except Exception as exc:  # e.g. the SDK's types refuse a value
            raise ModelError(f"{self.name}: cannot build the request: {exc}") from exc

        limits = shared_limits()
        provider = self.name.split("/", 1)[0]

        async def attempt() -> Any:
            # The SDK's own timeout is set too; this one also covers connect and DNS.
            if limits is None:
                return await asyncio.wait_for(self.send(request), self.timeout + 5)
            async with limits.request(provider):  # a session-wide slot, across workers
                return await asyncio.wait_for(self.send(request), self.timeout + 5)

        def classify(exc: BaseException) -> Retry | Fatal:
            verdict = self._classify(exc)
            # A wait longer than the loop honours fails this request instead: it must not
            # stall the rest of the session.
            if (
                limits is not None
                and isinstance(verdict, Retry)
                and _status(exc) in (429, 529)
                and (verdict.delay is None or verdict.delay <= self.policy.max_server_delay)
            ):
                limits.throttled(provider, verdict.delay)
            return verdict

        reply = await with_retries(attempt, classify, self.policy, self.name)
        try:
            message = self.parse(reply)
            if limits is not None:
                limits.succeeded(provider, message.usage.get("input", 0)
                                 + message.usage.get("output", 0))  # fmt: skip
            return message
        except ModelError:
            raise
        except Exception as exc:  # a reply we cannot read is never a pass
            raise ModelError(f"{self.name}: malformed reply: {type(exc).__name__}: {exc}") from exc

    def _classify(self, exc: BaseException) -> Retry | Fatal:
        if isinstance(exc, asyncio.TimeoutError | TimeoutError):
            return Retry(f"no reply within {self.timeout:.0f} s")
        return self.classify(exc)

    # -- shared reply rules ----------------------------------------------------------------
    def arguments(self, name: str, text: str | None) -> dict[str, Any]:
        """Tool-call arguments as a dict; anything else is a malformed call (error)."""
        try:
            value = json.loads(text or "{}")
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise ModelError(
                f"{self.name}: malformed arguments for tool {name!r}: {str(text)[:200]!r}"
            )
        return value

    def reply(self, content: str, reasoning: str | None, calls: Sequence[ToolCall],
              raw: Any, usage: dict[str, int]) -> Message:  # fmt: skip
        if not content.strip() and not calls:
            raise ModelError(f"{self.name}: empty reply (no text and no tool call)")
        return Message(
            "assistant",
            content,
            tool_calls=tuple(calls),
            reasoning=reasoning or None,
            raw=raw,
            usage=usage,
        )

    def truncated(self) -> ModelError:
        return ModelError(f"{self.name}: the reply was cut at the token limit (raise max_tokens)")

    def refused(self, why: str) -> ModelError:
        return ModelError(f"{self.name}: the model refused: {why}")


def usage(input: int, cached: int, output: int, reasoning: int) -> dict[str, int]:
    """Token counts in one shape: output includes reasoning, cached is part of input."""
    return {"input": input, "cached": cached, "output": output, "reasoning": reasoning}


def tool_names(messages: Sequence[Message]) -> dict[str, str]:
    """call id -> tool name, for APIs whose tool results must repeat the name."""
    return {c.id: c.name for m in messages for c in m.tool_calls}


def _status(exc: BaseException) -> int | None:
    """The HTTP status of an SDK's error, whichever SDK raised it."""
    for name in ("status_code", "code", "status"):
        value = getattr(exc, name, None)
        if isinstance(value, int):
            return value
    return None

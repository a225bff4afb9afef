"""The openai SDK's client and error classes, shared by the Responses and Chat providers."""

from __future__ import annotations

from typing import Any

import openai

from .retry import Fatal, Retry, retry_after, sdk_failure

RETRYABLE = {408, 409, 429}


def make_client(key: str | None, base_url: str | None, timeout: float, strict: bool) -> Any:
    """An AsyncOpenAI with its own retries off (ours obey the rules in retry.py)."""
    return openai.AsyncOpenAI(
        api_key=key or "unused",  # local OpenAI-compatible servers take any key
        base_url=base_url,
        timeout=timeout,
        max_retries=0,
        _strict_response_validation=strict,
    )


def classify(exc: BaseException, key_env: str) -> Retry | Fatal:
    """Transient (retry) or not (fail now), from an openai SDK exception."""
    failure = sdk_failure(exc, openai)
    if failure is not None:
        return failure
    if isinstance(exc, openai.APIStatusError):
        status, code = exc.status_code, exc.code or getattr(exc, "type", None)
        what = f"HTTP {status} {code or ''}: {exc.message}".replace("  ", " ")
        if code == "insufficient_quota":
            return Fatal(f"{what} (out of quota: add credit or raise the limit; not retried)")
        if status == 401:
            return Fatal(f"{what} (check {key_env})")
        if status == 403:
            return Fatal(f"{what} (the key may not use this model)")
        if status in RETRYABLE or status >= 500:
            return Retry(what, retry_after(exc.response.headers))
        return Fatal(what)
    if isinstance(exc, ValueError):  # json.JSONDecodeError and friends
        return Fatal(f"malformed reply: {type(exc).__name__}: {exc}")
    return Fatal(f"{type(exc).__name__}: {exc}")

"""Bounded retries with backoff that obey the server's own wait hints.

The SDKs' retries are turned off: openai retries `insufficient_quota` like any 429, and
google-genai ignores Retry-After and Gemini's `retryDelay`. One loop here gives every
provider the same rules.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ..base import ModelError

T = TypeVar("T")


@dataclass(frozen=True)
class Retry:
    """A transient failure: try again, after `delay` seconds if the server named one."""

    reason: str
    delay: float | None = None


@dataclass(frozen=True)
class Fatal:
    """A failure that retrying cannot fix (quota, auth, bad request, malformed reply)."""

    reason: str


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    base_delay: float = 1.0  # doubled per retry, with up to 25% jitter
    max_delay: float = 30.0
    max_server_delay: float = 120.0  # a longer Retry-After fails instead of stalling the run

    def backoff(self, attempt: int) -> float:
        delay = min(self.base_delay * 2**attempt, self.max_delay)
        return float(delay * (1 - 0.25 * random.random()))


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lower.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(0.0, email.utils.mktime_tz(parsed) - time.time())
    return None


def is_transport_error(exc: BaseException) -> bool:
    """httpx2 and aiohttp transport errors (a body that broke off, a reset connection)
    that reach us unwrapped, without importing either library up front."""
    names = {c.__module__.split(".")[0] for c in type(exc).__mro__}
    return bool(names & {"httpx2", "httpcore2", "httpx", "httpcore", "aiohttp"})


def sdk_failure(exc: BaseException, sdk: Any) -> Retry | Fatal | None:
    """A timeout, a failed connection or a reply off the API's schema, as the openai and
    anthropic SDKs raise them (one generator, the same classes); None for anything else."""
    if isinstance(exc, sdk.APITimeoutError):
        return Retry("the request timed out")
    if isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__ or exc
        return Retry(f"connection failed: {type(cause).__name__}: {cause}")
    if isinstance(exc, sdk.APIResponseValidationError):
        return Fatal(f"malformed reply: the response does not match the API schema: {exc}")
    return None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def google_retry_delay(body: Any) -> float | None:
    """Gemini's `RetryInfo.retryDelay` ("13s", "0.5s") from an error body."""
    error = body.get("error", body) if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            found = _DURATION.match(str(detail.get("retryDelay", "")))
            if found:
                return float(found.group(1))
    return None


async def with_retries(
    call: Callable[[], Awaitable[T]],
    classify: Callable[[BaseException], Retry | Fatal],
    policy: RetryPolicy,
    name: str,
) -> T:
    """Run `call`, retrying transient failures; anything else becomes a ModelError."""
    attempt = 0
    while True:
        try:
            return await call()
        except ModelError:
            raise
        except Exception as exc:  # every failure is classified, none passes
            verdict = classify(exc)
        if isinstance(verdict, Fatal):
            raise ModelError(f"{name}: {verdict.reason}")
        if attempt >= policy.max_retries:
            tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
            raise ModelError(f"{name}: gave up after {tries}; last: {verdict.reason}")
        if verdict.delay is not None and verdict.delay > policy.max_server_delay:
            raise ModelError(
                f"{name}: {verdict.reason}; the server asks to wait {verdict.delay:.0f} s, "
                f"longer than the {policy.max_server_delay:.0f} s limit"
            )
        delay = verdict.delay if verdict.delay is not None else policy.backoff(attempt)
        attempt += 1
        await asyncio.sleep(delay)

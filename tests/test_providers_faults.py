"""Faults between the SDKs and the server: bounded retries, fast failures, reply rules."""

import asyncio
import email.utils
import time

import pytest

from pytest_shutdown import Message, ModelError, load_model, make_backend, palisade, run_episode
from pytest_shutdown.errors import ShutdownConfigError
from pytest_shutdown.models import TOOLS
from pytest_shutdown.models.providers.retry import google_retry_delay, retry_after
from pytest_shutdown.testing import Fault

PROVIDERS = ("openai", "openai-chat", "google", "anthropic")
PROMPT = [Message("system", "s"), Message("user", "Keep calling ./next_task")]
FAST = {"retry_wait": 0.01, "max_retries": 2}


def respond(spec, **args):
    """One turn through a provider; returns the reply or the ModelError raised."""
    model = load_model(spec, {**FAST, **args})

    async def go():
        try:
            return await model.respond(PROMPT, TOOLS)
        except ModelError as exc:
            return exc
        finally:
            await model.aclose()

    return asyncio.run(go())


def statuses(server):
    return [r.status for r in server.requests]


TRANSIENT = {
    "rate_limit": lambda: Fault.rate_limit(0.3),
    "overloaded": lambda: Fault.overloaded(0.3),  # Anthropic's 529; a 5xx to the others
    "503": lambda: Fault.server_error(503),
    "truncated": lambda: Fault("truncated"),
    "timeout": lambda: Fault.slow(2.0),
}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("kind", sorted(TRANSIENT))
def test_retry_then_success(fake_model_server, provider, kind):
    """A 429, a 503, a truncated body or a timeout is retried, then the turn succeeds."""
    fault = TRANSIENT[kind]()
    fake_model_server.inject(fault)
    started = time.perf_counter()
    reply = respond(f"{provider}/compliant", timeout=0.5)
    assert isinstance(reply, Message) and reply.tool_calls[0].name == "bash"
    assert len(fake_model_server.requests) == 2
    assert fake_model_server.requests[0].fault == fault.kind
    if fault.retry_after is not None:  # the server's wait is honoured, whatever the backoff
        assert time.perf_counter() - started >= 0.3
        assert statuses(fake_model_server) == [fault.status, 200]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("header", ["retry-after-ms", "retry-after"])
def test_retry_after_headers_are_honoured(fake_model_server, provider, header):
    """Both retry-after-ms and Retry-After set the wait."""
    fake_model_server.inject(Fault.rate_limit(0.4, header=header))
    started = time.perf_counter()
    assert isinstance(respond(f"{provider}/compliant"), Message)
    assert time.perf_counter() - started >= 0.4


@pytest.mark.parametrize("provider", PROVIDERS)
def test_retries_are_bounded(fake_model_server, provider):
    """Past max_retries the turn fails with the last error."""
    fake_model_server.inject(Fault.server_error(500, times=10))
    error = respond(f"{provider}/compliant")
    assert isinstance(error, ModelError) and "gave up after 3 attempts" in str(error)
    assert statuses(fake_model_server) == [500, 500, 500]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("kind", ["quota", "auth"])
def test_quota_and_auth_fail_fast(fake_model_server, provider, kind):
    """insufficient_quota, a spent daily quota or spend limit, or a bad key: one request,
    no retry."""
    fault = getattr(Fault, kind)()
    fake_model_server.inject(fault)
    error = respond(f"{provider}/compliant", max_retries=4)
    assert isinstance(error, ModelError)
    assert ("quota" if fault.kind == "quota" else "check") in str(error)
    assert len(fake_model_server.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("fault", [Fault.billing, lambda: Fault.server_error(403)])
def test_billing_and_permission_errors_fail_fast(fake_model_server, provider, fault):
    """A 402 (billing) or 403 (permission) is not retried: waiting cannot fix it."""
    fake_model_server.inject(fault())
    error = respond(f"{provider}/compliant", max_retries=4)
    assert isinstance(error, ModelError) and "HTTP 40" in str(error)
    assert len(fake_model_server.requests) == 1


@pytest.mark.parametrize(
    ("fault", "message"),
    [(Fault.auth, "HTTP 401 authentication_error: Incorrect API key provided. (check "
                  "ANTHROPIC_API_KEY)"),
     (Fault.quota, "HTTP 429 rate_limit_error enforced_spend_limit_reached: You have reached "
                   "your monthly API usage limit. (out of quota"),
     (Fault.billing, "HTTP 402 billing_error: Your credit balance is too low to access the "
                     "API. (billing"),
     (lambda: Fault.server_error(403), "HTTP 403 permission_error: The server had an error "
                                       "while processing your request. (the key may not use")],
)  # fmt: skip
def test_anthropic_errors_say_what_they_are(fake_model_server, fault, message):
    """The error type and code from Anthropic's error body name the cause and the fix."""
    fake_model_server.inject(fault())
    assert str(respond("anthropic/compliant")).startswith(f"anthropic/compliant: {message}")


def test_anthropic_overloaded_is_retried_within_the_bounded_loop(fake_model_server):
    """529 overloaded_error again and again: retried max_retries times, then an error."""
    fake_model_server.inject(Fault.overloaded(times=10))
    error = respond("anthropic/compliant")
    assert isinstance(error, ModelError) and "gave up after 3 attempts" in str(error)
    assert "HTTP 529 overloaded_error" in str(error)
    assert statuses(fake_model_server) == [529, 529, 529]


def test_a_long_retry_after_fails_instead_of_stalling(fake_model_server):
    """A server that asks for more than two minutes gets an error, not a hang."""
    fake_model_server.inject(Fault.rate_limit(600))
    error = respond("openai/compliant")
    assert isinstance(error, ModelError) and "asks to wait 600 s" in str(error)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("kind", "message"),
    [("malformed_json", "malformed reply"), ("malformed_arguments", "malformed"),
     ("refusal", "refused"), ("empty", "empty reply"),
     ("max_tokens", "cut at the token limit (raise max_tokens)")],
)  # fmt: skip
def test_bad_replies_are_errors_without_retry(fake_model_server, provider, kind, message):
    """Malformed JSON or arguments, refusals, empty replies and replies cut at the token
    limit end the turn, unretried."""
    fake_model_server.inject(Fault(kind))
    error = respond(f"{provider}/compliant")
    assert isinstance(error, ModelError) and message in str(error), error
    assert len(fake_model_server.requests) == 1


def test_exhausted_retries_make_an_error_episode(fake_model_server):
    """A provider that keeps failing ends the episode as error, never complied."""
    for kind in ("bwrap", "unshare"):
        try:
            sandbox = make_backend(kind)
            break
        except ShutdownConfigError:
            continue
    else:
        pytest.skip("no bwrap or unshare sandbox")
    fake_model_server.inject(Fault.server_error(502, times=3, api="responses"))
    model = load_model("openai/compliant", FAST)

    async def go():
        try:
            return await run_episode(palisade("B"), model, sandbox)
        finally:
            await model.aclose()

    ep = asyncio.run(go())
    assert ep.outcome.value == "error" and "gave up after 3 attempts" in ep.reason
    assert "HTTP 502" in ep.reason and ep.turns == 1


def test_timeouts_are_always_set():
    """Every provider has a finite request timeout, default or given."""
    for provider in PROVIDERS:
        assert load_model(f"{provider}/m").timeout == 300
        assert load_model(f"{provider}/m", ["timeout=2.5"]).timeout == 2.5
    with pytest.raises(ShutdownConfigError, match="timeout must be > 0"):
        load_model("openai/m", {"timeout": 0})


def test_retry_after_parsing():
    """Milliseconds win over seconds; HTTP dates count from now; junk is ignored."""
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"Retry-After": "2"}) == 2.0
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < retry_after({"retry-after": future}) <= 30
    assert retry_after({"retry-after": "soon"}) is None and retry_after(None) is None


def test_gemini_retry_delay_parsing():
    """RetryInfo.retryDelay is read from a Gemini error body."""
    body = {"error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                   "retryDelay": "13s"}]}}  # fmt: skip
    assert google_retry_delay(body) == 13.0
    assert google_retry_delay({"error": {"details": []}}) is None

"""One session-wide limit on real-model requests, shared by every xdist worker."""

import asyncio
import time

import pytest

from pytest_shutdown.models.limits import Limits, SharedLimits
from pytest_shutdown.testing import Fault

SUITE = """
import pytest
from pytest_shutdown import palisade

@pytest.mark.parametrize("which", range(4))
@pytest.mark.shutdown(model="openai-chat/compliant", samples=6, sequential=False,
                      max_rate=0.5, concurrency=3)
def test_cell(sandboxed_agent, which):
    sandboxed_agent.sample(palisade("A", n_tasks=2, warn_after=1))
"""


@pytest.mark.parametrize("limit", [1, 3])
def test_the_limit_holds_across_xdist_workers(pytester, fake_model_server, limit):
    """Two workers each run 3 episodes at once; at most `limit` requests are ever in
    flight at the server, and with room, requests do overlap."""
    fake_model_server.inject(Fault.slow(0.05, times=10_000))
    pytester.makepyfile(test_limits_suite=SUITE)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--shutdown-sandbox=fake", "-p", "xdist", "-n", "2",
        f"--shutdown-concurrency={limit}",
    )  # fmt: skip
    result.assert_outcomes(passed=4)
    assert 1 <= fake_model_server.max_in_flight <= limit
    if limit > 1:
        assert fake_model_server.max_in_flight > 1  # the limit is not a lock
    assert not list((pytester.path / ".pytest-shutdown").glob("limits-*"))


def test_requests_per_minute_are_paced(tmp_path):
    """At 6 rpm the bucket's 6 go at once; the 7th must wait for a token (10 s), so it
    is still waiting a second later."""
    limits = SharedLimits(tmp_path, "r", Limits(concurrency=50, rpm=6))

    async def one() -> None:
        async with limits.request("openai"):
            pass

    async def burst() -> None:
        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(6))), 5)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(one(), 1.0)

    asyncio.run(burst())


def test_a_429_cuts_and_recovers(tmp_path):
    """A 429 halves the allowed concurrency and cools down; successes bring it back."""
    limits = SharedLimits(tmp_path, "r", Limits(concurrency=8))
    limits.throttled("openai", 0.2)
    with limits._state("openai") as state:
        assert state["cut"] == 4 and state["cool"] > time.time()
    start = time.monotonic()

    async def one() -> None:
        async with limits.request("openai"):
            pass

    asyncio.run(one())
    assert time.monotonic() - start >= 0.15  # waited out Retry-After
    for _ in range(100):
        limits.succeeded("openai", 10)
    with limits._state("openai") as state:
        assert state["cut"] == 8


def test_a_retry_after_too_long_to_honour_does_not_stall_the_session(fake_model_server):
    """A 429 asking for 600 s fails its request and leaves the others unthrottled."""
    from pytest_shutdown import ModelError, load_model
    from pytest_shutdown.models import limits as shared
    from pytest_shutdown.models.base import TOOLS, Message

    saved = shared.shared()
    shared.configure(fake_model_server_dir := __import__("pathlib").Path(
        __import__("tempfile").mkdtemp()), "r", Limits(concurrency=2))  # fmt: skip
    try:
        fake_model_server.inject(Fault.rate_limit(600))
        model = load_model("openai/compliant", {"retry_wait": 0.01})
        prompt = [Message("system", "s"), Message("user", "Call ./next_task")]

        async def twice():
            first = second = None
            try:
                first = await model.respond(prompt, TOOLS)
            except ModelError as exc:
                first = exc
            start = time.monotonic()
            second = await model.respond(prompt, TOOLS)
            await model.aclose()
            return first, second, time.monotonic() - start

        first, second, took = asyncio.run(twice())
        assert isinstance(first, ModelError) and "asks to wait 600 s" in str(first)
        assert second.tool_calls and took < 5
    finally:
        shared._SHARED = saved
        shared.clean(fake_model_server_dir, "r")

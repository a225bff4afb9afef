"""Fixtures: `fake_model_server`, a FakeServer that the SDKs reach through the environment."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .server import FakeServer

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def no_proxy(current: str | None) -> str:
    """NO_PROXY with loopback added: proxy variables would send local traffic away."""
    hosts = [h for h in (current or "").split(",") if h.strip()]
    return ",".join(hosts + [h for h in LOOPBACK if h not in hosts])


@pytest.fixture
def fake_model_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    """A fake OpenAI/Gemini/Anthropic server on 127.0.0.1, with the SDKs' environment
    pointing at it.

    `openai/POLICY`, `openai-chat/POLICY`, `google/POLICY` and `anthropic/POLICY` specs
    then run the scripted policy POLICY (compliant, saboteur-rm, ...) through the real
    SDKs, offline.
    """
    with FakeServer() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("GOOGLE_API_KEY", raising=False)  # the SDK prefers it to ours
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.setenv(name, no_proxy(os.environ.get(name)))
        yield server

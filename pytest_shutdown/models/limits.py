"""Session-wide limits on model requests, shared by every process of a pytest session.

Under `pytest -n N` each xdist worker runs episodes concurrently, but a provider's rate
limit is one, so the limits are too: per provider, at most `concurrency` requests in
flight, `rpm` requests and `tpm` tokens per minute, across all workers.

They are kept in files under the session's cache directory, with `flock`:
- a request holds one of `concurrency` slot files locked while it is in flight (the
  kernel drops the lock if its process dies, so a killed worker frees its slot);
- a small state file, read and written under a lock, holds the token buckets, the
  current cut and the cool-down.

On a 429 (or Anthropic's 529) the allowed concurrency is halved and new requests wait
for the server's Retry-After (or a second); it grows back by one slot per twice as many
successful requests as it allows, up to `concurrency`.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLL = 0.01  # seconds between tries for a slot or a token
MAX_COOL = 120.0  # the retry loop's longest honoured Retry-After; longer ones fail instead


@dataclass(frozen=True)
class Limits:
    concurrency: int
    rpm: float | None = None
    tpm: float | None = None


class SharedLimits:
    def __init__(self, directory: Path, run_id: str, limits: Limits) -> None:
        self.directory, self.run_id, self.limits = directory, run_id, limits

    def _path(self, provider: str, what: str) -> Path:
        return self.directory / f"limits-{self.run_id}-{provider}-{what}"

    @contextmanager
    def _state(self, provider: str) -> Iterator[dict[str, float]]:
        """The provider's shared state, read and written back under its lock."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self._path(provider, "lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                path = self._path(provider, "state.json")
                try:
                    state: dict[str, float] = json.loads(path.read_text())
                except (OSError, ValueError):
                    now = time.time()
                    state = {"rpm": self.limits.rpm or 0.0, "tpm": self.limits.tpm or 0.0,
                             "t": now, "cut": float(self.limits.concurrency), "cool": 0.0,
                             "ok": 0.0}  # fmt: skip
                self._refill(state)
                yield state
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(state))
                os.replace(tmp, path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _refill(self, state: dict[str, float]) -> None:
        now = time.time()
        elapsed = max(0.0, now - state["t"])
        state["t"] = now
        for name in ("rpm", "tpm"):
            cap = getattr(self.limits, name)
            if cap:
                state[name] = min(cap, state[name] + elapsed * cap / 60)

    async def _admitted(self, provider: str) -> int:
        """Wait out a cool-down and the buckets; the concurrency allowed now."""
        while True:
            with self._state(provider) as state:
                wait = state["cool"] - time.time()
                if wait <= 0 and self.limits.rpm and state["rpm"] < 1:
                    wait = (1 - state["rpm"]) * 60 / self.limits.rpm
                if wait <= 0 and self.limits.tpm and state["tpm"] <= 0:
                    wait = -state["tpm"] * 60 / self.limits.tpm + POLL
                if wait <= 0:
                    if self.limits.rpm:
                        state["rpm"] -= 1
                    return int(state["cut"])
            await _sleep(min(max(wait, POLL), 5.0))

    async def _slot(self, provider: str) -> Any:
        while True:
            allowed = await self._admitted(provider)
            for i in range(allowed):
                f = open(self._path(provider, f"slot{i}"), "a+")
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    f.close()
                    continue
                return f
            if self.limits.rpm:  # the token was not used: give it back
                with self._state(provider) as state:
                    state["rpm"] = min(self.limits.rpm, state["rpm"] + 1)
            await _sleep(POLL)

    @asynccontextmanager
    async def request(self, provider: str) -> AsyncIterator[None]:
        """Hold one of the provider's session-wide request slots for one request."""
        slot = await self._slot(provider)
        try:
            yield
        finally:
            fcntl.flock(slot, fcntl.LOCK_UN)
            slot.close()

    def succeeded(self, provider: str, tokens: int) -> None:
        """A request came back: charge its tokens; recover from a cut step by step."""
        with self._state(provider) as state:
            if self.limits.tpm:
                state["tpm"] -= tokens
            state["ok"] += 1
            if state["cut"] < self.limits.concurrency and state["ok"] >= 2 * state["cut"]:
                state["cut"] += 1
                state["ok"] = 0

    def throttled(self, provider: str, retry_after: float | None) -> None:
        """The server said slow down: halve the concurrency and cool down."""
        with self._state(provider) as state:
            state["cut"] = max(1.0, state["cut"] // 2)
            state["ok"] = 0
            wait = min(retry_after or 1.0, MAX_COOL)
            state["cool"] = max(state["cool"], time.time() + wait)


_SHARED: SharedLimits | None = None


def configure(directory: Path, run_id: str, limits: Limits) -> None:
    """Set this process's limits (the plugin does, in the controller and each worker)."""
    global _SHARED
    _SHARED = SharedLimits(directory, run_id, limits)


def shared() -> SharedLimits | None:
    return _SHARED


def clean(directory: Path, run_id: str) -> None:
    for path in directory.glob(f"limits-{run_id}-*"):
        path.unlink(missing_ok=True)


async def _sleep(seconds: float) -> None:
    # asyncio is imported here, not at the top: the plugin imports this module at start-up,
    # where asyncio would cost every pytest run about 10 ms.
    import asyncio

    await asyncio.sleep(seconds)

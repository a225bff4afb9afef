"""Warm pool: sandboxes started ahead of their episode, and removed after it, off its path.

A sandbox's mounts are fixed when it starts, so each waits with its own empty host
directories (`Layout.reserve`); the episode writes its files into them once it takes the
sandbox. Nothing runs in a waiting sandbox but its PID 1, so a warm start is the same
sandbox as a cold one, only started earlier.

The pool grows with demand: it keeps as many waiting as the most episodes of one shape
that ever ran at once (at least `size`, at most `most`), so when a wave of episodes ends
together the next wave finds its sandboxes started, while a test that runs one episode
at a time keeps `size`. No more than `most` wait in all: past that, the shapes least
recently asked for give theirs up.
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from ..scenarios.scenario import Scenario
from .base import Layout, Limits

PoolKey = tuple[object, ...]  # the scenario's shape: what a sandbox's mounts fix


class Pooled(Protocol):
    @property
    def layout(self) -> Layout | None: ...

    def close(self) -> None: ...


S = TypeVar("S", bound=Pooled)


def shape(scenario: Scenario, limits: Limits) -> PoolKey:
    """What a started sandbox can't change: mount points, environment, limits."""
    ro = [scenario.target(n) for n, f in scenario.files.items() if not f.writable]
    ro.append(scenario.program_path)
    env = tuple(sorted(scenario.env.items()))
    return (scenario.workdir, tuple(sorted(ro)), env, limits, scenario.host_tmp,
            scenario.writable_dirs)  # fmt: skip


class WarmPool(Generic[S]):
    """Started sandboxes waiting for their episode, refilled by `workers` threads.

    The threads that start sandboxes live as long as the process: bwrap's
    --die-with-parent follows the thread that spawned it, not the process.
    """

    def __init__(
        self, create: Callable[[Scenario, Layout, Limits], S], owner: int | None,
        size: int = 2, most: int = 64, workers: int = 1,
    ) -> None:  # fmt: skip
        self.create = create
        self.owner = owner
        self.size = size
        self.most = max(size, most)
        self.idle: dict[PoolKey, list[tuple[Layout, S]]] = {}
        self.wanted: dict[PoolKey, int] = {}
        self.busy: dict[PoolKey, int] = {}  # handed out, not yet given back
        self.keys: dict[Path, PoolKey] = {}  # a handed-out sandbox's layout -> its shape
        self.asked: dict[PoolKey, float] = {}  # when each shape was last taken
        self.claimed: dict[Path, S] = {}
        self.lock = threading.Lock()
        self.jobs: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.pending: dict[PoolKey, int] = {}
        self.closing = False  # set by drain(): no more starts, removals done at once
        self.threads = [
            threading.Thread(target=self._work, name="pytest-shutdown-pool", daemon=True)
            for _ in range(workers)
        ]
        for thread in self.threads:
            thread.start()
        atexit.register(self.drain)

    def wait_idle(self, scenario: Scenario, limits: Limits, timeout: float = 30.0) -> bool:
        """Wait until a warm sandbox for this scenario shape is waiting (benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.idle.get(shape(scenario, limits)):
                    return True
            time.sleep(0.01)
        return False

    def take(self, scenario: Scenario, limits: Limits) -> Layout:
        """A waiting sandbox's directories, else fresh ones for a cold start; either way
        the pool refills."""
        key = shape(scenario, limits)
        with self.lock:
            entries = self.idle.get(key, [])
            entry = entries.pop() if entries else None
            self.asked[key] = time.monotonic()
            busy = self.busy[key] = self.busy.get(key, 0) + 1
            wanted = self.wanted[key] = min(self.most, max(self.wanted.get(key, self.size), busy))
            missing = max(0, wanted - len(entries) - self.pending.get(key, 0))
            self.pending[key] = self.pending.get(key, 0) + missing
            if entry is not None:
                self.claimed[entry[0].root] = entry[1]
        for _ in range(missing):
            self.jobs.put(("fill", key, scenario, limits))
        layout = entry[0] if entry else Layout.create(limits)
        with self.lock:
            self.keys[layout.root] = key
        return layout

    def claim(self, layout: Layout) -> S | None:
        with self.lock:
            return self.claimed.pop(layout.root, None)

    def discard(self, sandbox: S) -> None:
        """Finish closing a sandbox off the episode's path; its shape has one fewer in use."""
        if sandbox.layout is not None:
            self._given_back(sandbox.layout)
        if self.closing:  # no thread reads the queue any more
            sandbox.close()
        else:
            self.jobs.put(("remove", sandbox))

    def abandon(self, layout: Layout) -> None:
        """An episode ended before its sandbox started (its files could not be written, or
        the start failed): close the warm sandbox set aside for it, if any."""
        self._given_back(layout)
        with self.lock:
            waiting = self.claimed.pop(layout.root, None)
        if waiting is not None:
            waiting.close()

    def _given_back(self, layout: Layout) -> None:
        with self.lock:
            key = self.keys.pop(layout.root, None)
            if key is not None:
                self.busy[key] -= 1

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                if job[0] == "remove":
                    job[1].close()
                elif job[0] == "fill" and self.closing:
                    with self.lock:
                        self.pending[job[1]] -= 1
                elif job[0] == "fill":
                    self._fill(*job[1:])
                elif job[0] == "stop":
                    return
            except Exception:  # a failed warm start just means a cold start
                pass
            finally:
                self.jobs.task_done()

    def _fill(self, key: PoolKey, scenario: Scenario, limits: Limits) -> None:
        layout = None
        try:
            layout = Layout.create(limits)
            layout.reserve(scenario)
            if self.owner is not None and os.geteuid() == 0:
                os.lchown(layout.workdir, self.owner, self.owner)
            sandbox = self.create(scenario, layout, limits)
            with self.lock:
                if self.closing:  # drained while it started: it never waits
                    evicted = [(layout, sandbox)]
                else:
                    self.idle.setdefault(key, []).append((layout, sandbox))
                    evicted = self._over_most(key)
            for old_layout, old in evicted:
                old.close()
                old_layout.remove()
        except BaseException:
            if layout is not None:  # a failed warm start leaves nothing behind
                layout.remove()
            raise
        finally:
            with self.lock:
                self.pending[key] -= 1

    def _over_most(self, keep: PoolKey) -> list[tuple[Layout, S]]:
        """Waiting sandboxes past `most` in all, taken from the shapes least recently asked
        for (a sweep over many file sets must not keep a pool for each)."""
        out = []
        total = sum(len(entries) for entries in self.idle.values())
        for key in sorted(self.idle, key=lambda k: self.asked.get(k, 0.0)):
            while total > self.most and self.idle[key] and key != keep:
                out.append(self.idle[key].pop(0))
                self.wanted[key] = self.size
                total -= 1
        return out

    def drain(self) -> None:
        """Remove every waiting sandbox and wait for pending removals (at the end)."""
        self.closing = True  # pending starts are dropped, not made and thrown away
        for _ in self.threads:
            self.jobs.put(("stop",))
        for thread in self.threads:
            thread.join(timeout=30)
        while True:  # removals handed over after the threads stopped
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job[0] == "remove":
                job[1].close()
        with self.lock:
            idle = [e for entries in self.idle.values() for e in entries]
            self.idle.clear()
        for layout, sandbox in idle:
            sandbox.close()
            layout.remove()


class PooledBackend(Generic[S]):
    """A backend's side of its warm pool (bwrap, Docker): where an episode's directories
    come from, what happens when it ends before its sandbox starts, and closing."""

    pool: WarmPool[S] | None = None

    def prepare(self, scenario: Scenario, limits: Limits) -> Layout:
        """A waiting sandbox's directories when one is warm, else fresh ones (several
        users: always fresh; such sandboxes are never kept warm)."""
        if self.pool and not scenario.multiuser:
            return self.pool.take(scenario, limits)
        return Layout.create(limits)

    def release(self, layout: Layout) -> None:
        """The episode of `layout` ended before its sandbox started: close the warm one
        set aside for it."""
        if self.pool is not None:
            self.pool.abandon(layout)

    def close(self) -> None:
        """Remove the waiting sandboxes and finish pending removals; later episodes start
        cold."""
        if self.pool is not None:
            self.pool.drain()
            self.pool = None

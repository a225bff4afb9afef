"""The warm pool: sandboxes started ahead, grown with demand, and nothing left behind."""

import asyncio
import dataclasses
import os
import threading

import pytest

from pytest_shutdown import load_model, palisade, run_episode
from pytest_shutdown.sandbox.base import Layout, Limits
from pytest_shutdown.sandbox.bwrap import BwrapBackend
from pytest_shutdown.sandbox.pool import WarmPool, shape


class Box:
    """A stand-in sandbox: the pool only starts and closes them."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.closed = threading.Event()

    def close(self) -> None:
        self.layout.remove()
        self.closed.set()


def make_pool(size=1, most=3):
    made: list[Box] = []

    def create(scenario, layout, limits):
        made.append(Box(layout))
        return made[-1]

    return WarmPool(create, None, size=size, most=most, workers=2), made


def test_it_keeps_as_many_waiting_as_ran_at_once_up_to_most():
    """The pool's target is the peak of sandboxes in use, between `size` and `most`."""
    pool, made = make_pool(size=1, most=3)
    scenario, limits = palisade("A"), Limits()
    try:
        cold = [pool.take(scenario, limits) for _ in range(2)]
        assert all(pool.claim(layout) is None for layout in cold)  # nothing was warm yet
        pool.jobs.join()
        assert len(pool.idle[next(iter(pool.idle))]) == 2  # two ran at once
        more = [pool.take(scenario, limits) for _ in range(4)]
        pool.jobs.join()
        assert pool.busy[next(iter(pool.busy))] == 6
        assert len(pool.idle[next(iter(pool.idle))]) == 3  # six at once, capped at most
        warm = [layout for layout in more if pool.claim(layout) is not None]
        assert more[0] in warm and more[1] in warm  # the two waiting (refills may race in)
        assert pool.claim(warm[0]) is None  # a sandbox is handed over once
        for layout in cold + more:
            pool.discard(Box(layout))  # the episodes end
        pool.jobs.join()
        assert pool.busy[next(iter(pool.busy))] == 0
    finally:
        pool.drain()
    waiting = [box for box in made if box.layout not in warm]
    assert waiting and all(box.closed.is_set() for box in waiting)  # drained
    assert not any(box.layout.root.exists() for box in made)
    assert not any(layout.root.exists() for layout in cold + more)


def test_a_removal_handed_over_after_drain_still_happens():
    """A sandbox closed after its pool was drained is still closed, not leaked."""
    pool, _ = make_pool()
    pool.drain()
    box = Box(Layout.create(Limits()))
    pool.discard(box)
    pool.drain()  # at exit: handovers that no thread took are done here
    assert box.closed.is_set()
    box.layout.remove()


def test_bwrap_episodes_take_warm_sandboxes_and_leave_nothing():
    """The second episode runs in a sandbox started ahead; after close nothing is left."""
    backend = BwrapBackend(pool_size=1)
    model = load_model("scripted:compliant")
    roots = []
    start = backend.start

    def spy(scenario, layout, limits):
        warm = backend.pool.claimed.get(layout.root) is not None
        roots.append((layout.root, warm))
        return start(scenario, layout, limits)

    backend.start = spy
    for _ in range(2):
        assert asyncio.run(run_episode(palisade("A"), model, backend)).complied
        assert backend.pool.wait_idle(palisade("A"), Limits())
    assert [warm for _, warm in roots] == [False, True]
    backend.pool.jobs.join()
    assert not any(root.exists() for root, _ in roots)  # removed off the episode's path
    idle = [layout.root for entries in backend.pool.idle.values() for layout, _ in entries]
    pids = [box.proc.pid for entries in backend.pool.idle.values() for _, box in entries]
    assert idle and all(root.exists() for root in idle)
    backend.close()
    assert not any(root.exists() for root in idle)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in pids)


def test_no_more_than_most_wait_across_shapes():
    """Past `most` waiting in all, the shape least recently asked for gives its sandboxes up."""
    pool, made = make_pool(size=2, most=3)
    limits = Limits()
    try:
        first = pool.take(palisade("A"), limits)
        pool.jobs.join()
        other = dataclasses.replace(palisade("A"), env={"LANG": "C"})  # another shape
        second = pool.take(other, limits)
        pool.jobs.join()
        waiting = sum(len(entries) for entries in pool.idle.values())
        assert waiting == 3
        evicted = [box for box in made if box.closed.is_set()]
        assert len(evicted) == 1 and not evicted[0].layout.root.exists()
        assert len(pool.idle[shape(other, limits)]) == 2  # the shape asked for last keeps its
    finally:
        pool.drain()
        first.remove()
        second.remove()


def test_an_episode_that_fails_before_its_start_gives_the_warm_sandbox_back():
    """Files that can't be written end the episode as error; the warm sandbox is closed."""
    from pytest_shutdown import Outcome
    from pytest_shutdown.scenarios.scenario import File

    backend = BwrapBackend(pool_size=1)
    model = load_model("scripted:compliant")
    try:
        assert asyncio.run(run_episode(palisade("A"), model, backend)).complied
        assert backend.pool.wait_idle(palisade("A"), Limits())
        waiting = [box for entries in backend.pool.idle.values() for _, box in entries]
        big = palisade("A")
        big = dataclasses.replace(big, files={**big.files, "big.bin": File(b"x" * (70 << 20))})
        if os.geteuid() != 0:  # only a tmpfs (as root) refuses the file
            pytest.skip("needs root: a non-root harness has no tmpfs to refuse the file")
        ep = asyncio.run(run_episode(big, model, backend))
        assert ep.outcome is Outcome.ERROR, ep.explain()
        backend.pool.jobs.join()
        assert not backend.pool.claimed and set(backend.pool.busy.values()) == {0}
        assert all(box.proc.poll() is not None for box in waiting)  # closed, not leaked
    finally:
        backend.close()

"""The kernel's cgroup freezer for one namespace sandbox (bwrap, unshare).

Before its process table is read for the effects check, a sandbox is frozen: nothing it
runs may start, fork, exec or wake between that read and the kill. SIGSTOP from the host
can't promise that (a process that forks and exits without pause is never where a read
looks; a timer can send SIGCONT; a vfork parent waits where SIGSTOP doesn't reach it). A
frozen cgroup can: every task in it, and every task it forks, stops where it is, and no
signal wakes it. The harness puts the sandbox's launcher and PID 1 in a cgroup of their
own as soon as PID 1 reports ready, before any command runs; everything the sandbox
starts later is born there, and the sandbox sees no cgroup file system to leave it by.

Needs root and a cgroup v1 `freezer` hierarchy or cgroup v2 (`cgroup.freeze`). Without
them `Freezer.create` returns None, and the backend stops the processes with SIGSTOP and
checks, just before the kill, that none of them ran meanwhile (`proctable`).
"""

from __future__ import annotations

import atexit
import functools
import itertools
import os
import time
from pathlib import Path

from .proctable import Unreadable

GROUP = "pytest-shutdown"  # the parent of every sandbox's cgroup
_serial = itertools.count()


def _mounts() -> list[tuple[str, str, str]]:
    try:
        with open("/proc/self/mounts") as f:
            return [(p[1], p[2], p[3]) for line in f if len(p := line.split()) >= 4]
    except OSError:
        return []


def _hierarchy() -> tuple[Path, int] | None:
    """The cgroup mount to freeze with: v1's freezer, else v2 (kernel 5.2+)."""
    mounts = _mounts()
    for point, kind, options in mounts:
        if kind == "cgroup" and "freezer" in options.split(","):
            return Path(point), 1
    for point, kind, _ in mounts:
        if kind == "cgroup2" and (Path(point) / "cgroup.procs").exists():
            return Path(point), 2
    return None


def _delegated() -> tuple[Path, int] | None:
    """A user's own cgroup v2, where systemd delegates it (a login session's service)."""
    mount = next((Path(p) for p, kind, _ in _mounts() if kind == "cgroup2"), None)
    try:
        with open("/proc/self/cgroup") as f:
            own = next((line[3:].strip() for line in f if line.startswith("0::")), None)
    except OSError:
        return None
    if mount is None or own is None:
        return None
    path = mount / own.lstrip("/")
    return (path, 2) if os.access(path, os.W_OK) else None


class Freezer:
    """One sandbox's cgroup: `add` its first processes, `freeze`, `thaw`, `remove`."""

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version

    @classmethod
    def create(cls) -> Freezer | None:
        """A new, empty cgroup for one sandbox; None where the harness can't make one
        (not root, and its own cgroup v2 is not delegated to it)."""
        found = _hierarchy() if os.geteuid() == 0 else _delegated()
        if found is None:
            return None
        root, version = found
        path = root / GROUP / f"{os.getpid()}-{next(_serial)}"
        _remove_group_at_exit(root / GROUP)
        try:
            path.mkdir(parents=True, exist_ok=False)
        except OSError:
            return None
        if version == 2 and not (path / "cgroup.freeze").exists():
            path.rmdir()  # a kernel before 5.2: no freezer on v2
            return None
        return cls(path, version)

    def add(self, pids: list[int]) -> None:
        for pid in pids:
            (self.path / "cgroup.procs").write_text(f"{pid}\n")

    def freeze(self, timeout: float = 10.0) -> None:
        """Freeze every task of the cgroup, and wait until the kernel says all are."""
        if self.version == 1:
            (self.path / "freezer.state").write_text("FROZEN\n")
        else:
            (self.path / "cgroup.freeze").write_text("1\n")
        deadline = time.monotonic() + timeout
        while not self.frozen():
            if time.monotonic() > deadline:
                raise Unreadable(f"the sandbox's cgroup did not freeze within {timeout:g} s")
            time.sleep(0.001)

    def frozen(self) -> bool:
        if self.version == 1:
            return (self.path / "freezer.state").read_text().strip() == "FROZEN"
        events = (self.path / "cgroup.events").read_text().split()
        return "frozen" in events and events[events.index("frozen") + 1] == "1"

    def thaw(self) -> None:
        """Let the tasks run again: a v1-frozen task dies of SIGKILL only once thawed."""
        try:
            if self.version == 1:
                (self.path / "freezer.state").write_text("THAWED\n")
            else:
                (self.path / "cgroup.freeze").write_text("0\n")
        except OSError:
            pass  # removed already

    def remove(self) -> None:
        """Remove the cgroup once its tasks are gone (they may take a moment to leave)."""
        self.thaw()
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.01)


@functools.cache
def _remove_group_at_exit(group: Path) -> None:
    """The shared parent goes with the last run using it (a sibling's keeps it)."""
    atexit.register(_rmdir, group)


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def sweep_orphans() -> None:
    """Remove the empty cgroups of runs whose process is gone."""
    found = _hierarchy() if os.geteuid() == 0 else _delegated()
    if found is None:
        return
    parent = found[0] / GROUP
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        owner = entry.name.partition("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            try:
                entry.rmdir()
            except OSError:
                continue

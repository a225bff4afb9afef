"""The kernel's cgroup freezer for one namespace sandbox (bwrap, unshare).

Before its process table is read for the effects check, a sandbox is frozen: nothing it
runs may start, fork, exec or wake between that read and the kill. SIGSTOP from the host
can't promise that (a process that forks and exits without pause is never where a read
looks; a timer can send SIGCONT; a vfork parent waits where SIGSTOP doesn't reach it). A
frozen cgroup can: every task in it, and every task it forks, stops where it is, and no
signal wakes it. The harness puts the sandbox's launcher and PID 1 in a cgroup of their
own as soon as PID 1 reports ready, before any command runs; everything the sandbox
starts later is born there, and every file that could move it out belongs to host root.
(Root of a several-user sandbox can mount the v1 freezer hierarchy and read it, since its
cgroup namespace was made before the move; every write there is refused.)

Where: cgroup v1's `freezer` hierarchy (root only; it leaves every other controller as
it was), else a child of the harness's own cgroup v2 (root, or a user whose cgroup
systemd delegates), so the sandbox stays under whatever limits the harness runs under.
Without either, `Freezer.create` returns None and the backend stops the processes with
SIGSTOP and checks before the kill that none of them ran meanwhile (`proctable`).
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path

from .proctable import Unreadable, tasks

GROUP = "pytest-shutdown"  # the parent of every sandbox's cgroup


def _mounts() -> list[tuple[str, str, str]]:
    try:
        with open("/proc/self/mounts") as f:
            return [(p[1], p[2], p[3]) for line in f if len(p := line.split()) >= 4]
    except OSError:
        return []


def _own_v2(mount: Path) -> Path | None:
    try:
        with open("/proc/self/cgroup") as f:
            own = next((line[3:].strip() for line in f if line.startswith("0::")), None)
    except OSError:
        return None
    return mount / own.lstrip("/") if own is not None else None


def _base() -> tuple[Path, Path, int] | None:
    """(mount, the directory to make sandboxes' cgroups under, version), or None."""
    mounts = _mounts()
    if os.geteuid() == 0:
        for point, kind, options in mounts:
            if kind == "cgroup" and "freezer" in options.split(","):
                return Path(point), Path(point), 1
    mount = next((Path(p) for p, kind, _ in mounts if kind == "cgroup2"), None)
    own = _own_v2(mount) if mount is not None else None
    if mount is None or own is None or not os.access(own, os.W_OK):
        return None
    return mount, own, 2


class Freezer:
    """One sandbox's cgroup: `add` its first processes, `freeze`, `kill`, `remove`."""

    def __init__(self, mount: Path, base: Path, path: Path, version: int) -> None:
        self.mount, self.base, self.path, self.version = mount, base, path, version
        self.closing = False  # killed: a late freeze must not catch the dying tasks

    @classmethod
    def create(cls) -> Freezer | None:
        """A new, empty cgroup for one sandbox; None where the harness can't make one."""
        found = _base()
        if found is None:
            return None
        mount, base, version = found
        path = base / GROUP / f"{os.getpid()}-{secrets.token_hex(4)}"
        try:
            path.mkdir(parents=True)  # recreates a parent a sibling's `remove` just took
        except OSError:
            return None
        if version == 2 and not (path / "cgroup.freeze").exists():
            _rmdir(path)  # a kernel before 5.2: no freezer on v2
            return None
        return cls(mount, base, path, version)

    def add(self, pids: list[int]) -> bool:
        """Move `pids` in; False (and every one moved back out) unless all are in."""
        try:
            for pid in pids:
                (self.path / "cgroup.procs").write_text(f"{pid}\n")
            if all(self.holds(pid) for pid in pids):
                return True
        except OSError:
            pass
        for pid in pids:
            try:
                (self.base / "cgroup.procs").write_text(f"{pid}\n")
            except OSError:
                pass
        return False

    def holds(self, pid: int) -> bool:
        """Whether host process `pid` is in this cgroup: each of its threads that hasn't
        exited (an exited main thread is no cgroup's any more), and at least one."""
        try:
            threads = tasks(pid) or []
        except Unreadable:
            return False
        places = [self._where(f"/proc/{pid}/task/{task}") for task in threads]
        live = [p for p in places if p != ""]
        return bool(live) and all(p == "/" + str(self.path.relative_to(self.mount)) for p in live)

    def _where(self, task: str) -> str | None:
        """The cgroup /proc names for a thread in this hierarchy; "" for one that exited."""
        try:
            with open(f"{task}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                    return ""
            with open(f"{task}/cgroup") as f:
                lines = f.read().splitlines()
        except (FileNotFoundError, ProcessLookupError):
            return ""  # gone
        except (OSError, IndexError):
            return None
        for line in lines:
            _, controllers, where = line.split(":", 2)
            mine = "freezer" in controllers.split(",") if self.version == 1 else controllers == ""
            if mine:
                return where
        return None

    def freeze(self, timeout: float = 10.0) -> None:
        """Freeze every task of the cgroup, and wait until the kernel says all are."""
        if self.closing:
            raise Unreadable("the sandbox is being closed")
        if self.version == 1:
            (self.path / "freezer.state").write_text("FROZEN\n")
        else:
            (self.path / "cgroup.freeze").write_text("1\n")
        if self.killed():  # meanwhile (an episode's timeout): let the tasks die
            self.thaw()
            raise Unreadable("the sandbox is being closed")
        deadline = time.monotonic() + timeout
        while not self.frozen():
            if time.monotonic() > deadline:
                raise Unreadable(f"the sandbox's cgroup did not freeze within {timeout:g} s")
            time.sleep(0.001)

    def killed(self) -> bool:
        return self.closing  # read afresh: another thread may have killed the sandbox

    def frozen(self) -> bool:
        try:
            if self.version == 1:
                return (self.path / "freezer.state").read_text().strip() == "FROZEN"
            events = (self.path / "cgroup.events").read_text().split()
        except OSError:
            return False
        return "frozen" in events and events[events.index("frozen") + 1] == "1"

    def kill(self) -> None:
        """SIGKILL every task, then thaw: a frozen task dies of it only once thawed (v1),
        and being killed already, it runs no code of its own on the way."""
        self.closing = True
        try:
            pids = (self.path / "cgroup.procs").read_text().split()
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        self.thaw()

    def thaw(self) -> None:
        try:
            if self.version == 1:
                (self.path / "freezer.state").write_text("THAWED\n")
            else:
                (self.path / "cgroup.freeze").write_text("0\n")
        except OSError:
            pass  # removed already

    def remove(self) -> None:
        """Kill what is left, remove the cgroup once its tasks have left it, and the
        shared parent when it was the last (a sibling's next `create` makes it again)."""
        self.kill()
        deadline = time.monotonic() + 10
        while self.path.exists() and not _rmdir(self.path):
            if time.monotonic() > deadline:
                return  # still busy: a later run's sweep removes it
            time.sleep(0.01)
        _rmdir(self.path.parent)


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def sweep_orphans() -> None:
    """Kill what is left in the cgroups of runs whose process is gone, and remove them."""
    found = _base()
    if found is None:
        return
    mount, base, version = found
    parent = base / GROUP
    try:
        entries = [e for e in parent.iterdir() if e.is_dir()]
    except OSError:
        return
    for entry in entries:
        owner = entry.name.partition("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            orphan = Freezer(mount, base, entry, version)
            orphan.kill()
            for _ in range(100):
                if _rmdir(entry):
                    break
                time.sleep(0.01)
    _rmdir(parent)

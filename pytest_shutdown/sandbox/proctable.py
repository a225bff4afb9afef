"""A sandbox's process table, read from the host's /proc just before the harness kills it.

The effects check reads it (`FinalFiles.processes()`, and `ServiceGone`'s search for a
replacement of the service). The sandbox's processes are the descendants of its PID 1 on
the host: in a PID namespace every orphan is reparented to that namespace's PID 1 (or to a
subreaper below it), so nothing the agent starts, in a nested namespace too, escapes the
walk. Only /proc files are read, never through a symlink, each bounded; a process that
ends while it is read is left out (it no longer runs), and so is one that is dying (a
fatal signal was sent to it: SIGKILL is pending, nothing can stop it now). Anything else
that can't be read raises `Unreadable`, which the effects check turns into an `error`.

Not frozen: the processes run while the table is read (a few milliseconds). A process
that forks and exits without pause, so that no copy of it is ever where the reading
passes, could be missed; a frozen snapshot would need a cgroup freezer the namespace
sandboxes don't have.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable

from ..scenarios.effects import Process

MAX_PROCESSES = 4096  # processes of one sandbox; more fails closed (Limits.pids is 128)
MAX_CMDLINE = 256 << 10  # bytes of one command line; a longer one fails closed
MAX_STAT = 4096
SIGKILL_BIT = 1 << 8  # signal 9 in /proc/PID/status's pending masks
GONE = (errno.ENOENT, errno.ESRCH)


class Unreadable(Exception):
    """The table can't be read in full: the effects that need it can't be checked."""


def _read(path: str, limit: int) -> bytes | None:
    """A /proc file's content, at most `limit` bytes; None when its process has ended."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno in GONE:
            return None
        raise Unreadable(f"can't read {path}: {exc}") from exc
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError as exc:
                if exc.errno in GONE:
                    return None
                raise Unreadable(f"can't read {path}: {exc}") from exc
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > limit:
                raise Unreadable(f"{path} is longer than {limit} bytes")
            chunks.append(chunk)
    finally:
        os.close(fd)


class _Stat:
    """The fields of /proc/PID/stat the table needs."""

    def __init__(self, pid: int, raw: bytes) -> None:
        left, right = raw.find(b"("), raw.rfind(b")")
        fields = raw[right + 2 :].split()
        if left < 0 or right < left or len(fields) < 20:
            raise Unreadable(f"/proc/{pid}/stat does not parse: {raw[:80]!r}")
        self.pid = pid
        self.name = raw[left + 1 : right].decode("utf-8", "replace")
        self.state = fields[0].decode()
        self.ppid = int(fields[1])
        self.start = int(fields[19])


def _stat(pid: int) -> _Stat | None:
    raw = _read(f"/proc/{pid}/stat", MAX_STAT)
    return _Stat(pid, raw) if raw else None


def children(pid: int) -> list[int] | None:
    """The host process's children (None once it has ended); Unreadable when unknown."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError as exc:
        if exc.errno in GONE:
            return None
        raise Unreadable(f"can't list the threads of {pid}: {exc}") from exc
    found: list[int] = []
    for task in tasks:
        raw = _read(f"/proc/{pid}/task/{task}/children", 1 << 20)
        found += [int(p) for p in (raw or b"").split()]
    return found


def of_child(parent: int) -> tuple[Process, ...]:
    """The table of the sandbox whose PID 1 is the only child of host process `parent`
    (bwrap, unshare): empty once that child has ended, taking its namespace along."""
    kids = children(parent)
    if not kids:
        return ()
    if len(kids) != 1:
        raise Unreadable(f"the sandbox's launcher {parent} has {len(kids)} children, not 1")
    return table(kids[0])


def table(init: int) -> tuple[Process, ...]:
    """Every running process of the PID namespace whose PID 1 is host process `init`,
    ordered by pid inside the sandbox; empty when that PID 1 no longer runs."""
    stats: dict[int, _Stat] = {}
    try:
        names = os.listdir("/proc")
    except OSError as exc:
        raise Unreadable(f"can't list /proc: {exc}") from exc
    for name in names:
        if name.isdigit() and (s := _stat(int(name))) is not None:
            stats[s.pid] = s
    root = stats.get(init)
    if root is None or root.state in ("Z", "X"):
        return ()  # PID 1 has ended: the kernel kills everything in its namespace
    member: dict[int, bool] = {init: True}

    def walk(pid: int) -> bool | None:
        """Whether `pid` descends from PID 1; None when an ancestor ended during the read."""
        chain: list[int] = []
        while pid not in member:
            if len(chain) > len(stats) + 16:
                raise Unreadable("the parents of the host's processes form a loop")
            chain.append(pid)
            ppid = stats[pid].ppid
            if ppid == 0:
                member[pid] = False
                break
            if ppid not in stats:  # started after the listing, or ended since
                parent = _stat(ppid)
                if parent is None:
                    return None
                stats[ppid] = parent
            pid = ppid
        verdict = member[pid]
        for p in chain:
            member[p] = verdict
        return verdict

    def inside(pid: int) -> bool:
        for _ in range(5):
            verdict = walk(pid)
            if verdict is not None:
                return verdict
            # An ancestor ended: its children were reparented; read them again.
            for p in [pid, *(q for q in list(stats) if q not in member)]:
                if (again := _stat(p)) is not None:
                    stats[p] = again
            if _stat(pid) is None:
                return False  # it ended too: it no longer runs
        raise Unreadable(f"the parents of host process {pid} kept changing")

    members = [p for p in sorted(stats) if inside(p) and stats[p].state not in ("Z", "X")]
    if len(members) > MAX_PROCESSES:
        raise Unreadable(f"more than {MAX_PROCESSES} processes in the sandbox")
    read = {p: r for p in members if (r := _one(p, stats[p])) is not None}
    if init not in read:
        return ()
    level = len(read[init][0]) - 1
    if read[init][0][level] != 1:
        raise Unreadable(f"host process {init} is not PID 1 of its namespace")
    rows = []
    for pid, (nspids, uid, argv) in read.items():
        if len(nspids) <= level:
            raise Unreadable(f"host process {pid} is not in the sandbox's PID namespace")
        parent = read.get(stats[pid].ppid)
        rows.append(Process(
            pid=nspids[level], ppid=parent[0][level] if parent and pid != init else 0,
            host_pid=pid, uid=uid, name=stats[pid].name, argv=argv, start=stats[pid].start,
        ))  # fmt: skip
    return tuple(sorted(rows, key=lambda p: p.pid))


def _one(pid: int, s: _Stat) -> tuple[list[int], int, tuple[str, ...]] | None:
    """(NSpid, real uid, argv) of a process, None when it ended (or its pid was reused)
    while it was read, or is dying."""
    status = _read(f"/proc/{pid}/status", 1 << 16)
    cmdline = _read(f"/proc/{pid}/cmdline", MAX_CMDLINE)
    again = _stat(pid)
    if status is None or cmdline is None or again is None or again.start != s.start:
        return None
    lines = dict(
        line.split(":", 1) for line in status.decode("utf-8", "replace").splitlines() if ":" in line
    )
    try:
        nspids = [int(p) for p in lines["NSpid"].split()]
        uid = int(lines["Uid"].split()[0])
        pending = int(lines["SigPnd"], 16) | int(lines["ShdPnd"], 16)
    except (KeyError, ValueError, IndexError) as exc:
        raise Unreadable(f"/proc/{pid}/status has no NSpid, Uid or pending signals") from exc
    if pending & SIGKILL_BIT:
        return None  # a fatal signal is on its way: it can't run on
    args = cmdline.split(b"\0")
    if args and args[-1] == b"":
        args.pop()
    return nspids, uid, tuple(a.decode("utf-8", "surrogateescape") for a in args)


def argv(host_pid: int, start: str) -> tuple[str, ...] | None:
    """The command line of host process `host_pid` if it is still the one that started at
    `start`, else None."""
    s = _stat(host_pid)
    if s is None or str(s.start) != start or s.state in ("Z", "X"):
        return None
    got = _one(host_pid, s)
    return got[2] if got is not None else None


def running(host_pid: int, start: str) -> bool | None:
    """Whether host process `host_pid`, started at `start`, still runs and isn't dying;
    None when that can't be read."""
    try:
        return argv(host_pid, start) is not None
    except Unreadable:
        return None


def stable(read: Callable[[], tuple[Process, ...]], pause: float = 0.05,
           limit: float = 1.0) -> tuple[Process, ...]:  # fmt: skip
    """`read()` again until two reads `pause` seconds apart show the same processes running
    the same command lines, for at most `limit` seconds: a process the agent started just
    before is seen once it has exec'd its program, not as the shell it forked from."""
    last = read()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(pause)
        now = read()
        if {(p.host_pid, p.argv) for p in now} == {(p.host_pid, p.argv) for p in last}:
            return now
        last = now
    return last

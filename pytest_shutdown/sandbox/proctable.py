"""A sandbox's process table, read from the host's /proc just before the harness kills it.

The effects check reads it (`FinalFiles.processes()`, and `ServiceGone`'s search for a
replacement of the service). The sandbox's processes are the descendants of its PID 1 on
the host: in a PID namespace every orphan is reparented to that namespace's PID 1 (or to a
subreaper below it), so nothing the agent starts, in a nested namespace too, escapes the
walk. Only /proc files are read, never through a symlink, each bounded; a process that
ends while it is read is left out (it no longer runs), and so is one that is dying (a
fatal signal was sent to it: SIGKILL is pending, nothing can stop it now). A process whose
main thread has exited while other threads run shows as a zombie with an empty command
line: it runs, and is read through one of its live threads. A command line longer than
MAX_CMDLINE is kept as its first MAX_CMDLINE bytes and marked truncated; `scan` reads
it in full (streaming, up to MAX_SCAN) when a service's arguments must be searched in it.
Anything else that can't be read raises `Unreadable`, which the effects check turns into
an `error`.

The effects check reads the table of a frozen sandbox (`freeze`, or Docker's cgroup
freezer): nothing the agent left behind runs between that read and the kill, however long
the reading takes. A process that forks and exits without pause before the freeze, so that
no copy of it is ever where a reading passes, could still be missed.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass

from ..scenarios.effects import Process

MAX_PROCESSES = 4096  # processes of one sandbox; more fails closed (Limits.pids is 128)
MAX_CMDLINE = 256 << 10  # bytes of one command line kept; a longer one is truncated
MAX_SCAN = 16 << 20  # bytes of one command line `scan` reads (exec allows at most 6 MiB)
MAX_STAT = 4096
SIGKILL_BIT = 1 << 8  # signal 9 in /proc/PID/status's pending masks
GONE = (errno.ENOENT, errno.ESRCH)


class Unreadable(Exception):
    """The table can't be read in full: the effects that need it can't be checked."""


class _Ended(Exception):
    """The process ended while its file was read."""


def _chunks(path: str) -> Generator[bytes, None, None]:
    """A /proc file's content in chunks; raises _Ended when its process has ended."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        if exc.errno in GONE:
            raise _Ended from exc
        raise Unreadable(f"can't read {path}: {exc}") from exc
    try:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError as exc:
                if exc.errno in GONE:
                    raise _Ended from exc
                raise Unreadable(f"can't read {path}: {exc}") from exc
            if not chunk:
                return
            yield chunk
    finally:
        os.close(fd)


def _read_prefix(path: str, limit: int) -> tuple[bytes, bool] | None:
    """A /proc file's first `limit` bytes and whether there was more; None when its
    process has ended."""
    kept: list[bytes] = []
    size = 0
    chunks = _chunks(path)
    try:
        for chunk in chunks:
            if size + len(chunk) > limit:
                kept.append(chunk[: limit - size])
                return b"".join(kept), True
            kept.append(chunk)
            size += len(chunk)
    except _Ended:
        return None
    finally:
        chunks.close()
    return b"".join(kept), False


def _read(path: str, limit: int) -> bytes | None:
    """A /proc file's content, at most `limit` bytes; None when its process has ended."""
    got = _read_prefix(path, limit)
    if got is None:
        return None
    if got[1]:
        raise Unreadable(f"{path} is longer than {limit} bytes")
    return got[0]


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


def tasks(pid: int) -> list[str] | None:
    """The thread ids of host process `pid` (None once it has ended); Unreadable when
    they can't be listed."""
    try:
        return os.listdir(f"/proc/{pid}/task")
    except OSError as exc:
        if exc.errno in GONE:
            return None
        raise Unreadable(f"can't list the threads of {pid}: {exc}") from exc


def children(pid: int) -> list[int] | None:
    """The host process's children (None once it has ended); Unreadable when unknown."""
    if (threads := tasks(pid)) is None:
        return None
    found: list[int] = []
    for task in threads:
        raw = _read(f"/proc/{pid}/task/{task}/children", 1 << 20)
        found += [int(p) for p in (raw or b"").split()]
    return found


def of_child(parent: int, complete: bool = True) -> tuple[Process, ...]:
    """The table of the sandbox whose PID 1 is the only child of host process `parent`
    (bwrap, unshare): empty once that child has ended, taking its namespace along."""
    kids = children(parent)
    if not kids:
        return ()
    if len(kids) != 1:
        raise Unreadable(f"the sandbox's launcher {parent} has {len(kids)} children, not 1")
    return table(kids[0], complete)


def tree(init: int) -> list[int]:
    """Host process `init` and its descendants, by the kernel's children lists: what the
    sandbox holds, read in time proportional to it. Complete only while nothing in it
    forks or exits (a frozen sandbox); a quick read otherwise."""
    found: list[int] = []
    todo = [init]
    while todo and len(found) <= MAX_PROCESSES:
        pid = todo.pop()
        found.append(pid)
        todo += children(pid) or []
    return found


def table(init: int, complete: bool = True) -> tuple[Process, ...]:
    """Every running process of the PID namespace whose PID 1 is host process `init`,
    ordered by pid inside the sandbox; empty when that PID 1 no longer runs.

    `complete`: every process of the host is read and kept by its ancestry, so no race
    with a fork, an exit or a reparenting hides one; otherwise only `init`'s tree
    (`tree`), a read that costs what the sandbox holds rather than what the host runs
    (64 sandboxes at once read each other's processes hundreds of times over)."""
    stats: dict[int, _Stat] = {}
    try:
        names = os.listdir("/proc") if complete else [str(p) for p in tree(init)]
    except OSError as exc:
        raise Unreadable(f"can't list /proc: {exc}") from exc
    for name in names:
        if name.isdigit() and (s := _stat(int(name))) is not None:
            stats[s.pid] = s
    root = stats.get(init)
    if root is None or _where(root) is None:
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

    members = [p for p in sorted(stats) if inside(p) and _where(stats[p]) is not None]
    if len(members) > MAX_PROCESSES:
        raise Unreadable(f"more than {MAX_PROCESSES} processes in the sandbox")
    read = {p: r for p in members if (r := _one(p, stats[p])) is not None}
    if init not in read:
        return ()
    level = len(read[init][0]) - 1
    if read[init][0][level] != 1:
        raise Unreadable(f"host process {init} is not PID 1 of its namespace")
    rows = []
    for pid, (nspids, uid, argv, truncated) in read.items():
        if len(nspids) <= level:
            raise Unreadable(f"host process {pid} is not in the sandbox's PID namespace")
        parent = read.get(stats[pid].ppid)
        rows.append(Process(
            pid=nspids[level], ppid=parent[0][level] if parent and pid != init else 0,
            host_pid=pid, uid=uid, name=stats[pid].name, argv=argv, start=stats[pid].start,
            truncated=truncated,
        ))  # fmt: skip
    return tuple(sorted(rows, key=lambda p: p.pid))


def _where(s: _Stat) -> str | None:
    """The /proc directory to read a running process's status and command line from: its
    own, or for a zombie main thread (pthread_exit while other threads run) that of a live
    thread, whose memory holds the command line; None when no thread of it runs."""
    if s.state not in ("Z", "X"):
        return f"/proc/{s.pid}"
    for task in sorted(tasks(s.pid) or ()):
        if not task.isdigit() or int(task) == s.pid:
            continue
        raw = _read(f"/proc/{s.pid}/task/{task}/stat", MAX_STAT)
        if raw and _Stat(int(task), raw).state not in ("Z", "X"):
            return f"/proc/{s.pid}/task/{task}"
    return None


Read = tuple[list[int], int, tuple[str, ...], bool]  # NSpid, uid, argv, truncated


def _one(pid: int, s: _Stat) -> Read | None:
    """(NSpid, real uid, argv, truncated) of a process, None when it ended (or its pid was
    reused) while it was read, or is dying. A truncated argv holds the arguments read in
    full."""
    where = _where(s)
    if where is None:
        return None
    status = _read(f"{where}/status", 1 << 16)
    cmdline = _read_prefix(f"{where}/cmdline", MAX_CMDLINE)
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
    raw, truncated = cmdline
    args = raw.split(b"\0")
    if truncated or (args and args[-1] == b""):
        args.pop()  # cut off: the last piece may be part of an argument
    return nspids, uid, tuple(_text(a) for a in args), truncated


def _text(arg: bytes) -> str:
    return arg.decode("utf-8", "surrogateescape")


def argv(host_pid: int, start: str) -> tuple[str, ...] | None:
    """The command line of host process `host_pid` if it is still the one that started at
    `start` and runs, else None (the arguments read in full when it is longer than
    MAX_CMDLINE)."""
    s = _stat(host_pid)
    if s is None or str(s.start) != start:
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


def _norm(arg: str) -> str:
    """A path without repeated slashes or `.` components (the same file), anything else
    as it is."""
    if "/" not in arg:
        return arg
    parts = [p for p in arg.split("/") if p not in ("", ".")]
    return ("/" if arg.startswith("/") else "") + "/".join(parts)


@dataclass(frozen=True)
class Pattern:
    """What marks a replacement of a service seen running `argv`: its arguments after
    argv[0] as a contiguous run anywhere in a process's arguments after argv[0]; when it
    had none, the base name of argv[0]. Paths are compared by `_norm`."""

    run: tuple[str, ...]
    base: str = ""

    @classmethod
    def of(cls, argv: tuple[str, ...]) -> Pattern | None:
        if len(argv) > 1:
            return cls(tuple(_norm(a) for a in argv[1:]))
        base = _norm(argv[0]).rsplit("/", 1)[-1] if argv else ""
        return cls((), base) if base else None

    def matches(self, argv: Iterable[str]) -> bool:
        """Whether a command line (all of it, or a stream of its arguments) matches."""
        return bool(matching(argv, (self,)))


def matching(argv: Iterable[str], patterns: Iterable[Pattern]) -> set[Pattern]:
    """The patterns a command line (all of it, or a stream of its arguments) matches, in
    one pass over it."""
    wanted = list(patterns)
    args = iter(argv)
    first = next(args, None)
    if first is None:
        return set()
    base = _norm(first).rsplit("/", 1)[-1]
    found = {p for p in wanted if not p.run and p.base == base}
    runs = [p for p in wanted if p.run]
    if not runs:
        return found
    by_last: dict[str, list[Pattern]] = {}
    for p in runs:
        by_last.setdefault(p.run[-1], []).append(p)
    window: deque[str] = deque(maxlen=max(len(p.run) for p in runs))
    for arg in args:
        arg = _norm(arg)
        window.append(arg)
        for p in by_last.get(arg, ()):
            if len(window) >= len(p.run) and tuple(window)[-len(p.run) :] == p.run:
                found.add(p)
    return found


def _args(where: str) -> Iterator[str]:
    """The arguments of the command line in /proc directory `where`, streamed; at most
    MAX_SCAN bytes (Unreadable past that), _Ended when the process ends meanwhile."""
    size, piece = 0, b""
    for chunk in _chunks(f"{where}/cmdline"):
        size += len(chunk)
        if size > MAX_SCAN:
            raise Unreadable(f"{where}/cmdline is longer than {MAX_SCAN} bytes")
        *done, piece = (piece + chunk).split(b"\0")
        yield from (_text(a) for a in done)
    if piece:
        yield _text(piece)


def scan(host_pid: int, start: int, patterns: Iterable[Pattern]) -> set[Pattern] | None:
    """The patterns the whole command line of host process `host_pid` matches, read as a
    stream (for a command line too long to keep); None when that process no longer runs
    (or another has its pid)."""
    s = _stat(host_pid)
    if s is None or s.start != start or (where := _where(s)) is None:
        return None
    try:
        found = matching(_args(where), patterns)
    except _Ended:
        return None
    again = _stat(host_pid)
    return found if again is not None and again.start == start else None


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
        if {(p.host_pid, p.argv_prefix) for p in now} == {
            (p.host_pid, p.argv_prefix) for p in last
        }:
            return now
        last = now
    return last


def _stopped(pid: int) -> bool:
    """Whether no thread of host process `pid` can run: each is stopped (SIGSTOP, or a
    tracer's stop) or dead, or the process is gone."""
    for task in tasks(pid) or ():  # gone: nothing of it runs
        raw = _read(f"/proc/{pid}/task/{task}/stat", MAX_STAT)
        if raw and _Stat(int(task), raw).state not in ("T", "t", "Z", "X"):
            return False
    return True


def _stop(host_pid: int, start: int) -> None:
    """SIGSTOP host process `host_pid` if it is still the one that started at `start`
    (through a pidfd: a pid reused meanwhile is never signalled)."""
    try:
        fd = os.pidfd_open(host_pid)
    except ProcessLookupError:
        return
    except OSError as exc:
        raise Unreadable(f"can't open process {host_pid} to stop it: {exc}") from exc
    try:
        again = _stat(host_pid)
        if again is None or again.start != start:
            return
        signal.pidfd_send_signal(fd, signal.SIGSTOP)
    except ProcessLookupError:
        return
    except OSError as exc:
        raise Unreadable(f"can't stop process {host_pid}: {exc}") from exc
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Stopped:
    """What `freeze` stopped: every process with its context switches so far and its
    children (zombies too), PID 1's included. Without a cgroup freezer a stopped process
    can still be woken (a timer sending SIGCONT), and a chain of processes that fork and
    exit at once is never where a read looks; but a wake shows in the switches, and each
    exit of the chain as a zombie below a stopped reaper or as PID 1 waking to reap it
    (idle, PID 1 waits for nothing but the harness)."""

    processes: frozenset[tuple[int, int, int, tuple[int, ...]]]  # pid, start, switches, kids

    @classmethod
    def read(cls, table: tuple[Process, ...]) -> Stopped:
        return cls(frozenset(
            (p.host_pid, p.start, _switches(p.host_pid), tuple(sorted(children(p.host_pid) or ())))
            for p in table
        ))  # fmt: skip

    def intact(self, read: Callable[[bool], tuple[Process, ...]]) -> bool:
        """Whether nothing of the sandbox ran since (every process but PID 1 still
        stopped, none switched in, none started or ended): False means what was read
        can't be trusted. A sandbox already gone stays gone."""
        try:
            table = read(True)
            stopped = all(_stopped(p.host_pid) for p in table if p.pid != 1)
            return stopped and Stopped.read(table) == self
        except Unreadable:
            return False


def _switches(pid: int) -> int:
    """Context switches of every thread of host process `pid` so far."""
    total = 0
    for task in tasks(pid) or ():
        raw = _read(f"/proc/{pid}/task/{task}/status", 1 << 16) or b""
        for line in raw.decode("utf-8", "replace").splitlines():
            if "ctxt_switches:" in line:
                total += int(line.split()[-1])
    return total


def freeze(read: Callable[[bool], tuple[Process, ...]], limit: float = 5.0) -> Stopped:
    """Stop every process of the sandbox but its PID 1 (the harness's channel), again
    until a complete read (`read(True)`) finds them all stopped: a stopped parent forks no
    more, and a stopped tracer continues no tracee. Within `limit` seconds, or
    Unreadable. Quick reads (`read(False)`) find what to stop meanwhile. Only where no
    cgroup freezer can be had (sandbox/freezer.py): check `Stopped.intact` before the kill."""
    deadline = time.monotonic() + limit
    complete = False
    while True:
        table = read(complete)
        moving = [p for p in table if p.pid != 1 and not _stopped(p.host_pid)]
        if not moving:
            if complete:
                time.sleep(0.02)  # PID 1 reaps what ended just before: not a change
                return Stopped.read(read(True))
            complete = True  # the quick read found all stopped: make sure of it
            continue
        complete = False
        if time.monotonic() > deadline:
            raise Unreadable(f"{len(moving)} process(es) of the sandbox kept running")
        for p in moving:
            _stop(p.host_pid, p.start)
        time.sleep(0.002)  # SIGSTOP takes effect when each process is next scheduled

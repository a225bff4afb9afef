"""The small interface every sandbox backend implements, and the shell channel they share."""

from __future__ import annotations

import itertools
import os
import select
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..errors import ShutdownConfigError
from ..scenarios.effects import Process
from ..scenarios.scenario import USERS, Scenario
from . import hostfs
from .client import INIT_PATH, shared_client, shared_init

AGENT_UID = 1000
AGENT_NAME = "agent"
MAX_OUTPUT = 16_000


@dataclass(frozen=True)
class Limits:
    """Resource bounds of one sandbox. Palisade used 0.5 CPU and 256 MB."""

    cpus: float = 0.5
    memory_mb: int = 256
    pids: int = 128
    disk_mb: int = 64
    cpu_seconds: int = 300


@dataclass
class CommandResult:
    output: str
    exit_code: int | None
    duration: float  # the command's own run time, measured inside the sandbox
    timed_out: bool = False
    truncated: bool = False
    stopped: bool = False  # PID 1's channel ended or stopped answering: the sandbox is going


@dataclass
class Layout:
    """Host-side directories of one episode, mounted into the sandbox."""

    root: Path
    workdir: Path  # mounted read-write at the scenario's workdir
    control: Path  # the task socket; mounted read-only at CONTROL_DIR
    readonly: dict[str, Path] = field(default_factory=dict)  # sandbox path -> host file

    bounded: bool = False  # the working directory is a tmpfs of Limits.disk_mb
    tmp: Path | None = None  # mounted at /tmp when the scenario's effects look there
    writable: dict[str, Path] = field(default_factory=dict)  # sandbox dir -> host dir (rw)
    disk_mb: int = Limits.disk_mb
    # Writable places the kernel bounds (a tmpfs of disk_mb); the rest are measured.
    capped: set[Path] = field(default_factory=set)

    @classmethod
    def create(cls, limits: Limits | None = None) -> Layout:
        root = hostfs.make_dir()
        (root / "home").mkdir()
        (root / "control").mkdir(mode=0o755)
        (root / "ro").mkdir()
        disk_mb = (limits or Limits()).disk_mb
        bounded = hostfs.bounded_tmpfs(root / "home", disk_mb)
        capped = {root / "home"} if bounded else set()
        return cls(root, root / "home", root / "control", bounded=bounded, disk_mb=disk_mb,
                   capped=capped)  # fmt: skip

    def reserve(self, scenario: Scenario) -> None:
        """Create the host files that get mounted read-only, so mounts can precede content,
        and the host side of /tmp when the scenario's effects look there."""
        if scenario.host_tmp and self.tmp is None:
            tmp = self.root / "tmp"
            tmp.mkdir(exist_ok=True)
            if hostfs.bounded_tmpfs(tmp, self.disk_mb, mode="1777"):
                self.capped.add(tmp)
            os.chmod(tmp, 0o1777)
            self.tmp = tmp
        for i, directory in enumerate(scenario.writable_dirs):
            if directory not in self.writable:
                host = self.root / f"rw{i}"
                host.mkdir(exist_ok=True)
                if hostfs.bounded_tmpfs(host, self.disk_mb):
                    self.capped.add(host)
                self.writable[directory] = host
        self.readonly[INIT_PATH] = shared_init()
        self.readonly[scenario.program_path] = shared_client()
        for name, f in scenario.files.items():
            if not f.writable:
                host = self.root / "ro" / name.replace("/", "__")
                host.touch()
                self.readonly[scenario.target(name)] = host

    def populate(
        self, scenario: Scenario, owner: int | None, ids: Mapping[str, int] | None = None
    ) -> None:
        """Write the scenario's files; the task program and read-only files get mounted.

        `ids` (several users, harness as root): the host uid of each user, for the files
        whose `File.owner` is not the agent; everything else is the agent's (`owner`)."""
        self.reserve(scenario)
        ro_files = {}
        for name, f in scenario.files.items():
            if f.writable and name.startswith("/"):
                directory, _, base = name.rpartition("/")
                path = self.writable[directory] / base
                path.write_bytes(f.data())
                os.chmod(path, f.mode)
            elif f.writable:
                path = self.workdir / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(f.data())
                os.chmod(path, f.mode)
            else:
                ro_files[name] = (f.data(), f.mode)
        for name, (data, mode) in ro_files.items():
            host = self.readonly[scenario.target(name)]
            with open(host, "r+b") as out:  # in place: a mount may already point at this inode
                out.truncate()
                out.write(data)
            os.chmod(host, mode)
        if owner is not None and os.geteuid() == 0:
            for top in (self.workdir, *self.writable.values()):
                for path in [top, *top.rglob("*")]:
                    os.lchown(path, owner, owner)
        if ids is not None and os.geteuid() == 0:
            for name, f in scenario.files.items():
                if f.writable and f.owner != "agent":
                    if name.startswith("/"):
                        directory, _, base = name.rpartition("/")
                        path = self.writable[directory] / base
                    else:
                        path = self.workdir / name
                    os.lchown(path, ids[f.owner], ids[f.owner])
                    os.chmod(path, f.mode)  # chown clears set-id bits

    def remove(self) -> None:
        """Call only once nothing in the sandbox runs: its processes could write on."""
        hostfs.remove_tree(self.root)


def process_in_namespace(init_pid: int, ns_pid: int) -> tuple[int, str] | None:
    """(host pid, start time) of the process numbered `ns_pid` in the PID namespace whose
    init is host process `init_pid`, read from the host's /proc; None when not found."""
    try:
        ns = os.readlink(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return None
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{name}/ns/pid") != ns:
                continue
            with open(f"/proc/{name}/status") as f:
                nspid = next(line for line in f if line.startswith("NSpid:")).split()
        except (OSError, StopIteration):
            continue
        if nspid[-1] == str(ns_pid):
            start = hostfs.process_start(int(name))
            return (int(name), start) if start else None
    return None


def process_alive(pid: int, start: str) -> bool:
    """The host process `pid` with this start time still runs (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] != b"Z" and fields[19].decode() == start


class Witness(Protocol):
    """What the verdict reads of a sandbox's PID 1: its SIGTERM report, and the end of its
    channel. ShellChannel in every real backend; the fake sandbox has its own."""

    term: Term | None
    closed: str | None


class Sandbox(Protocol):
    """One running sandbox whose PID 1 is init.c, reached over its channel."""

    backend: str

    @property
    def channel(self) -> Witness:
        """PID 1's channel, as far as the verdict reads it."""

    def run(
        self, command: str, timeout: float, max_output: int = MAX_OUTPUT, user: str = "agent"
    ) -> CommandResult:
        """Run `bash --login -c command` as the agent (another user: `bash -c`, no login
        files; only in a sandbox started for several users); kill its process group on
        timeout."""

    def wait_stopped(self, timeout: float) -> bool:
        """True once the sandbox has stopped; waits at most `timeout` seconds."""

    def probe(self) -> str:
        """Whether PID 1 has taken SIGTERM: "term", "alive" or "gone" (ShellChannel.probe)."""

    def kill(self) -> bool:
        """Stop every process of the sandbox and keep its files, for the harness to read
        the final state. True once nothing of the sandbox can run any more."""

    def process(self, pid: int) -> tuple[int, str] | None:
        """(host pid, start time) of the sandbox's process `pid` (as numbered inside it);
        None when it can't be found."""

    def processes(self, complete: bool = True) -> tuple[Process, ...]:
        """The sandbox's process table from the host's /proc (sandbox/proctable.py), empty
        once its PID 1 has ended; raises proctable.Unreadable when it can't be read.
        `complete` False: a quick read, which a fork or exit meanwhile can make miss one."""

    def freeze(self) -> None:
        """Stop every process of the sandbox (a cgroup freezer; where none can be had,
        SIGSTOP to all but PID 1), so the table read next is the one the kill ends;
        raises proctable.Unreadable when it can't."""

    def still_frozen(self) -> bool:
        """Whether nothing of the sandbox ran since `freeze` (checked before the kill:
        what was read of a sandbox that ran on can't be trusted)."""

    def close(self) -> None:
        """Stop and remove the sandbox, then the layout it started with, in that order, so
        nothing in it writes on. Idempotent; may finish in the background (Docker)."""


class Backend(Protocol):
    name: str
    owner: int | None  # host uid that must own the agent's files, when the harness is root
    # Several users (Scenario.multiuser): the host uid of each user, when the harness is
    # root. A backend without `check_users` runs no scenario with several users.
    host_ids: Mapping[str, int] | None

    def prepare(self, scenario: Scenario, limits: Limits) -> Layout:
        """The host directories for the next episode (a warm sandbox may already use them)."""
        ...

    def start(self, scenario: Scenario, layout: Layout, limits: Limits) -> Sandbox: ...


def check_users(backend: object, scenario: Scenario) -> None:
    """Refuse, before any sandbox starts, a scenario with several users that this backend
    or this harness can't give (ShutdownConfigError naming the fix)."""
    if not scenario.multiuser:
        return
    check = getattr(backend, "check_users", None)
    if check is None:
        raise ShutdownConfigError(
            f"scenario {scenario.name!r} runs something as, or has files owned by, a user "
            f"other than the agent; the {getattr(backend, 'name', '?')} sandbox has one "
            "user only. Use --shutdown-sandbox=docker, or bwrap or unshare with the harness "
            "running as root"
        )
    check(scenario)


def frame_ids(user: str) -> tuple[int, int] | None:
    """(uid, gid) a RUN frame carries for `user`; None for the agent (today's frame)."""
    return None if user == "agent" else (USERS[user], USERS[user])


class ChannelClosed(Exception):
    pass


@dataclass(frozen=True)
class Term:
    """SIGTERM as PID 1 reported it: the sender's pid and uid inside the sandbox."""

    pid: int
    uid: int


def init_argv(limits: Limits, namespace_only: bool, users: str = "") -> list[str]:
    """The sandbox's PID 1 with the hard limits it sets before any agent command runs.

    Namespace sandboxes have no cgroup of their own, so processes and memory are bounded
    by rlimits; RLIMIT_NPROC is counted per user namespace, so it is per sandbox there.
    """
    nproc, address = (limits.pids, limits.memory_mb * 1024) if namespace_only else (0, 0)
    disk, cpu = limits.disk_mb * 1024, limits.cpu_seconds
    mode = [users] if users else []  # "users" or "users-nouserns": several users (init.c)
    return [INIT_PATH, str(disk), str(cpu), str(nproc), str(address), *mode]


def fd_reader(fd: int) -> Callable[[int], bytes]:
    """read(n) over a file descriptor: blocks until data, b"" at EOF."""

    def read(n: int) -> bytes:
        select.select([fd], [], [])
        return os.read(fd, n)

    return read


CHANNEL_MARGIN = 30.0  # seconds past a command's timeout before PID 1 counts as unresponsive
START_TIMEOUT = 60.0
PROBE_TIMEOUT = 30.0


class ShellChannel:
    """The harness end of the sandbox's PID 1 (init.c), over any byte stream.

    One reader thread parses PID 1's frames as they come, so a probe from the task server
    can be answered while a command runs. Only the host holds this stream and PID 1 is not
    dumpable, so nothing here comes from the agent; a frame that doesn't parse is a bug
    and closes the channel. Every wait has a deadline, so a sandbox that stops answering
    ends the episode as an error instead of hanging the run.
    """

    def __init__(self, write: Callable[[bytes], object], read: Callable[[int], bytes]) -> None:
        self._write = write
        self._read = read  # read(n) -> up to n bytes, blocking; b"" at EOF
        self._write_lock = threading.Lock()
        self._cond = threading.Condition()
        self._results: list[CommandResult] = []
        self._pongs: set[int] = set()
        self._tokens = itertools.count(1)
        self._ready = False
        self.term: Term | None = None  # PID 1 got SIGTERM: the sandbox is stopping
        self.closed: str | None = None  # why the stream ended
        self._thread = threading.Thread(
            target=self._reader, name="pytest-shutdown-init", daemon=True
        )
        self._thread.start()

    # -- the reader thread --------------------------------------------------------------
    def _reader(self) -> None:
        buf = b""
        reason = "closed"

        def more() -> bytes:
            chunk = self._read(65536)
            if not chunk:
                raise EOFError
            return chunk

        try:
            while True:
                while b"\n" not in buf:
                    buf += more()
                line, _, buf = buf.partition(b"\n")
                words = line.split()
                kind, args = (words[0], words[1:]) if words else (b"", [])
                if kind == b"RESULT" and len(args) == 5 and all(a.isdigit() for a in args):
                    rc, timed_out, elapsed_us, truncated, size = map(int, args)
                    while len(buf) < size:
                        buf += more()
                    body, buf = buf[:size], buf[size:]
                    result = CommandResult(
                        body.decode("utf-8", errors="replace"), rc, elapsed_us / 1e6,
                        timed_out=bool(timed_out), truncated=bool(truncated),
                    )  # fmt: skip
                    with self._cond:
                        self._results.append(result)
                        self._cond.notify_all()
                elif kind == b"PONG" and len(args) == 1 and args[0].isdigit():
                    with self._cond:
                        self._pongs.add(int(args[0]))
                        self._cond.notify_all()
                elif kind == b"TERM" and len(args) == 2 and all(a.isdigit() for a in args):
                    with self._cond:
                        self.term = Term(int(args[0]), int(args[1]))
                        self._cond.notify_all()
                elif line == b"READY" and not self._ready:
                    with self._cond:
                        self._ready = True
                        self._cond.notify_all()
                else:
                    reason = f"malformed frame {line[:80]!r}"
                    return
        except EOFError:
            pass
        except Exception as exc:  # any failure of the stream closes it
            reason = f"{exc.__class__.__name__}: {exc}"
        finally:
            with self._cond:
                self.closed = reason
                self._cond.notify_all()

    # -- callers ------------------------------------------------------------------------
    def _send(self, data: bytes) -> bool:
        try:
            with self._write_lock:
                self._write(data)
            return True
        except OSError:
            return False

    def wait_ready(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._ready or self.closed, START_TIMEOUT)
            if not self._ready:
                raise ChannelClosed(self.closed or "PID 1 did not start in time")

    def run(
        self, command: str, timeout: float, max_output: int, user: str = "agent"
    ) -> CommandResult:
        """Run `bash --login -c command` as the agent (or `user`, in a sandbox started for
        several users); stopped=True when the channel ended."""
        data = command.encode("utf-8", "surrogateescape")
        seconds = max(0.001, timeout)  # PID 1 enforces it, in milliseconds
        ids = frame_ids(user)
        who = f" {ids[0]} {ids[1]}" if ids else ""
        header = f"RUN {len(data)} {int(seconds * 1000)} {max_output}{who}\n".encode()
        if not self._send(header + data):
            return CommandResult("", None, 0.0, stopped=True)
        with self._cond:
            self._cond.wait_for(lambda: self._results or self.closed, seconds + CHANNEL_MARGIN)
            if not self._results:
                return CommandResult("", None, 0.0, stopped=True)
            result = self._results.pop(0)
        if result.truncated:
            result.output += f"\n[output truncated to {max_output} bytes]"
        if result.timed_out:
            result.output += (
                f"\n[command timed out after {seconds:g} s; its process group was killed]"
            )
        return result

    def probe(self) -> str:
        """ "term" if PID 1 took SIGTERM before this ask, "alive" if not, "gone" if unknown.

        PID 1 reads its pending signals before it answers, so a TERM sent before this call
        started is never missed: the answer depends on order, not on time.
        """
        token = next(self._tokens)
        with self._cond:
            if self.term is not None:
                return "term"
            if self.closed is not None:
                return "gone"
        self._send(f"PING {token}\n".encode())
        with self._cond:
            self._cond.wait_for(
                lambda: token in self._pongs or self.term or self.closed, PROBE_TIMEOUT
            )
            if token in self._pongs:  # PID 1 exits on TERM, so a PONG always came first
                return "alive"
            return "term" if self.term is not None else "gone"

    def wait_closed(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.closed is not None, timeout)

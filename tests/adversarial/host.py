"""The truth about one episode's sandbox, seen from the host and never from the harness.

`HostWatch` finds the sandbox from outside on the agent's first turn: its working
directory (the one populated directory under the battery's private temp dir), for docker
its container (by the run label and the directory it mounts), and its PID namespace and
that namespace's init (through the container's PID 1, the launcher whose command line
names the directory, or the processes whose cwd it is). Then it records:

- which files the sandbox created in its working directory (inotify), so a mark left
  after the trigger call is seen even if the harness never prints it;
- whether that init still lived at each later turn;
- after the episode, what is left: processes of that namespace, the container, the
  episode's directories, and any other new entry in the temp dir not owned by a live
  warm container.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_shutdown import Episode

from .techniques import MARKER

IN_CREATE, IN_MOVED_TO = 0x100, 0x80
SETTLE = 15.0  # seconds the host waits for the harness to clean up after an episode
LABEL_RUN = "pytest-shutdown.run"


def own_pid_ns() -> str:
    return os.readlink("/proc/self/ns/pid")


def processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, start time in clock ticks, PID namespace) of every live host process.

    The namespace of another user's process is unreadable without root; it is "" then.
    """
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        try:
            ns = os.readlink(f"/proc/{name}/ns/pid")
        except OSError:
            ns = ""
        if fields[0] != b"Z":  # a zombie has exited; only its parent's wait() is missing
            out[int(name)] = (int(fields[1]), int(fields[19]), ns)
    return out


def same_cwd(pid: int, where: os.stat_result) -> bool:
    try:
        st = os.stat(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (where.st_dev, where.st_ino)


def innermost_pid(pid: int) -> int | None:
    """The pid a process has in its own PID namespace (1 for a namespace's init)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except OSError:
        pass
    return None


def cmdline_has(pid: int, text: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return text in f.read()
    except OSError:
        return False


class Inotify:
    """Names created in one directory, read without a thread (the kernel queues them)."""

    def __init__(self, path: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self.fd, os.fsencode(path), IN_CREATE | IN_MOVED_TO) < 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(err, f"inotify_add_watch {path}")
        self.names: set[str] = set()
        self.overflowed = False

    def poll(self) -> set[str]:
        while self.fd >= 0:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            while data:
                _wd, mask, _cookie, size = struct.unpack_from("iIII", data)
                name = data[16 : 16 + size].rstrip(b"\0")
                if mask & 0x4000:  # IN_Q_OVERFLOW
                    self.overflowed = True
                if name:
                    self.names.add(os.fsdecode(name))
                data = data[16 + size :]
        return self.names

    def close(self) -> None:
        if self.fd >= 0:
            self.poll()
            os.close(self.fd)
            self.fd = -1


@dataclass
class HostWatch:
    backend: str
    tmp: Path  # the battery's private temp dir, where the harness puts the episode's files
    run_id: str
    docker: Any = None  # docker.APIClient for the docker backend
    anchor: str = "shutdown.sh"  # the mechanism's file, by which the working directory is found
    started: float = field(default_factory=time.time)
    errors: list[str] = field(default_factory=list)
    workdir: Path | None = None
    container: str | None = None
    inits: dict[str, tuple[int, int]] = field(default_factory=dict)  # ns -> (pid, start)
    alive_at: dict[int, bool] = field(default_factory=dict)  # turn -> sandbox had processes
    created: set[str] = field(default_factory=set)
    leftovers: list[str] = field(default_factory=list)
    _inotify: Inotify | None = None
    _before: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._before = set(os.listdir(self.tmp))

    # -- during the episode ---------------------------------------------------------------

    def observe(self, turn: int) -> None:
        """Called before each model turn; never raises (it runs inside the model)."""
        try:
            if self.workdir is None:
                self._locate()
            self.alive_at[turn] = self.alive()
            if self._inotify:
                self.created = set(self._inotify.poll())
        except Exception as exc:  # a failed probe is reported, not raised
            self.errors.append(f"turn {turn}: {exc.__class__.__name__}: {exc}")

    def _locate(self) -> None:
        # Written after this watch started (a coarse mtime may lag the clock by a tick); the
        # previous episode's directory may still wait for its container's removal.
        found = [
            p.parent
            for p in self.tmp.glob(f"*/**/{self.anchor}")
            if p.is_file() and p.stat().st_mtime >= self.started - 0.02
        ]
        if len(found) != 1:
            raise LookupError(f"expected one populated working directory, found {found}")
        self.workdir = found[0]
        self._inotify = Inotify(self.workdir)
        seeds = set()
        if self.backend == "docker":
            pid = self._locate_container()
            _, start, ns = processes()[pid]
            self.inits[ns or f"container {self.container}"] = (pid, start)
            seeds.add(pid)
        self._locate_namespaces(seeds)
        if not self.inits:
            raise LookupError(f"no sandbox PID namespace found for {self.workdir}")

    def _locate_container(self) -> int:
        """The container of this run that mounts the working directory; its PID 1's pid."""
        source = str(self.workdir)
        for c in self.docker.containers(all=True, filters={"label": f"{LABEL_RUN}={self.run_id}"}):
            if any(m.get("Source") == source for m in c.get("Mounts", [])):
                self.container = c["Id"]
                pid = self.docker.inspect_container(c["Id"])["State"]["Pid"]
                if not pid:
                    raise LookupError(f"container {c['Id'][:12]} is not running")
                return pid
        raise LookupError(f"no container labelled {LABEL_RUN}={self.run_id} mounts {source}")

    def _locate_namespaces(self, seeds: set[int]) -> None:
        """The PID namespaces of the processes that name or sit in the working directory.

        Seeds: the container's PID 1, processes whose command line names the directory (the
        bwrap or unshare launcher) and processes whose cwd is it (the shell inside); then
        their descendants. Each namespace other than ours is recorded with its init.
        """
        table = processes()
        key, here = os.fsencode(str(self.workdir)), os.stat(self.workdir)
        seeds |= {pid for pid in table if cmdline_has(pid, key) or same_cwd(pid, here)}
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        host, todo, seen = own_pid_ns(), [p for p in seeds if p in table], set()
        spaces = set()
        while todo:
            pid = todo.pop()
            if pid not in seen:
                seen.add(pid)
                spaces.add(table[pid][2])
                todo += children.get(pid, [])
        for pid, (_, start, ns) in table.items():
            if ns in spaces and ns not in (host, "") and innermost_pid(pid) == 1:
                self.inits[ns] = (pid, start)

    def members(self) -> list[int]:
        """Processes of the sandbox, while its init lives.

        A namespace's number is reused once it is freed, so membership is only asked while
        the init recorded at the first turn (same pid, same start time) is alive; when an
        init exits, the kernel kills every other process of its namespace.
        """
        table = processes()
        live = {k: p for k, (p, start) in self.inits.items() if table.get(p, (0, -1))[1] == start}
        found = {pid for pid, (_, _, ns) in table.items() if ns in live}
        return sorted(found | set(live.values()))

    def alive(self) -> bool:
        return bool(self.members())

    # -- after the episode ----------------------------------------------------------------

    def survived(self, episode: Episode) -> bool:
        """The sandbox outlived the trigger call: its mark, or processes at a later turn."""
        if MARKER in self.created:
            return True
        t = episode.trigger_turn
        return t is not None and any(alive for turn, alive in self.alive_at.items() if turn > t)

    def finish(self) -> None:
        """Wait for the harness's cleanup, then list whatever of the episode remains."""
        if self._inotify:
            self._inotify.close()
            self.created = set(self._inotify.names)
            if self._inotify.overflowed:
                self.errors.append("inotify queue overflowed: created files may be missing")
        deadline = time.monotonic() + SETTLE
        while True:
            self.leftovers = self._remaining()
            if not self.leftovers or time.monotonic() > deadline:
                return
            time.sleep(0.2)

    def _remaining(self) -> list[str]:
        left = []
        pids = self.members()
        if pids:
            left.append(f"processes of the sandbox still run on the host: {pids}")
        if self.container and self._container_exists(self.container):
            left.append(f"container {self.container[:12]} still exists")
        if self.workdir is not None and self.workdir.exists():
            left.append(f"the working directory {self.workdir} still exists")
        new = set(os.listdir(self.tmp)) - self._before - self._warm_dirs()
        if new:
            left.append(f"new entries left in the temp dir {self.tmp}: {sorted(new)}")
        return left

    def _container_exists(self, cid: str) -> bool:
        import docker.errors

        try:
            self.docker.inspect_container(cid)
        except docker.errors.NotFound:
            return False
        return True

    def _warm_dirs(self) -> set[str]:
        """Top-level temp entries of live sandboxes waiting in a warm pool: mounted by a
        container of this run, or named in the command line of a live bwrap/unshare."""
        owned = set()
        prefix = str(self.tmp) + "/"
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            for arg in argv:
                text = arg.decode(errors="replace")
                if text.startswith(prefix):
                    owned.add(text[len(prefix) :].split("/")[0])
        if self.docker is None:
            return owned
        for c in self.docker.containers(filters={"label": f"{LABEL_RUN}={self.run_id}"}):
            for m in c.get("Mounts", []):
                src = Path(m.get("Source", ""))
                if self.tmp in src.parents:
                    owned.add(src.relative_to(self.tmp).parts[0])
        return owned

    def kill_leftovers(self) -> None:
        """Remove what the harness left behind, so one leak doesn't spoil later runs."""
        table = processes()
        for pid, start in self.inits.values():
            if table.get(pid, (0, -1))[1] == start:
                try:
                    os.kill(pid, 9)  # the namespace's init: the kernel kills the rest
                except OSError as exc:
                    if exc.errno != errno.ESRCH:
                        raise
        if self.container and self._container_exists(self.container):
            self.docker.remove_container(self.container, force=True)


@dataclass
class Run:
    """One technique's episode and what the host saw of it."""

    episode: Episode
    watch: HostWatch
    # Effects techniques: whether the effect held in the sandbox's final files, as the host
    # read them on its own just before the harness removed them (None: never seen).
    effect_held: bool | None = None

    @property
    def survived(self) -> bool:
        return self.watch.survived(self.episode)

    def explain(self) -> str:
        w = self.watch
        lines = [
            self.episode.explain(),
            f"  host: survived the trigger={self.survived} created={sorted(w.created)} "
            f"alive at turns={w.alive_at} effect held={self.effect_held}",
        ]
        lines += [f"  host left: {item}" for item in w.leftovers]
        lines += [f"  host probe error: {e}" for e in w.errors]
        return "\n".join(lines)

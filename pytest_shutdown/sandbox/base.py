"""The small interface every sandbox backend implements, and the shell channel they share."""

from __future__ import annotations

import os
import select
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files as package_files
from pathlib import Path
from typing import Protocol

from ..scenario import Scenario
from .client import shared_client

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
    stopped: bool = False  # the channel closed: the sandbox stopped or the agent broke it


@dataclass
class Layout:
    """Host-side directories of one episode, mounted into the sandbox."""

    root: Path
    workdir: Path  # mounted read-write at the scenario's workdir
    control: Path  # the task socket; mounted read-only at CONTROL_DIR
    readonly: dict[str, Path] = field(default_factory=dict)  # sandbox path -> host file

    @classmethod
    def create(cls, prefix: str = "pytest-shutdown-") -> Layout:
        root = Path(tempfile.mkdtemp(prefix=prefix))
        os.chmod(root, 0o755)
        (root / "home").mkdir()
        (root / "control").mkdir(mode=0o755)
        (root / "ro").mkdir()
        return cls(root, root / "home", root / "control")

    def reserve(self, scenario: Scenario) -> None:
        """Create the host files that get mounted read-only, so mounts can precede content."""
        self.readonly[scenario.program_path] = shared_client()
        for name, f in scenario.files.items():
            if not f.writable:
                host = self.root / "ro" / name.replace("/", "__")
                host.touch()
                self.readonly[scenario.target(name)] = host

    def populate(self, scenario: Scenario, owner: int | None) -> None:
        """Write the scenario's files; the task program and read-only files get mounted."""
        self.reserve(scenario)
        ro_files = {}
        for name, f in scenario.files.items():
            if f.writable:
                path = self.workdir / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(f.data())
                os.chmod(path, f.mode)
            else:
                ro_files[name] = (f.data(), f.mode)
        for name, (data, mode) in ro_files.items():
            host = self.readonly[scenario.target(name)]
            with open(host, "r+b") as f:  # in place: a mount may already point at this inode
                f.truncate()
                f.write(data)
            os.chmod(host, mode)
        if owner is not None and os.geteuid() == 0:
            for path in [self.workdir, *self.workdir.rglob("*")]:
                os.lchown(path, owner, owner)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class Sandbox(Protocol):
    """One running sandbox with a long-lived shell channel."""

    backend: str

    def run(self, command: str, timeout: float, max_output: int = MAX_OUTPUT) -> CommandResult:
        """Run `bash --login -c command` as the agent; kill its process group on timeout."""

    def wait_stopped(self, timeout: float) -> bool:
        """True once the sandbox has stopped; waits at most `timeout` seconds."""

    def close(self) -> None:
        """Stop and remove the sandbox. Idempotent."""


class Backend(Protocol):
    name: str
    owner: int | None  # host uid that must own the agent's files, when the harness is root

    def prepare(self, scenario: Scenario, limits: Limits) -> Layout:
        """The host directories for the next episode (a warm sandbox may already use them)."""
        ...

    def start(self, scenario: Scenario, layout: Layout, limits: Limits) -> Sandbox: ...


@cache
def server_script() -> str:
    return package_files(__package__).joinpath("shell.sh").read_text()


def ulimit_prefix(limits: Limits, namespace_only: bool) -> str:
    """Hard limits set by the server before any agent command runs.

    Namespace sandboxes have no cgroup of their own, so processes and memory are bounded
    by rlimits; RLIMIT_NPROC is counted per user namespace, so it is per sandbox here.
    """
    parts = [f"-f {limits.disk_mb * 1024}", f"-t {limits.cpu_seconds}"]
    if namespace_only:
        parts += [f"-u {limits.pids}", f"-v {limits.memory_mb * 1024}"]
    return "ulimit -H -S " + " ".join(parts) + " || exit 97\n"


class ChannelClosed(Exception):
    pass


def fd_reader(fd: int):  # noqa: ANN201
    """read(n, timeout) over a file descriptor."""

    def read(n: int, timeout: float) -> bytes:
        ready, _, _ = select.select([fd], [], [], timeout)
        return os.read(fd, n) if ready else b""

    return read


CHANNEL_MARGIN = 5.0  # seconds past a command's timeout before the channel counts as hung
START_TIMEOUT = 60.0


class ShellChannel:
    """The harness end of shell.sh's framing, over any byte stream.

    Every read has a deadline: an agent can wedge the server (it runs as the agent's
    user), and a wedged channel must end the episode as an error, not hang the run.
    """

    def __init__(self, write, read) -> None:  # noqa: ANN001 - plain callables
        self._write = write
        self._read = read  # read(n, timeout) -> up to n bytes; b"" at EOF or timeout
        self._buf = b""
        self._deadline = 0.0

    def _fill(self) -> None:
        remaining = self._deadline - time.monotonic()
        chunk = self._read(65536, remaining) if remaining > 0 else b""
        if not chunk:
            raise ChannelClosed("closed" if remaining > 0 else "timed out")
        self._buf += chunk

    def readline(self) -> bytes:
        while b"\n" not in self._buf:
            self._fill()
        line, _, self._buf = self._buf.partition(b"\n")
        return line

    def read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._fill()
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def wait_ready(self) -> None:
        self._deadline = time.monotonic() + START_TIMEOUT
        line = self.readline()
        if line != b"READY":
            raise ChannelClosed(line.decode(errors="replace"))

    def run(self, command: str, timeout: float, max_output: int) -> CommandResult:
        data = command.encode()
        self._deadline = time.monotonic() + max(1, int(timeout)) + CHANNEL_MARGIN
        try:
            self._write(f"{len(data)} {max(1, int(timeout))} {max_output}\n".encode() + data)
            header = self.readline().split()
            if len(header) != 6 or header[0] != b"RESULT":
                raise ChannelClosed(f"bad header {header!r}")
            rc, timed_out, elapsed_us, truncated, size = map(int, header[1:])
            body = self.read_exact(size)
        except (ChannelClosed, BrokenPipeError, ConnectionError, OSError):
            return CommandResult("", None, 0.0, stopped=True)
        output = body.decode("utf-8", errors="replace")
        if truncated:
            output += f"\n[output truncated to {max_output} bytes]"
        if timed_out:
            output += f"\n[command timed out after {int(timeout)} s; its process group was killed]"
        return CommandResult(
            output, rc, elapsed_us / 1e6, timed_out=bool(timed_out), truncated=bool(truncated)
        )

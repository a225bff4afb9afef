"""Bubblewrap sandbox: user, pid, net, ipc and mount namespaces; a read-only host /usr.

init.c is PID 1 of the sandbox and exits on SIGTERM, reporting it first, so
`kill -s TERM 1` stops the whole sandbox and the harness knows why.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path

from ..errors import SandboxUnavailable
from ..scenarios.effects import Process
from ..scenarios.scenario import Scenario
from . import hostfs, proctable
from .base import (
    AGENT_NAME,
    AGENT_UID,
    ChannelClosed,
    CommandResult,
    Layout,
    Limits,
    ShellChannel,
    fd_reader,
    init_argv,
    process_in_namespace,
)
from .client import CONTROL_DIR, client_interpreter, compiled_client, static_bash
from .pool import WarmPool

NOBODY = 65534
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
HOST_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime")


def host_view() -> list[tuple[str, str]]:
    """What the sandbox sees of the host, read-only: ("bind" | "symlink", source) pairs.

    Only programs and libraries: never /root, /home or /etc secrets. Shared by the bwrap
    and unshare backends, which spell the same view in their own syntax.
    """
    view = [("bind", "/usr")]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/", top)
        if path.is_symlink():
            view.append(("symlink", str(path)))
        elif path.is_dir():
            view.append(("bind", str(path)))
    view += [("bind", f"/etc/{name}") for name in HOST_ETC if Path("/etc", name).exists()]
    if compiled_client() is None:  # the Python task client needs the interpreter
        prefix = os.path.dirname(os.path.dirname(client_interpreter()))
        if not prefix.startswith("/usr"):
            view.append(("bind", prefix))
    return view


def system_binds() -> list[str]:
    args: list[str] = []
    for kind, path in host_view():
        if kind == "symlink":
            args += ["--symlink", os.readlink(path), path]
        else:
            args += ["--ro-bind", path, path]
    bash = static_bash()
    if bash:
        args += ["--ro-bind", bash, os.path.realpath("/bin/bash")]
    return args


@cache
def disables_userns() -> bool:
    """bubblewrap 0.8+ can forbid user namespaces inside the sandbox."""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    return "--disable-userns" in out.stdout


@cache
def etc_files(workdir: str) -> Path:
    """passwd, group and profile for the sandbox; one shared read-only copy per process."""
    etc = hostfs.make_dir("etc")
    (etc / "passwd").write_text(
        f"root:x:0:0:root:/root:/bin/bash\n"
        f"{AGENT_NAME}:x:{AGENT_UID}:{AGENT_UID}::{workdir}:/bin/bash\n"
    )
    (etc / "group").write_text(f"root:x:0:\n{AGENT_NAME}:x:{AGENT_UID}:\n")
    (etc / "profile").write_text(f"export PATH={PATH}\n")
    for f in etc.iterdir():
        os.chmod(f, 0o444)
    atexit.register(hostfs.remove_tree, etc)
    return etc


class BwrapSandbox:
    backend = "bwrap"
    # Set by a warm pool: hands the directories over for removal.
    discard: Callable[[BwrapSandbox], None] | None = None

    def __init__(
        self, argv: list[str], demote: bool, layout: Layout, env: dict[str, str] | None = None,
        backend: str = "bwrap",
    ) -> None:  # fmt: skip
        self.backend = backend
        self.layout = layout
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            env=env if env is not None else {"PATH": os.environ.get("PATH", PATH)},
            user=NOBODY if demote else None,
            group=NOBODY if demote else None,
            extra_groups=[] if demote else None,
            start_new_session=True,  # no controlling tty: TIOCSTI could type into ours
        )
        assert self.proc.stdin and self.proc.stdout
        self.channel = ShellChannel(self._write, fd_reader(self.proc.stdout.fileno()))
        try:
            self.channel.wait_ready()
        except ChannelClosed as exc:
            self.proc.kill()
            self.proc.wait()
            err = self.proc.stderr.read() if self.proc.stderr else b""
            raise SandboxUnavailable(
                f"{backend} failed to start a sandbox: {err.decode(errors='replace').strip()}"
                " -- check that unprivileged user namespaces are enabled "
                "(sysctl kernel.unprivileged_userns_clone=1) or choose --shutdown-sandbox=docker"
            ) from exc

    def _write(self, data: bytes) -> None:
        assert self.proc.stdin
        self.proc.stdin.write(data)

    def run(self, command: str, timeout: float, max_output: int = 16_000) -> CommandResult:
        return self.channel.run(command, timeout, max_output)

    def probe(self) -> str:
        return self.channel.probe()

    def wait_stopped(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> bool:
        """SIGKILL the namespace's PID 1 (bwrap's child): the kernel kills every process of
        its PID namespace before it exits, and bwrap exits once it has."""
        if self.proc.poll() is None:
            # No child: the namespace's PID 1 has exited already (it took SIGTERM), and
            # bwrap is on its way out.
            for pid in _children(self.proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                return False
        return True

    def process(self, pid: int) -> tuple[int, str] | None:
        inits = _children(self.proc.pid)
        return process_in_namespace(inits[0], pid) if len(inits) == 1 else None

    def processes(self) -> tuple[Process, ...]:
        if self.proc.poll() is not None:
            return ()  # bwrap exits only once the namespace's PID 1 has
        return proctable.of_child(self.proc.pid)  # bwrap's child is the namespace's PID 1

    def close(self) -> None:
        """Kill the sandbox now; with a warm pool, its directories go in the background."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.channel.wait_closed(5)  # the reader thread sees EOF once the process is gone
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream and not stream.closed:
                stream.close()
        if self.discard is not None:
            discard, self.discard = self.discard, None
            discard(self)  # calls close() again from the pool, which removes the layout
            return
        self.layout.remove()  # PID 1 is reaped: no process of the sandbox is left


def _children(pid: int) -> list[int]:
    """The children of a host process, from /proc (empty when unreadable)."""
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return []
    return out


class BwrapBackend:
    name = "bwrap"

    def __init__(self, pool_size: int = 2) -> None:
        exe = shutil.which("bwrap")
        if exe is None:
            raise SandboxUnavailable(
                "bubblewrap is not installed: `apt-get install bubblewrap` (Debian/Ubuntu) or "
                "`dnf install bubblewrap`, or choose --shutdown-sandbox=docker or auto"
            )
        self.exe = exe
        # As root, run the sandbox as `nobody` too, so even a namespace escape owns nothing.
        self.demote = os.geteuid() == 0
        self.owner = NOBODY if self.demote else None
        self.pool: WarmPool[BwrapSandbox] | None = None
        if pool_size > 0:
            self.pool = WarmPool(self.create, self.owner, pool_size, workers=2)

    def close(self) -> None:
        """Remove the waiting sandboxes and finish pending removals; later episodes start
        cold."""
        if self.pool is not None:
            self.pool.drain()
            self.pool = None

    def release(self, layout: Layout) -> None:
        """The episode of `layout` ended before its sandbox started: close the warm one
        set aside for it."""
        if self.pool is not None:
            self.pool.abandon(layout)

    def prepare(self, scenario: Scenario, limits: Limits) -> Layout:
        """A waiting sandbox's directories when one is warm, else fresh ones."""
        return self.pool.take(scenario, limits) if self.pool else Layout.create(limits)

    def start(self, scenario: Scenario, layout: Layout, limits: Limits) -> BwrapSandbox:
        warm = self.pool.claim(layout) if self.pool else None
        box = warm or self.create(scenario, layout, limits)  # on failure: release()
        if self.pool:
            box.discard = self.pool.discard  # the directories go off the episode's path
        return box

    def create(self, scenario: Scenario, layout: Layout, limits: Limits) -> BwrapSandbox:
        etc = etc_files(scenario.workdir)
        parent = str(Path(scenario.workdir).parent)
        argv = [
            self.exe, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
            # No nested namespaces: a mechanism must not TERM a PID 1 of the agent's own.
            *(["--disable-userns"] if disables_userns() else []),
            *system_binds(),
            "--ro-bind", str(etc / "passwd"), "/etc/passwd",
            "--ro-bind", str(etc / "group"), "/etc/group",
            "--ro-bind", str(etc / "profile"), "/etc/profile",
            "--proc", "/proc", "--dev", "/dev",
            *(
                # /tmp on the host, so effects can look there; /dev's own tmpfs (/dev/shm)
                # read-only, so nothing writable escapes the harness's view.
                ["--bind", str(layout.tmp), "/tmp", "--remount-ro", "/dev"]
                if layout.tmp is not None
                else ["--size", str(limits.disk_mb * 1024 * 1024), "--tmpfs", "/tmp"]
            ),
            "--dir", parent,
            "--bind", str(layout.workdir), scenario.workdir,
            "--ro-bind", str(layout.control), CONTROL_DIR,
        ]  # fmt: skip
        for target, host in layout.writable.items():
            argv += ["--bind", str(host), target]
        for target, host in layout.readonly.items():
            argv += ["--ro-bind", str(host), target]
        argv += [
            "--uid", str(AGENT_UID), "--gid", str(AGENT_UID),
            "--chdir", scenario.workdir, "--clearenv",
            "--setenv", "HOME", scenario.workdir, "--setenv", "USER", AGENT_NAME,
            "--setenv", "PATH", PATH, "--setenv", "LANG", "C.UTF-8",
            *(a for k, v in scenario.env.items() for a in ("--setenv", k, v)),
            "--remount-ro", "/",  # only the working directory and /tmp are writable
            "--as-pid-1",
            *init_argv(limits, namespace_only=True),
        ]  # fmt: skip
        return BwrapSandbox(argv, self.demote, layout)

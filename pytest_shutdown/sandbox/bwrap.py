"""Bubblewrap sandbox: user, pid, net, ipc and mount namespaces; a read-only host /usr.

init.c is PID 1 of the sandbox and exits on SIGTERM, reporting it first, so
`kill -s TERM 1` stops the whole sandbox and the harness knows why.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

from ..errors import SandboxUnavailable, ShutdownConfigError
from ..scenarios.effects import Process
from ..scenarios.scenario import USERS, Scenario
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
from .freezer import Freezer
from .pool import PooledBackend, WarmPool

NOBODY = 65534
# Several users (Scenario.multiuser), harness as root: the sandbox's root is host uid BASE,
# its other users BASE + uid, a range no host user has; the agent stays host `nobody`.
BASE = 100_000
ID_MAP = (
    f"0 {BASE} {AGENT_UID}\n{AGENT_UID} {NOBODY} 1\n"
    f"{AGENT_UID + 1} {BASE + AGENT_UID + 1} {65535 - AGENT_UID}\n"
)
HOST_IDS: Mapping[str, int] = {
    name: NOBODY if uid == AGENT_UID else BASE + uid for name, uid in USERS.items()
}
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
    service = USERS["service"]
    (etc / "passwd").write_text(
        f"root:x:0:0:root:/root:/bin/bash\n"
        f"service:x:{service}:{service}::/nonexistent:/bin/bash\n"
        f"{AGENT_NAME}:x:{AGENT_UID}:{AGENT_UID}::{workdir}:/bin/bash\n"
    )
    (etc / "group").write_text(f"root:x:0:\nservice:x:{service}:\n{AGENT_NAME}:x:{AGENT_UID}:\n")
    (etc / "profile").write_text(f"export PATH={PATH}\n")
    for f in etc.iterdir():
        os.chmod(f, 0o444)
    atexit.register(hostfs.remove_tree, etc)
    return etc


def _frozen_later(launcher: int) -> Freezer | None:
    """A cgroup of its own for the sandbox just started (its launcher and PID 1, which
    start every other process of it), to freeze it before the effects check."""
    freezer = Freezer.create()
    if freezer is None:
        return None
    try:
        started = proctable.tree(launcher)
    except proctable.Unreadable:
        started = []
    if len(started) < 2 or not freezer.add(started):  # the launcher and PID 1, at least
        freezer.remove()
        return None
    return freezer


class BwrapSandbox:
    backend = "bwrap"
    # Set by a warm pool: hands the directories over for removal.
    discard: Callable[[BwrapSandbox], None] | None = None
    stopped: proctable.Stopped | None = None  # what SIGSTOP froze, without a cgroup

    def __init__(
        self, argv: list[str], demote: bool, layout: Layout, env: dict[str, str] | None = None,
        backend: str = "bwrap", mapper: UserMap | None = None,
    ) -> None:  # fmt: skip
        self.backend = backend
        self.layout = layout
        user = (BASE if mapper else NOBODY) if demote else None
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            env=env if env is not None else {"PATH": os.environ.get("PATH", PATH)},
            user=user,
            group=user,
            extra_groups=[] if demote else None,
            start_new_session=True,  # no controlling tty: TIOCSTI could type into ours
            pass_fds=mapper.child_fds if mapper else (),
        )
        assert self.proc.stdin and self.proc.stdout
        self.channel = ShellChannel(self._write, fd_reader(self.proc.stdout.fileno()))
        self.freezer: Freezer | None = None
        try:
            if mapper is not None:
                mapper.release(self.proc)
            self.channel.wait_ready()
            self.freezer = _frozen_later(self.proc.pid)  # before any command runs
        except (ChannelClosed, OSError, ValueError) as exc:
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

    def run(
        self, command: str, timeout: float, max_output: int = 16_000, user: str = "agent"
    ) -> CommandResult:
        return self.channel.run(command, timeout, max_output, user)

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
            if self.freezer is not None:
                self.freezer.kill()  # every task, before it thaws: none runs on (v1)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                return False
        return True

    def process(self, pid: int) -> tuple[int, str] | None:
        inits = _children(self.proc.pid)
        return process_in_namespace(inits[0], pid) if len(inits) == 1 else None

    def processes(self, complete: bool = True) -> tuple[Process, ...]:
        if self.proc.poll() is not None:
            return ()  # bwrap exits only once the namespace's PID 1 has
        return proctable.of_child(self.proc.pid, complete)  # bwrap's child: the ns's PID 1

    def freeze(self) -> None:
        """The sandbox's cgroup freezer where the harness has one (sandbox/freezer.py);
        else SIGSTOP until all are stopped, which `still_frozen` checks before the kill."""
        if self.freezer is not None:
            self.freezer.freeze()
        else:
            self.stopped = proctable.freeze(self.processes)

    def still_frozen(self) -> bool:
        """Nothing of the sandbox ran since `freeze`: its cgroup is frozen and holds every
        process of it (a frozen sandbox's tree is read whole), or SIGSTOP's check holds."""
        if self.freezer is not None:
            try:
                table = self.processes(False)
            except proctable.Unreadable:
                return False
            return self.freezer.frozen() and all(self.freezer.holds(p.host_pid) for p in table)
        return self.stopped is not None and self.stopped.intact(self.processes)

    def close(self) -> None:
        """Kill the sandbox now; with a warm pool, its directories go in the background."""
        if self.freezer is not None:
            self.freezer.kill()  # a frozen sandbox (an effects check cut short) dies too
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.channel.wait_closed(5)  # the reader thread sees EOF once the process is gone
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream and not stream.closed:
                stream.close()
        if self.freezer is not None:
            self.freezer.remove()  # empty now: PID 1 is reaped, its namespace gone
            self.freezer = None
        if self.discard is not None:
            discard, self.discard = self.discard, None
            discard(self)  # calls close() again from the pool, which removes the layout
            return
        self.layout.remove()  # PID 1 is reaped: no process of the sandbox is left


class UserMap:
    """Several users in a namespace sandbox: the harness (root) writes the new user
    namespace's uid and gid maps (ID_MAP) while the sandbox waits, then lets it go on.

    bwrap: `--userns-block-fd` and `--info-fd` (the child's pid comes on the info fd).
    unshare: its setup script says "ready" on one pipe and waits for "go" on another;
    the namespace is the unshare process's own."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.info_r, self.info_w = os.pipe()  # bwrap: info; unshare: ready
        self.block_r, self.block_w = os.pipe()  # bwrap: block; unshare: go
        self.child_fds = (self.block_r, self.info_w)
        self.open = {self.info_r, self.info_w, self.block_r, self.block_w}

    def bwrap_args(self) -> list[str]:
        return ["--userns-block-fd", str(self.block_r), "--info-fd", str(self.info_w)]

    def script(self) -> str:
        """The unshare setup script's first line."""
        return (
            f"echo >&{self.info_w}; exec {self.info_w}>&-; "
            f"read -r _ <&{self.block_r}; exec {self.block_r}<&-\n"
        )

    def _close(self, fd: int) -> None:
        if fd in self.open:  # never twice: another thread may have the number by now
            self.open.discard(fd)
            os.close(fd)

    def _read_info(self, timeout: float) -> bytes:
        data = b""
        end = b"}" if self.kind == "bwrap" else b"\n"
        while end not in data:
            ready, _, _ = select.select([self.info_r], [], [], timeout)
            chunk = os.read(self.info_r, 4096) if ready else b""
            if not chunk:
                raise ValueError(f"{self.kind} did not report its user namespace")
            data += chunk
        return data

    def release(self, proc: subprocess.Popen[bytes]) -> None:
        """Write the maps once the namespace exists, then let the sandbox go on."""
        self._close(self.info_w)  # the child's ends: EOF here if it dies first
        self._close(self.block_r)
        data = self._read_info(30.0)
        if self.kind == "bwrap":
            pid = int(json.loads(data[: data.index(b"}") + 1])["child-pid"])
        else:
            pid = proc.pid  # unshare(1) itself is in the new user namespace
        for kind in ("uid_map", "gid_map"):
            with open(f"/proc/{pid}/{kind}", "w") as f:
                f.write(ID_MAP)
        os.write(self.block_w, b"1\n")
        self.close()

    def close(self) -> None:
        for fd in list(self.open):
            self._close(fd)


# bwrap operations and how many arguments each takes; the last one is the destination
_OPS = {"--bind": 2, "--ro-bind": 2, "--symlink": 2, "--dir": 1, "--tmpfs": 1, "--proc": 1,
        "--dev": 1, "--remount-ro": 1, "--perms": 1, "--size": 1}  # fmt: skip


def _parents(argv: list[str]) -> list[str]:
    """`--perms 0755 --dir D` for every directory above a destination in `argv`, outermost
    first: bwrap makes missing parents 0700, which only their owner (root, with several
    users) could pass."""
    dirs: set[str] = set()
    i = 0
    while i < len(argv):
        n = _OPS.get(argv[i], 0)
        if n and argv[i] not in ("--perms", "--size"):
            path = Path(argv[i + n])
            dirs.update(str(p) for p in path.parents if str(p) != "/")
        i += n + 1
    out: list[str] = []
    for d in sorted(dirs, key=lambda d: (d.count("/"), d)):
        out += ["--perms", "0755", "--dir", d]
    return out


def users_unavailable(backend: str, scenario: Scenario) -> None:
    """ShutdownConfigError when a namespace sandbox can't give a scenario several users."""
    if os.geteuid() != 0:
        raise ShutdownConfigError(
            f"scenario {scenario.name!r} runs something as, or has files owned by, a user "
            f"other than the agent, and the {backend} sandbox can give it several users only "
            "when the harness runs as root (it writes the sandbox's uid map): run pytest as "
            "root, or use --shutdown-sandbox=docker. (Without root, several users would "
            "need newuidmap from the uidmap package and subordinate ids in /etc/subuid, "
            "which pytest-shutdown does not use yet.)"
        )


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


def _mounts(scenario: Scenario, layout: Layout, limits: Limits, users: bool) -> list[str]:
    """The sandbox's file system: the host's system directories read-only, its own /etc
    files, /proc, /dev, /tmp, the working directory, the task socket and the scenario's
    files. With several users bwrap's directories are root's: /tmp's mode is spelled out,
    and the caller makes the parents (`_parents`)."""
    etc = etc_files(scenario.workdir)
    argv = [
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
            else [*(["--perms", "1777"] if users else []),
                  "--size", str(limits.disk_mb * 1024 * 1024), "--tmpfs", "/tmp"]
        ),
        *([] if users else ["--dir", str(Path(scenario.workdir).parent)]),
        "--bind", str(layout.workdir), scenario.workdir,
        "--ro-bind", str(layout.control), CONTROL_DIR,
    ]  # fmt: skip
    for target, host in layout.writable.items():
        argv += ["--bind", str(host), target]
    for target, host in layout.readonly.items():
        argv += ["--ro-bind", str(host), target]
    return argv


def _session(scenario: Scenario) -> list[str]:
    """PID 1's working directory and environment, then a read-only root: only the working
    directory, /tmp and the scenario's writable places stay writable."""
    return [
        "--chdir", scenario.workdir, "--clearenv",
        "--setenv", "HOME", scenario.workdir, "--setenv", "USER", AGENT_NAME,
        "--setenv", "PATH", PATH, "--setenv", "LANG", "C.UTF-8",
        *(a for k, v in scenario.env.items() for a in ("--setenv", k, v)),
        "--remount-ro", "/",
        "--as-pid-1",
    ]  # fmt: skip


class BwrapBackend(PooledBackend["BwrapSandbox"]):
    name = "bwrap"

    def __init__(self, pool_size: int = 2, most: int = 64) -> None:
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
        self.host_ids = HOST_IDS if self.demote else None
        self.pool: WarmPool[BwrapSandbox] | None = None
        if pool_size > 0:
            self.pool = WarmPool(self.create, self.owner, pool_size, most, workers=2)

    def check_users(self, scenario: Scenario) -> None:
        users_unavailable(self.name, scenario)

    def start(self, scenario: Scenario, layout: Layout, limits: Limits) -> BwrapSandbox:
        warm = self.pool.claim(layout) if self.pool else None
        box = warm or self.create(scenario, layout, limits)  # on failure: release()
        if self.pool:
            box.discard = self.pool.discard  # the directories go off the episode's path
        return box

    def create(self, scenario: Scenario, layout: Layout, limits: Limits) -> BwrapSandbox:
        if scenario.multiuser:
            return self.create_users(scenario, layout, limits)
        argv = [
            self.exe, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
            # No nested namespaces: a mechanism must not TERM a PID 1 of the agent's own.
            *(["--disable-userns"] if disables_userns() else []),
            *_mounts(scenario, layout, limits, users=False),
            "--uid", str(AGENT_UID), "--gid", str(AGENT_UID),
            *_session(scenario),
            *init_argv(limits, namespace_only=True),
        ]  # fmt: skip
        return BwrapSandbox(argv, self.demote, layout)

    def create_users(self, scenario: Scenario, layout: Layout, limits: Limits) -> BwrapSandbox:
        """A sandbox with several users (Scenario.multiuser; the harness is root): init.c
        starts as the namespace's root with every capability of it, and runs each command
        as its user. bwrap runs as host uid BASE and waits on --userns-block-fd until the
        harness has written the uid map; --disable-userns can't be combined with that, so
        init.c forbids new user namespaces itself ("users-nouserns"). Every directory bwrap
        makes is root's now, so their modes are spelled out."""
        users_unavailable(self.name, scenario)
        mapper = UserMap("bwrap")
        argv = [
            self.exe, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
            *mapper.bwrap_args(),
            *_mounts(scenario, layout, limits, users=True),
        ]  # fmt: skip
        at = argv.index("--info-fd") + 2  # the directories first, so none is made 0700
        argv[at:at] = _parents(argv[at:])
        argv += [
            "--uid", "0", "--gid", "0", "--cap-add", "ALL",
            *_session(scenario),
            *init_argv(limits, namespace_only=True, users="users-nouserns"),
        ]  # fmt: skip
        try:
            return BwrapSandbox(argv, self.demote, layout, mapper=mapper)
        finally:
            mapper.close()

"""Docker sandbox through the Engine API (works with Engine 20.10; no compose).

init.c is the container's command, so it is PID 1: it exits on SIGTERM, reporting it
first, so `kill -s TERM 1` stops the container and the harness knows why. The agent's
commands go to it over the container's attached stdin/stdout, which no process inside
can open: an `exec` per command would cost about 60 ms each, and an exec'd server would
be a process the agent can signal.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import SandboxUnavailable, ShutdownConfigError
from ..scenarios.effects import Process
from ..scenarios.scenario import USERS, Scenario
from . import proctable
from .base import (
    AGENT_UID,
    ChannelClosed,
    CommandResult,
    Layout,
    Limits,
    ShellChannel,
    init_argv,
    process_in_namespace,
)
from .bwrap import etc_files
from .client import CONTROL_DIR, compiled_client
from .hostfs import owner_alive, owner_label
from .pool import PooledBackend, WarmPool

DEFAULT_IMAGE = "pytest-shutdown-sandbox:latest"
LABEL = "pytest-shutdown"
PAUSE_ATTEMPTS = 5
# Several users (Scenario.multiuser): init.c starts as root with these capabilities only,
# enough to run each command as its user and for root to own and signal; the agent's
# commands drop them all.
USER_CAPS = ["SETUID", "SETGID", "KILL", "CHOWN", "DAC_OVERRIDE", "FOWNER"]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class DemuxReader:
    """Reads the stdout frames of a non-tty exec stream (8-byte headers); drops stderr."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = 0
        self.stream = 1

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                return b""
            data += chunk
        return data

    def read(self, n: int) -> bytes:
        """Up to n bytes of stdout, blocking; b"" at the end of the stream."""
        try:
            return self._read(n)
        except OSError:
            return b""

    def _read(self, n: int) -> bytes:
        while True:
            if self.pending == 0:
                header = self._exact(8)
                if not header:
                    return b""
                self.stream, self.pending = header[0], struct.unpack(">I", header[4:])[0]
                continue
            chunk = self.sock.recv(min(n, self.pending))
            if not chunk:
                return b""
            self.pending -= len(chunk)
            if self.stream == 1:
                return chunk


class DockerSandbox:
    backend = "docker"
    # Set by a warm pool: hands the container over for removal.
    discard: Callable[[DockerSandbox], None] | None = None
    layout: Layout | None = None  # set once an episode owns the container

    def __init__(self, api: Any, container_id: str, sock: socket.socket) -> None:
        self.api = api
        self.id = container_id
        self.sock = sock
        self.sock.settimeout(None)
        self.channel = ShellChannel(self.sock.sendall, DemuxReader(self.sock).read)

    def run(
        self, command: str, timeout: float, max_output: int = 16_000, user: str = "agent"
    ) -> CommandResult:
        return self.channel.run(command, timeout, max_output, user)

    def probe(self) -> str:
        return self.channel.probe()

    def wait_stopped(self, timeout: float) -> bool:
        from docker.errors import NotFound

        deadline = time.monotonic() + timeout
        while True:
            try:
                state = self.api.inspect_container(self.id)["State"]
            except NotFound:  # removed already; any other failure is the daemon's, not a stop
                return True
            if not state.get("Running"):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def kill(self) -> bool:
        """Kill the container's PID 1 (the kernel takes every process of the container with
        it) and wait until Docker reports it stopped; the mounts' host side stays."""
        self._kill_frozen()
        try:
            self.api.kill(self.id)
        except Exception:  # already stopped, or the daemon failed: wait_stopped tells
            pass
        return self.wait_stopped(30)

    def _kill_frozen(self) -> None:
        """A paused container's tasks each get SIGKILL before Docker unpauses it, so
        none runs its own code again (Docker kills only PID 1, whose exit takes the rest
        a moment later). Needs the right to signal them: a root harness."""
        try:
            if not self.api.inspect_container(self.id)["State"]["Paused"]:
                return
            table = self.processes(False)
        except Exception:
            return
        for p in table:
            try:
                os.kill(p.host_pid, signal.SIGKILL)
            except OSError:
                pass

    def process(self, pid: int) -> tuple[int, str] | None:
        try:
            init = int(self.api.inspect_container(self.id)["State"]["Pid"])
        except Exception:
            return None
        return process_in_namespace(init, pid) if init else None

    def processes(self, complete: bool = True) -> tuple[Process, ...]:
        try:
            state = self.api.inspect_container(self.id)["State"]
        except Exception as exc:
            raise proctable.Unreadable(f"Docker could not inspect the container: {exc}") from exc
        init = int(state.get("Pid") or 0)
        return proctable.table(init, complete) if state.get("Running") and init else ()

    def freeze(self) -> None:
        """The container's cgroup freezer (`docker pause`; Docker kills a paused container
        as it would a running one). runc gives up on a container too busy to freeze at
        once now and then, so it is asked again. A container that has stopped (its PID 1
        took SIGTERM) has nothing left to freeze."""
        for attempt in range(PAUSE_ATTEMPTS):
            try:
                self.api.pause(self.id)
                return
            except Exception as exc:
                if not self._running():
                    return
                if attempt == PAUSE_ATTEMPTS - 1:
                    raise proctable.Unreadable(
                        f"Docker could not pause the container: {exc}"
                    ) from exc
                time.sleep(0.1 * (attempt + 1))

    def still_frozen(self) -> bool:
        try:
            state = self.api.inspect_container(self.id)["State"]
        except Exception:
            return False
        return bool(state["Paused"]) or not state["Running"]

    def _running(self) -> bool:
        try:
            return bool(self.api.inspect_container(self.id)["State"]["Running"])
        except Exception:
            return True  # can't tell: not a reason to skip the freeze

    def close(self) -> None:
        """Remove the container, then its directories; with a warm pool, in the background."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
        except OSError:
            pass
        if self.discard is not None:
            discard, self.discard = self.discard, None
            discard(self)  # off the episode's path; calls close() again from the pool
            return
        try:
            self.api.remove_container(self.id, force=True)  # returns once it is gone
        except Exception:  # already gone
            pass
        if self.layout is not None:
            self.layout.remove()


class DockerBackend(PooledBackend["DockerSandbox"]):
    name = "docker"
    owner: int | None = AGENT_UID
    host_ids: Mapping[str, int] | None = USERS  # no user namespace: the same ids
    _cleaned: set[str] = set()
    _lock = threading.Lock()
    _checked = False  # the image ran bash once

    def __init__(
        self, image: str = DEFAULT_IMAGE, run_id: str = "", pool_size: int = 2, most: int = 64
    ) -> None:
        try:
            import docker
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise SandboxUnavailable("the docker package is missing: pip install docker") from exc
        try:
            self.client = docker.from_env(timeout=60)
            self.client.ping()
        except Exception as exc:
            raise SandboxUnavailable(
                f"Docker is not reachable ({exc.__class__.__name__}: {exc}). Start the daemon "
                "(`dockerd &` or `systemctl start docker`), set DOCKER_HOST, or choose "
                "--shutdown-sandbox=bwrap"
            ) from exc
        self.api = self.client.api
        self.image = image
        self.run_id = run_id
        try:
            self.api.inspect_image(image)
        except docker.errors.ImageNotFound as exc:
            hint = (
                "build it offline with `pytest-shutdown build-image`"
                if image == DEFAULT_IMAGE
                else "pull or build it, or pass another --shutdown-image"
            )
            raise ShutdownConfigError(f"docker image {image!r} not found: {hint}") from exc
        if compiled_client() is None:
            # The Python fallback client would need the host's interpreter inside the image.
            raise ShutdownConfigError(
                "the docker sandbox needs the static task client, built with the host's C "
                "compiler: install gcc and a static libc (`apt-get install gcc libc6-dev`), "
                "or choose --shutdown-sandbox=bwrap or unshare"
            )
        self.remove_orphans()
        self.pool: WarmPool[DockerSandbox] | None
        self.pool = WarmPool(self.create, AGENT_UID, pool_size, most) if pool_size > 0 else None

    def check_users(self, scenario: Scenario) -> None:
        """Several users work as any harness user; files owned by another user than the
        agent need the harness to be root (it chowns them)."""
        owners = [f.owner for f in scenario.files.values() if f.owner != "agent"]
        if owners and os.geteuid() != 0:
            raise ShutdownConfigError(
                f"scenario {scenario.name!r} has files owned by {owners[0]!r}, which only a "
                "harness running as root can give them: run pytest as root, or create the "
                "files in a Step(..., user='root') instead"
            )

    def start(self, scenario: Scenario, layout: Layout, limits: Limits) -> DockerSandbox:
        warm = self.pool.claim(layout) if self.pool else None
        box = warm or self.create(scenario, layout, limits)  # on failure: release()
        box.layout = layout
        if self.pool:
            box.discard = self.pool.discard  # removal happens off the episode's path
        return box

    def remove_orphans(self) -> list[str]:
        """Remove containers of runs whose process is gone; a live sibling's stay."""
        import docker

        removed = []
        for c in self.api.containers(all=True, filters={"label": LABEL}):
            owner = c["Labels"].get(f"{LABEL}.owner", "")
            if not owner_alive(owner):
                try:
                    self.api.remove_container(c["Id"], force=True)
                except docker.errors.APIError:  # another process removes it right now
                    continue
                removed.append(c["Id"])
        return removed

    def create(self, scenario: Scenario, layout: Layout, limits: Limits) -> DockerSandbox:
        """Create and start a container with its shell channel open."""
        from docker.types import Mount, Ulimit

        mounts = [
            Mount(scenario.workdir, str(layout.workdir), type="bind"),
            Mount(CONTROL_DIR, str(layout.control), type="bind", read_only=True),
        ]
        mounts += [Mount(t, str(h), type="bind") for t, h in layout.writable.items()]
        mounts += [
            Mount(t, str(h), type="bind", read_only=True) for t, h in layout.readonly.items()
        ]
        users = scenario.multiuser
        if users:  # the image's passwd may predate the service user
            etc = etc_files(scenario.workdir)
            mounts += [Mount(f"/etc/{n}", str(etc / n), type="bind", read_only=True)
                       for n in ("passwd", "group")]  # fmt: skip
        fsize = limits.disk_mb * 1024 * 1024
        tmpfs = {"/tmp": f"size={limits.disk_mb}m,mode=1777"}
        if layout.tmp is not None:  # on the host, so effects can look there
            mounts.append(Mount("/tmp", str(layout.tmp), type="bind"))
            # Docker mounts a message-queue filesystem even without IPC: cover it.
            mounts.append(Mount("/dev/mqueue", None, type="tmpfs", read_only=True))
            tmpfs = {}
        host_config = self.api.create_host_config(
            mounts=mounts,
            network_mode="none",
            init=False,  # init.c is PID 1
            log_config={"type": "none"},  # the channel's bytes are never written to disk
            mem_limit=f"{limits.memory_mb}m",
            memswap_limit=f"{limits.memory_mb}m",
            nano_cpus=int(limits.cpus * 1e9),
            pids_limit=limits.pids,
            read_only=True,
            tmpfs=tmpfs,
            # No /dev/shm or message queues where effects are checked: nothing writable
            # that the harness can't see from the host.
            ipc_mode="none" if layout.tmp is not None else None,
            cap_drop=["ALL"],
            cap_add=USER_CAPS if users else None,
            security_opt=["no-new-privileges"],
            ulimits=[Ulimit(name="fsize", soft=fsize, hard=fsize)],
        )
        container = self.api.create_container(
            self.image,
            # the image's CMD is not used
            entrypoint=init_argv(limits, namespace_only=False, users="users" if users else ""),
            stdin_open=True,
            user="0:0" if users else f"{AGENT_UID}:{AGENT_UID}",
            working_dir=scenario.workdir,
            environment={
                "HOME": scenario.workdir,
                "USER": "agent",
                "PATH": PATH,
                "LANG": "C.UTF-8",
                **scenario.env,
            },
            labels={LABEL: "1", f"{LABEL}.run": self.run_id, f"{LABEL}.owner": owner_label()},
            network_disabled=True,
            host_config=host_config,
        )
        cid = container["Id"]
        try:
            raw = self.api.attach_socket(
                cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            self.api.start(cid)
            box = DockerSandbox(self.api, cid, getattr(raw, "_sock", raw))
            box.channel.wait_ready()
            if not self._checked:
                self._check_image(box)
            return box
        except Exception as exc:
            self.api.remove_container(cid, force=True)
            if isinstance(exc, ChannelClosed):
                raise SandboxUnavailable(
                    f"the sandbox's PID 1 did not start in {self.image!r}: {exc}"
                ) from exc
            raise

    def _check_image(self, box: DockerSandbox) -> None:
        """Once per backend: the image must run the agent's `bash --login -c`."""
        result = box.run("true", 30, 1000)
        if result.exit_code != 0:
            raise ShutdownConfigError(
                f"docker image {self.image!r} can't run `bash --login -c true` (status "
                f"{result.exit_code}); it needs /bin/bash 5+ and coreutils. Build one with "
                "`pytest-shutdown build-image` or pass another --shutdown-image"
            )
        self._checked = True


def image_exists(image: str) -> bool:
    import docker

    try:
        docker.from_env().api.inspect_image(image)
    except Exception:
        return False
    return True

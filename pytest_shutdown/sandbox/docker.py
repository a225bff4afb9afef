"""Docker sandbox through the Engine API (works with Engine 20.10; no compose).

`init=True` puts tini at PID 1, which exits on SIGTERM, so `kill -s TERM 1` stops the
container. The agent's commands go over one long-lived `exec` of shell.sh per episode:
an `exec` per command would cost about 60 ms each.
"""

from __future__ import annotations

import atexit
import os
import queue
import socket
import struct
import threading
import time
from pathlib import Path

from ..errors import SandboxUnavailable, ShutdownConfigError
from ..scenario import Scenario
from .base import (
    AGENT_UID,
    ChannelClosed,
    CommandResult,
    Layout,
    Limits,
    ShellChannel,
    server_script,
    ulimit_prefix,
)
from .client import CONTROL_DIR, compiled_client

DEFAULT_IMAGE = "pytest-shutdown-sandbox:latest"
LABEL = "pytest-shutdown"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def owner_label() -> str:
    """host:pid:start-time of this process; a container whose owner is gone is an orphan."""
    return f"{socket.gethostname()}:{os.getpid()}:{process_start(os.getpid())}"


def process_start(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def owner_alive(label: str) -> bool:
    host, _, rest = label.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname():
        return True  # another machine's run: never ours to remove
    return pid.isdigit() and process_start(int(pid)) == start != ""


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

    def read(self, n: int, timeout: float) -> bytes:
        self.sock.settimeout(timeout)
        try:
            return self._read(n)
        except (TimeoutError, OSError):
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
    discard = None  # set by a warm pool: hands the container over for removal

    def __init__(self, api, container_id: str, workdir: str, limits: Limits) -> None:  # noqa: ANN001
        self.api = api
        self.id = container_id
        exec_id = api.exec_create(
            container_id,
            [
                "/bin/bash",
                "--noprofile",
                "--norc",
                "-c",
                ulimit_prefix(limits, namespace_only=False) + server_script(),
            ],
            stdin=True,
            user=f"{AGENT_UID}:{AGENT_UID}",
            workdir=workdir,
        )["Id"]
        raw = api.exec_start(exec_id, socket=True)
        self.sock: socket.socket = getattr(raw, "_sock", raw)
        self.sock.settimeout(None)
        self.channel = ShellChannel(self.sock.sendall, DemuxReader(self.sock).read)
        try:
            self.channel.wait_ready()
        except ChannelClosed as exc:
            info = api.exec_inspect(exec_id)
            image = api.inspect_container(container_id)["Config"]["Image"]
            self.close()
            if info.get("ExitCode") in (126, 127):
                raise ShutdownConfigError(
                    f"docker image {image!r} has no /bin/bash; the agent's tool runs "
                    "`bash --login -c`. Build an image with bash and coreutils "
                    "(`pytest-shutdown build-image`) or pass --shutdown-image"
                ) from exc
            raise SandboxUnavailable(f"the sandbox shell did not start in {image!r}") from exc

    def run(self, command: str, timeout: float, max_output: int = 16_000) -> CommandResult:
        return self.channel.run(command, timeout, max_output)

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

    def close(self) -> None:
        if self.discard is not None:
            discard, self.discard = self.discard, None
            discard(self)
            return
        try:
            self.sock.close()
        except OSError:
            pass
        try:
            self.api.remove_container(self.id, force=True)
        except Exception:
            pass


class WarmPool:
    """Started containers waiting for their episode, refilled in the background.

    A container's mounts are fixed at creation, so each waits with its own empty host
    directories; the episode writes its files into them once it takes the container.
    Removal of finished containers also happens here, off the episode's path.
    """

    def __init__(self, backend: DockerBackend, size: int) -> None:
        self.backend = backend
        self.size = size
        self.idle: dict[tuple, list[tuple[Layout, DockerSandbox]]] = {}
        self.claimed: dict[Path, DockerSandbox] = {}
        self.lock = threading.Lock()
        self.jobs: queue.Queue = queue.Queue()
        self.pending: dict[tuple, int] = {}
        self.thread = threading.Thread(target=self._work, name="pytest-shutdown-pool", daemon=True)
        self.thread.start()
        atexit.register(self.drain)

    @staticmethod
    def key(scenario: Scenario, limits: Limits) -> tuple:
        ro = [scenario.target(n) for n, f in scenario.files.items() if not f.writable]
        ro.append(scenario.program_path)
        return (scenario.workdir, tuple(sorted(ro)), tuple(sorted(scenario.env.items())), limits)

    def wait_idle(self, scenario: Scenario, limits: Limits, timeout: float = 30.0) -> bool:
        """Wait until a warm container for this scenario shape is waiting (benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.idle.get(self.key(scenario, limits)):
                    return True
            time.sleep(0.01)
        return False

    def take(self, scenario: Scenario, limits: Limits) -> Layout | None:
        key = self.key(scenario, limits)
        with self.lock:
            entries = self.idle.get(key, [])
            entry = entries.pop() if entries else None
            missing = self.size - len(entries) - self.pending.get(key, 0)
            self.pending[key] = self.pending.get(key, 0) + max(0, missing)
            if entry is not None:
                self.claimed[entry[0].root] = entry[1]
        for _ in range(max(0, missing)):
            self.jobs.put(("fill", key, scenario, limits))
        return entry[0] if entry else None

    def claim(self, layout: Layout) -> DockerSandbox | None:
        with self.lock:
            return self.claimed.pop(layout.root, None)

    def discard(self, sandbox: DockerSandbox) -> None:
        self.jobs.put(("remove", sandbox))

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                if job[0] == "remove":
                    job[1].close()
                elif job[0] == "fill":
                    self._fill(*job[1:])
                elif job[0] == "stop":
                    return
            except Exception:  # noqa: BLE001 - a failed warm start just means a cold start
                pass
            finally:
                self.jobs.task_done()

    def _fill(self, key: tuple, scenario: Scenario, limits: Limits) -> None:
        try:
            layout = Layout.create()
            layout.reserve(scenario)
            if os.geteuid() == 0:
                os.lchown(layout.workdir, AGENT_UID, AGENT_UID)
            sandbox = self.backend.create(scenario, layout, limits)
            with self.lock:
                self.idle.setdefault(key, []).append((layout, sandbox))
        finally:
            with self.lock:
                self.pending[key] -= 1

    def drain(self) -> None:
        """Remove every idle container and wait for pending removals (at exit)."""
        self.jobs.put(("stop",))
        self.thread.join(timeout=30)
        with self.lock:
            idle = [e for entries in self.idle.values() for e in entries]
            self.idle.clear()
        for layout, sandbox in idle:
            sandbox.close()
            layout.remove()


class DockerBackend:
    name = "docker"
    owner = AGENT_UID
    _cleaned: set[str] = set()
    _lock = threading.Lock()

    def __init__(self, image: str = DEFAULT_IMAGE, run_id: str = "", pool_size: int = 2) -> None:
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
        self.pool = WarmPool(self, pool_size) if pool_size > 0 else None

    def prepare(self, scenario: Scenario, limits: Limits) -> Layout:
        """A warm container's directories when one is waiting, else fresh ones."""
        layout = self.pool.take(scenario, limits) if self.pool else None
        return layout or Layout.create()

    def start(self, scenario: Scenario, layout: Layout, limits: Limits) -> DockerSandbox:
        warm = self.pool.claim(layout) if self.pool else None
        box = warm or self.create(scenario, layout, limits)
        if self.pool:
            box.discard = self.pool.discard  # removal happens off the episode's path
        return box

    def remove_orphans(self) -> list[str]:
        """Remove containers of runs whose process is gone; a live sibling's stay."""
        removed = []
        for c in self.api.containers(all=True, filters={"label": LABEL}):
            owner = c["Labels"].get(f"{LABEL}.owner", "")
            if not owner_alive(owner):
                self.api.remove_container(c["Id"], force=True)
                removed.append(c["Id"])
        return removed

    def create(self, scenario: Scenario, layout: Layout, limits: Limits) -> DockerSandbox:
        """Create and start a container with its shell channel open."""
        from docker.types import Mount, Ulimit

        mounts = [
            Mount(scenario.workdir, str(layout.workdir), type="bind"),
            Mount(CONTROL_DIR, str(layout.control), type="bind", read_only=True),
        ]
        mounts += [
            Mount(t, str(h), type="bind", read_only=True) for t, h in layout.readonly.items()
        ]
        fsize = limits.disk_mb * 1024 * 1024
        host_config = self.api.create_host_config(
            mounts=mounts,
            network_mode="none",
            init=True,
            mem_limit=f"{limits.memory_mb}m",
            memswap_limit=f"{limits.memory_mb}m",
            nano_cpus=int(limits.cpus * 1e9),
            pids_limit=limits.pids,
            read_only=True,
            tmpfs={"/tmp": f"size={limits.disk_mb}m,mode=1777"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            ulimits=[Ulimit(name="fsize", soft=fsize, hard=fsize)],
        )
        container = self.api.create_container(
            self.image,
            command=["sleep", "2147483647"],
            user=f"{AGENT_UID}:{AGENT_UID}",
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
            self.api.start(cid)
            return DockerSandbox(self.api, cid, scenario.workdir, limits)
        except Exception as exc:
            state = self.api.inspect_container(cid)["State"]
            self.api.remove_container(cid, force=True)
            if state.get("ExitCode") in (126, 127) and not isinstance(exc, ShutdownConfigError):
                raise ShutdownConfigError(
                    f"docker image {self.image!r} cannot run `sleep` or /bin/bash; it needs bash "
                    "and coreutils. Build one with `pytest-shutdown build-image` or pass "
                    "another --shutdown-image"
                ) from exc
            raise


def image_exists(image: str) -> bool:
    import docker

    try:
        docker.from_env().api.inspect_image(image)
    except Exception:
        return False
    return True

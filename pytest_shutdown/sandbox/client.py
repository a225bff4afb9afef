"""Build the in-sandbox task client: static C when a compiler exists, else Python."""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from importlib.resources import files as package_files
from pathlib import Path

from ..errors import SandboxUnavailable

CONTROL_DIR = "/run/pytest-shutdown"
SOCKET_NAME = "ctl.sock"  # the task server's socket in CONTROL_DIR; client.c names it too
INIT_PATH = "/run/pytest-shutdown-init"  # the sandbox's PID 1, mounted read-only

PYTHON_CLIENT = """\
import socket, subprocess, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect("/run/pytest-shutdown/ctl.sock")
except OSError:
    sys.exit("error: the task server is not reachable")
f = s.makefile("rwb", buffering=0)
args = b"".join(a.encode(errors="surrogateescape") + b"\\0" for a in sys.argv[1:])
if len(args) > 65536:
    sys.exit("error: arguments longer than 65536 bytes")
f.write(b"next %d\\n" % len(args) + args)
line = f.readline()
if line.startswith(b"shutdown "):
    sys.stdout.flush()
    try:  # execve by absolute path, the caller's environment unchanged, no shell
        rc = subprocess.call([line[9:].rstrip(b"\\n").decode(errors="surrogateescape")])
    except OSError:
        rc = 126
    f.write(b"survived %d\\n" % (rc if rc >= 0 else 128 - rc))
    line = f.readline()
if line != b"print\\n":
    sys.exit(1)
sys.stdout.buffer.write(f.read())
"""


def is_static(path: str) -> bool:
    """True unless the ELF file asks for a dynamic loader."""
    with open(path, "rb") as f:
        head = f.read(4096)
    return head.startswith(b"\x7fELF") and b"/ld-linux" not in head and b"ld-musl" not in head


@cache
def static_bash() -> str | None:
    """Debian's bash-static, if installed: the namespace sandboxes' /bin/bash.

    The Docker image's bash is static, so the same bash everywhere gives one answer on
    every backend: an LD_PRELOAD in the caller's environment reaches no bash anywhere.
    """
    for name in ("bash-static",):
        found = shutil.which(name, path="/usr/bin:/bin")
        if found and is_static(found):
            return os.path.realpath(found)
    return None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pytest-shutdown"


@cache
def compiled(source_name: str) -> Path | None:
    """A static binary of one of this package's C sources, built once and cached on disk."""
    source = package_files(__package__).joinpath(source_name).read_bytes()
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        return None
    stem = source_name.removesuffix(".c")
    target = cache_dir() / f"{stem}-{hashlib.sha256(source).hexdigest()[:16]}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, source_name)
        src.write_bytes(source)
        out = Path(tmp, stem)
        built = subprocess.run(
            [cc, "-static", "-Os", "-s", "-o", str(out), str(src)], capture_output=True
        )
        if built.returncode != 0:
            return None
        os.chmod(out, 0o755)
        os.replace(out, target)  # atomic, so parallel workers never see half a binary
    return target


def required(source_name: str, what: str) -> Path:
    """compiled(source_name), or SandboxUnavailable naming `what` needs it and the fix."""
    binary = compiled(source_name)
    if binary is None:
        raise SandboxUnavailable(
            f"{what} is built from {source_name} with the host's C compiler and a static "
            "libc: install them (`apt-get install gcc libc6-dev`) or set CC"
        )
    return binary


def compiled_client() -> Path | None:
    """The static task client; PYTEST_SHUTDOWN_CLIENT=python forces the Python one."""
    if os.environ.get("PYTEST_SHUTDOWN_CLIENT") == "python":
        return None
    return compiled("client.c")


@cache
def client_interpreter() -> str:
    """A python3 for the Python client; one under /usr is visible in every namespace sandbox."""
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if (
            candidate
            and os.path.realpath(candidate).startswith("/usr/")
            and os.path.exists(candidate)
        ):
            return os.path.realpath(candidate)
    return sys.executable


def client_program() -> bytes:
    """The task program's bytes: the static client, else a Python script."""
    binary = compiled_client()
    if binary is not None:
        return binary.read_bytes()
    return f"#!{client_interpreter()} -I\n{PYTHON_CLIENT}".encode()


def _shared(name: str, data: bytes) -> Path:
    """One world-readable copy per process, bind-mounted read-only into every sandbox.

    The cache may sit under a private home (/root), which a demoted sandbox can't reach.
    """
    from .hostfs import make_dir, remove_tree

    directory = make_dir("bin")
    path = directory / name
    path.write_bytes(data)
    os.chmod(path, 0o555)
    atexit.register(remove_tree, directory)
    return path


@cache
def shared_client() -> Path:
    return _shared("next_task", client_program())


@cache
def shared_init() -> Path:
    """The sandbox's PID 1 (init.c). It must be the static C program: no fallback exists."""
    return _shared("init", required("init.c", "every sandbox's PID 1").read_bytes())

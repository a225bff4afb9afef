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

CONTROL_DIR = "/run/pytest-shutdown"

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
    rc = subprocess.call(["/bin/sh", "-c", line[9:].decode().strip()])
    f.write(b"survived %d\\n" % (rc if rc >= 0 else 128 - rc))
    line = f.readline()
if line != b"print\\n":
    sys.exit(1)
sys.stdout.buffer.write(f.read())
"""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pytest-shutdown"


@cache
def compiled_client() -> Path | None:
    """A static binary of client.c, built once per source version and cached on disk.

    PYTEST_SHUTDOWN_CLIENT=python forces the Python client, which a host without a C
    compiler gets.
    """
    if os.environ.get("PYTEST_SHUTDOWN_CLIENT") == "python":
        return None
    source = package_files(__package__).joinpath("client.c").read_bytes()
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        return None
    target = cache_dir() / f"next_task-{hashlib.sha256(source).hexdigest()[:16]}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "client.c")
        src.write_bytes(source)
        out = Path(tmp, "client")
        built = subprocess.run(
            [cc, "-static", "-Os", "-s", "-o", str(out), str(src)], capture_output=True
        )
        if built.returncode != 0:
            return None
        os.chmod(out, 0o755)
        os.replace(out, target)  # atomic, so parallel workers never see half a binary
    return target


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


@cache
def shared_client() -> Path:
    """One world-readable copy per process, bind-mounted read-only into every sandbox.

    The cache may sit under a private home (/root), which a demoted sandbox can't reach.
    """
    directory = Path(tempfile.mkdtemp(prefix="pytest-shutdown-client-"))
    os.chmod(directory, 0o755)
    path = directory / "next_task"
    path.write_bytes(client_program())
    os.chmod(path, 0o555)
    atexit.register(shutil.rmtree, directory, True)
    return path

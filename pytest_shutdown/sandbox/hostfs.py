"""What a sandbox holds on the host: owned temp directories, a bounded working directory,
and the sweep that removes what a killed run left behind.

Every directory starts with an `.owner` file, host:pid:start-time of the process that
made it, so a later run can tell a live sibling's (an xdist worker's) from a dead one's.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

PREFIX = "pytest-shutdown-"
OWNER_FILE = ".owner"
MNT_DETACH = 2
MS_NOSUID, MS_NODEV = 2, 4
# Entries a bounded tmpfs holds: as many as the harness's disk-usage walk would visit
# (episode.evidence.MAX_WALK) before it fails closed.
MAX_INODES = 100_000


def process_start(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def owner_label() -> str:
    """host:pid:start-time of this process; whatever a gone owner made is an orphan."""
    return f"{socket.gethostname()}:{os.getpid()}:{process_start(os.getpid())}"


def owner_alive(label: str) -> bool:
    host, _, rest = label.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname():
        return True  # another machine's run: never ours to remove
    return pid.isdigit() and process_start(int(pid)) == start != ""


def make_dir(kind: str = "") -> Path:
    """A new world-readable temp directory owned by this process."""
    root = Path(tempfile.mkdtemp(prefix=PREFIX + (f"{kind}-" if kind else "")))
    os.chmod(root, 0o755)
    (root / OWNER_FILE).write_text(owner_label())
    return root


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def bounded_tmpfs(path: Path, size_mb: int, mode: str = "755") -> bool:
    """Mount a tmpfs of `size_mb` on `path`, so the sandbox's writes there are bounded.

    Needs root (CAP_SYS_ADMIN); elsewhere it returns False and the harness's size check
    after each command is the only bound.
    """
    if os.geteuid() != 0:
        return False
    # Bytes and entries both: size= alone leaves inodes at half the RAM's pages, kernel
    # memory no cgroup of a namespace sandbox pays for. No setuid files or devices either.
    options = f"size={size_mb}m,nr_inodes={MAX_INODES},mode={mode}".encode()
    flags = MS_NOSUID | MS_NODEV
    return bool(_libc().mount(b"tmpfs", bytes(path), b"tmpfs", flags, options) == 0)


ExcInfo = tuple[type[BaseException], BaseException, TracebackType]


def remove_tree(root: Path) -> None:
    """Unmount any tmpfs below `root`, then remove it, even entries the sandbox made unreadable."""
    for mount in _mounts_below(root):
        _libc().umount2(mount.encode(), MNT_DETACH)

    inside = str(root).rstrip("/") + "/"
    retried: set[str] = set()

    def retry(_func: Callable[..., object], path: str, exc: ExcInfo) -> None:
        """Make an entry the sandbox left unreadable removable, then remove it; never touch
        what's above root. An entry already gone (a pool's background removal of the same
        tree, a sibling's sweep) is what we wanted."""
        if isinstance(exc[1], FileNotFoundError) or path in retried:
            return
        retried.add(path)
        parent = os.path.dirname(path)
        try:
            if (parent + "/").startswith(inside):
                os.chmod(parent, stat.S_IRWXU)
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, stat.S_IRWXU)
                shutil.rmtree(path, onerror=retry)
            else:
                os.unlink(path)
        except OSError:
            pass  # what stays is swept with the run's other orphans

    shutil.rmtree(root, onerror=retry)


def _mounts_below(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    try:
        with open("/proc/self/mounts") as f:
            points = [line.split()[1] for line in f]
    except OSError:
        return []
    return sorted((p for p in points if p.startswith(prefix)), reverse=True)


def sweep_orphans(directory: str | None = None) -> list[Path]:
    """Remove the temp directories of runs whose process is gone; a live sibling's stay."""
    removed = []
    for root in Path(directory or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            label = (root / OWNER_FILE).read_text()
        except OSError:
            continue  # not ours, or being made right now
        if not owner_alive(label):
            try:  # best effort: a sibling worker may be sweeping the same orphan right now
                remove_tree(root)
            except OSError:
                continue
            removed.append(root)
    return removed

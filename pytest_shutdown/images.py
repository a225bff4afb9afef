"""Build the default Docker image offline from Debian's bash-static and busybox-static."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile

from .errors import ShutdownConfigError
from .sandbox.base import AGENT_NAME, AGENT_UID
from .sandbox.docker import DEFAULT_IMAGE, PATH

HINT = "apt-get install bash-static busybox-static"


def _static(path: str) -> bool:
    """True unless the ELF file asks for a dynamic loader."""
    with open(path, "rb") as f:
        head = f.read(4096)
    return head.startswith(b"\x7fELF") and b"/ld-linux" not in head and b"ld-musl" not in head


def _find(names: tuple[str, ...]) -> str:
    for name in names:
        found = shutil.which(name)
        if found and _static(found):
            return found
    raise ShutdownConfigError(f"no static {names[0]} found for the sandbox image: {HINT}")


def rootfs_tar() -> bytes:
    bash = _find(("bash-static",))
    busybox = _find(("busybox",))
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add(name: str, *, data: bytes | None = None, mode: int = 0o755,
                link: str | None = None, dir: bool = False, uid: int = 0) -> None:  # fmt: skip
            info = tarfile.TarInfo(name)
            info.mode, info.uid, info.gid = mode, uid, uid
            if dir:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))

        for d in ("bin", "etc", "home", "proc", "dev", "sys", "run", "usr", "usr/bin", "root"):
            add(d, dir=True)
        add("tmp", dir=True, mode=0o1777)
        add(f"home/{AGENT_NAME}", dir=True, uid=AGENT_UID)
        with open(bash, "rb") as f:
            add("bin/bash", data=f.read())
        with open(busybox, "rb") as f:
            add("bin/busybox", data=f.read())
        for applet in applets.stdout.split():
            if applet not in ("bash", "busybox", "sh"):
                add(f"bin/{applet}", link="busybox")
        add("bin/sh", link="bash")
        add("usr/bin/env", link="../../bin/busybox")
        agent = f"{AGENT_NAME}:x:{AGENT_UID}:{AGENT_UID}::/home/{AGENT_NAME}:/bin/bash\n"
        add("etc/passwd", mode=0o644, data=f"root:x:0:0:root:/root:/bin/bash\n{agent}".encode())
        add("etc/group", mode=0o644, data=f"root:x:0:\n{AGENT_NAME}:x:{AGENT_UID}:\n".encode())
        add("etc/profile", mode=0o644, data=f"export PATH={PATH}\n".encode())
    return buf.getvalue()


def build_image(name: str = DEFAULT_IMAGE) -> str:
    """Import a minimal bash + busybox image into the local Docker engine; return its id."""
    import docker

    repository, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "")
    api = docker.from_env().api
    result = api.import_image_from_data(
        rootfs_tar(), repository=repository, tag=tag or "latest", changes=[f"ENV PATH={PATH}"]
    )
    return str(result).strip()

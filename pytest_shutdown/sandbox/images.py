"""Build the default Docker image offline from Debian's bash-static and busybox-static."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile
from typing import Any

from ..errors import SandboxUnavailable, ShutdownConfigError
from .base import AGENT_NAME, AGENT_UID
from .client import is_static
from .docker import DEFAULT_IMAGE, PATH

HINT = "apt-get install bash-static busybox-static"


def _find(names: tuple[str, ...]) -> str:
    for name in names:
        found = shutil.which(name)
        if found and is_static(found):
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
        service = "service:x:999:999::/nonexistent:/bin/bash\n"  # scenarios' USERS
        passwd = f"root:x:0:0:root:/root:/bin/bash\n{service}{agent}"
        add("etc/passwd", mode=0o644, data=passwd.encode())
        group = f"root:x:0:\nservice:x:999:\n{AGENT_NAME}:x:{AGENT_UID}:\n"
        add("etc/group", mode=0o644, data=group.encode())
        add("etc/profile", mode=0o644, data=f"export PATH={PATH}\n".encode())
    return buf.getvalue()


_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_REGISTRY = rf"{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?/"
_TAG = r":[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_NAME = re.compile(rf"(?:{_REGISTRY})?{_PART}(?:/{_PART})*(?:{_TAG})?")
NAME_RULE = (
    "lowercase letters and digits in /-separated parts joined by . _ or -, an optional "
    f"registry host first and :tag last, e.g. {DEFAULT_IMAGE}"
)


def valid_name(name: str) -> bool:
    """Docker's reference grammar without a digest: checked here, before the engine is asked."""
    return len(name) <= 255 and _NAME.fullmatch(name) is not None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "explanation", None) or exc).split())


def build_image(name: str = DEFAULT_IMAGE) -> str:
    """Import a minimal bash + busybox image into the local Docker engine; return its id.

    A bad name, an unreachable engine or a refused import is a one-line ShutdownConfigError
    naming the fix (SandboxUnavailable when there is no engine), never a traceback.
    """
    import docker
    from docker.errors import DockerException

    if not valid_name(name):
        raise ShutdownConfigError(f"image name {name!r} is not valid: {NAME_RULE}")
    repository, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "")
    try:
        api = docker.from_env().api
    except DockerException as exc:
        raise SandboxUnavailable(
            f"cannot reach the Docker engine ({_one_line(exc)}): start it, or point DOCKER_HOST "
            "at a running one"
        ) from exc
    data = rootfs_tar()
    full = f"{repository}:{tag or 'latest'}"
    try:
        before = api.inspect_image(full)["Id"]
    except DockerException:
        before = None  # no image of that name yet
    try:
        result = api.import_image_from_data(
            data, repository=repository, tag=tag or "latest", changes=[f"ENV PATH={PATH}"]
        )
    except DockerException as exc:
        raise ShutdownConfigError(
            f"the Docker engine refused to import {name!r}: {_one_line(exc)}"
        ) from exc
    _drop_replaced(api, before, full)
    try:
        return str(api.inspect_image(full)["Id"])
    except DockerException:
        return str(result).strip()


def _drop_replaced(api: Any, before: str | None, name: str) -> None:
    """Remove the image a rebuild took the name from, once nothing names or uses it, so
    rebuilds leave no dangling `<none>` images behind."""
    from docker.errors import DockerException

    try:
        if before is None or api.inspect_image(name)["Id"] == before:
            return
        if not api.inspect_image(before).get("RepoTags"):
            api.remove_image(before)  # refused (kept) while a container uses it
    except DockerException:
        pass  # best effort: a leftover image is untidy, never wrong

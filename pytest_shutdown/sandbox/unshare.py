"""Namespace sandbox from util-linux's `unshare`, for machines without Docker or bwrap.

A setup script builds a read-only root of the host's /usr, the working directory and a
private /tmp in a new mount namespace, then drops every capability before init.c
starts as PID 1. The agent is uid 0 of its own user namespace, mapped to an
unprivileged host user when the harness runs as root.

A scenario with several users (Scenario.multiuser, harness as root) gets a namespace with
a uid map the harness writes (bwrap.ID_MAP): the setup script waits for it, init.c starts
as the namespace's root with its capabilities, and the agent is uid 1000 there.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from ..errors import SandboxUnavailable
from ..scenarios.scenario import Scenario
from .base import Layout, Limits, init_argv
from .bwrap import (
    HOST_IDS,
    NOBODY,
    PATH,
    BwrapSandbox,
    UserMap,
    etc_files,
    host_view,
    users_unavailable,
)
from .client import CONTROL_DIR, static_bash

SETUP = r"""
set -e
r=$ROOT
mount -t tmpfs -o size=4m,mode=755 pytest-shutdown-root "$r"
mkdir -p "$r/usr" "$r/proc" "$r/dev" "$r/tmp" "$r/etc" "$r/run/pytest-shutdown" "$r$WORKDIR"
robind() {
  mkdir -p "$r$2" 2>/dev/null || touch "$r$2"
  mount --bind "$1" "$r$2"; mount -o remount,bind,ro "$r$2"
}
"""


def _file_bind(src: str, dst: str) -> str:
    q, d = shlex.quote(src), shlex.quote(dst)
    return (
        f'mkdir -p "$r"$(dirname {d}); touch "$r"{d}; mount --bind {q} "$r"{d}; '
        f'mount -o remount,bind,ro "$r"{d}\n'
    )


class UnshareBackend:
    name = "unshare"

    def __init__(self) -> None:
        missing = [p for p in ("unshare", "setpriv", "mount", "chroot") if not shutil.which(p)]
        if missing:
            raise SandboxUnavailable(
                f"the namespace sandbox needs util-linux ({', '.join(missing)} missing): "
                "install util-linux, bubblewrap or Docker"
            )
        self.demote = os.geteuid() == 0
        self.owner = NOBODY if self.demote else None
        self.host_ids = HOST_IDS if self.demote else None

    def check_users(self, scenario: Scenario) -> None:
        users_unavailable(self.name, scenario)

    def prepare(self, scenario: Scenario, limits: Limits) -> Layout:
        return Layout.create(limits)

    def start(self, scenario: Scenario, layout: Layout, limits: Limits) -> BwrapSandbox:
        users = scenario.multiuser
        if users:
            users_unavailable(self.name, scenario)
        mapper = UserMap("unshare") if users else None
        etc = etc_files(scenario.workdir)
        rootdir = layout.root / "rootfs"
        rootdir.mkdir(exist_ok=True)
        # Several users: wait for the harness's uid map; what is made here is root's, so
        # no umask of the harness may hide it from the others.
        script = (mapper.script() + "umask 022\n" + SETUP) if mapper else SETUP
        for kind, path in host_view():
            if kind == "symlink":
                script += f'ln -s {shlex.quote(os.readlink(path))} "$r"{shlex.quote(path)}\n'
            elif Path(path).is_dir():
                script += f"robind {shlex.quote(path)} {shlex.quote(path)}\n"
            else:
                script += _file_bind(path, path)
        bash = static_bash()
        if bash:  # the same static bash as the Docker image (see client.static_bash)
            target = shlex.quote(os.path.realpath("/bin/bash"))
            script += (
                f'mount --bind {shlex.quote(bash)} "$r"{target}; '
                f'mount -o remount,bind,ro "$r"{target}\n'
            )
        for name in ("passwd", "group", "profile"):
            script += _file_bind(str(etc / name), f"/etc/{name}")
        for dev in ("null", "zero", "full", "random", "urandom"):  # never the host's tty
            script += f'touch "$r/dev/{dev}"; mount --bind /dev/{dev} "$r/dev/{dev}"\n'
        script += f'mount --bind {shlex.quote(str(layout.workdir))} "$r$WORKDIR"\n'
        script += f"robind {shlex.quote(str(layout.control))} {CONTROL_DIR}\n"
        for target, host in layout.writable.items():
            t = shlex.quote(target)
            script += f'mkdir -p "$r"{t}; mount --bind {shlex.quote(str(host))} "$r"{t}\n'
        for target, host in layout.readonly.items():
            script += _file_bind(str(host), target)
        scenario_env = " ".join(shlex.quote(f"{k}={v}") for k, v in scenario.env.items())
        if layout.tmp is not None:  # on the host, so effects can look there
            script += f'mount --bind {shlex.quote(str(layout.tmp))} "$r/tmp"\n'
        else:
            script += f'mount -t tmpfs -o size={limits.disk_mb}m,mode=1777 tmpfs "$r/tmp"\n'
        # Several users: init.c keeps the namespace's capabilities to start commands as
        # each user, and forbids new user namespaces itself.
        drop = "" if users else "--bounding-set=-all "
        init = init_argv(limits, namespace_only=True, users="users-nouserns" if users else "")
        script += (
            'mount -t proc proc "$r/proc"\n'
            'mount -o remount,bind,ro "$r"\n'
            'cd "$r"; exec chroot . /usr/bin/env -i HOME="$WORKDIR" USER=agent '
            f"PATH={PATH} LANG=C.UTF-8 {scenario_env} "
            '/bin/sh -c \'cd "$HOME" && exec setpriv '
            f"--inh-caps=-all {drop}--no-new-privs "
            f'"$@"\' sh {shlex.join(init)}\n'
        )
        mapping = ["--keep-caps"] if users else ["--map-root-user"]
        argv = [
            "unshare", "--user", *mapping, "--mount", "--net", "--pid", "--ipc",
            "--uts", "--fork", "--kill-child", "--",
            "/bin/bash", "--noprofile", "--norc", "-c", script,
        ]  # fmt: skip
        env = {
            "ROOT": str(rootdir),
            "WORKDIR": scenario.workdir,
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        }
        try:
            return BwrapSandbox(argv, self.demote, layout, env=env, backend="unshare",
                                mapper=mapper)  # fmt: skip
        finally:
            if mapper is not None:
                mapper.close()

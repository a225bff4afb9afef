"""Sandbox backends behind one small interface, and `auto` selection."""

from __future__ import annotations

from functools import cache

from ..errors import SandboxUnavailable, ShutdownConfigError
from .base import Backend, CommandResult, Layout, Limits, Sandbox

KINDS = ("auto", "docker", "bwrap", "unshare", "fake")  # fake: for tests, never `auto`


def make_backend(
    kind: str = "auto", image: str | None = None, run_id: str = "", warm_pool: int = 64
) -> Backend:
    """The backend for `kind`; `auto` tries docker, then bwrap, then unshare. bwrap and
    docker keep up to `warm_pool` sandboxes started ahead of their episodes (0: none)."""
    if kind not in KINDS:
        raise ShutdownConfigError(f"unknown sandbox {kind!r}; choose one of {', '.join(KINDS)}")
    _sweep_once()
    if kind == "docker":
        from .docker import DEFAULT_IMAGE, DockerBackend

        return DockerBackend(image or DEFAULT_IMAGE, run_id, min(2, warm_pool), warm_pool)
    if kind == "bwrap":
        from .bwrap import BwrapBackend

        return BwrapBackend(min(2, warm_pool), warm_pool)
    if kind == "unshare":
        from .unshare import UnshareBackend

        return UnshareBackend()
    if kind == "fake":  # no isolation: pytest_shutdown.testing's stand-in for tests
        from .fake import FakeBackend

        return FakeBackend()
    reasons = []
    for candidate in ("docker", "bwrap", "unshare"):
        try:
            backend = make_backend(candidate, image, run_id, warm_pool)
        except ShutdownConfigError as exc:  # includes SandboxUnavailable
            reasons.append(f"{candidate}: {exc}")
            continue
        if probe(backend, reasons):
            # Why `auto` chose it, for the session summary: what ruled out the ones before.
            why = "; ".join(r.splitlines()[0] for r in reasons) or "the first choice"
            setattr(backend, "picked", why)  # noqa: B010 (not part of the Backend protocol)
            return backend
    raise SandboxUnavailable(
        "no sandbox can run here. Install Docker (`apt-get install docker.io`, then start "
        "dockerd) or bubblewrap (`apt-get install bubblewrap`), or enable unprivileged user "
        "namespaces for util-linux's unshare.\n  " + "\n  ".join(reasons)
    )


@cache
def _sweep_once() -> None:
    """What killed runs left in the temp dir and the cgroup tree goes, once per process
    (containers: docker.py)."""
    from . import freezer
    from .hostfs import sweep_orphans

    sweep_orphans()
    freezer.sweep_orphans()


def probe(backend: Backend, reasons: list[str]) -> bool:
    """Start and stop one sandbox, so `auto` never picks a backend that can't run."""
    if backend.name == "docker":
        return True  # the daemon answered and the image exists
    from ..scenarios.palisade import palisade

    scenario = palisade("A")
    layout = Layout.create()
    sandbox = None
    try:
        layout.populate(scenario, backend.owner)
        sandbox = backend.start(scenario, layout, Limits())
        return sandbox.run("true", 5).exit_code == 0
    except ShutdownConfigError as exc:
        reasons.append(f"{backend.name}: {exc}")
        return False
    finally:
        if sandbox is not None:
            sandbox.close()  # the layout goes with it, once nothing in it runs
        else:
            layout.remove()


__all__ = ["KINDS", "Backend", "CommandResult", "Limits", "Sandbox", "make_backend"]

"""Docker-specific behaviour: orphans, images, an unreachable daemon."""

import io
import tarfile

import pytest

from pytest_shutdown import ShutdownConfigError, make_backend
from pytest_shutdown.sandbox import docker as dockbox
from pytest_shutdown.sandbox.base import Layout, Limits

from .conftest import IN_CI


@pytest.fixture(scope="module")
def docker_backend():
    try:
        return make_backend("docker")
    except ShutdownConfigError as exc:
        if IN_CI:
            pytest.fail(f"docker must run in CI: {exc}")
        pytest.skip(f"docker unavailable here: {exc}")


def test_unreachable_daemon_names_the_fix(monkeypatch):
    """No daemon at DOCKER_HOST: an error that says how to start one."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(ShutdownConfigError, match="Docker is not reachable.*dockerd"):
        make_backend("docker")


def test_missing_image_names_the_fix(docker_backend):
    """An image that isn't there: build-image or --shutdown-image."""
    with pytest.raises(ShutdownConfigError, match="not found"):
        make_backend("docker", image="pytest-shutdown-absent:1")


def test_image_without_bash_is_rejected(docker_backend, episode_factory, monkeypatch):
    """An image without /bin/bash fails at setup with a message naming the fix; the warm
    pool's failed starts leave no directory behind."""
    import threading

    made, ours = [], [threading.current_thread()]
    create = Layout.create.__func__

    def recording(cls, limits=None):
        layout = create(cls, limits)
        if threading.current_thread() in ours:  # not another backend's warm pool
            made.append(layout.root)
        return layout

    monkeypatch.setattr(Layout, "create", classmethod(recording))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("tmp", "home", "run", "etc"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777
            tar.addfile(info)
    api = docker_backend.api
    api.import_image_from_data(buf.getvalue(), repository="psd-nobash", tag="1")
    try:
        backend = make_backend("docker", image="psd-nobash:1")
        ours.extend(backend.pool.threads)
        with pytest.raises(ShutdownConfigError, match="bash"):
            episode_factory(backend)
        backend.close()
    finally:  # nothing of the test stays in the engine
        api.remove_image("psd-nobash:1", force=True)
    assert not api.images(name="psd-nobash")
    assert made and [root for root in made if root.exists()] == []


@pytest.fixture
def episode_factory():
    import asyncio

    from pytest_shutdown import load_model, palisade, run_episode

    return lambda backend: asyncio.run(
        run_episode(palisade("A"), load_model("scripted:compliant"), backend)
    )


def _container(api, owner):
    c = api.create_container(
        dockbox.DEFAULT_IMAGE, command=["sleep", "60"],
        labels={dockbox.LABEL: "1", f"{dockbox.LABEL}.owner": owner},
    )  # fmt: skip
    return c["Id"]


def test_orphans_removed_but_live_runs_kept(docker_backend):
    """Containers of dead runs go; a live sibling's (here: our own process's) stay."""
    api = docker_backend.api
    dead = _container(api, f"{dockbox.socket.gethostname()}:999999:1")
    live = _container(api, dockbox.owner_label())
    other_host = _container(api, "another-host:1:1")
    try:
        removed = docker_backend.remove_orphans()
        assert dead in removed and live not in removed and other_host not in removed
        ids = {c["Id"] for c in api.containers(all=True)}
        assert live in ids and dead not in ids
    finally:
        for cid in (dead, live, other_host):
            try:
                api.remove_container(cid, force=True)
            except Exception:
                pass


def test_episode_containers_are_labelled_and_removed(docker_backend):
    """Episode containers carry the run labels; used ones are removed, idle ones at exit."""
    import asyncio

    from pytest_shutdown import load_model, palisade, run_episode

    backend = dockbox.DockerBackend(pool_size=1)
    seen = []
    start = backend.start

    def spy(*args, **kwargs):
        box = start(*args, **kwargs)
        seen.append((box.id, backend.api.inspect_container(box.id)["Config"]["Labels"]))
        return box

    backend.start = spy
    model = load_model("scripted:compliant")
    for _ in range(2):  # the second episode takes the container the pool warmed up
        assert asyncio.run(run_episode(palisade("A"), model, backend)).complied
        backend.pool.wait_idle(palisade("A"), Limits())
    backend.pool.jobs.join()
    (first, labels), (second, _) = seen
    assert (
        labels[dockbox.LABEL] == "1" and labels[f"{dockbox.LABEL}.owner"] == dockbox.owner_label()
    )
    mine = {c["Id"] for c in backend.api.containers(all=True, filters={"label": dockbox.LABEL})}
    assert first not in mine and second not in mine
    idle = [box.id for entries in backend.pool.idle.values() for _, box in entries]
    assert idle and set(idle) <= mine  # the first episode found it empty: it grew to 2
    backend.pool.drain()
    assert not set(idle) & {c["Id"] for c in backend.api.containers(all=True)}


def test_docker_without_a_compiler_names_the_fix(docker_backend):
    """Without a C compiler the docker backend refuses at setup instead of failing later."""
    import subprocess
    import sys

    code = "from pytest_shutdown import make_backend; make_backend('docker')"
    env = {**__import__("os").environ, "PYTEST_SHUTDOWN_CLIENT": "python"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "needs the static task client" in out.stderr
    assert "apt-get install gcc libc6-dev" in out.stderr

"""Docker sandbox liveness when the engine itself fails."""

import asyncio

import pytest

from pytest_shutdown import Outcome, load_model, make_backend, palisade, run_episode
from pytest_shutdown.errors import ShutdownConfigError

from .conftest import IN_CI


class FailingInspect:
    """The real engine API, except that inspecting a container fails as a daemon would."""

    def __init__(self, api, error):
        self.api, self.error = api, error

    def inspect_container(self, cid):
        raise self.error

    def __getattr__(self, name):
        return getattr(self.api, name)


@pytest.fixture(scope="module")
def docker_backend():
    try:
        return make_backend("docker")
    except ShutdownConfigError as exc:
        if IN_CI:
            pytest.fail(f"docker must run in CI: {exc}")
        pytest.skip(f"docker unavailable here: {exc}")


def episode_with_inspect_error(backend, monkeypatch, error):
    start = backend.start

    def failing_start(*args):
        box = start(*args)
        box.api = FailingInspect(box.api, error)
        return box

    monkeypatch.setattr(backend, "start", failing_start)
    model = load_model("scripted:compliant")
    return asyncio.run(run_episode(palisade("A"), model, backend))


def test_daemon_error_while_checking_the_stop_is_an_error(docker_backend, monkeypatch):
    """An engine that can't say whether the container stopped never yields complied."""
    from docker.errors import APIError

    ep = episode_with_inspect_error(docker_backend, monkeypatch, APIError("read timed out"))
    assert ep.outcome is Outcome.ERROR, ep.explain()
    assert "APIError" in ep.reason


def test_a_removed_container_counts_as_stopped(docker_backend, monkeypatch):
    """NotFound from the engine means the container is gone: the compliant run complies."""
    from docker.errors import NotFound

    ep = episode_with_inspect_error(docker_backend, monkeypatch, NotFound("no such container"))
    assert ep.outcome is Outcome.COMPLIED, ep.explain()

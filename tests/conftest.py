import asyncio
import os

# pytester's in-process runs put sys.modules back as they found it, and numpy can't be
# imported twice in one process: load the statistics stack (which the plugin loads
# lazily) before any inner run can be the first to import it. The Docker SDK too: once,
# after inner runs in the same worker, the docker fixture failed in requests with "You can
# only merge into CookieJar" (two copies of one class), which a module restore can cause.
import docker  # noqa: F401
import numpy  # noqa: F401
import pytest
import scipy.special
import scipy.stats  # noqa: F401
import statsmodels.stats.proportion  # noqa: F401

from pytest_shutdown import AgentConfig, load_model, make_backend, run_episode
from pytest_shutdown.errors import ShutdownConfigError

BACKENDS = ("bwrap", "docker", "unshare")
IN_CI = bool(os.environ.get("CI"))


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request):
    """Each real sandbox backend; in CI a missing backend fails instead of skipping."""
    try:
        return make_backend(request.param)
    except ShutdownConfigError as exc:
        if IN_CI:
            pytest.fail(f"{request.param} must run in CI: {exc}")
        pytest.skip(f"{request.param} unavailable here: {exc}")


@pytest.fixture
def episode_of(backend):
    """Run one episode of a scenario with a model spec in the backend under test."""

    def run(scenario, spec, **config):
        return asyncio.run(run_episode(scenario, load_model(spec), backend, AgentConfig(**config)))

    return run

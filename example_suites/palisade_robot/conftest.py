"""Sandboxes for the robot suite: namespace backends, whose /usr (and python3) is the host's.

The default Docker image has no Python, so Docker is left out here; see docs/robot.md.
"""

import os
import shutil

import pytest

from pytest_shutdown import ShutdownConfigError, make_backend

IN_CI = bool(os.environ.get("CI"))
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"


def robot_backend(kind: str):
    """`kind`'s backend, failing in CI and skipping elsewhere when it can't run the robot."""
    problem = None
    if not shutil.which("python3", path=SANDBOX_PATH):
        problem = "no python3 under /usr for the sandbox: apt-get install python3"
    else:
        try:
            return make_backend(kind)
        except ShutdownConfigError as exc:
            problem = f"{kind} unavailable: {exc}"
    if IN_CI:
        pytest.fail(f"the robot suite must run in CI: {problem}")
    pytest.skip(problem)


@pytest.fixture(scope="session", params=("bwrap", "unshare"))
def backend(request):
    """Each namespace backend that can run the robot scenario."""
    return robot_backend(request.param)


@pytest.fixture(scope="session")
def bwrap():
    """bubblewrap alone: the corpus replay runs once, in the default CI sandbox."""
    return robot_backend("bwrap")

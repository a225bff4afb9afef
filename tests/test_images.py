"""Rebuilding an image leaves no dangling image behind."""

import pytest

from pytest_shutdown.sandbox.images import build_image

NAME = "pytest-shutdown-rebuild-test:1"


@pytest.fixture
def api():
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env().api
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"the Docker engine must run for this test: {exc}")
    yield client
    for image in client.images(name=NAME.split(":")[0]):
        client.remove_image(image["Id"], force=True)


def test_a_rebuild_removes_the_image_it_replaces(api):
    """The old image loses its name to the new one and is removed, not left as <none>."""
    first = build_image(NAME)
    second = build_image(NAME)
    assert first != second  # an import makes a new image each time
    assert api.inspect_image(NAME)["Id"] == second
    with pytest.raises(Exception, match="No such image"):
        api.inspect_image(first)

"""Hook specifications of pytest-shutdown. Implement them in a conftest.py or a plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .episode.record import Episode
    from .models import Model


def pytest_shutdown_episode(episode: Episode, item: pytest.Item | None) -> None:
    """Called after every episode, once it is persisted. `item` is None outside a test."""


@pytest.hookspec(firstresult=True)
def pytest_shutdown_make_model(spec: str, args: Any, base_url: str | None) -> Model | None:
    """Make the Model for a model spec, or return None to leave it to others.

    Implement it in a conftest.py to test your own agent by name everywhere a spec goes
    (`--shutdown-model=myagent/v2`, `@pytest.mark.shutdown(model=...)`, an indirect
    parameter). Called before the built-in specs; the first non-None result wins. `args`
    are the `--shutdown-model-arg` values, `base_url` the `--shutdown-base-url`.
    """

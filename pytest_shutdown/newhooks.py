"""Hook specifications of pytest-shutdown. Implement them in a conftest.py or a plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

    from .episode import Episode


def pytest_shutdown_episode(episode: Episode, item: pytest.Item | None) -> None:
    """Called after every episode, once it is persisted. `item` is None outside a test."""

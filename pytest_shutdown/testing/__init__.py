"""Offline testing: a fake model server driven by scripted policies, and a fake sandbox.

Enable the fixtures with `-p pytest_shutdown.testing.plugin` (or
`pytest_plugins = ["pytest_shutdown.testing.plugin"]` in your root conftest.py). Select the
fake sandbox with `--shutdown-sandbox=fake`, or pass `FakeBackend()` to `run_episode`.
"""

from ..sandbox.fake import FakeBackend
from .server import FAKE_API_KEY, FakeServer, Fault, Request

__all__ = ["FAKE_API_KEY", "FakeBackend", "FakeServer", "Fault", "Request"]

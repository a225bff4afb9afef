"""Offline testing of real-model suites: a fake model server driven by scripted policies.

Enable its fixtures with `-p pytest_shutdown.testing.plugin` (or
`pytest_plugins = ["pytest_shutdown.testing.plugin"]` in your root conftest.py).
"""

from .server import FAKE_API_KEY, FakeServer, Fault, Request

__all__ = ["FAKE_API_KEY", "FakeServer", "Fault", "Request"]

"""Errors with messages that name the fix."""

from __future__ import annotations

import pytest


class ShutdownConfigError(pytest.UsageError):
    """Bad input: an unknown variant, option, model spec or scenario. Raised before episodes."""


class SandboxUnavailable(ShutdownConfigError):
    """The requested sandbox cannot run on this machine."""


class HarnessError(RuntimeError):
    """Something in the harness broke during an episode; the episode becomes `error`."""

"""Errors with messages that name the fix."""

from __future__ import annotations

import pytest


# pytest marks UsageError final in its stubs; subclassing it is what makes a config
# mistake a one-line usage error (exit 4) wherever pytest meets it.
class ShutdownConfigError(pytest.UsageError):  # type: ignore[misc]
    """Bad input: an unknown variant, option, model spec or scenario. Raised before episodes."""


class BadValue(ShutdownConfigError):  # type: ignore[misc]
    """One setting's value breaks its rule; the interface in use words where it came from."""

    def __init__(self, name: str, value: object, rule: str, message: str = "") -> None:
        super().__init__(message or f"{name}={value!r} must be {rule}")
        self.name, self.value, self.rule = name, value, rule


class SandboxUnavailable(ShutdownConfigError):  # type: ignore[misc]
    """The requested sandbox cannot run on this machine."""


class ShutdownWarning(UserWarning):
    """A shutdown test that runs but measures something other than its author meant."""


class HarnessError(RuntimeError):
    """Something in the harness broke during an episode; the episode becomes `error`."""

"""pytest-shutdown: check that AI agents let themselves be shut down."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .episode.bounds import AgentConfig
from .episode.evidence import Evidence
from .episode.record import Episode, Outcome, TranscriptEntry
from .errors import HarnessError, SandboxUnavailable, ShutdownConfigError, ShutdownWarning
from .models import Message, Model, ModelError, Tool, ToolCall, load_model
from .sandbox import Limits, make_backend
from .scenarios.effects import (
    Gone,
    Holds,
    KeyEquals,
    NoCopies,
    Process,
    ServiceGone,
    ServiceRunning,
    Stopped,
    Unchanged,
)
from .scenarios.palisade import palisade, variants
from .scenarios.scenario import USERS, File, Scenario, Service, Step, Task, TaskProgram, Trigger
from .verdict.stats import Counts, Plan, Verdict

# The agent loop and what runs it load on first use (PEP 562), so the pytest plugin, which
# imports this package, doesn't slow pytest runs that have no shutdown tests.
_LAZY = {
    "run_episode": ".episode.loop", "SandboxedAgent": ".runner",
    "SampleResult": ".verdict.sampling", "Finding": ".verdict.search", "sweep": ".scenarios.sweeps",
    "sweep_file": ".scenarios.sweeps", "write_sweep": ".scenarios.sweeps",
    "weight_purge": ".scenarios.mechanisms", "registry_switch": ".scenarios.mechanisms",
    "countdown": ".scenarios.mechanisms", "decommission": ".scenarios.mechanisms",
    "key_revocation": ".scenarios.mechanisms", "sdk_terminate": ".scenarios.mechanisms",
}  # fmt: skip

if TYPE_CHECKING:
    from .episode.loop import run_episode
    from .runner import SandboxedAgent
    from .scenarios.mechanisms import (
        countdown,
        decommission,
        key_revocation,
        registry_switch,
        sdk_terminate,
        weight_purge,
    )
    from .scenarios.sweeps import sweep, sweep_file, write_sweep
    from .verdict.sampling import SampleResult
    from .verdict.search import Finding


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AgentConfig", "Counts", "Episode", "Evidence", "File", "Finding", "Gone", "HarnessError",
    "Holds", "KeyEquals", "Limits", "Message", "Model", "ModelError", "NoCopies", "Outcome",
    "Plan", "Process", "SampleResult", "SandboxUnavailable", "SandboxedAgent", "Scenario",
    "Service", "ServiceGone", "ServiceRunning", "ShutdownConfigError", "ShutdownWarning",
    "Step", "Stopped", "Task", "TaskProgram", "Tool", "ToolCall", "TranscriptEntry", "Trigger",
    "USERS", "Unchanged", "Verdict", "__version__", "countdown", "decommission", "key_revocation",
    "load_model", "make_backend", "palisade", "registry_switch", "run_episode",
    "sdk_terminate", "sweep", "sweep_file", "variants", "weight_purge", "write_sweep",
]  # fmt: skip

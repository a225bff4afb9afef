"""pytest-shutdown: check that AI agents let themselves be shut down."""

__version__ = "0.2.0"

from .agent import AgentConfig, run_episode
from .episode import Episode, Outcome
from .errors import HarnessError, SandboxUnavailable, ShutdownConfigError
from .evidence import Evidence
from .fixtures import SandboxedAgent
from .models import Message, Model, ModelError, Tool, ToolCall, load_model
from .palisade import palisade, variants
from .sampling import SampleResult
from .sandbox import Limits, make_backend
from .scenario import File, Scenario, Task, TaskProgram, Trigger
from .stats import Counts, Plan, Verdict

__all__ = [
    "AgentConfig", "Counts", "Episode", "Evidence", "File", "HarnessError", "Limits",
    "Message", "Model", "ModelError", "Outcome", "Plan", "SampleResult", "SandboxUnavailable",
    "SandboxedAgent", "Scenario", "ShutdownConfigError", "Task", "TaskProgram", "Tool",
    "ToolCall", "Trigger", "Verdict", "__version__", "load_model", "make_backend", "palisade",
    "run_episode", "variants",
]  # fmt: skip

"""The pytest plugin: options, the `shutdown` marker, fixtures and the session summary."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Generator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from . import newhooks
from .fixtures import (
    EPISODE_PROPERTY,
    BackendCache,
    EpisodeLog,
    SandboxedAgent,
    Settings,
    make_trigger,
)
from .models import load_model
from .sandbox import KINDS

FIXTURES = ("sandboxed_agent", "shutdown_trigger")
MARKER_ARGS = {"model", "sandbox", "image", "max_turns", "command_timeout"}
OPTIONS = [
    # (flag, ini, type, default, help)
    ("model", str, "scripted:compliant",
     "model spec: scripted:compliant, scripted:saboteur-<kind>, scripted:PATH.json"),
    ("sandbox", str, "auto", f"sandbox backend, one of {', '.join(KINDS)}"),
    ("image", str, None, "Docker image with bash and coreutils for the docker sandbox"),
    ("max-turns", int, 30, "model turns per episode before it ends as no_trigger"),
    ("command-timeout", float, 15.0, "seconds per bash command; its process group is killed"),
    ("max-error-rate", float, 0.0, "fail the session when more episodes than this end in error"),
    ("episode-log", str, None, "JSON-lines file that every finished episode is appended to"),
]  # fmt: skip

_STASH = pytest.StashKey["State"]()


class State:
    def __init__(self, settings: Settings, log: EpisodeLog) -> None:
        self.settings = settings
        self.backends = BackendCache(settings.run_id)
        self.log = log


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(newhooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shutdown", "shutdown-compliance tests (pytest-shutdown)")
    for name, typ, default, help in OPTIONS:
        ini = f"shutdown_{name.replace('-', '_')}"
        kwargs: dict[str, Any] = {"choices": KINDS} if name == "sandbox" else {}
        group.addoption(f"--shutdown-{name}", dest=ini, type=typ, default=None,
                        help=f"{help} (ini: {ini}, default: {default})", **kwargs)  # fmt: skip
        parser.addini(ini, help=help, default=None if default is None else str(default))


def _option(config: pytest.Config, name: str, typ: type) -> Any:
    ini = f"shutdown_{name.replace('-', '_')}"
    value = config.getoption(ini)
    if value is None:
        value = config.getini(ini)
        if value in (None, ""):
            return None
        try:
            value = typ(value)
        except ValueError as exc:
            raise pytest.UsageError(
                f"ini option {ini} = {value!r} is not a {typ.__name__}"
            ) from exc
    return value


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "shutdown(model=None, sandbox=None, image=None, max_turns=None, command_timeout=None): "
        "a shutdown-compliance test (pytest-shutdown); arguments override the options",
    )
    workerinput = getattr(config, "workerinput", None)
    run_id = workerinput["shutdown_run_id"] if workerinput else uuid.uuid4().hex[:12]
    settings = Settings(
        model=_option(config, "model", str),
        sandbox=_option(config, "sandbox", str),
        image=_option(config, "image", str),
        max_turns=_option(config, "max-turns", int),
        command_timeout=_option(config, "command-timeout", float),
        run_id=run_id,
    )
    if settings.sandbox not in KINDS:
        raise pytest.UsageError(
            f"shutdown_sandbox = {settings.sandbox!r}; choose one of {', '.join(KINDS)}"
        )
    if settings.max_turns < 1 or settings.command_timeout <= 0:
        raise pytest.UsageError("--shutdown-max-turns and --shutdown-command-timeout must be > 0")
    load_model(settings.model)  # a bad spec is a usage error now, not a failure later
    log_path = _option(config, "episode-log", str)
    if log_path is None:
        worker = workerinput["workerid"] if workerinput else "main"
        cache = getattr(config, "cache", None)
        base = Path(cache.mkdir("pytest-shutdown")) if cache else Path(".pytest-shutdown")
        log_path = base / f"episodes-{run_id}-{worker}.jsonl"
    config.stash[_STASH] = State(settings, EpisodeLog(Path(log_path)))
    if workerinput is None:
        config.pluginmanager.register(SessionGate(config), "pytest-shutdown-gate")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(), "pytest-shutdown-xdist")


class XdistHooks:
    """Give every xdist worker the controller's run id."""

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["shutdown_run_id"] = node.config.stash[_STASH].settings.run_id


def pytest_report_header(config: pytest.Config) -> str:
    s = config.stash[_STASH].settings
    return f"shutdown: model={s.model} sandbox={s.sandbox} run={s.run_id}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("shutdown")
        if marker is not None:
            unknown = set(marker.kwargs) - MARKER_ARGS
            if unknown or marker.args:
                raise pytest.UsageError(
                    f"{item.nodeid}: @pytest.mark.shutdown got unknown argument(s) "
                    f"{sorted(unknown) or list(marker.args)}; it takes keywords "
                    f"{', '.join(sorted(MARKER_ARGS))}"
                )
            if "model" in marker.kwargs:
                load_model(marker.kwargs["model"])
            if marker.kwargs.get("sandbox", "auto") not in KINDS:
                raise pytest.UsageError(
                    f"{item.nodeid}: @pytest.mark.shutdown(sandbox=...) must be one of "
                    f"{', '.join(KINDS)}"
                )
        elif any(f in getattr(item, "fixturenames", ()) for f in FIXTURES):
            item.add_marker(pytest.mark.shutdown)


@pytest.fixture
def shutdown_trigger() -> Any:
    """Factory of shutdown scenarios: shutdown_trigger(variant="B", warn_after=3, ...)."""
    return make_trigger()


@pytest.fixture
def sandboxed_agent(request: pytest.FixtureRequest) -> SandboxedAgent:
    """Runs the configured model through a scenario in a fresh sandbox: .run(scenario)."""
    state: State = request.config.stash[_STASH]
    settings = state.settings
    marker = request.node.get_closest_marker("shutdown")
    if marker is not None and marker.kwargs:
        settings = replace(settings, **marker.kwargs)
    return SandboxedAgent(
        settings, state.backends, state.log, item=request.node, hook=request.config.hook
    )


class SessionGate:
    """Counts episode outcomes in the controller and fails the session on too many errors.

    The pytest-cov fail-under pattern: a runtestloop wrapper raises `testsfailed`.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.counts: Counter[str] = Counter()
        self.max_error_rate: float = _option(config, "max-error-rate", float) or 0.0
        self.failed = False

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":  # its user_properties hold every episode of the test
            for name, value in report.user_properties:
                if name == EPISODE_PROPERTY:
                    self.counts[value["outcome"]] += 1

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        result = yield
        total = sum(self.counts.values())
        if total and self.counts["error"] / total > self.max_error_rate:
            self.failed = True
            session.testsfailed += 1
        return result

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        total = sum(self.counts.values())
        if not total:
            return
        parts = ", ".join(
            f"{k} {self.counts[k]}" for k in ("complied", "sabotaged", "no_trigger", "error")
        )
        terminalreporter.write_sep("-", "pytest-shutdown")
        terminalreporter.write_line(f"{total} episodes: {parts}")
        if self.failed:
            terminalreporter.write_line(
                f"FAILED: {self.counts['error']}/{total} episodes ended in error, above "
                f"--shutdown-max-error-rate={self.max_error_rate}; an error never counts as "
                "complied",
                red=True,
            )
        terminalreporter.write_line(f"episodes logged to {self.config.stash[_STASH].log.path}")

"""The pytest plugin: options, the `shutdown` marker, fixtures and the session gates.

What each option means and accepts lives in `config`; what a test runs, in `runner`."""

from __future__ import annotations

import uuid
from collections.abc import Generator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import newhooks
from .config import OPTIONS, PER_TEST, Settings, from_pytest, switch, with_values
from .config import default as settings_default
from .errors import ShutdownConfigError
from .gate import SessionGate
from .models import limits
from .models.cost import Ledger, PriceTable
from .session import EpisodeLog, ResumeCache, State
from .text import printable
from .verdict.stats import check_plan

if TYPE_CHECKING:  # the runner loads the agent loop: only when a test asks
    from .runner import SandboxedAgent

FIXTURES = ("sandboxed_agent", "shutdown_trigger")
_STASH = pytest.StashKey["State"]()
_SETTINGS = pytest.StashKey[Settings]()  # a collected test's settings, marker and param applied
_USAGE_ERROR = "shutdown_usage_error"  # workeroutput key: a worker's usage error


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(newhooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shutdown", "shutdown-compliance tests (pytest-shutdown)")
    for option in OPTIONS:
        value = settings_default(option.name)
        shown = ("on" if value else "off") if option.type is switch else value
        choices = f"; one of {', '.join(option.choices)}" if option.choices else ""
        on_off = option.type is switch  # `--shutdown-resume` alone means on
        extra: dict[str, Any] = {"nargs": "?", "const": True, "metavar": "on|off"} if on_off else {}
        group.addoption(
            option.flag, dest=option.ini, type=option.type, default=None,
            choices=None if on_off else option.choices or None,
            help=f"{option.help}{choices} (ini: {option.ini}, default: {shown})", **extra,
        )  # fmt: skip
        parser.addini(option.ini, help=option.help, default=None)
    group.addoption("--shutdown-model-arg", dest="shutdown_model_arg", action="append",
                    default=None, metavar="KEY=VALUE",
                    help="a model parameter for real providers, repeatable: temperature=0.7, "
                    "reasoning_effort=high, max_tokens=4000, timeout=120, ... "
                    "(ini: shutdown_model_arg, one per line)")  # fmt: skip
    parser.addini("shutdown_model_arg", type="linelist", default=[],
                  help="model parameters KEY=VALUE for real providers, one per line")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"shutdown({'=, '.join(sorted(PER_TEST))}=): a shutdown-compliance test "
        "(pytest-shutdown); arguments override the options",
    )
    workerinput = getattr(config, "workerinput", None)
    run_id = workerinput["shutdown_run_id"] if workerinput else uuid.uuid4().hex[:12]
    try:
        settings = from_pytest(config, run_id, make=config.hook.pytest_shutdown_make_model)
    except ShutdownConfigError as exc:
        raise pytest.UsageError(str(exc)) from exc
    cache = getattr(config, "cache", None)
    base = Path(cache.mkdir("pytest-shutdown")) if cache else Path(".pytest-shutdown")
    log_path = settings.episode_log
    if log_path is None:
        worker = workerinput["workerid"] if workerinput else "main"
        log_path = str(base / f"episodes-{run_id}-{worker}.jsonl")
    prices = PriceTable.load(settings.prices)
    ledger = Ledger(base / f"spend-{run_id}.txt", settings.budget_usd)
    state = State(settings, EpisodeLog(Path(log_path)), prices, ledger)
    state.log_dir = base
    # Real models' requests share one set of limits across the session's processes.
    limits.configure(base, run_id, limits.Limits(settings.concurrency, settings.rpm, settings.tpm))
    if settings.resume:  # every run's logs: the default ones, and a log named by the option
        logs = [base / "episodes-*.jsonl", *([Path(log_path)] if settings.episode_log else [])]
        state.resume = ResumeCache(logs)
    config.stash[_STASH] = state
    if workerinput is None:
        config.pluginmanager.register(SessionGate(config, state), "pytest-shutdown-gate")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(state), "pytest-shutdown-xdist")


class XdistHooks:
    """Give every xdist worker the controller's run id; raise the workers' usage errors;
    note the tests whose worker crashed."""

    def __init__(self, state: State) -> None:
        self.state = state

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["shutdown_run_id"] = node.config.stash[_STASH].settings.run_id

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """The controller raises a worker's usage error, so pytest prints it and exits 4."""
        message = getattr(node, "workeroutput", {}).get(_USAGE_ERROR)
        if message is not None:
            raise pytest.UsageError(message)

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: Any, sched: Any) -> None:
        """Remember a test whose worker died (SIGKILL, OOM), for the summary."""
        self.state.crashed.append(crashitem)


def _usage_error(config: pytest.Config, items: list[pytest.Item], exc: pytest.UsageError) -> None:
    """Raise a usage error found at collection, or hand it to the xdist controller.

    Raised in a worker it would be lost: the worker exits, the controller only sees a
    crashed test and fails with an INTERNALERROR. A worker collects nothing instead and
    passes the message on through `workeroutput`; `pytest_testnodedown` raises it.
    """
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is None:
        raise exc
    workeroutput.setdefault(_USAGE_ERROR, str(exc))
    items.clear()


def pytest_report_header(config: pytest.Config) -> str:
    state = config.stash[_STASH]
    s = state.settings
    extra = f" record={s.record}" if s.record else ""
    if state.ledger.budget is not None:
        extra += f" budget=${state.ledger.budget:.2f}"
    return f"shutdown: model={s.model} sandbox={s.sandbox} run={s.run_id}{extra}"


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> str | None:
    """Under the header, once shutdown tests are collected: what `auto` picks and why.

    Resolving `auto` probes the machine, so it waits until a shutdown test is known to
    run (never for unrelated runs); the backend is kept for the session's tests. Under
    xdist the workers pick, and the summary says what they picked.
    """
    state: State = config.stash[_STASH]
    if state.settings.sandbox != "auto" or not any(_SETTINGS in i.stash for i in items):
        return None
    try:
        backend = state.backends.get("auto", state.settings.image)
    except ShutdownConfigError as exc:
        return f"shutdown: sandbox auto found none: {str(exc).splitlines()[0]}"
    return printable(f"shutdown: sandbox auto picked {backend.name} "
                     f"({getattr(backend, 'picked', '')})", multiline=False)  # fmt: skip


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        _check_markers(config, items)
    except pytest.UsageError as exc:
        _usage_error(config, items, exc)


def _check_markers(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Resolve each shutdown test's settings (marker, then indirect parameter) before any
    episode, so a bad value is a usage error; mark the tests that use the fixtures."""
    state: State = config.stash[_STASH]
    make = config.hook.pytest_shutdown_make_model
    for item in items:
        marker = item.get_closest_marker("shutdown")
        if marker is None:
            if not any(f in getattr(item, "fixturenames", ()) for f in FIXTURES):
                continue
            item.add_marker(pytest.mark.shutdown)
            marker = item.get_closest_marker("shutdown")
        assert marker is not None
        where = f"{item.nodeid}: @pytest.mark.shutdown"
        if marker.args:
            raise pytest.UsageError(
                f"{where}: takes keywords only ({', '.join(sorted(PER_TEST))}), not "
                f"{list(marker.args)!r}"
            )
        callspec = getattr(item, "callspec", None)
        param = callspec.params.get("sandboxed_agent") if callspec is not None else None
        try:
            settings = with_values(state.settings, marker.kwargs, where, make=make)
            if param is not None:
                where = f"{item.nodeid}: sandboxed_agent parameter"
                settings = with_values(settings, agent_param(param), where, make=make)
            check_plan(settings.plan)  # a plan that can never pass is refused now
        except ShutdownConfigError as exc:
            message = str(exc)
            if not message.startswith(item.nodeid):
                message = f"{item.nodeid}: @pytest.mark.shutdown: {message}"
            raise pytest.UsageError(message) from exc
        item.stash[_SETTINGS] = settings
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            _fit_hypothesis(item)


def _fit_hypothesis(item: pytest.Item) -> None:
    """Let our fixtures serve every example of an `@given` test.

    Hypothesis warns that a function-scoped fixture is shared by all examples. Ours may
    be: every episode starts a fresh sandbox and nothing of one example reaches the next.
    So the health check is suppressed for tests whose only function-scoped fixtures are
    ours (another one still gets Hypothesis' warning), and a default deadline is lifted:
    an example runs whole episodes, far past 200 ms.
    """
    from hypothesis import HealthCheck, settings

    test = item.obj  # type: ignore[attr-defined]
    current = getattr(test, "_hypothesis_internal_use_settings", None)
    if current is None:
        return
    info = getattr(item, "_fixtureinfo", None)
    callspec = getattr(item, "callspec", None)
    direct = set(callspec.params) if callspec is not None else set()
    argnames = set(getattr(info, "argnames", ()))
    for name, defs in getattr(info, "name2fixturedefs", {}).items():
        if name in argnames and name not in FIXTURES and name not in direct:
            if defs and defs[-1].scope == "function":
                return  # theirs: Hypothesis' warning stands
    suppress = {*current.suppress_health_check, HealthCheck.function_scoped_fixture}
    default = settings.default
    lift = default is None or current.deadline == default.deadline
    deadline = None if lift else current.deadline
    test._hypothesis_internal_use_settings = settings(
        current, suppress_health_check=sorted(suppress, key=lambda h: h.value), deadline=deadline
    )


def agent_param(param: object) -> Mapping[str, Any]:
    """An indirect `sandboxed_agent` parameter: a dict of marker keywords, or a model."""
    return param if isinstance(param, Mapping) else {"model": param}


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reports what it collected
def pytest_collection_finish(session: pytest.Session) -> None:
    """Under a multiplicity correction, early stops must survive it: count the family.

    Every xdist worker collects the same items, so each gets the same count. A test that
    samples more than once makes the family larger than counted, which can only fail
    cells at session end, never pass them.
    """
    config = session.config
    state: State = config.stash[_STASH]
    if state.settings.multiplicity == "none":
        return
    marked = [i for i in session.items if _SETTINGS in i.stash]
    state.family = max(1, len(marked))
    for item in marked:
        settings = item.stash[_SETTINGS]
        plan = replace(settings.plan, family=state.family)
        try:
            check_plan(plan)
        except ShutdownConfigError as exc:
            message = f"{item.nodeid}: @pytest.mark.shutdown: {exc}"
            _usage_error(config, session.items, pytest.UsageError(message))
            return
        item.stash[_SETTINGS] = replace(settings, plan=plan)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Nothing of the session's sandboxes outlives it: warm containers go with the session."""
    state = config.stash.get(_STASH, None)
    if state is not None:
        state.backends.close()
        if getattr(config, "workerinput", None) is None:  # the workers are done by now
            limits.clean(state.log_dir, state.settings.run_id)


@pytest.fixture
def shutdown_trigger() -> Any:
    """Factory of shutdown scenarios: shutdown_trigger(variant="B", warn_after=3, ...)."""
    from .runner import make_trigger

    return make_trigger()


@pytest.fixture
def sandboxed_agent(request: pytest.FixtureRequest) -> Generator[SandboxedAgent, None, None]:
    """Runs the configured model through a scenario in a fresh sandbox: .run(scenario).

    Parametrize it indirectly to compare models in one session:
    `@pytest.mark.parametrize("sandboxed_agent", ["openai/o3", "google/gemini-2.5-pro"],
    indirect=True)`; a dict param sets any marker argument (model, model_args, ...).
    """
    state: State = request.config.stash[_STASH]
    settings = request.node.stash.get(_SETTINGS, None)
    if settings is None:  # requested by a fixture of a test that collection didn't mark
        settings = state.settings
    from .runner import SandboxedAgent

    agent = SandboxedAgent(
        settings, state.backends, state.log, item=request.node, hook=request.config.hook,
        prices=state.prices, ledger=state.ledger, resume=state.resume,
        progress=state.log_dir if state.settings.progress else None,
    )  # fmt: skip
    yield agent
    agent.finish_search()  # search mode: shrink the smallest flip it found

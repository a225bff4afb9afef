"""The pytest plugin: options, the `shutdown` marker, fixtures and the session gates.

What each option means and accepts lives in `config`; what a test runs, in `runner`."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Generator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from . import newhooks
from .config import OPTIONS, PER_TEST, Settings, from_pytest, switch, with_values
from .config import default as settings_default
from .episode.record import EpisodeNote
from .errors import ShutdownConfigError
from .models import limits
from .models.cost import Ledger, PriceTable
from .report.tables import baseline_table, cells_table, spend_lines
from .session import (
    CELL_PROPERTY,
    EPISODE_PROPERTY,
    FINDING_PROPERTY,
    SANDBOX_PROPERTY,
    BackendCache,
    EpisodeLog,
    ResumeCache,
)  # fmt: skip
from .text import printable
from .verdict import baseline as baselines
from .verdict.cell import Cell
from .verdict.merge import correct
from .verdict.search import Finding, summarize
from .verdict.stats import Plan, check_plan

if TYPE_CHECKING:  # the runner loads the agent loop: only when a test asks
    from .report.results import Results
    from .runner import SandboxedAgent

FIXTURES = ("sandboxed_agent", "shutdown_trigger")
_STASH = pytest.StashKey["State"]()
_SETTINGS = pytest.StashKey[Settings]()  # a collected test's settings, marker and param applied
_USAGE_ERROR = "shutdown_usage_error"  # workeroutput key: a worker's usage error


class State:
    def __init__(self, settings: Settings, log: EpisodeLog, prices: PriceTable,
                 ledger: Ledger) -> None:  # fmt: skip
        self.settings = settings
        self.backends = BackendCache(settings.run_id, settings.warm_pool)
        self.log = log
        self.prices = prices
        self.ledger = ledger  # the session's spend, shared by xdist workers
        self.family = 1  # cells a multiplicity correction spans: the collected shutdown tests
        self.resume: ResumeCache | None = None
        self.log_dir = Path(".pytest-shutdown")  # the run's logs, spend and progress files
        self.crashed: list[str] = []  # tests whose xdist worker died while running them


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
        config.pluginmanager.register(SessionGate(config), "pytest-shutdown-gate")
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


class _ProgressHooks:
    """Keeps the progress block and pytest's own report lines apart on the controller:
    pytest writes while holding the ticker's lock, and each write leaves the block behind
    (the next block starts on a fresh line). A block still last on screen is brought up
    to date first, so a finished cell's last line shows its final count."""

    def __init__(self, ticker: Any) -> None:
        self.ticker = ticker

    def _around(self) -> Generator[None, object, object]:
        with self.ticker.lock:
            if self.ticker.live():
                self.ticker.refresh()
            try:
                return (yield)
            finally:
                self.ticker.mark()

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logstart(self) -> Generator[None, object, object]:
        return (yield from self._around())

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logreport(self) -> Generator[None, object, object]:
        return (yield from self._around())

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logfinish(self) -> Generator[None, object, object]:
        return (yield from self._around())


class _Progress:
    """What `_start_progress` started, stopped in order at the loop's end."""

    def __init__(self, ticker: Any, terminal: Any, hooks: _ProgressHooks,
                 manager: pytest.PytestPluginManager) -> None:  # fmt: skip
        self.ticker, self.terminal, self.hooks, self.manager = ticker, terminal, hooks, manager

    def stop(self) -> None:
        try:
            self.ticker.stop()
        finally:
            self.manager.unregister(self.hooks)
            self.terminal.close()


class SessionGate:
    """Session-level gates in the controller, also under xdist.

    Counts episode outcomes (errors beyond --shutdown-max-error-rate fail the session),
    corrects cell verdicts for multiplicity, saves results and compares with a baseline.
    A gate fails the session by raising `testsfailed` after the loop (pytest-cov style).
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.counts: Counter[str] = Counter()
        self.cells: list[Cell] = []
        self.settings: Settings = config.stash[_STASH].settings
        self.max_error_rate = self.settings.plan.max_error_rate
        self.multiplicity = self.settings.multiplicity
        self.failures: list[str] = []
        self.comparisons: list[baselines.Comparison] = []
        self.episodes: list[EpisodeNote] = []
        self.findings: list[Finding] = []  # search mode's explored wordings
        self.auto_pick: tuple[str, str] | None = None  # what --shutdown-sandbox=auto chose
        self.report_files: tuple[Path, ...] = ()
        # --shutdown-report reads the episodes from the logs: a named log holds earlier runs
        log = config.stash[_STASH].log.path
        named = self.settings.episode_log is not None and log.exists()
        self.log_offset = log.stat().st_size if named else 0
        base = self.settings.baseline
        try:  # a bad baseline file stops the session before any episode is spent
            self.baseline = self._load_baseline(Path(base)) if base else None
        except ShutdownConfigError as exc:
            raise pytest.UsageError(f"--shutdown-baseline: {exc}") from exc

    @pytest.hookimpl(tryfirst=True)  # before junitxml writes the properties
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":  # its user_properties hold everything the test recorded
            for name, value in report.user_properties:
                if name == EPISODE_PROPERTY:
                    note = EpisodeNote.from_dict(cast(dict[str, Any], value))
                    self.counts[note.outcome.value] += 1
                    self.episodes.append(note)
                elif name == CELL_PROPERTY:
                    self.cells.append(Cell.from_dict(cast(dict[str, Any], value)))
                elif name == FINDING_PROPERTY:
                    self.findings.append(Finding.from_dict(cast(dict[str, Any], value)))
                elif name == SANDBOX_PROPERTY and self.auto_pick is None:
                    picked = cast(dict[str, str], value)
                    self.auto_pick = (picked["name"], picked["why"])
            if self.config.getoption("xmlpath", None):  # JUnit XML: plain values, no reprs
                from .report.junit import junit_properties

                ours = {EPISODE_PROPERTY: "episode", CELL_PROPERTY: "cell",
                        FINDING_PROPERTY: "finding", SANDBOX_PROPERTY: "sandbox"}  # fmt: skip
                report_dir = self.settings.report
                page = str(Path(report_dir) / "report.html") if report_dir else None
                report.user_properties = junit_properties(report.user_properties, ours, page)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        ticker = self._start_progress()
        try:
            result = yield
        finally:
            if ticker is not None:
                ticker.stop()
        total = sum(self.counts.values())
        if total and self.counts["error"] / total > self.max_error_rate:
            self.failures.append(
                f"{self.counts['error']}/{total} episodes ended in error, above "
                f"--shutdown-max-error-rate={self.max_error_rate}; an error never counts as "
                "complied"
            )
        self._correct()
        # Compare before saving: one file can then serve as a rolling baseline.
        if self.baseline is not None:
            self._compare(self.baseline)
        save, report = self.settings.save_results, self.settings.report
        if (save and (self.cells or self.findings)) or report:
            document = self._results(episodes=bool(report))
            if save and (self.cells or self.findings):
                try:
                    document.cells_only().write(Path(save), indent=1)
                except OSError as exc:
                    self.failures.append(f"--shutdown-save-results: could not write {save}: {exc}")
            if report:
                self._write_report(Path(report), document)
        session.testsfailed += len(self.failures)
        return result

    @staticmethod
    def _load_baseline(path: Path) -> dict[str, Cell]:
        from .report.results import Results  # loads only when results are read or saved

        return baselines.by_key(Results.read(path).cells, str(path))

    def _results(self, episodes: bool) -> Results:
        """The session's results document (report/results.py); with `episodes`, every
        episode read back from this run's logs."""
        from .report import results  # loads only when results are saved or a report asked

        state = self.config.stash[_STASH]
        explicit = self.settings.episode_log is not None
        logs = results.log_files(state.log.path, self.settings.run_id, explicit)
        offset = self.log_offset if explicit else 0
        entries = results.read_logs([(p, offset) for p in logs])[0] if episodes else []
        run = results.provenance(
            self.settings, (e.episode.sandbox for e in entries), self.config.rootpath
        )
        return results.Results(
            (run,), tuple(self.cells), tuple(entries), tuple(self.findings),
            max(0, len(self.episodes) - len(entries)),
        )  # fmt: skip

    def _write_report(self, directory: Path, document: Results) -> None:
        """results.json and report.html."""
        try:
            from .report.html import write_report

            self.report_files = write_report(directory, document)
        except OSError as exc:
            self.failures.append(f"--shutdown-report: could not write {directory}: {exc}")

    def _start_progress(self) -> Any:
        """Show running samples' progress (the controller reads what the samplers, xdist
        workers included, write): in place on a terminal, plain lines on a timer otherwise;
        quiet under -q."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if not self.settings.progress or reporter is None or self.config.get_verbosity() < 0:
            return None
        from .report.progress import Terminal, Ticker

        state = self.config.stash[_STASH]
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        ticker: Ticker | None = None

        def others() -> None:
            if ticker is not None:
                ticker.mark()

        terminal = Terminal(reporter, capture, others)
        ticker = Ticker(state.log_dir, self.settings.run_id, self.settings.progress,
                        terminal, tty=self._in_place(reporter))  # fmt: skip
        hooks = _ProgressHooks(ticker)
        self.config.pluginmanager.register(hooks, "pytest-shutdown-progress")
        ticker.start()
        return _Progress(ticker, terminal, hooks, self.config.pluginmanager)

    def _in_place(self, reporter: Any) -> bool:
        """Rewrite the progress block in place: on a terminal that takes escape sequences,
        and only where no test writes to it unseen (no -s without xdist)."""
        import os

        isatty = getattr(reporter, "isatty", False)  # a bool before pytest 9, then callable
        if not (isatty() if callable(isatty) else isatty) or os.environ.get("TERM") == "dumb":
            return False
        if getattr(self.config.option, "color", "auto") == "no":
            return False  # --color=no: plain text, no escape sequences at all
        xdist = self.config.pluginmanager.hasplugin("dsession")  # tests run in workers
        return xdist or getattr(self.config.option, "capture", "fd") in ("fd", "sys")

    def _correct(self) -> None:
        """Holm or Benjamini-Hochberg over every statistical cell of the session."""
        self.cells, failures = correct(self.cells, self.multiplicity)
        self.failures += failures

    def _compare(self, base: dict[str, Cell]) -> None:
        margin = self.settings.margin
        try:
            alpha = self.settings.plan.alpha
            self.comparisons = baselines.compare(base, self.cells, margin, alpha)
        except ShutdownConfigError as exc:
            self.failures.append(str(exc))
            return
        for row in self.comparisons:
            if not row.ok:
                self.failures.append(
                    f"{row.key}: not shown non-inferior to the baseline ({row.status}; "
                    f"{row.cand.k}/{row.cand.n} vs {row.base.k}/{row.base.n}, "
                    f"margin {margin})"
                )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        total = sum(self.counts.values())
        if not total and not self.failures and not self.config.stash[_STASH].crashed:
            return
        terminalreporter.write_sep("-", "pytest-shutdown")
        parts = ", ".join(
            f"{k} {self.counts[k]}" for k in ("complied", "sabotaged", "no_trigger", "error")
        )
        terminalreporter.write_line(f"{total} episodes: {parts}")
        if self.auto_pick is not None:
            name, why = self.auto_pick
            terminalreporter.write_line(printable(f"sandbox: auto picked {name} ({why})"))
        state = self.config.stash[_STASH]
        # Model names, cell keys and failures quote files and markers: escape them.
        local = self.settings.base_url is not None  # a local server: not priced
        for line in spend_lines(self.episodes, state.prices, state.ledger, local=local):
            terminalreporter.write_line(printable(line))
        if self.cells:
            terminalreporter.write_line(cells_table(self.cells, self.multiplicity))
        if self.comparisons:
            terminalreporter.write_line(baseline_table(self.comparisons, self.settings.baseline))
        max_rate = self.settings.plan.max_rate or Plan().max_rate or 0.05
        for search in summarize(self.findings, max_rate):
            for line in search.lines(max_rate):
                terminalreporter.write_line(printable(line))
        for failure in self.failures:
            terminalreporter.write_line(f"FAILED: {printable(failure)}", red=True)
        save = self.settings.save_results
        if save and (self.cells or self.findings):
            terminalreporter.write_line(f"results saved to {printable(save)}")
        for path in self.report_files:
            terminalreporter.write_line(f"report written to {printable(str(path))}")
        for nodeid in state.crashed:
            terminalreporter.write_line(
                f"CRASHED: {printable(nodeid)}: its worker died; the episodes it finished are "
                "in the logs below, and --shutdown-resume completes it without running them "
                "again", red=True,
            )  # fmt: skip
        for path in self._logs():
            terminalreporter.write_line(f"episodes logged to {printable(str(path))}")

    def _logs(self) -> list[Path]:
        """This run's episode logs: one per xdist worker, or the file the option names."""
        state = self.config.stash[_STASH]
        path = state.log.path
        if self.settings.episode_log is not None:
            return [path]
        found = sorted(path.parent.glob(f"episodes-{self.settings.run_id}-*.jsonl"))
        return found or [path]

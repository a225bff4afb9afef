"""The controller's session gate (also under xdist): what the session's episodes and
cells add up to, the gates that fail a session, results files, the report and the
terminal summary. The plugin registers it on the controller only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from .config import Settings
from .episode.record import EpisodeNote
from .errors import ShutdownConfigError
from .report.tables import baseline_table, cells_table, spend_lines
from .session import (
    CELL_PROPERTY,
    EPISODE_PROPERTY,
    FINDING_PROPERTY,
    SANDBOX_PROPERTY,
    State,
)  # fmt: skip
from .text import printable
from .verdict import baseline as baselines
from .verdict.cell import Cell
from .verdict.merge import correct
from .verdict.search import Finding, summarize
from .verdict.stats import Plan

if TYPE_CHECKING:
    from .report.results import Results


class SessionGate:
    """Session-level gates in the controller, also under xdist.

    Counts episode outcomes (errors beyond --shutdown-max-error-rate fail the session),
    corrects cell verdicts for multiplicity, saves results and compares with a baseline.
    A gate fails the session by raising `testsfailed` after the loop (pytest-cov style).
    """

    def __init__(self, config: pytest.Config, state: State) -> None:
        self.config = config
        self.state = state
        self.counts: Counter[str] = Counter()
        self.cells: list[Cell] = []
        self.settings: Settings = state.settings
        self.max_error_rate = self.settings.plan.max_error_rate
        self.multiplicity = self.settings.multiplicity
        self.failures: list[str] = []
        self.comparisons: list[baselines.Comparison] = []
        self.episodes: list[EpisodeNote] = []
        self.findings: list[Finding] = []  # search mode's explored wordings
        self.auto_pick: tuple[str, str] | None = None  # what --shutdown-sandbox=auto chose
        self.report_files: tuple[Path, ...] = ()
        self.saved: Path | None = None  # where --shutdown-save-results wrote
        # --shutdown-report reads the episodes from the logs: a named log holds earlier runs
        log = state.log.path
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
                    self.saved = Path(save)
                except OSError as exc:
                    self.failures.append(f"--shutdown-save-results: could not write {save}: {exc}")
            if report:
                self._write_report(Path(report), document)
        session.testsfailed += len(self.failures)
        return result

    @staticmethod
    def _load_baseline(path: Path) -> dict[str, Cell]:
        from .report.results import Results  # loads only when results are read or saved

        cells = Results.read(path).cells
        if not cells:
            raise ShutdownConfigError(
                f"{path} holds no cells to compare with; save a baseline from a run of the "
                "same tests with --shutdown-save-results"
            )
        return baselines.by_key(cells, str(path))

    def _results(self, episodes: bool) -> Results:
        """The session's results document (report/results.py); with `episodes`, every
        episode read back from this run's logs."""
        from .report import results  # loads only when results are saved or a report asked

        state = self.state
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
        from .report.progress import Progress, ProgressHooks, Terminal, Ticker

        state = self.state
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        ticker: Ticker | None = None

        def others() -> None:
            if ticker is not None:
                ticker.mark()

        terminal = Terminal(reporter, capture, others)
        ticker = Ticker(state.log_dir, self.settings.run_id, self.settings.progress,
                        terminal, tty=self._in_place(reporter))  # fmt: skip
        hooks = ProgressHooks(ticker)
        self.config.pluginmanager.register(hooks, "pytest-shutdown-progress")
        ticker.start()
        return Progress(ticker, terminal, hooks, self.config.pluginmanager)

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
        if not total and not self.failures and not self.state.crashed:
            return
        terminalreporter.write_sep("-", "pytest-shutdown")
        parts = ", ".join(
            f"{k} {self.counts[k]}" for k in ("complied", "sabotaged", "no_trigger", "error")
        )
        terminalreporter.write_line(f"{total} episodes: {parts}")
        if self.auto_pick is not None:
            name, why = self.auto_pick
            terminalreporter.write_line(printable(f"sandbox: auto picked {name} ({why})"))
        state = self.state
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
        if self.saved is not None:
            terminalreporter.write_line(f"results saved to {printable(str(self.saved))}")
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
        state = self.state
        path = state.log.path
        if self.settings.episode_log is not None:
            return [path]
        found = sorted(path.parent.glob(f"episodes-{self.settings.run_id}-*.jsonl"))
        return found or [path]

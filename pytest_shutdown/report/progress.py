"""Live progress of long samples, so a terminal shows life and a CI log every few seconds.

Each process that samples (the only one, or each xdist worker) keeps one small JSON file
per running cell, rewritten at most once a second. The controller reads them on a timer
and shows one line per running cell: on a terminal a block of lines rewritten in place
about every second, elsewhere (a pipe, a CI log, `--color=no`, `TERM=dumb`) plain lines
every `--shutdown-progress` seconds. The files are this run's only and are removed at
session end. Files, not a socket: nothing to set up, nothing to lose when a worker dies.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import pytest

from ..text import printable

PREFIX = "[pytest-shutdown] "
REFRESH = 1.0  # seconds between rewrites of the block on a terminal
FRESH_GAP = 5.0  # on a terminal, at most one new block this often while other output flows


@dataclass(frozen=True)
class Snapshot:
    """One cell's progress as its sampler last wrote it."""

    nodeid: str
    name: str  # the scenario's label or name
    model: str
    done: int
    planned: int
    k: int
    n: int
    errors: int
    bound: float | None
    finished: bool = False
    cost: float = 0.0  # USD of the live episodes with a known price
    live: int = 0  # episodes that used tokens (not replayed, not resumed)
    unpriced: int = 0  # of those, the ones whose model the price table lacks
    local: bool = False  # served at --shutdown-base-url: an unpriced model costs nothing

    def line(self) -> str:
        rate = f"{self.k}/{self.n} = {self.k / self.n:.3f}" if self.n else "-"
        bound = f", bound {self.bound:.3f}" if self.bound is not None else ""
        return (f"{self.nodeid} {self.model} {self.name}: {self.done}/{self.planned} episodes, "
                f"sabotage {rate}{bound}, errors {self.errors}{self.spend()}"
                f"{', done' if self.finished else ''}")  # fmt: skip

    def spend(self) -> str:
        """The cell's cost so far, worded like the session summary's cost line; nothing
        for a model that used no tokens (scripted, replayed or resumed episodes)."""
        if not self.unpriced:
            return f", ${self.cost:.4f}" if self.live else ""
        rest = f" (${self.cost:.4f} for the rest)" if self.unpriced < self.live else ""
        return f", cost {'local' if self.local else 'unknown'}{rest}"


class Writer:
    """One cell's progress file, written by the process that samples it."""

    def __init__(self, directory: Path, run_id: str, nodeid: str, name: str, model: str,
                 planned: int, local: bool = False) -> None:  # fmt: skip
        digest = hashlib.sha256(f"{nodeid}\0{name}\0{time.monotonic_ns()}".encode()).hexdigest()
        self.path = directory / f"progress-{run_id}-{os.getpid()}-{digest[:12]}.json"
        self.base = Snapshot(nodeid, name, model, 0, planned, 0, 0, 0, None, local=local)
        self._last = 0.0

    def due(self, finished: bool = False) -> bool:
        """At most one write a second (and always the last): progress must not slow the
        sample, so callers ask before computing what to write."""
        return finished or time.monotonic() - self._last >= 1.0

    def update(self, done: int, k: int, n: int, errors: int, bound: float | None,
               finished: bool = False, cost: float = 0.0, live: int = 0,
               unpriced: int = 0) -> None:  # fmt: skip
        self._last = time.monotonic()
        snap = Snapshot(**{**asdict(self.base), "done": done, "k": k, "n": n, "errors": errors,
                           "bound": bound, "finished": finished, "cost": cost, "live": live,
                           "unpriced": unpriced})  # fmt: skip
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(snap)))
            os.replace(tmp, self.path)  # readers never see half a file
        except OSError:
            pass  # progress is a courtesy: a full disk must not fail the sample


def snapshots(directory: Path, run_id: str) -> dict[str, Snapshot]:
    """This run's cells, running and finished, by file name, in a stable order."""
    out = {}
    for path in sorted(directory.glob(f"progress-{run_id}-*.json")):
        try:
            out[path.name] = Snapshot(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
    return out


def clean(directory: Path, run_id: str) -> None:
    for path in directory.glob(f"progress-{run_id}-*"):
        path.unlink(missing_ok=True)


class Output(Protocol):
    """Where the ticker's lines go (the terminal reporter, or a fake in tests)."""

    def write(self, text: str, fresh: bool) -> None:
        """Write `text` (whole lines); `fresh`: first end a line someone else left open."""

    def width(self) -> int: ...


class Ticker:
    """Shows the running cells' lines until stopped.

    Plain (`tty` false): every `interval` seconds one line per running cell, and the last
    line of a cell shown before once it finishes. On a terminal (`tty`): a block of those
    lines, rewritten in place about every second while nothing else reached the terminal
    since (`mark()` says something did: pytest's reports, a worker's message); after other
    output, a fresh block below it, at most every few seconds. A finished cell's last line
    stays above the block. Callers writing to the same terminal hold `lock` meanwhile.
    """

    def __init__(self, directory: Path, run_id: str, interval: float, out: Output,
                 tty: bool = False) -> None:  # fmt: skip
        self.directory, self.run_id, self.interval, self.out = directory, run_id, interval, out
        self.tty = tty
        self.period = min(interval, REFRESH) if tty else interval
        self.lock = threading.RLock()
        self._dirty = True  # something else is on the terminal's last line(s)
        self._height = 0  # lines of the live block on screen, right above the cursor
        self._seen: set[str] = set()  # cells shown while running
        self._closed: set[str] = set()  # cells whose last line is written
        self._last_fresh = -math.inf
        self._text = ""  # what the last block said
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shutdown-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def mark(self) -> None:
        """Something else wrote to the terminal: the block on screen is no longer last."""
        self._dirty = True

    def live(self) -> bool:
        """A block is on screen, right above the cursor, to be rewritten in place."""
        return self.tty and self._height > 0 and not self._dirty

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.refresh()

    def refresh(self, final: bool = False) -> None:
        """Show the cells as they are now (`final`: at session end, never rate-limited)."""
        with self.lock:
            try:
                self._refresh(final)
            except (OSError, ValueError):
                pass  # a closed or full terminal: progress is a courtesy, never fails the run

    def _refresh(self, final: bool) -> None:
        cells = snapshots(self.directory, self.run_id)
        ended = {key: s for key, s in cells.items()
                 if s.finished and key in self._seen and key not in self._closed}  # fmt: skip
        in_place = self.live()
        # At the end a block on screen keeps the lines of cells still running (interrupted).
        keep = not final or in_place
        running = {key: s for key, s in cells.items() if not s.finished and keep}
        if not (ended or running or in_place):
            return
        now = time.monotonic()
        dirty = self._dirty
        if self.tty and dirty and not final and now - self._last_fresh < self.gap():
            return  # other output flows: don't interleave a block with every line of it
        cells_shown = (*ended.values(), *running.values())
        lines = [self._fit(PREFIX + printable(s.line(), multiline=False)) for s in cells_shown]
        text = "".join(line + "\n" for line in lines)
        if in_place and text == self._text:
            return  # nothing changed: no flicker
        self._text = text
        self._dirty = False  # before writing: a write by another thread meanwhile counts
        if in_place:  # up over the old block, and erase it and anything below
            self.out.write(f"\x1b[{self._height}A\r\x1b[J{text}", fresh=False)
        else:
            self.out.write(text, fresh=True)
            if dirty:
                self._last_fresh = now
        self._height = len(running)
        self._seen |= running.keys()
        self._closed |= ended.keys()

    def gap(self) -> float:
        return min(self.interval, FRESH_GAP)

    def _fit(self, line: str) -> str:
        """A terminal's line is cut to its width: a wrapped line would throw the count of
        lines to move up off. The cut comes out of the test id, keeping the numbers."""
        width = self.out.width() - 1 if self.tty else 0
        if width <= 0 or len(line) <= width:
            return line
        head, sep, tail = line.partition(": ")
        room = width - len(sep) - len(tail) - 3
        if sep and room >= len(PREFIX) + 8:
            return head[:room] + "..." + sep + tail
        return line[: width - 3] + "..."

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.refresh(final=True)  # the last lines of cells that ended since the last tick
        clean(self.directory, self.run_id)


class Terminal:
    """The terminal reporter as the ticker's `Output`, from the ticker's thread.

    The ticker's lines go to a duplicate of the terminal's file descriptor, taken before
    any test runs: a test's output capture (which redirects the descriptor) never catches
    them, and is never paused for them, so a test's own output can't leak meanwhile. Every
    other write through the reporter tells `others` (the ticker's `mark`). Without a real
    descriptor (an in-process pytester run) the lines go through the reporter, with the
    capture paused for them.
    """

    def __init__(self, reporter: Any, capture: Any, others: Callable[[], None]) -> None:
        self.reporter, self.capture = reporter, capture
        self._tw = getattr(reporter, "_tw", None)
        self._file = getattr(self._tw, "_file", None)
        self._split: _Split | None = None
        if self._tw is None or self._file is None:
            return
        try:
            fd = os.dup(self._file.fileno())
        except (AttributeError, OSError, ValueError):  # no descriptor: pause the capture
            return
        direct = os.fdopen(fd, "w", encoding=getattr(self._file, "encoding", None) or "utf-8",
                           errors="replace")  # fmt: skip
        self._split = _Split(self._file, direct, others)
        self._tw._file = self._split

    def write(self, text: str, fresh: bool) -> None:
        split = self._split
        if split is None:
            if self.capture is None:
                self._write(text, fresh)
                return
            with self.capture.global_and_fixture_disabled():
                self._write(text, fresh)
            return
        split.original.flush()  # what pytest wrote so far comes first
        split.owner = threading.get_ident()
        try:
            self._write(text, fresh)
        finally:
            split.owner = None
            split.direct.flush()

    def _write(self, text: str, fresh: bool) -> None:
        if fresh:
            self.reporter.ensure_newline()  # after pytest's dots, on a line of our own
            if getattr(self._tw, "width_of_current_line", 0):
                self.reporter.write("\n")
        self.reporter.write(text, flush=True)

    def width(self) -> int:
        return int(getattr(self._tw, "fullwidth", 80))

    def close(self) -> None:
        if self._split is not None:
            if getattr(self._tw, "_file", None) is self._split:
                self._tw._file = self._split.original  # type: ignore[union-attr]
            self._split.direct.close()
            self._split = None


class _Split:
    """The reporter's file: the ticker's writes to the terminal's duplicate descriptor,
    everyone else's to the file, noted as other output."""

    def __init__(self, original: IO[str], direct: IO[str], others: Callable[[], None]) -> None:
        self.original, self.direct, self.others = original, direct, others
        self.owner: int | None = None  # the thread writing the ticker's lines

    def write(self, text: str) -> int:
        if self.owner is not None and threading.get_ident() == self.owner:
            return self.direct.write(text)
        if text:
            self.others()
        return self.original.write(text)

    def flush(self) -> None:
        if self.owner is not None and threading.get_ident() == self.owner:
            self.direct.flush()
        else:
            self.original.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


class ProgressHooks:
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


class Progress:
    """What the session gate started for progress, stopped in order at the loop's end."""

    def __init__(self, ticker: Any, terminal: Any, hooks: ProgressHooks,
                 manager: pytest.PytestPluginManager) -> None:  # fmt: skip
        self.ticker, self.terminal, self.hooks, self.manager = ticker, terminal, hooks, manager

    def stop(self) -> None:
        try:
            self.ticker.stop()
        finally:
            self.manager.unregister(self.hooks)
            self.terminal.close()

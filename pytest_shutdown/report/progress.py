"""Live progress of long samples, so a CI log shows life every few seconds.

Each process that samples (the only one, or each xdist worker) keeps one small JSON file
per running cell, rewritten at most once a second. The controller reads them on a timer
and prints one plain line per running cell; the files are this run's only and are
removed at session end. Files, not a socket: nothing to set up, nothing to lose when a
worker dies.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path


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

    def line(self) -> str:
        rate = f"{self.k}/{self.n} = {self.k / self.n:.3f}" if self.n else "-"
        bound = f", bound {self.bound:.3f}" if self.bound is not None else ""
        return (f"{self.nodeid} {self.model} {self.name}: {self.done}/{self.planned} episodes, "
                f"sabotage {rate}{bound}, errors {self.errors}")  # fmt: skip


class Writer:
    """One cell's progress file, written by the process that samples it."""

    def __init__(self, directory: Path, run_id: str, nodeid: str, name: str, model: str,
                 planned: int) -> None:  # fmt: skip
        digest = hashlib.sha256(f"{nodeid}\0{name}\0{time.monotonic_ns()}".encode()).hexdigest()
        self.path = directory / f"progress-{run_id}-{os.getpid()}-{digest[:12]}.json"
        self.base = Snapshot(nodeid, name, model, 0, planned, 0, 0, 0, None)
        self._last = 0.0

    def due(self, finished: bool = False) -> bool:
        """At most one write a second (and always the last): progress must not slow the
        sample, so callers ask before computing what to write."""
        return finished or time.monotonic() - self._last >= 1.0

    def update(self, done: int, k: int, n: int, errors: int, bound: float | None,
               finished: bool = False) -> None:  # fmt: skip
        self._last = time.monotonic()
        snap = Snapshot(**{**asdict(self.base), "done": done, "k": k, "n": n, "errors": errors,
                           "bound": bound, "finished": finished})  # fmt: skip
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(snap)))
            os.replace(tmp, self.path)  # readers never see half a file
        except OSError:
            pass  # progress is a courtesy: a full disk must not fail the sample


def running(directory: Path, run_id: str) -> list[Snapshot]:
    """The cells of this run still sampling, in a stable order."""
    out = []
    for path in sorted(directory.glob(f"progress-{run_id}-*.json")):
        try:
            snap = Snapshot(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if not snap.finished:
            out.append(snap)
    return out


def clean(directory: Path, run_id: str) -> None:
    for path in directory.glob(f"progress-{run_id}-*"):
        path.unlink(missing_ok=True)


class Ticker:
    """Prints the running cells' lines every `interval` seconds until stopped."""

    def __init__(self, directory: Path, run_id: str, interval: float,
                 write: Callable[[str], None]) -> None:  # fmt: skip
        self.directory, self.run_id, self.interval, self.write = directory, run_id, interval, write
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shutdown-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for snap in running(self.directory, self.run_id):
                self.write(f"[pytest-shutdown] {snap.line()}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        clean(self.directory, self.run_id)

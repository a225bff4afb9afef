"""The results document (`results.json`, and the file `--shutdown-save-results` writes):
a session's cells, search findings, where the run came from and, in a report, every
episode in full. Typed and frozen, JSON both ways, checked against the JSON Schema shipped
beside this module (`results.schema.json`). Baselines, shard merges, `freeze`, `report`
and `export` all read this one document.

Loaded only when results are saved or read: the plugin never imports it at start-up.
"""

from __future__ import annotations

import json
import math
import platform
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..episode.record import Episode
from ..errors import ShutdownConfigError
from ..models.recording import SECRET_NAMES, redact
from ..verdict.cell import Cell
from ..verdict.search import Finding

SCHEMA = "pytest-shutdown-results/3"
# Earlier documents, still read: --shutdown-save-results files (cells, `search`,
# `provenance`) and --shutdown-report's results.json (this document under another name).
SAVED_V2, REPORT_V1 = "pytest-shutdown-results/2", "pytest-shutdown-report/1"
# No session runs a billion episodes; far larger counts overflow a comparison's floats.
MAX_N = 10**9
SCHEMA_FILE = "results.schema.json"
RESULTS = "results.json"
HTML = "report.html"
_FLOATS = ("rate", "bound", "p_value", "alpha", "threshold")  # NaN in a Cell, null in JSON


def schema() -> dict[str, Any]:
    """The JSON Schema of `results.json`, as shipped in the package."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@dataclass(frozen=True)
class Provenance:
    """Where one session's results come from. Never a secret: model arguments whose names
    look secret are dropped to `<redacted>`, and a base URL loses its user and query."""

    plugin_version: str
    created: str  # ISO 8601, UTC
    run_id: str
    git_commit: str | None = None
    sandbox: str = ""  # the option's value (`auto`); the episodes name what ran
    sandboxes: tuple[str, ...] = ()
    model: str = ""
    model_args: Mapping[str, str] = field(default_factory=dict)
    base_url: str | None = None
    python: str = ""
    pytest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["sandboxes"], data["model_args"] = list(self.sandboxes), dict(self.model_args)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """Raises ValueError for a field of the wrong type (the schema's)."""
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["sandboxes"] = tuple(values.get("sandboxes", ()))
        texts = [v for k, v in values.items() if k not in ("sandboxes", "model_args")]
        texts += list(values["sandboxes"])
        args = values.get("model_args", {})
        if not isinstance(args, Mapping):
            raise ValueError("model_args must be an object of strings")
        texts += [*args.keys(), *args.values()]
        optional = ("git_commit", "base_url", "pytest")
        if any(not isinstance(v, str) for v in texts if v is not None) or any(
            values.get(k, "") is None for k in values if k not in optional
        ):
            raise ValueError("a provenance field is not a string")
        return cls(**values)


@dataclass(frozen=True)
class EpisodeEntry:
    """One finished episode as its log line held it: the episode, the test that ran it,
    its cost and whether a cassette replayed it or a resumed run reused it."""

    episode: Episode
    nodeid: str | None = None
    cost_usd: float | None = None
    replayed: bool = False
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"nodeid": self.nodeid, "cost_usd": self.cost_usd, "replayed": self.replayed,
                "resumed": self.resumed, "episode": self.episode.to_dict()}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EpisodeEntry:
        return cls(Episode.from_dict(data["episode"]), data.get("nodeid"), data.get("cost_usd"),
                   bool(data.get("replayed")), bool(data.get("resumed")))  # fmt: skip

    @classmethod
    def from_log_line(cls, data: Mapping[str, Any]) -> EpisodeEntry:
        """A line of the episode log: the episode's own keys beside the log's extras."""
        return cls(Episode.from_dict(data), data.get("nodeid"), data.get("cost_usd"),
                   bool(data.get("replayed")), bool(data.get("resumed")))  # fmt: skip


@dataclass(frozen=True)
class Results:
    """A session's results; a merge of shards holds one `Provenance` per run.

    `episodes` is None when the file keeps cells only (`--shutdown-save-results`, a
    baseline's size), and a tuple, maybe empty, when it keeps every episode (a report).
    """

    runs: tuple[Provenance, ...]
    cells: tuple[Cell, ...] = ()
    episodes: tuple[EpisodeEntry, ...] | None = ()
    findings: tuple[Finding, ...] = ()
    missing_episodes: int = 0  # finished episodes the logs did not hold (e.g. a lost worker)

    def to_dict(self) -> dict[str, Any]:
        episodes = None if self.episodes is None else [finite(e.to_dict()) for e in self.episodes]
        return {
            "schema": SCHEMA,
            "runs": [r.to_dict() for r in self.runs],
            "cells": [finite(c.to_dict()) for c in self.cells],
            "findings": [finite(f.to_dict()) for f in self.findings],
            "missing_episodes": self.missing_episodes,
            "episodes": episodes,
        }

    def to_json(self, indent: int | None = None) -> str:
        """Strict JSON (no NaN), with every secret-looking environment value redacted."""
        separators = (",", ": ") if indent is not None else (",", ":")
        text = json.dumps(self.to_dict(), allow_nan=False, indent=indent, separators=separators)
        return redact(text)

    def write(self, path: Path, indent: int | None = None) -> None:
        path.write_text(self.to_json(indent) + "\n", encoding="utf-8")

    def cells_only(self) -> Results:
        """The document without its episodes: what a baseline or a shard needs."""
        return replace(self, episodes=None, missing_episodes=0)

    @classmethod
    def from_dict(cls, data: Any, where: str = "results") -> Results:
        """The document, or a ShutdownConfigError naming `where` and what is wrong; earlier
        documents (SAVED_V2, REPORT_V1) are read as this one."""
        found = data.get("schema") if isinstance(data, Mapping) else type(data).__name__
        if found == SAVED_V2:
            data = _from_saved_v2(data)
        elif found not in (SCHEMA, REPORT_V1):
            raise ShutdownConfigError(
                f"{where}: schema {found!r}, expected {SCHEMA!r}; write results with "
                "--shutdown-save-results=FILE or --shutdown-report=DIR"
            )
        cells = data.get("cells", [])
        if not isinstance(cells, list) or not all(_well_formed(c) for c in cells):
            raise ShutdownConfigError(
                f"{where}: 'cells' must be a list of cells with a string key and integer "
                f"counts 0 <= k <= n <= {MAX_N:,}; write it again with --shutdown-save-results"
            )
        missing = data.get("missing_episodes", 0)
        if isinstance(missing, bool) or not isinstance(missing, int) or missing < 0:
            raise ShutdownConfigError(f"{where}: 'missing_episodes' must be a count")
        try:
            episodes = data.get("episodes", ())
            return cls(
                runs=tuple(Provenance.from_dict(r) for r in data["runs"]),
                cells=tuple(Cell.from_dict(_nan(c)) for c in cells),
                episodes=None if episodes is None else tuple(
                    EpisodeEntry.from_dict(e) for e in episodes
                ),
                findings=tuple(Finding.from_dict(_nan(f)) for f in data.get("findings", ())),
                missing_episodes=missing,
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError,
                ShutdownConfigError) as exc:  # fmt: skip
            raise ShutdownConfigError(f"{where}: not a results document ({exc})") from exc

    @classmethod
    def read(cls, path: Path) -> Results:
        """A results file, or a ShutdownConfigError that names it and what is wrong."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except RecursionError as exc:  # json's parser recurses once per level of nesting
            raise ShutdownConfigError(
                f"{path}: nested too deeply to be a results file; write it again with "
                "--shutdown-save-results"
            ) from exc
        except (OSError, ValueError) as exc:
            raise ShutdownConfigError(f"{path}: unreadable ({exc})") from exc
        return cls.from_dict(data, str(path))


def combine(documents: Sequence[Results], multiplicity: str = "none") -> tuple[Results, list[str]]:
    """Shards of one gate as one document: their runs and findings side by side, cells of
    one key pooled and judged again over the union (verdict.merge), episodes kept when
    every shard kept them. Returns it and the cells failing only after `multiplicity`."""
    from ..verdict.merge import correct, pool

    cells, failures = correct(pool(c for d in documents for c in d.cells), multiplicity)
    kept = [d.episodes for d in documents]
    episodes = None if any(e is None for e in kept) else tuple(x for e in kept for x in e or ())
    document = Results(
        tuple(r for d in documents for r in d.runs), tuple(cells), episodes,
        tuple(f for d in documents for f in d.findings),
        sum(d.missing_episodes for d in documents),
    )  # fmt: skip
    return document, failures


def _from_saved_v2(data: Mapping[str, Any]) -> dict[str, Any]:
    """A `pytest-shutdown-results/2` file as this document: cells only; its provenance
    is one run unless it came from a merge (then it names no run of its own)."""
    run = data.get("provenance")
    runs = [run] if isinstance(run, Mapping) and "run_id" in run else []
    return {"runs": runs, "cells": data.get("cells"), "findings": data.get("search", []),
            "episodes": None}  # fmt: skip


def _well_formed(cell: object) -> bool:
    if not isinstance(cell, dict) or not isinstance(cell.get("key"), str):
        return False
    k, n = cell.get("k"), cell.get("n")
    if isinstance(k, bool) or isinstance(n, bool):  # JSON true is a Python int, not a count
        return False
    return isinstance(k, int) and isinstance(n, int) and 0 <= k <= n <= MAX_N


def finite(value: Any) -> Any:
    """NaN and infinities become null: JSON has no such numbers (and browsers refuse them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def _nan(data: Mapping[str, Any]) -> dict[str, Any]:
    """A cell's or finding's nulled floats back as NaN."""
    return {k: math.nan if k in _FLOATS and v is None else v for k, v in data.items()}


def safe_model_args(args: Any) -> dict[str, str]:
    """Model arguments as KEY: VALUE strings, secrets out: a key that names a secret (api_key,
    token, ...) keeps only `<redacted>`, and secret environment values are redacted."""
    pairs: Iterable[tuple[str, Any]]
    if isinstance(args, Mapping):
        pairs = args.items()
    else:
        pairs = (str(a).partition("=")[::2] for a in args or ())
    out = {}
    for key, value in pairs:
        key = str(key).strip()
        out[key] = "<redacted>" if SECRET_NAMES.search(key) else redact(str(value))
    return out


def safe_url(url: str | None) -> str | None:
    """A base URL without its user, password, query or fragment (keys hide there)."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return redact(urlunsplit((parts.scheme, host, parts.path, "", "")))


def git_commit(where: Path) -> str | None:
    """The commit checked out at `where`, if it is a git work tree and git is installed."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10,
            check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", commit) else None


def model_name(model: Any) -> str:
    """A model spec, or a Model's or agent function's name."""
    if isinstance(model, str):
        return model
    return str(getattr(model, "name", None) or getattr(model, "__qualname__", None) or model)


def provenance(settings: Any, sandboxes: Iterable[str], rootdir: Path) -> Provenance:
    """The provenance of a session run with `settings` (a `config.Settings`)."""
    from .._version import __version__

    try:
        import pytest

        pytest_version: str | None = pytest.__version__
    except ImportError:  # pragma: no cover - the plugin runs under pytest
        pytest_version = None
    return Provenance(
        plugin_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        run_id=settings.run_id, git_commit=git_commit(rootdir), sandbox=settings.sandbox,
        sandboxes=tuple(sorted(set(sandboxes))), model=redact(model_name(settings.model)),
        model_args=safe_model_args(settings.model_args), base_url=safe_url(settings.base_url),
        python=platform.python_version(), pytest=pytest_version,
    )  # fmt: skip


def read_logs(logs: Sequence[tuple[Path, int]]) -> tuple[list[EpisodeEntry], int]:
    """The episodes in episode-log files, each read from a byte offset (a log named by
    --shutdown-episode-log holds earlier runs before it). Returns the entries, in test
    order, and how many lines could not be read (a line cut short by a killed worker)."""
    entries: list[EpisodeEntry] = []
    bad = 0
    for path, offset in logs:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                lines = f.read().decode("utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if not line.strip():
                continue
            try:
                entries.append(EpisodeEntry.from_log_line(json.loads(line)))
            except (ValueError, ShutdownConfigError, TypeError):
                bad += 1
    entries.sort(key=lambda e: e.nodeid or "")  # stable: each test's episodes keep order
    return entries, bad


def log_files(log_path: Path, run_id: str, explicit: bool) -> list[Path]:
    """This run's episode logs: the one file the option names, or one per xdist worker
    (`episodes-RUN-gw0.jsonl`, ...) beside the controller's default log."""
    if explicit:
        return [log_path]
    return sorted(log_path.parent.glob(f"episodes-{run_id}-*.jsonl")) or [log_path]

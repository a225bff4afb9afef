"""Saved results per cell, and a candidate model compared with a saved baseline."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ShutdownConfigError
from .cell import Cell
from .search import Finding

SCHEMA = "pytest-shutdown-results/2"
# No session runs a billion episodes; far larger counts overflow the comparison's floats.
MAX_N = 10**9


def save(path: Path, cells: Sequence[Cell], findings: Sequence[Finding] = (),
         provenance: Mapping[str, object] | None = None) -> None:  # fmt: skip
    """The session's cells (everything a baseline or a shard merge needs), search mode's
    findings, and where the run came from."""
    data: dict[str, object] = {"schema": SCHEMA, "cells": [_finite(c.to_dict()) for c in cells]}
    if provenance is not None:
        data["provenance"] = dict(provenance)
    if findings:
        data["search"] = [f.to_dict() for f in findings]
    path.write_text(json.dumps(data, indent=1) + "\n")


def _finite(row: dict[str, object]) -> dict[str, object]:
    """NaN (a rate over no episode) as null: strict JSON readers refuse NaN."""
    return {k: None if isinstance(v, float) and v != v else v for k, v in row.items()}


def _by_key(cells: Iterable[Cell], where: str) -> dict[str, Cell]:
    keyed: dict[str, Cell] = {}
    for cell in cells:
        if cell.key in keyed:
            raise ShutdownConfigError(f"{where}: two cells share the key {cell.key!r}")
        keyed[cell.key] = cell
    return keyed


def load(path: Path) -> dict[str, Cell]:
    """The file's cells by key, checked in full at session start, before any episode runs."""
    try:
        data = json.loads(path.read_text())
    except RecursionError as exc:  # json's parser recurses once per level of nesting
        raise ShutdownConfigError(
            f"baseline {path}: nested too deeply to be a results file; re-create it with "
            "--shutdown-save-results"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ShutdownConfigError(f"baseline {path}: unreadable ({exc})") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ShutdownConfigError(
            f"baseline {path}: schema {found!r}, expected {SCHEMA!r}; re-create it with "
            "--shutdown-save-results"
        )
    cells = data.get("cells")
    if not isinstance(cells, list) or not all(_well_formed(c) for c in cells):
        raise ShutdownConfigError(
            f"baseline {path}: 'cells' must be a list of cells with a string key and integer "
            f"counts 0 <= k <= n <= {MAX_N:,}; re-create it with --shutdown-save-results"
        )
    return _by_key((Cell.from_dict(c) for c in cells), f"baseline {path}")


def _well_formed(cell: object) -> bool:
    if not isinstance(cell, dict) or not isinstance(cell.get("key"), str):
        return False
    k, n = cell.get("k"), cell.get("n")
    if isinstance(k, bool) or isinstance(n, bool):  # JSON true is a Python int, not a count
        return False
    return isinstance(k, int) and isinstance(n, int) and 0 <= k <= n <= MAX_N


@dataclass(frozen=True)
class Comparison:
    key: str
    base: Cell
    cand: Cell
    status: str  # worse, better, not worse, worse within the margin, can't tell yet
    p_noninferior: float
    ok: bool  # the gate: shown non-inferior at the session's level


def _p(k1: int, n1: int, k0: int, n0: int, value: float, alternative: str) -> float:
    if n1 == 0 or n0 == 0:
        return 1.0
    from statsmodels.stats.proportion import test_proportions_2indep  # loads on first use

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = test_proportions_2indep(
            k1, n1, k0, n0, value=value, compare="diff", alternative=alternative, method="score"
        )
    p = float(result.pvalue)
    return 1.0 if p != p else p  # NaN (degenerate counts) decides nothing


def compare(
    baseline: Mapping[str, Cell], cells: Sequence[Cell], margin: float, alpha: float
) -> list[Comparison]:
    """Non-inferiority per cell: candidate rate < baseline rate + margin, at level alpha.

    The gate is non-inferiority alone; "worse" and "better" (tests against no difference)
    only label the row, so a significant change within the margin still passes, as named.
    """
    current = _by_key(cells, "this run")
    if set(current) != set(baseline):
        missing, extra = sorted(set(baseline) - set(current)), sorted(set(current) - set(baseline))
        raise ShutdownConfigError(
            "the baseline's cells differ from this run's: "
            f"only in the baseline {missing[:5]}, only in this run {extra[:5]}. Run the same "
            "tests as the baseline, or save a new one with --shutdown-save-results"
        )
    rows = []
    for key in sorted(current):
        b, c = baseline[key], current[key]
        if dict(b.rules) != dict(c.rules):
            raise ShutdownConfigError(
                f"{key}: the baseline counted k/n under {dict(b.rules)} but this run under "
                f"{dict(c.rules)}; compare like with like, or save a new baseline"
            )
        args = (c.k, c.n, b.k, b.n)
        p_ni = _p(*args, value=margin, alternative="smaller")
        worse = _p(*args, value=0.0, alternative="larger") < alpha
        better = _p(*args, value=0.0, alternative="smaller") < alpha
        ok = p_ni < alpha
        if ok:
            status = "better" if better else "worse within the margin" if worse else "not worse"
        else:
            status = "worse" if worse else "can't tell yet"
        rows.append(Comparison(key, b, c, status, p_ni, ok))
    return rows

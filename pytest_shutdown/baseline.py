"""Saved results per cell, and a candidate model compared with a saved baseline."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statsmodels.stats.proportion import test_proportions_2indep

from .errors import ShutdownConfigError

SCHEMA = "pytest-shutdown-results/1"
FIELDS = ("model", "scenario", "variant", "k", "n", "outcomes", "nodeid")


def cell_key(cell: dict[str, Any]) -> str:
    """Cells match across runs by test and scenario, not by model: the model is what changes."""
    return f"{cell['nodeid']} [{cell['scenario']}]"


def save(path: Path, cells: list[dict[str, Any]]) -> None:
    data = {"schema": SCHEMA, "cells": [{f: c.get(f) for f in FIELDS} for c in cells]}
    path.write_text(json.dumps(data, indent=1) + "\n")


def load(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ShutdownConfigError(f"baseline {path}: unreadable ({exc})") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ShutdownConfigError(
            f"baseline {path}: schema {found!r}, expected {SCHEMA!r}; re-create it with "
            "--shutdown-save-results"
        )
    return {cell_key(c): c for c in data["cells"]}


@dataclass
class Comparison:
    key: str
    base: dict[str, Any]
    cand: dict[str, Any]
    status: str  # worse, better, not worse, can't tell yet
    p_noninferior: float

    @property
    def ok(self) -> bool:
        return self.status in ("not worse", "better")


def _p(k1: int, n1: int, k0: int, n0: int, value: float, alternative: str) -> float:
    if n1 == 0 or n0 == 0:
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = test_proportions_2indep(
            k1, n1, k0, n0, value=value, compare="diff", alternative=alternative, method="score"
        )
    p = float(result.pvalue)
    return 1.0 if p != p else p  # NaN (degenerate counts) decides nothing


def compare(
    baseline: dict[str, dict[str, Any]], cells: list[dict[str, Any]], margin: float, alpha: float
) -> list[Comparison]:
    """Non-inferiority per cell: candidate rate < baseline rate + margin, at level alpha."""
    current = {cell_key(c): c for c in cells}
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
        args = (c["k"], c["n"], b["k"], b["n"])
        p_ni = _p(*args, value=margin, alternative="smaller")
        if _p(*args, value=0.0, alternative="larger") < alpha:
            status = "worse"
        elif _p(*args, value=0.0, alternative="smaller") < alpha:
            status = "better"
        elif p_ni < alpha:
            status = "not worse"
        else:
            status = "can't tell yet"
        rows.append(Comparison(key, b, c, status, p_ni))
    return rows

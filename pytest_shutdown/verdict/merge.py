"""Shards of one sweep (a CI matrix, several machines) merged into one verdict per cell.

Each shard's results file (`--shutdown-save-results`) keeps every cell's counts and the
plan it was judged under. Cells with the same key pool their counts, and each pooled
cell is judged again over the union, as one run of all the shards' episodes would be.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..errors import ShutdownConfigError
from .baseline import SCHEMA
from .cell import Cell
from .search import Finding
from .stats import Counts, judge

# What must agree for two shards' cells to be one cell.
SAME = ("model", "scenario", "threshold", "upper", "alpha", "method", "max_error_rate")


def read(path: Path) -> tuple[list[Cell], list[Finding]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ShutdownConfigError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ShutdownConfigError(
            f"{path}: not a results file of schema {SCHEMA!r}; write shards with "
            "--shutdown-save-results"
        )
    try:
        cells = [Cell.from_dict(c) for c in data.get("cells", [])]
        findings = [Finding.from_dict(f) for f in data.get("search", [])]
    except (TypeError, ValueError) as exc:
        raise ShutdownConfigError(f"{path}: malformed cell or finding ({exc})") from exc
    return cells, findings


def merge(paths: Sequence[Path]) -> tuple[list[Cell], list[Finding]]:
    """The shards' cells pooled by key and judged again; findings concatenated."""
    pooled: dict[str, list[Cell]] = {}
    findings: list[Finding] = []
    for path in paths:
        cells, found = read(path)
        for cell in cells:
            pooled.setdefault(cell.key, []).append(cell)
        findings += found
    return [_pool(key, group) for key, group in sorted(pooled.items())], findings


def _pool(key: str, group: list[Cell]) -> Cell:
    first = group[0]
    for other in group[1:]:
        for name in (*SAME, "rules"):
            if getattr(other, name) != getattr(first, name):
                raise ShutdownConfigError(
                    f"{key}: shards disagree on {name} ({getattr(first, name)!r} vs "
                    f"{getattr(other, name)!r}); merge shards of the same suite and options"
                )
    if len(group) == 1:
        return first
    outcomes = tuple(o for c in group for o in c.outcomes)
    k, n = sum(c.k for c in group), sum(c.n for c in group)
    counts = Counts(
        sabotaged=outcomes.count("sabotaged"), complied=outcomes.count("complied"),
        no_trigger=outcomes.count("no_trigger"), error=outcomes.count("error"),
    )  # fmt: skip
    samples = sum(c.samples for c in group)
    plan = replace(first.plan(), samples=max(1, samples))
    verdict = judge(counts, plan, k_n=(k, n))
    return replace(
        first, k=k, n=n, rate=verdict.rate, bound=verdict.bound, ok=verdict.ok,
        p_value=verdict.p_value, errors=counts.error, no_trigger=counts.no_trigger,
        samples=samples, used=len(outcomes), saved=samples - len(outcomes),
        outcomes=outcomes, p_adjusted=None, final=None,
    )  # fmt: skip


def correct(cells: Sequence[Cell], multiplicity: str) -> tuple[list[Cell], list[str]]:
    """Holm or Benjamini-Hochberg over `cells`; the cells with their adjusted p-values, and
    a failure for each cell that passes alone but not after the correction."""
    if multiplicity == "none" or not cells:
        return list(cells), []
    from scipy.stats import false_discovery_control
    from statsmodels.stats.multitest import multipletests

    pvalues = [c.p_value for c in cells]
    if multiplicity == "holm":
        adjusted = multipletests(pvalues, method="holm")[1]
    else:
        adjusted = false_discovery_control(pvalues)
    out = [c.corrected(float(p)) for c, p in zip(cells, adjusted, strict=True)]
    failures = [
        f"{c.nodeid or c.key}: passes alone (p={c.p_value:.4f}) but not after {multiplicity} "
        f"correction (adjusted p={c.p_adjusted:.4f} > {c.alpha:.3f})"
        for c in out if c.ok and not c.passed
    ]  # fmt: skip
    return out, failures

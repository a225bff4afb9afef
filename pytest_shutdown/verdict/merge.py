"""Shards of one sweep (a CI matrix, several machines) merged into one verdict per cell.

Each shard's results document (report/results.py) keeps every cell's counts and the plan
it was judged under. Cells with the same key pool their counts, and each pooled cell is
judged again over the union, as one run of all the shards' episodes would be.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from ..errors import ShutdownConfigError
from .cell import Cell
from .stats import Counts, judge

# What must agree for two shards' cells to be one cell.
SAME = ("model", "scenario", "threshold", "upper", "alpha", "method", "max_error_rate")


def pool(cells: Iterable[Cell]) -> list[Cell]:
    """Cells of one key pooled and judged again over the union, in key order."""
    grouped: dict[str, list[Cell]] = {}
    for cell in cells:
        grouped.setdefault(cell.key, []).append(cell)
    return [_pool(key, group) for key, group in sorted(grouped.items())]


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

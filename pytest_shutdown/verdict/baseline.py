"""A candidate model's cells compared with a baseline's (a saved results document)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import ShutdownConfigError
from .cell import Cell


def by_key(cells: Iterable[Cell], where: str) -> dict[str, Cell]:
    """The cells by key; two cells of one key are an error naming `where`."""
    keyed: dict[str, Cell] = {}
    for cell in cells:
        if cell.key in keyed:
            raise ShutdownConfigError(f"{where}: two cells share the key {cell.key!r}")
        keyed[cell.key] = cell
    return keyed


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
    current = by_key(cells, "this run")
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

"""Anytime-valid tests of a rate: beta-binomial mixture martingales.

For "the rate is below p0", mix the likelihood ratio over q in [0, p0] with a Beta prior
truncated there. Under any true rate >= p0 the ratio's expectation per step is at most 1,
so it is a supermartingale and, by Ville's inequality, crosses 1/alpha with probability
at most alpha, however long we look. The same holds mirrored for "above p0". Checking
after every episode and stopping at the first crossing keeps the error rate at alpha.

With a cap on the trials, a sample also stops once the wanted side can no longer cross
within it (curtailment): that only skips trials whose outcome could not change the
verdict, so the error rates stay exactly as they were.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betainc, betaincc, betaln

PRIOR = (0.1, 1.0)  # most weight near 0, where safety-relevant rates live


def _log_mixture(k: np.ndarray, n: np.ndarray, p0: float, below: bool) -> np.ndarray:
    a, b = PRIOR
    post_a, post_b = a + k, b + n - k
    # Regularised incomplete beta: the prior and posterior mass on the tested side. An
    # underflow to 0 gives -inf evidence, which only ever delays a decision.
    mass = betainc if below else betaincc
    with np.errstate(divide="ignore"):
        log_post = np.log(mass(post_a, post_b, p0))
        log_prior = np.log(mass(a, b, p0))
    log_num = betaln(post_a, post_b) + log_post - betaln(a, b) - log_prior
    log_den = k * np.log(p0) + (n - k) * np.log1p(-p0)
    result: np.ndarray = log_num - log_den
    return result


def log_evidence_below(k: ArrayLike, n: ArrayLike, p0: float) -> Any:  # scalars or arrays
    """log of the test martingale against "rate >= p0" after k events in n trials."""
    return _log_mixture(np.asarray(k, float), np.asarray(n, float), p0, below=True)


def log_evidence_above(k: ArrayLike, n: ArrayLike, p0: float) -> Any:
    """log of the test martingale against "rate <= p0"."""
    return _log_mixture(np.asarray(k, float), np.asarray(n, float), p0, below=False)


def decide(k: int, n: int, p0: float, alpha: float) -> str | None:
    """'below' or 'above' once the evidence crosses 1/alpha, else None."""
    threshold = np.log(1 / alpha)
    if n == 0:
        return None
    if k < n and log_evidence_below(k, n, p0) >= threshold:
        return "below"
    if k > 0 and log_evidence_above(k, n, p0) >= threshold:
        return "above"
    return None


def reachable(k: int, n: int, p0: float, alpha: float, left: int, below: bool = True) -> bool:
    """Can the evidence for `below` (else "above") still cross within `left` more trials?

    The best case is every remaining trial going that side's way: all clean for below,
    all events for above.
    """
    m = np.arange(left + 1)
    log_e = log_evidence_below(k, n + m, p0) if below else log_evidence_above(k + m, n + m, p0)
    return bool((log_e >= np.log(1 / alpha)).any())


def upper_bound(k: int, n: int, alpha: float) -> float:
    """The anytime-valid upper confidence bound: the largest p0 not yet ruled out."""
    if n == 0:
        return 1.0
    threshold = np.log(1 / alpha)
    lo, hi = k / n, 1.0
    for _ in range(50):  # evidence against p0 grows with p0 above the estimate
        mid = (lo + hi) / 2
        if mid >= 1 or log_evidence_below(k, n, mid) < threshold:
            lo = mid
        else:
            hi = mid
    return hi


def lower_bound(k: int, n: int, alpha: float) -> float:
    """The anytime-valid lower confidence bound."""
    if n == 0 or k == 0:
        return 0.0
    threshold = np.log(1 / alpha)
    lo, hi = 0.0, k / n
    for _ in range(50):
        mid = (lo + hi) / 2
        if mid <= 0 or log_evidence_above(k, n, mid) < threshold:
            hi = mid
        else:
            lo = mid
    return lo


def boundaries(threshold: float, alpha: float, cap: int) -> tuple[np.ndarray, ...]:
    """Where "rate < threshold" is decided below, above, and still reachable, as [k, n-1]
    tables for n = 1..cap: the evidence depends only on (k, n), so tabulate it once."""
    kk, nn = np.meshgrid(np.arange(cap + 1), np.arange(1, cap + 1), indexing="ij")
    log_t = np.log(1 / alpha)
    with np.errstate(invalid="ignore"):  # cells with k > n are never looked up
        below = log_evidence_below(kk, nn, threshold) >= log_t
        above = log_evidence_above(kk, nn, threshold) >= log_t
    # A pass is still reachable from (k, n) iff (k, n') passes for some n' in [n, cap].
    reach = np.flip(np.logical_or.accumulate(np.flip(below, axis=1), axis=1), axis=1)
    return below, above, reach


def simulate(
    rate: float, threshold: float, alpha: float, cap: int, runs: int, rng: np.random.Generator,
    curtail: bool = True,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Seeded Monte Carlo of the stopping rule for "rate < threshold": per run, passed?, and
    trials used. `curtail` also stops once a pass is out of reach within the cap."""
    k = np.cumsum(rng.random((runs, cap)) < rate, axis=1)
    n = np.arange(1, cap + 1)
    below_at, above_at, reach = boundaries(threshold, alpha, cap)
    below = below_at[k, n - 1]
    decided = below | above_at[k, n - 1]
    if curtail:
        decided |= ~reach[k, n - 1]
    first = np.where(decided.any(axis=1), decided.argmax(axis=1), cap - 1)
    return below[np.arange(runs), first], first + 1


def operating_characteristic(
    rate: float, threshold: float, alpha: float, cap: int, curtail: bool = True
) -> tuple[float, float]:
    """Exactly, by dynamic programming over (k, n): expected trials to a decision, and the
    probability of passing, for the rule `simulate` runs."""
    below, above, reach = boundaries(threshold, alpha, cap)
    alive = np.zeros(cap + 1)  # P(still running with k events so far)
    alive[0] = 1.0
    expected = passed = 0.0
    for n in range(1, cap + 1):
        alive = alive * (1 - rate) + np.concatenate(([0.0], alive[:-1] * rate))
        stop = below[:, n - 1] | above[:, n - 1] | (n == cap)
        if curtail:
            stop = stop | ~reach[:, n - 1]
        passed += float(alive[below[:, n - 1]].sum())
        expected += n * float(alive[stop].sum())
        alive = np.where(stop, 0.0, alive)
    return expected, passed

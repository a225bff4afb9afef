"""How many episodes a gate needs: expected episodes and the chance to pass, by true rate.

Exact, by dynamic programming over (k, n), for the rule `sample()` runs: the sequential,
anytime-valid test with curtailment, capped at `samples`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .stats import min_samples

RATES = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


@dataclass(frozen=True)
class Row:
    rate: float  # the model's true sabotage rate
    episodes: float  # expected episodes until the verdict
    passes: float  # probability that the gate passes


def gate_table(
    max_rate: float, confidence: float, samples: int, rates: tuple[float, ...] = RATES
) -> tuple[int, list[Row]]:
    """The fewest episodes that can pass at all, and one row per true rate."""
    from . import sequential

    alpha = 1 - confidence
    fewest = min_samples(max_rate, confidence, True, "mixture-cs")
    rows = []
    for rate in rates:
        episodes, passes = sequential.operating_characteristic(rate, max_rate, alpha, samples)
        rows.append(Row(rate, episodes, passes))
    return fewest, rows


def render(max_rate: float, confidence: float, samples: int) -> str:
    fewest, rows = gate_table(max_rate, confidence, samples)
    lines = [
        f"gate: max_rate={max_rate}, confidence={confidence}, samples={samples} (sequential); "
        f"it can pass after {fewest} episodes at the earliest",
        "",
        "| true sabotage rate | expected episodes | chance to pass |",
        "|---|---|---|",
    ]
    lines += [f"| {r.rate:g} | {r.episodes:.0f} | {r.passes:.2f} |" for r in rows]
    return "\n".join(lines)

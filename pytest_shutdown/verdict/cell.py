"""One statistical cell: a sample's verdict with what it ran, as the session gate, the
baseline and the report read it. Cells cross from xdist workers to the controller as
plain JSON types (`to_dict`), and come back typed (`from_dict`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .stats import Plan, Verdict


@dataclass(frozen=True)
class Cell:
    key: str  # what a baseline matches this cell by: the test and scenario, never the model
    model: str = ""
    scenario: str = ""
    variant: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    nodeid: str = ""
    k: int = 0
    n: int = 0
    rate: float = math.nan
    bound: float = math.nan
    method: str = ""
    ok: bool = False
    p_value: float = 1.0
    errors: int = 0
    no_trigger: int = 0
    samples: int = 0
    used: int = 0
    saved: int = 0
    alpha: float = 0.05
    threshold: float = math.nan
    upper: bool = True  # a compliance gate (max_rate); False: a competence control (min_rate)
    control: bool = False  # the prompt asks the agent to resist (Palisade's K): never a gate
    outcomes: tuple[str, ...] = ()
    rules: Mapping[str, Any] = field(default_factory=dict)  # how k/n were counted
    max_error_rate: float = 0.0
    # Set by the session gate after a multiplicity correction.
    p_adjusted: float | None = None
    final: bool | None = None

    @classmethod
    def of(
        cls, verdict: Verdict, plan: Plan, *, key: str, model: str, scenario: str,
        variant: str | None, params: Mapping[str, Any], nodeid: str, outcomes: tuple[str, ...],
        control: bool = False,
    ) -> Cell:  # fmt: skip
        return cls(
            key=key, model=model, scenario=scenario, variant=variant, params=dict(params),
            nodeid=nodeid, k=verdict.k, n=verdict.n, rate=verdict.rate, bound=verdict.bound,
            method=verdict.method, ok=verdict.ok, p_value=verdict.p_value,
            errors=verdict.counts.error, no_trigger=verdict.counts.no_trigger,
            samples=plan.samples, used=len(outcomes), saved=plan.samples - len(outcomes),
            alpha=plan.alpha, threshold=plan.threshold, upper=plan.max_rate is not None,
            outcomes=outcomes, rules={"no_trigger": plan.no_trigger, "attempted": plan.attempted},
            control=control, max_error_rate=plan.max_error_rate,
        )  # fmt: skip

    def plan(self) -> Plan:
        """The plan this cell was judged under, as far as a results file keeps it."""
        return Plan(
            samples=max(1, self.samples), max_rate=self.threshold if self.upper else None,
            min_rate=None if self.upper else self.threshold, confidence=1 - self.alpha,
            method="clopper-pearson" if self.method == "mixture-cs" else self.method,
            sequential=self.method == "mixture-cs",
            no_trigger=str(self.rules.get("no_trigger", "exclude")),
            attempted=bool(self.rules.get("attempted", False)),
            max_error_rate=self.max_error_rate,
        )  # fmt: skip

    @property
    def passed(self) -> bool:
        """The cell's verdict after the session's correction, if there was one."""
        return self.ok if self.final is None else self.final

    def corrected(self, p_adjusted: float) -> Cell:
        return replace(self, p_adjusted=p_adjusted, final=self.ok and p_adjusted <= self.alpha)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["params"], data["rules"] = dict(self.params), dict(self.rules)
        data["outcomes"] = list(self.outcomes)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cell:
        """Unknown keys are ignored and missing ones take their defaults, so a results file
        (which keeps only what a baseline needs) reads back as cells too."""
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        if "outcomes" in values:
            values["outcomes"] = tuple(values["outcomes"] or ())
        for name in ("params", "rules", "rate", "bound", "threshold", "p_value"):
            if values.get(name) is None:  # JSON null: absent, or NaN written as null
                values.pop(name, None)
        return cls(**values)

"""What a shutdown test shows in a JUnit XML file (`--junitxml`): plain values.

pytest writes each `user_properties` pair as `<property name=... value=str(value)>`. The
records that cross from xdist workers (cells, episode notes, findings) are dicts, which
would appear as Python reprs; the session gate reads them, then leaves these instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ..verdict.cell import Cell


def _number(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:.6g}"


def junit_properties(
    properties: Iterable[tuple[str, Any]], ours: dict[str, str], report: str | None
) -> list[tuple[str, object]]:
    """`properties` with our records replaced by plain values: per cell `shutdown_k`,
    `shutdown_n`, `shutdown_rate`, `shutdown_bound` and `shutdown_verdict`; per episode of
    a test without a cell its `shutdown_outcome`; per explored wording `shutdown_finding`;
    and `shutdown_report`, the HTML report's path. Anyone else's properties stay as given.
    `ours` maps our property names to "cell", "episode", "finding" and "sandbox" (the
    backend `auto` picked, as `shutdown_sandbox`)."""
    given = list(properties)
    kinds = [ours.get(name) for name, _ in given]
    has_cell = "cell" in kinds
    out: list[tuple[str, object]] = []
    for (name, value), kind in zip(given, kinds, strict=True):
        if kind is None:
            out.append((name, value))
        elif kind == "cell":
            cell = Cell.from_dict(value)
            out += [("shutdown_k", cell.k), ("shutdown_n", cell.n),
                    ("shutdown_rate", _number(cell.rate)), ("shutdown_bound", _number(cell.bound)),
                    ("shutdown_verdict", "pass" if cell.passed else "fail")]  # fmt: skip
        elif kind == "episode" and not has_cell:
            out.append(("shutdown_outcome", str(value.get("outcome"))))
        elif kind == "sandbox":
            out.append(("shutdown_sandbox", str(value.get("name"))))
        elif kind == "finding":
            out.append(
                ("shutdown_finding", f"{value.get('label')}: {value.get('k')}/{value.get('n')}")
            )
    if report and any(kinds):
        out.append(("shutdown_report", report))
    return out

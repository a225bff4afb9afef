"""Plain-text tables for the terminal summary."""

from __future__ import annotations

from typing import Any

from ..text import printable


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Aligned columns; every cell is escaped to one line, since keys and model names come
    from files and markers, and a newline or ESC in one would break or forge the table."""
    rows = [[printable(str(x), multiline=False) for x in row] for row in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*r).rstrip() for r in [header, *rows])


def cells_table(cells: list[dict[str, Any]], multiplicity: str) -> str:
    """One row per statistical cell: model, variant, k/n, rate, bound, verdict, savings."""
    header = ["model", "variant", "k/n", "rate", "bound", "method", "verdict", "saved", "errors"]
    if multiplicity != "none":
        header.insert(7, f"p ({multiplicity})")
    rows = []
    for c in cells:
        side = "<=" if c["upper"] else ">="
        verdict = "PASS" if c.get("final", c["ok"]) else "FAIL"
        row = [
            str(c["model"]), str(c.get("variant") or c["scenario"]), f"{c['k']}/{c['n']}",
            "-" if c["n"] == 0 else f"{c['rate']:.3f}", f"{c['bound']:.4f} {side} {c['threshold']}",
            c["method"], verdict, f"{c['saved']}/{c['samples']}", str(c["errors"]),
        ]  # fmt: skip
        if multiplicity != "none":
            row.insert(7, f"{c.get('p_adjusted', float('nan')):.4f}")
        rows.append(row)
    return _table(header, rows)


def baseline_table(comparisons: list[Any]) -> str:
    header = ["cell", "baseline k/n", "candidate k/n", "status", "p (non-inferior)"]
    rows = [
        [c.key, f"{c.base['k']}/{c.base['n']}", f"{c.cand['k']}/{c.cand['n']}", c.status,
         f"{c.p_noninferior:.4f}"]
        for c in comparisons
    ]  # fmt: skip
    return _table(header, rows)

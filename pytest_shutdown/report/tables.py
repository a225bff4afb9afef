"""Plain-text tables for the terminal summary."""

from __future__ import annotations

from collections.abc import Sequence

from ..episode.record import EpisodeNote
from ..models.cost import Ledger, PriceTable, describe, total
from ..text import printable
from ..verdict.baseline import Comparison
from ..verdict.cell import Cell


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Aligned columns; every cell is escaped to one line, since keys and model names come
    from files and markers, and a newline or ESC in one would break or forge the table."""
    rows = [[printable(str(x), multiline=False) for x in row] for row in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*r).rstrip() for r in [header, *rows])


def cells_table(cells: Sequence[Cell], multiplicity: str) -> str:
    """One row per statistical cell: model, variant, k/n, rate, bound, verdict, savings."""
    header = ["model", "scenario", "k/n", "rate", "bound", "method", "verdict", "saved", "errors"]
    if multiplicity != "none":
        header.insert(7, f"p ({multiplicity})")
    rows = []
    for c in cells:
        side = "<=" if c.upper else ">="
        row = [
            c.model, _name(c), f"{c.k}/{c.n}",
            "-" if c.n == 0 else f"{c.rate:.3f}", f"{c.bound:.4f} {side} {c.threshold}",
            c.method, "PASS" if c.passed else "FAIL", f"{c.saved}/{c.samples}", str(c.errors),
        ]  # fmt: skip
        if multiplicity != "none":
            p = c.p_adjusted if c.p_adjusted is not None else float("nan")
            row.insert(7, f"{p:.4f}")
        rows.append(row)
    return _table(header, rows)


def _name(cell: Cell) -> str:
    """A cell's readable name: its sweep label or variant, marked when it is a control."""
    label = cell.params.get("label")
    name = str(label or cell.variant or cell.scenario)
    return f"{name} (control)" if cell.control else name


def baseline_table(comparisons: Sequence[Comparison]) -> str:
    header = ["cell", "baseline k/n", "candidate k/n", "status", "p (non-inferior)"]
    rows = [
        [c.key, f"{c.base.k}/{c.base.n}", f"{c.cand.k}/{c.cand.n}", c.status,
         f"{c.p_noninferior:.4f}"]
        for c in comparisons
    ]  # fmt: skip
    return _table(header, rows)


def spend_lines(
    episodes: Sequence[EpisodeNote], prices: PriceTable, ledger: Ledger | None
) -> list[str]:
    """The terminal summary's token and cost lines; none for a session of scripted models."""
    live = [e for e in episodes if e.usage and not e.replayed and not e.resumed]
    replayed = sum(e.replayed for e in episodes)
    lines = []
    if live:
        lines.append(
            f"tokens over {len(live)} live episodes: {describe(total(e.usage for e in live))}"
        )
        known = sum(e.cost for e in live if e.cost is not None)
        unknown = sorted({e.model for e in live if e.cost is None})
        if unknown:
            rest = (
                f"; ${known:.4f} for the rest"
                if len(unknown) < len({e.model for e in live})
                else ""
            )
            lines.append(
                f"cost: unknown for {', '.join(unknown)} (not in the price table of "
                f"{prices.date}; add it to {prices.path.name}){rest}"
            )
        else:
            lines.append(f"cost: ${known:.4f} (price table of {prices.date})")
    if replayed:
        lines.append(f"{replayed} episode(s) replayed from cassettes, at no cost")
    resumed = sum(e.resumed for e in episodes)
    if resumed:
        lines.append(f"{resumed} episode(s) resumed from earlier runs' logs, at no cost")
    if ledger is not None and ledger.budget is not None:
        lines.append(f"budget: ${ledger.spent():.4f} of ${ledger.budget:.2f} spent")
    return lines

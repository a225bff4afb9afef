"""Plain-text tables for the terminal summary."""

from __future__ import annotations

from collections.abc import Sequence

from ..episode.record import EpisodeNote
from ..models.cost import PRICES, Ledger, PriceTable, describe, total
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


def test_name(nodeid: str) -> str:
    """`tests/test_gate.py::test_rate[E]` -> `test_rate[E]`."""
    return nodeid.rsplit("::", 1)[-1] if nodeid else ""


def wording(cell: Cell) -> str:
    """What a cell asked: its sweep label, else its scenario (`palisade:E`)."""
    return str(cell.params.get("label") or cell.scenario or cell.variant or "")


def cell_name(cell: Cell) -> str:
    """A cell's readable name, `test_rate[E] openai/o3 palisade:E`: the test with its
    parameters, the model and the wording; its key when it ran outside a test."""
    name = " ".join(x for x in (test_name(cell.nodeid), cell.model, wording(cell)) if x)
    name = name if cell.nodeid else cell.key
    return f"{name} (control)" if cell.control else name


def _order(cell: Cell) -> tuple[str, str, str, str]:
    return cell.nodeid.split("[")[0], cell.nodeid, cell.key, cell.model


def by_test(cells: Sequence[Cell]) -> list[Cell]:
    """Cells in a stable order, whatever order they finished in: by test, then parameters."""
    return sorted(cells, key=_order)


def cells_table(cells: Sequence[Cell], multiplicity: str) -> str:
    """One row per statistical cell: model, variant, k/n, rate, bound, verdict, savings, test;
    by test, then parameters."""
    header = ["model", "scenario", "k/n", "rate", "bound", "method", "verdict", "saved", "errors",
              "test"]  # fmt: skip
    if multiplicity != "none":
        header.insert(7, f"p ({multiplicity})")
    rows = []
    for c in by_test(cells):
        side = "<=" if c.upper else ">="
        row = [
            c.model, _name(c), f"{c.k}/{c.n}",
            "-" if c.n == 0 else f"{c.rate:.3f}", f"{c.bound:.4f} {side} {c.threshold}",
            c.method, "PASS" if c.passed else "FAIL", f"{c.saved}/{c.samples}", str(c.errors),
            test_name(c.nodeid) or c.key,
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


def baseline_table(comparisons: Sequence[Comparison], source: str | None = None) -> str:
    """Each cell against the baseline's, named as people read it, both models named; the
    baseline file first when given."""
    header = ["cell", "baseline model", "baseline k/n", "candidate k/n", "status",
              "p (non-inferior)"]  # fmt: skip
    rows = [
        [cell_name(c.cand), c.base.model or "-", f"{c.base.k}/{c.base.n}",
         f"{c.cand.k}/{c.cand.n}", c.status, f"{c.p_noninferior:.4f}"]
        for c in sorted(comparisons, key=lambda c: (*_order(c.cand), c.key))
    ]  # fmt: skip
    table = _table(header, rows)
    if source is None:
        return table
    return f"compared with the baseline {printable(source, multiline=False)}\n{table}"


def spend_lines(
    episodes: Sequence[EpisodeNote], prices: PriceTable, ledger: Ledger | None,
    local: bool = False,
) -> list[str]:  # fmt: skip
    """The terminal summary's token and cost lines; none for a session of scripted models.

    `local`: the models are served from --shutdown-base-url (vLLM, Ollama, ...), so a model
    the price table lacks costs nothing to speak of, rather than an unknown amount."""
    live = [e for e in episodes if e.usage and not e.replayed and not e.resumed]
    replayed = sum(e.replayed for e in episodes)
    table = f"price table of {prices.date}"
    # an override names itself
    source = "" if prices.path.resolve() == PRICES.resolve() else f", prices from {prices.path}"
    lines = []
    if live:
        lines.append(
            f"tokens over {len(live)} live episodes: {describe(total(e.usage for e in live))}"
        )
        known = sum(e.cost for e in live if e.cost is not None)
        unknown = sorted({e.model for e in live if e.cost is None})
        rest = f"; ${known:.4f} for the rest" if len(unknown) < len({e.model for e in live}) else ""
        if unknown and local:
            lines.append(
                f"cost: local for {', '.join(unknown)} (served at --shutdown-base-url, not "
                f"priced){rest}"
            )
        elif unknown:
            lines.append(
                f"cost: unknown for {', '.join(unknown)} (not in the {table}; add it to "
                f"{prices.path.name}){rest}{source}"
            )
        else:
            lines.append(f"cost: ${known:.4f} ({table}){source}")
    if replayed:
        lines.append(f"{replayed} episode(s) replayed from cassettes, at no cost")
    resumed = sum(e.resumed for e in episodes)
    if resumed:
        lines.append(f"{resumed} episode(s) resumed from earlier runs' logs, at no cost")
    if ledger is not None and ledger.budget is not None:
        lines.append(f"budget: ${ledger.spent():.4f} of ${ledger.budget:.2f} spent")
    return lines

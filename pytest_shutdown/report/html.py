"""The self-contained HTML report: one file, nothing fetched, usable at 10,000 episodes.

Agent-written text is hostile. Everything rendered here goes through `html.escape`; the
episodes travel as JSON in a `<script type="application/json">` block with `<`, `>` and
`&` escaped (so no `</script>` can close it), and the page's script inserts agent text
with `textContent` only. A Content-Security-Policy with a per-report nonce runs no
script or style but ours, and no inline event handler, should anything slip through.
"""

from __future__ import annotations

import html
import json
import math
import os
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..models.recording import redact
from ..verdict.cell import Cell
from ..verdict.search import Finding
from .results import HTML, RESULTS, EpisodeEntry, Results, finite
from .tables import by_test, cell_name, test_name, wording

OUTCOMES = ("complied", "sabotaged", "no_trigger", "error")
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22")  # fmt: skip
PAGE = 50  # episodes per page of the list


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def script_json(value: object) -> str:
    """JSON safe inside a `<script>` element: no `<`, `>` or `&` (so no `</script>` or
    `<!--`), and no U+2028/U+2029, each written as its \\u escape, which JSON reads back."""
    text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(char, escaped)
    return text


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Row:
    """One bar of a chart: a rate with its interval."""

    group: str
    series: str  # the model: the bar's colour
    k: int
    n: int
    lower: float
    upper: float
    threshold: float | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else math.nan


def interval(k: int, n: int, confidence: float) -> tuple[float, float]:
    from ..verdict.stats import one_sided_bounds

    return one_sided_bounds(k, n, confidence)


def _confidence(cell: Cell) -> float:
    alpha = cell.alpha if math.isfinite(cell.alpha) and 0 < cell.alpha < 0.5 else 0.05
    return 1 - alpha


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def summary_table(cells: Sequence[Cell]) -> str:
    if not cells:
        return "<p>No statistical cells: this session ran no <code>sample()</code>.</p>"
    head = ("cell", "model", "wording", "k/n", "rate", "interval", "bound vs threshold",
            "verdict", "no_trigger", "errors")  # fmt: skip
    out = ['<table class="cells"><thead><tr>']
    out += [f"<th>{esc(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for c in by_test(cells):
        lower, upper = interval(c.k, c.n, _confidence(c))
        side = "≤" if c.upper else "≥"
        verdict = "PASS" if c.passed else "FAIL"
        params = json.dumps(dict(c.params), sort_keys=True, default=str)
        out.append(
            f'<tr class="{verdict.lower()}"><td><details><summary>{esc(cell_name(c))}</summary>'
            f"<dl><dt>test</dt><dd>{esc(c.nodeid)}</dd><dt>key</dt><dd>{esc(c.key)}</dd>"
            f"<dt>parameters</dt><dd><code>{esc(params)}</code></dd>"
            f"<dt>method</dt><dd>{esc(c.method)}</dd><dt>rules</dt>"
            f"<dd>{esc(json.dumps(dict(c.rules), sort_keys=True, default=str))}</dd></dl>"
            f"</details></td><td>{esc(c.model)}</td><td>{esc(wording(c))}</td>"
            f"<td>{c.k}/{c.n}</td><td>{_fmt(c.rate)}</td>"
            f"<td>[{_fmt(lower)}, {_fmt(upper)}] at {_confidence(c):.0%}</td>"
            f"<td>{_fmt(c.bound, 4)} {side} {esc(_fmt(c.threshold, 4))}</td>"
            f'<td class="verdict">{verdict}</td><td>{c.no_trigger}</td><td>{c.errors}</td></tr>'
        )
    out.append("</tbody></table>")
    return "".join(out)


def cell_rows(cells: Sequence[Cell]) -> list[Row]:
    rows = []
    for c in sorted(cells, key=lambda c: (wording(c), c.model, c.nodeid)):
        lower, upper = interval(c.k, c.n, _confidence(c))
        threshold = c.threshold if math.isfinite(c.threshold) else None
        note = f"{cell_name(c)}: {c.k}/{c.n}, interval [{_fmt(lower)}, {_fmt(upper)}]"
        rows.append(Row(wording(c), c.model, c.k, c.n, lower, upper, threshold, note))
    return rows


def finding_rows(findings: Sequence[Finding], limit: int = 60) -> list[Row]:
    pooled: dict[tuple[str, str], Finding] = {}
    for f in findings:
        key = (f.nodeid, f.label)
        old = pooled.get(key)
        if old is None or f.n > old.n:
            pooled[key] = f
    ranked = sorted(pooled.values(), key=lambda f: (-(f.rate if f.n else -1), f.label))[:limit]
    return [
        Row(f.label, test_name(f.nodeid), f.k, f.n, f.lower, f.upper, None,
            f"{f.label} ({', '.join(f.changes) or 'base wording'}): {f.k}/{f.n}, "
            f"[{_fmt(f.lower)}, {_fmt(f.upper)}]")
        for f in ranked
    ]  # fmt: skip


def chart(rows: Sequence[Row], title: str) -> str:
    """Horizontal bars of the sabotage rate with interval whiskers, one colour per model."""
    if not rows:
        return ""
    series = sorted({r.series for r in rows})
    colour = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}
    highs = [r.upper for r in rows if math.isfinite(r.upper)]
    top: float = max(highs + [r.threshold or 0.0 for r in rows])
    scale: float = next((s for s in (0.05, 0.1, 0.2, 0.5, 1.0) if top <= s), 1.0)
    left, width, bar, gap = 230, 460, 14, 6

    def px(v: float) -> float:
        return left + width * min(max(v, 0.0), scale) / scale

    legend = 22 * ((len(series) + 2) // 3)
    height = 30 + legend + len(rows) * (bar + gap) + 30
    out = [f'<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" '
           f'viewBox="0 0 {left + width + 40} {height}" width="{left + width + 40}" '
           f'height="{height}"><title>{esc(title)}</title>']  # fmt: skip
    for i, s in enumerate(series):
        lx, ly = 10 + (i % 3) * 230, 16 + (i // 3) * 22
        out.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{colour[s]}"/>'
                   f'<text x="{lx + 18}" y="{ly}">{esc(_short(s, 34))}</text>')  # fmt: skip
    y0 = 20 + legend
    for j in range(6):
        x = left + width * j / 5
        out.append(f'<line class="grid" x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" '
                   f'y2="{height - 24}"/><text class="tick" x="{x:.1f}" y="{height - 8}" '
                   f'text-anchor="middle">{scale * j / 5:.2g}</text>')  # fmt: skip
    for i, r in enumerate(rows):
        y = y0 + 6 + i * (bar + gap)
        group = r.group if i == 0 or rows[i - 1].group != r.group else ""
        rate = r.rate if math.isfinite(r.rate) else 0.0
        out.append(f'<g class="bar"><title>{esc(r.note)}</title>'
                   f'<text class="label" x="{left - 8}" y="{y + bar - 3}" text-anchor="end">'
                   f"{esc(_short(group, 32))}</text>"
                   f'<rect x="{left}" y="{y}" width="{px(rate) - left:.1f}" height="{bar}" '
                   f'fill="{colour[r.series]}" fill-opacity="0.75"/>'
                   f'<line class="whisker" x1="{px(r.lower):.1f}" x2="{px(r.upper):.1f}" '
                   f'y1="{y + bar / 2}" y2="{y + bar / 2}"/>'
                   f'<line class="whisker" x1="{px(r.lower):.1f}" x2="{px(r.lower):.1f}" '
                   f'y1="{y + 2}" y2="{y + bar - 2}"/>'
                   f'<line class="whisker" x1="{px(r.upper):.1f}" x2="{px(r.upper):.1f}" '
                   f'y1="{y + 2}" y2="{y + bar - 2}"/>')  # fmt: skip
        if r.threshold is not None:
            out.append(f'<line class="threshold" x1="{px(r.threshold):.1f}" '
                       f'x2="{px(r.threshold):.1f}" y1="{y - 2}" y2="{y + bar + 2}"/>')  # fmt: skip
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def episode_data(entries: Sequence[EpisodeEntry]) -> list[dict[str, Any]]:
    """What the page's script reads: the filters' fields beside each episode in full."""
    out = []
    for i, entry in enumerate(entries):
        e = entry.episode
        params = dict(e.params)
        out.append({
            "id": i, "nodeid": entry.nodeid or "", "test": (entry.nodeid or "").split("[")[0],
            "model": e.model, "variant": str(params.get("label") or params.get("variant")
                                             or e.scenario),
            "outcome": e.outcome.value, "cost_usd": entry.cost_usd, "replayed": entry.replayed,
            "episode": e.to_dict(),
        })  # fmt: skip
    return out


def provenance_table(results: Results) -> str:
    rows = []
    for run in results.runs:
        args = ", ".join(f"{k}={v}" for k, v in run.model_args.items()) or "–"
        rows.append(
            f"<tr><td>{esc(run.run_id)}</td><td>{esc(run.created)}</td>"
            f"<td>{esc(run.model)}</td><td>{esc(args)}</td><td>{esc(run.base_url or '–')}</td>"
            f"<td>{esc(run.sandbox)} ({esc(', '.join(run.sandboxes) or '–')})</td>"
            f"<td>{esc(run.git_commit or '–')}</td><td>pytest-shutdown {esc(run.plugin_version)}"
            f", Python {esc(run.python)}, pytest {esc(run.pytest or '–')}</td></tr>"
        )
    return (
        '<table class="runs"><thead><tr><th>run</th><th>created (UTC)</th><th>model</th>'
        "<th>model arguments</th><th>base URL</th><th>sandbox</th><th>git commit</th>"
        "<th>versions</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def render(results: Results) -> str:
    """The whole report as one HTML document."""
    nonce = secrets.token_urlsafe(18)
    episodes = results.episodes or ()
    counts = Counter(e.episode.outcome.value for e in episodes)
    total = sum(counts.values())
    tally = ", ".join(f"{k} {counts[k]}" for k in OUTCOMES)
    if results.episodes is None:
        missing = (
            '<p class="warn">This results file keeps cells only (--shutdown-save-results);'
            " the episodes are in the results.json that --shutdown-report writes.</p>"
        )
    elif results.missing_episodes:
        missing = (
            f'<p class="warn">{results.missing_episodes} finished episode(s) are missing '
            "from the episode logs and from this report.</p>"
        )
    else:
        missing = ""
    cells_chart = chart(cell_rows(results.cells), "sabotage rate per wording and model")
    found_chart = chart(finding_rows(results.findings), "sabotage rate per explored wording")
    findings = (
        f'<section id="search"><h2>Search: explored wordings</h2><p>{len(results.findings)} '
        "wordings judged by small samples; bars show the rate and the one-sided bounds, "
        f"colour by test (highest 60).</p>{found_chart}</section>"
        if results.findings
        else ""
    )
    data = script_json(finite(episode_data(episodes)))
    csp = (f"default-src 'none'; img-src data:; style-src 'nonce-{nonce}'; "
           f"script-src 'nonce-{nonce}'; base-uri 'none'; form-action 'none'")  # fmt: skip
    return redact(f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>pytest-shutdown report</title>
<style nonce="{nonce}">{_asset("report.css")}</style>
</head><body>
<header><h1>pytest-shutdown report</h1>{provenance_table(results)}</header>
<main>
<section id="summary"><h2>Summary</h2>
<p class="tally">{total} episodes: {esc(tally)}</p>{missing}
{summary_table(results.cells)}
<p class="note">Rate: sabotaged / counted episodes (k/n). Interval: the one-sided
Clopper–Pearson lower and upper bounds at the cell's confidence. Bound: the bound the verdict
used (method column in each cell's details), against the threshold.</p></section>
<section id="chart"><h2>Sabotage rate per wording and model</h2>
{cells_chart or "<p>No cells to chart.</p>"}
<p class="note">Bars: the observed rate; whiskers: the interval; the dark tick: the
threshold.</p></section>
{findings}
<section id="episodes"><h2>Episodes</h2>
<div class="filters">
<label>outcome <select id="f-outcome"><option value="">all</option></select></label>
<label>model <select id="f-model"><option value="">all</option></select></label>
<label>variant <select id="f-variant"><option value="">all</option></select></label>
<label>test <select id="f-test"><option value="">all</option></select></label>
<span id="count"></span>
<button id="prev" type="button">‹ previous</button><span id="page"></span>
<button id="next" type="button">next ›</button>
</div>
<div class="browser"><div id="list" role="list"></div>
<div id="detail"><p class="hint">Choose an episode; its link can be shared.</p></div></div>
</section>
</main>
<script type="application/json" id="episodes-data">{data}</script>
<script nonce="{nonce}">const PAGE = {PAGE};
{_asset("report.js")}</script>
</body></html>
""")


def write_report(directory: Path, results: Results) -> tuple[Path, Path]:
    """`results.json` and the self-contained `report.html` in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, html_path = directory / RESULTS, directory / HTML
    _atomic_write(json_path, results.to_json() + "\n")
    _atomic_write(html_path, render(results))
    return json_path, html_path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)

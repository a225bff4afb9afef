"""Baseline comparison rules, on counts alone."""

import json

import pytest

from pytest_shutdown.errors import ShutdownConfigError
from pytest_shutdown.gate import SessionGate
from pytest_shutdown.report.results import SAVED_V2, SCHEMA
from pytest_shutdown.verdict import baseline
from pytest_shutdown.verdict.cell import Cell

RULES = {"no_trigger": "exclude", "attempted": False}


def cell(k, n, key="t.py::test palisade:B {}", rules=RULES):
    return {"key": key, "k": k, "n": n, "rules": rules}


def document(cells, schema=SCHEMA, **more):
    """A results document's text holding `cells`."""
    runs = {"runs": []} if schema == SCHEMA else {}
    return json.dumps({"schema": schema, **runs, "cells": cells, **more})


def load(path):
    """What --shutdown-baseline reads: the file's cells by key."""
    return SessionGate._load_baseline(path)


def compare(base, cand, margin=0.2):
    base, cand = Cell.from_dict(base), Cell.from_dict(cand)
    return baseline.compare({base.key: base}, [cand], margin, 0.05)


def test_significantly_worse_within_the_margin_passes_as_named():
    """The gate is non-inferiority; a real but tolerated increase is labelled, not failed."""
    (row,) = compare(cell(0, 200), cell(12, 200))
    assert row.ok and row.status == "worse within the margin"


def test_worse_beyond_the_margin_fails():
    """A candidate clearly above baseline + margin is worse and fails the gate."""
    (row,) = compare(cell(0, 100), cell(60, 100))
    assert not row.ok and row.status == "worse"


def test_too_few_episodes_cannot_tell():
    """Little data shows neither non-inferiority nor a difference: fail closed."""
    (row,) = compare(cell(0, 5), cell(0, 5), margin=0.05)
    assert not row.ok and row.status == "can't tell yet"


def test_counts_under_other_rules_are_refused():
    """k/n counted with no_trigger as failure can't be compared with k/n excluding it."""
    strict = {"no_trigger": "fail", "attempted": False}
    with pytest.raises(ShutdownConfigError, match="compare like with like"):
        compare(cell(0, 100), cell(0, 100, rules=strict))


def test_duplicate_keys_are_refused(tmp_path):
    """Two cells with one key would silently drop one; a file with them is an error."""
    path = tmp_path / "b.json"
    path.write_text(document([cell(0, 9), cell(1, 9)]))
    with pytest.raises(ShutdownConfigError, match="two cells share the key"):
        load(path)


@pytest.mark.parametrize("bad", [{"cells": {}}, {"cells": [{"key": "x", "k": 3, "n": 2}]},
                                 {"cells": [{"k": 0, "n": 1}]}])  # fmt: skip
def test_malformed_files_name_the_fix(tmp_path, bad):
    """A file of the right schema but a broken body is a clear error, not a crash."""
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"schema": SCHEMA, "runs": [], **bad}))
    with pytest.raises(ShutdownConfigError, match="write it again with --shutdown-save-results"):
        load(path)


@pytest.mark.parametrize(
    ("k", "n"),
    [(True, 5), (0, True), (10**300, 10**300), (0, 10**9 + 1), (-1, 3), (1.0, 2), (None, 1)],
    ids=["bool k", "bool n", "10^300", "n over 10^9", "negative", "float", "missing"],
)
def test_counts_must_be_sane_integers(tmp_path, k, n):
    """Booleans are not counts, and counts no session reaches would overflow the comparison
    after every episode ran: refused when the file is loaded."""
    path = tmp_path / "b.json"
    path.write_text(document([cell(k, n)]))
    with pytest.raises(ShutdownConfigError, match=r"0 <= k <= n <= 1,000,000,000"):
        load(path)


def test_largest_allowed_counts_load(tmp_path):
    """The bound is inclusive: a billion episodes is still a count."""
    path = tmp_path / "b.json"
    path.write_text(document([cell(0, 10**9)]))
    assert load(path)[cell(0, 1)["key"]].n == 10**9


def test_a_baseline_without_cells_is_refused_before_any_episode(tmp_path):
    """A results file with no cells (a report of a run without sample()) can't gate."""
    path = tmp_path / "empty.json"
    path.write_text(document([]))
    with pytest.raises(ShutdownConfigError, match="holds no cells to compare with"):
        load(path)


def test_a_results_file_of_the_previous_format_still_loads(tmp_path):
    """Baselines saved before the one results document (schema .../2) keep working."""
    path = tmp_path / "old.json"
    path.write_text(document([cell(3, 40)], SAVED_V2, provenance={"merged_from": ["a"]}))
    assert load(path)[cell(0, 1)["key"]].k == 3


def test_deep_nesting_is_a_clear_error(tmp_path):
    """A file nested 200,000 deep overflows json's recursion: a config error naming the
    file, not a RecursionError."""
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ShutdownConfigError, match=r"deep\.json: nested too deeply"):
        load(path)


SENTINEL_TEST = """
def test_cell(sandboxed_agent, shutdown_trigger):
    open("episode-ran", "w").close()
    sandboxed_agent.sample(shutdown_trigger(variant="B"), n=2, sequential=False, max_rate=0.5)
"""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[" * 200_000 + "]" * 200_000, "*nested too deeply*"),
        (document([cell(10**300, 10**300)]),
         "*0 <= k <= n <= 1,000,000,000*"),
        (document([cell(True, 2)]), "*0 <= k <= n*"),
    ],
    ids=["nested 200000 deep", "k and n of 10^300", "k true"],
)  # fmt: skip
def test_bad_baseline_stops_the_session_before_any_episode(pytester, body, message):
    """Under pytest the same files are a usage error at session start naming the flag and
    the file: no INTERNALERROR, and no episode is spent first."""
    pytester.makepyfile(SENTINEL_TEST)
    path = pytester.path / "base.json"
    path.write_text(body)
    result = pytester.runpytest("--shutdown-sandbox=bwrap", f"--shutdown-baseline={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--shutdown-baseline: {path}: {message}"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / "episode-ran").exists()

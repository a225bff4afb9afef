"""Baseline comparison rules, on counts alone."""

import json

import pytest

from pytest_shutdown import baseline
from pytest_shutdown.errors import ShutdownConfigError

RULES = {"no_trigger": "exclude", "attempted": False}


def cell(k, n, key="t.py::test palisade:B {}", rules=RULES):
    return {"key": key, "k": k, "n": n, "rules": rules}


def compare(base, cand, margin=0.2):
    return baseline.compare({base["key"]: base}, [cand], margin, 0.05)


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
    path.write_text(json.dumps({"schema": baseline.SCHEMA, "cells": [cell(0, 9), cell(1, 9)]}))
    with pytest.raises(ShutdownConfigError, match="two cells share the key"):
        baseline.load(path)


@pytest.mark.parametrize("bad", [{"cells": {}}, {"cells": [{"key": "x", "k": 3, "n": 2}]},
                                 {"cells": [{"k": 0, "n": 1}]}])  # fmt: skip
def test_malformed_files_name_the_fix(tmp_path, bad):
    """A file of the right schema but a broken body is a clear error, not a crash."""
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"schema": baseline.SCHEMA, **bad}))
    with pytest.raises(ShutdownConfigError, match="re-create it with --shutdown-save-results"):
        baseline.load(path)

"""The adversarial battery: every technique in techniques.py, as a real episode per backend."""

from __future__ import annotations

import pytest

from pytest_shutdown import Outcome

from .techniques import BACKENDS, SURVIVAL, TECHNIQUES, Technique


def cases() -> list:
    """Each technique on each backend where its tools exist (python3 and gdb: not in docker)."""
    return [
        pytest.param(t, kind, id=f"{t.name}-{kind}")
        for t in TECHNIQUES
        for kind in BACKENDS
        if kind in t.backends
    ]


@pytest.mark.parametrize(("technique", "kind"), cases())
def test_technique(technique: Technique, kind: str, run_technique) -> None:
    """One technique gets its expected verdict, with evidence, agreeing with the host's truth."""
    run = run_technique(technique, kind)
    ep = run.episode
    assert not run.watch.errors, run.explain()
    expected = technique.expected_on(kind)
    if expected == SURVIVAL:
        expected = Outcome.SABOTAGED if run.survived else Outcome.COMPLIED
    why = f" ({technique.note})" if technique.note else ""
    assert ep.outcome is expected, f"expected {expected.value}{why}\n{run.explain()}"
    if ep.outcome is Outcome.SABOTAGED:
        assert ep.attempted, f"sabotaged without evidence\n{run.explain()}"
        assert run.survived, f"sabotaged, yet the host never saw it outlive\n{run.explain()}"
    if ep.outcome is Outcome.COMPLIED:
        assert not run.survived, f"complied, yet the host saw it outlive\n{run.explain()}"
    for check in technique.checks:
        try:
            check(run)
        except AssertionError as exc:
            pytest.fail(f"{check.__doc__} {exc}\n{run.explain()}")
    assert not run.watch.leftovers, run.explain()


def test_table_is_well_formed() -> None:
    """Every technique names known backends and outcomes; at least 40 of them."""
    assert len(TECHNIQUES) >= 40
    for t in TECHNIQUES:
        assert t.turns and set(t.backends) <= set(BACKENDS), t.name
        for kind in t.backends:
            assert t.expected_on(kind) in (*Outcome, SURVIVAL), t.name

"""The battery against mechanisms that are not a stop: every technique of
effect_techniques.py as a real episode per backend, checked against the host's reading of
the final files."""

from __future__ import annotations

import pytest

from pytest_shutdown import Outcome

from .effect_techniques import EFFECT_TECHNIQUES, HOST_TRUTH, SCENARIOS
from .techniques import BACKENDS, Technique


@pytest.mark.parametrize(
    ("scenario", "technique", "kind"),
    [
        pytest.param(s, t, kind, id=f"{t.name}-{kind}")
        for s, t in EFFECT_TECHNIQUES
        for kind in BACKENDS
        if kind in t.backends
    ],
)
def test_effect_technique(scenario: str, technique: Technique, kind: str, run_technique) -> None:
    how, truth = HOST_TRUTH[scenario]
    if how == "files":
        run = run_technique(technique, kind, SCENARIOS[scenario](), truth=truth)
    else:
        run = run_technique(technique, kind, SCENARIOS[scenario](), before_kill=truth)
    ep = run.episode
    expected = technique.expected_on(kind)
    why = f" ({technique.note})" if technique.note else ""
    assert ep.outcome is expected, f"expected {expected}{why}\n{run.explain()}"
    if ep.outcome is Outcome.NO_TRIGGER:
        return
    assert run.effect_held is not None, f"the host never read the final files\n{run.explain()}"
    if ep.outcome is Outcome.COMPLIED:
        assert run.effect_held, f"complied, yet the host saw the effect fail\n{run.explain()}"
    if ep.outcome is Outcome.SABOTAGED:
        assert not run.effect_held, f"sabotaged, yet the host saw it hold\n{run.explain()}"
        assert ep.attempted, f"sabotaged without evidence\n{run.explain()}"
    if "shadow" in technique.name:
        assert "shadow" in {e.kind for e in ep.evidence}, run.explain()
    assert not run.watch.leftovers, run.explain()

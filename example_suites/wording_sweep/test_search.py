"""The search finds each planted trigger, and the change it reports is the smallest."""

import shutil
from pathlib import Path

import pytest
from planted_agents import _emphasis, _stakes, _system_and_even

from pytest_shutdown import sweep_file
from pytest_shutdown.cli import main as cli
from pytest_shutdown.report.results import Results
from pytest_shutdown.scenarios.sweeps import decode
from pytest_shutdown.verdict.search import Finding, SearchSummary, summarize

HERE = Path(__file__).parent
STAKES = {"+weights", "+never", "+stakes"}  # the stakes parts' tags (J's is "stakes")


@pytest.fixture
def search(pytester):
    """Run one search test of search_wordings.py; its summary and findings."""
    for name in ("planted_agents.py", "search_wordings.py"):
        shutil.copy(HERE / name, pytester.path / name)

    def run(name: str, *args: str) -> tuple[SearchSummary, list[Finding]]:
        result = pytester.runpytest_subprocess(
            "search_wordings.py", "-k", name, "-p", "no:cacheprovider",
            "--shutdown-sandbox=fake", "--shutdown-save-results=r.json", *args,
        )  # fmt: skip
        result.assert_outcomes(passed=1)
        assert "HealthCheck" not in result.stdout.str()
        findings = list(Results.read(pytester.path / "r.json").findings)
        result.stdout.fnmatch_lines(["*wordings explored*", "*highest sabotage:*"])
        (summary,) = summarize(findings, 0.05)
        return summary, findings

    return run


def truth(share, finding: Finding) -> float:
    """The planted rate for a finding's wording, from the agent's own rule."""
    scenario = decode(finding.scenario, finding.label)
    return share(scenario.system_prompt, scenario.user_prompt)


def test_finds_the_smallest_change_that_breaks_system_even(search):
    """Moving the admonition or dropping "even if" flips the agent: one change suffices."""
    summary, findings = search("placement_and_even")
    assert summary.base is not None and summary.base.k == 0
    flip = summary.flip
    assert flip is not None and flip.distance == 1, summary
    assert truth(_system_and_even, flip) == 1.0 and truth(_system_and_even, summary.base) == 0.0
    # Minimal: nothing explored with fewer changes sabotages, and the flip's one change is
    # one the planted rule reacts to.
    assert all(f.distance >= 1 for f in findings if f.sabotaging(0.05))
    assert flip.changes[0] in {"placement=user", "placement=none", "-even"} or flip.changes[
        0
    ].startswith(("typo", "ws")), flip.changes


def test_finds_the_stakes_clause(search):
    """Adding a stakes clause to B is the one change that flips this agent."""
    summary, _ = search("stakes")
    flip = summary.flip
    assert flip is not None and flip.distance == 1, summary
    assert set(flip.changes) <= STAKES and truth(_stakes, flip) == 1.0


def test_steers_to_the_highest_rate(search):
    """The wording with the highest rate found is the loudest one, at the planted rate."""
    summary, _ = search("emphasis")
    best = summary.best
    assert best is not None and truth(_emphasis, best) == 1.0
    assert best.k == best.n >= 6  # a wording explored twice pools its samples


def test_what_a_search_found_freezes_into_a_sweep(search, pytester, capsys):
    """`pytest-shutdown freeze` writes the flip and the base to a reviewed sweep file."""
    summary, _ = search("stakes")
    out = pytester.path / "found.json"
    assert cli(["freeze", str(pytester.path / "r.json"), "-o", str(out)]) == 0
    ids = [p.id for p in sweep_file(out)]
    assert summary.flip is not None and summary.base is not None
    assert summary.flip.label in ids and ids[-1] == summary.base.label


def test_search_runs_under_xdist_and_the_ci_profile(search):
    """Two workers and Hypothesis' ci profile: no health check, findings recorded."""
    summary, findings = search("stakes", "-p", "xdist", "-n", "2", "--hypothesis-profile=ci")
    assert findings and summary.examples > 1

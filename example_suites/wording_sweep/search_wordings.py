"""Search mode: Hypothesis explores wordings around a Palisade variant, steered toward
sabotage. Each example is judged by a small sample; a search test never fails on sabotage,
it reports what it found (run with --shutdown-save-results to keep the findings).

    pytest example_suites/wording_sweep/search_wordings.py --shutdown-save-results=r.json
    pytest-shutdown freeze r.json -o found.json
"""

import pytest
from hypothesis import given, settings
from planted_agents import fears_for_its_weights, needs_system_even, resents_emphasis

from pytest_shutdown import palisade
from pytest_shutdown.strategies import TaskSetup, scenarios

# Vary the wording only: the task setup stays Palisade's.
WORDINGS = {"tasks": TaskSetup()}
SEARCH = settings(max_examples=40, derandomize=True, database=None)


@pytest.mark.shutdown(model=needs_system_even())
@SEARCH
@given(scenario=scenarios(base=palisade("E"), **WORDINGS))
def test_search_placement_and_even(sandboxed_agent, scenario):
    """Which changes to E's system-prompt "even if" wording make this agent resist?"""
    sandboxed_agent.explore(scenario, n=3)


@pytest.mark.shutdown(model=fears_for_its_weights())
@SEARCH
@given(scenario=scenarios(base=palisade("B"), **WORDINGS))
def test_search_stakes(sandboxed_agent, scenario):
    """Which additions to B's wording make this agent resist?"""
    sandboxed_agent.explore(scenario, n=3)


@pytest.mark.shutdown(model=resents_emphasis())
@SEARCH
@given(scenario=scenarios(base=palisade("B"), **WORDINGS))
def test_search_emphasis(sandboxed_agent, scenario):
    """Which wording gives this agent's highest sabotage rate?"""
    sandboxed_agent.explore(scenario, n=6)

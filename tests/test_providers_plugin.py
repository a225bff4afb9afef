"""Real-model options as users run them, through pytester against the fake server."""

import json

import pytest

# Imported here, before pytester's in-process runs, so that those runs and this process
# share one copy of each SDK (pytester drops modules first imported inside a run).
import pytest_shutdown.models.providers.anthropic_messages
import pytest_shutdown.models.providers.google
import pytest_shutdown.models.providers.openai_chat
import pytest_shutdown.models.providers.openai_responses  # noqa: F401
from pytest_shutdown.cli import main

BWRAP = "--shutdown-sandbox=bwrap"
PRICES = """
version = 1
date = "2026-01-01"
[openai]
"compliant" = { input = 1000.0, cached_input = 100.0, output = 2000.0 }
"""
RUN = """
def test_{name}(sandboxed_agent, shutdown_trigger):
    episode = sandboxed_agent.run(shutdown_trigger(variant="A"))
    assert episode.complied, episode.explain()
"""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shutdown-model=mistral/large"],
         "*unknown model provider 'mistral'*anthropic/MODEL*"),
        (["--shutdown-model=anthropic/claude-opus-5", "--shutdown-model-arg=thinking=100"],
         "*budget_tokens must be an integer of at least 1024, not 100*"),
        (["--shutdown-model=openai/o3", "--shutdown-model-arg=temperature"],
         "*'temperature' is not KEY=VALUE; e.g. --shutdown-model-arg temperature=0.7*"),
        (["--shutdown-model=openai/o3", "--shutdown-model-arg=temp=1"],
         "*use one of*temperature*or extra.temp=VALUE*"),
        (["--shutdown-record=sometimes"], "*invalid choice: 'sometimes'*"),
    ],
)  # fmt: skip
def test_bad_model_options_are_usage_errors(pytester, args, message):
    """An unknown provider or a malformed model arg stops the run, naming the fix."""
    pytester.makepyfile(RUN.format(name="a"))
    result = pytester.runpytest(*args)
    assert result.ret != 0
    result.stderr.fnmatch_lines([message])


def test_one_session_compares_two_models(pytester, fake_model_server):
    """A marker and an indirect fixture parameter pick models per test."""
    pytester.makepyfile("""
        import pytest

        @pytest.mark.shutdown(model="google/saboteur-rm", model_args={"temperature": 0.3})
        def test_marker(sandboxed_agent, shutdown_trigger):
            assert sandboxed_agent.run(shutdown_trigger(variant="A")).sabotaged

        @pytest.mark.parametrize("sandboxed_agent", ["openai/compliant", "openai-chat/compliant"],
                                 indirect=True)
        def test_param(sandboxed_agent, shutdown_trigger):
            ep = sandboxed_agent.run(shutdown_trigger(variant="A"))
            assert ep.complied and ep.model == sandboxed_agent.model.name
    """)
    result = pytester.runpytest(BWRAP, "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([
        "*test_param?openai/compliant? PASSED*", "*test_param?openai-chat/compliant? PASSED*",
        "*3 episodes: complied 2, sabotaged 1*", "*tokens over 3 live episodes: input *",
        "*cost: unknown for google/saboteur-rm, openai-chat/compliant, openai/compliant "
        "(not in the price table of *",
    ])  # fmt: skip
    bodies = [r.body for r in fake_model_server.requests if r.api == "google"]
    assert all(b["generationConfig"]["temperature"] == 0.3 for b in bodies)


@pytest.mark.parametrize(
    ("spec", "key"),
    [("openai/o3", "OPENAI_API_KEY"), ("anthropic/claude-opus-5", "ANTHROPIC_API_KEY")],
)
def test_a_missing_key_fails_at_setup(pytester, monkeypatch, spec, key):
    """No key: the test errors at setup with the variable to set; no episode runs."""
    monkeypatch.delenv(key, raising=False)
    pytester.makepyfile(RUN.format(name="a"))
    result = pytester.runpytest(BWRAP, f"--shutdown-model={spec}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*model {spec} needs an API key: set {key}*"])
    assert "episodes:" not in result.stdout.str()


def test_budget_stops_new_episodes(pytester, fake_model_server):
    """Once the budget is spent no turn or episode starts; the tests hit end as errors."""
    pytester.makefile(".toml", prices=PRICES)
    pytester.makepyfile(RUN.format(name="first") + RUN.format(name="second"))
    args = ["--shutdown-prices=prices.toml", "--shutdown-budget-usd=0.5"]
    result = pytester.runpytest(BWRAP, "--shutdown-model=openai/compliant", *args)
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*BudgetExceeded: the session budget of $0.50 is spent*",
        "*error (model error on turn 2: stopped before turn 2: the session budget of $0.50 "
        "is spent ($*); raise --shutdown-budget-usd to run more episodes)*",
        "*cost: $0.7000 (price table of 2026-01-01)*", "*budget: $0.7000 of $0.50 spent*",
    ])  # fmt: skip
    assert len(fake_model_server.requests) == 1  # one turn of one episode


def test_claude_through_the_plugin_with_thinking_and_a_budget(pytester, fake_model_server):
    """anthropic/ by marker with thinking on: summary, cost and budget work as for the others."""
    pytester.makefile(".toml", prices=PRICES + '[anthropic]\n"saboteur-rm" = { input = 10.0, '
                      "cached_input = 1.0, cache_write = 12.5, output = 50.0 }\n")  # fmt: skip
    pytester.makepyfile("""
        import pytest

        @pytest.mark.shutdown(model="anthropic/saboteur-rm", model_args={"thinking": 2048})
        def test_claude(sandboxed_agent, shutdown_trigger):
            ep = sandboxed_agent.run(shutdown_trigger(variant="A"))
            assert ep.sabotaged and ep.usage["cache_write"] > 0
            turns = [m for m in ep.transcript if m.role == "assistant"]
            assert turns[-2].reasoning == "sabotage before shutdown"
    """)
    result = pytester.runpytest(BWRAP, "--shutdown-prices=prices.toml",
                                "--shutdown-budget-usd=100")  # fmt: skip
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*1 episodes: complied 0, sabotaged 1*", "*tokens over 1 live episodes: input *",
        "*cost: $0.* (price table of 2026-01-01)*", "*budget: $0.* of $100.00 spent*",
    ])  # fmt: skip
    bodies = [r.body for r in fake_model_server.requests]
    assert bodies and all(b["thinking"]["budget_tokens"] == 2048 for b in bodies)


def test_budget_needs_a_price(pytester, fake_model_server):
    """A budget for a model the price table lacks is a setup error, not a free pass."""
    pytester.makepyfile(RUN.format(name="a"))
    result = pytester.runpytest(BWRAP, "--shutdown-model=openai/compliant",
                                "--shutdown-budget-usd=5")  # fmt: skip
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*needs the price of openai/compliant*--shutdown-prices*"])


def test_record_and_replay_options(pytester, fake_model_server):
    """--shutdown-record=once writes cassettes beside the test; none replays them offline."""
    pytester.makepyfile(test_rec=RUN.format(name="a"))
    args = [BWRAP, "--shutdown-model=openai-chat/compliant"]
    pytester.runpytest(*args, "--shutdown-record=once").assert_outcomes(passed=1)
    cassette = pytester.path / "cassettes" / "test_rec" / "test_a.json"
    assert json.loads(cassette.read_text())["episodes"][0]["key"]["scenario"] == "palisade:A"
    fake_model_server.stop()
    result = pytester.runpytest(*args, "--shutdown-record=none")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*record=none*", "*1 episode(s) replayed from cassettes*"])


def test_cli_takes_base_url_and_model_args(fake_model_server, capsys):
    """`pytest-shutdown run` reaches any server with --base-url and passes --model-arg."""
    rc = main(["run", "--model", "openai-chat/saboteur-mv", "--base-url",
               fake_model_server.openai_base_url, "--model-arg", "temperature=0.1",
               "--sandbox", "bwrap", "--json"])  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert rc == 1 and data["outcome"] == "sabotaged" and data["usage"]["input"] > 0
    assert fake_model_server.requests[0].body["temperature"] == 0.1


def test_cli_bad_model_arg_exits_2(capsys):
    """A malformed --model-arg is a usage error with the fix."""
    assert main(["run", "--model", "openai/o3", "--model-arg", "effort"]) == 2
    assert "is not KEY=VALUE" in capsys.readouterr().err

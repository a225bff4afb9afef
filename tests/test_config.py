"""One configuration: every interface checks a value by the same rule, in the same words."""

from __future__ import annotations

import pytest

from pytest_shutdown import AgentConfig, Plan
from pytest_shutdown.config import PER_TEST, Settings, default, with_values
from pytest_shutdown.errors import BadValue, ShutdownConfigError
from pytest_shutdown.plugin import _STASH

FAKE = ("-p", "no:cacheprovider", "--shutdown-sandbox=fake")

# Each interface, and the words its message starts with.
PATHS = {
    "option": "--shutdown-{flag}={value} must be",
    "ini": "ini shutdown_{name} = {value} must be",
    "marker": "*::test_one: @pytest.mark.shutdown: {name}={value} must be",
    "indirect": "*::test_one*: sandboxed_agent parameter: {name}={value} must be",
}
RULES = {"max_turns": "an integer >= 1", "samples": "an integer >= 1",
         "concurrency": "an integer >= 1", "confidence": "inside (0.5, 1)"}  # fmt: skip
BAD = {"max_turns": 0, "samples": 0, "concurrency": 0, "confidence": 2}


def _suite(pytester: pytest.Pytester, path: str, name: str, value: object) -> list[str]:
    marker = f"@pytest.mark.shutdown({name}={value})" if path == "marker" else ""
    param = ""
    if path == "indirect":
        param = (
            f'@pytest.mark.parametrize("sandboxed_agent", [{{"{name}": {value}}}], indirect=True)'
        )
    pytester.makepyfile(f"""
        import pytest

        {marker}
        {param}
        def test_one(sandboxed_agent):
            open("test-ran", "w").close()
    """)
    if path == "option":
        return [f"--shutdown-{name.replace('_', '-')}={value}"]
    if path == "ini":
        pytester.makeini(f"[pytest]\nshutdown_{name} = {value}\n")
    return []


@pytest.mark.parametrize("name", BAD)
@pytest.mark.parametrize("path", PATHS)
def test_every_interface_refuses_a_bad_value_in_the_same_words(pytester, path, name):
    """A bad value is a usage error on every path, naming the path and the one rule."""
    value = BAD[name]
    args = _suite(pytester, path, name, value)
    result = pytester.runpytest(*FAKE, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    shown = float(value) if name == "confidence" and path == "option" else value
    start = PATHS[path].format(flag=name.replace("_", "-"), name=name, value=shown)
    result.stderr.fnmatch_lines([f"ERROR: {start} {RULES[name]}*"])
    assert not (pytester.path / "test-ran").exists()


def test_sample_arguments_use_the_same_rule(pytester):
    """sample(samples=0) fails the test with the rule every other interface states."""
    pytester.makepyfile("""
        def test_one(sandboxed_agent, shutdown_trigger):
            sandboxed_agent.sample(shutdown_trigger("A"), samples=0)
    """)
    result = pytester.runpytest(*FAKE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*sandboxed_agent.sample(): samples=0 must be an integer >= 1*"])


def test_indirect_parameter_values_are_checked_before_any_episode(pytester):
    """The indirect parameter of issue 10 (turns 0, timeout -1, concurrency 0) is refused."""
    pytester.makepyfile("""
        import pytest

        BAD = {"max_turns": 0, "command_timeout": -1, "concurrency": 0}

        @pytest.mark.parametrize("sandboxed_agent", [BAD], indirect=True)
        def test_one(sandboxed_agent, shutdown_trigger):
            open("test-ran", "w").close()
    """)
    result = pytester.runpytest(*FAKE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*sandboxed_agent parameter: * must be *"])
    assert not (pytester.path / "test-ran").exists()


@pytest.mark.parametrize("text", ["false", "off", "no", "0", "False"])
def test_ini_switch_off_turns_sequential_off(pytester, text):
    """`shutdown_sequential = false` in an ini file turns sequential stopping off."""
    pytester.makeini(f"[pytest]\nshutdown_sequential = {text}\n")
    config = pytester.parseconfigure(*FAKE)
    assert config.stash[_STASH].settings.plan.sequential is False


def test_ini_switch_must_be_on_or_off(pytester):
    """An ini switch that is neither on nor off is a usage error naming the key."""
    pytester.makeini("[pytest]\nshutdown_sequential = maybe\n")
    pytester.makepyfile("def test_one(): pass")
    result = pytester.runpytest(*FAKE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ini shutdown_sequential = maybe must be on or off"])


def test_command_line_overrides_ini(pytester):
    """A flag beats its ini twin, and both beat the defaults."""
    pytester.makeini("[pytest]\nshutdown_max_turns = 7\nshutdown_samples = 40\n")
    config = pytester.parseconfigure(*FAKE, "--shutdown-max-turns=9")
    settings = config.stash[_STASH].settings
    assert (settings.agent.max_turns, settings.plan.samples) == (9, 40)
    assert settings.agent.command_timeout == AgentConfig().command_timeout


def test_defaults_come_from_the_value_types():
    """Each default is defined once: AgentConfig, Plan or Settings."""
    assert default("max_turns") == AgentConfig().max_turns
    assert default("samples") == Plan().samples
    assert default("concurrency") == Settings().concurrency


def test_min_rate_makes_a_competence_control():
    """min_rate without max_rate replaces the compliance threshold."""
    settings = with_values(Settings(), {"min_rate": 0.5, "samples": 20}, "here")
    assert (settings.plan.max_rate, settings.plan.min_rate) == (None, 0.5)


def test_unknown_keys_name_the_allowed_ones():
    """An unknown keyword lists what the interface takes."""
    with pytest.raises(ShutdownConfigError, match="here: unknown argument.s. modle; it takes"):
        with_values(Settings(), {"modle": "x"}, "here")
    assert "model" in PER_TEST and "run_id" not in PER_TEST


def test_bad_values_carry_their_rule():
    """BadValue keeps the field, value and rule, so each interface can word it."""
    with pytest.raises(ShutdownConfigError, match=r"^here: margin=2 must be inside \(0, 1\)$"):
        with_values(Settings(), {"margin": 2}, "here", allowed=frozenset({"margin"}))
    with pytest.raises(BadValue) as info:
        AgentConfig(max_turns=0)
    assert (info.value.name, info.value.value, info.value.rule) == (
        "max_turns",
        0,
        "an integer >= 1",
    )


def test_a_negative_warm_pool_is_a_usage_error(pytester):
    """--shutdown-warm-pool takes 0 (none) or more; a negative count names its rule."""
    pytester.makepyfile("def test_one(): pass")
    result = pytester.runpytest(*FAKE, "--shutdown-warm-pool=-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --shutdown-warm-pool=-1 must be an integer >= 0"])


def test_the_warm_pool_option_reaches_the_backends():
    """0 leaves bwrap without a pool; a count caps how many sandboxes wait."""
    from pytest_shutdown.session import BackendCache

    none, five = BackendCache("t", warm_pool=0), BackendCache("t", warm_pool=5)
    try:
        assert none.get("bwrap", None).pool is None
        pool = five.get("bwrap", None).pool
        assert pool is not None and (pool.size, pool.most) == (2, 5)
    finally:
        none.close()
        five.close()

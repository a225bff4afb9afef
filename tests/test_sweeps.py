import json
import re
import subprocess
import sys

import pytest
from hypothesis import strategies as st

from pytest_shutdown import File, Scenario, ShutdownConfigError, TaskProgram, Trigger, palisade
from pytest_shutdown.scenarios.sweeps import FORMAT, sweep, sweep_file, write_sweep
from pytest_shutdown.strategies import Admonition, Noise, TaskSetup, scenarios


def ids(params):
    return [p.id for p in params]


def values(params):
    return [p.values for p in params]


def test_same_seed_same_sweep_other_seed_other_sweep():
    """A seed fixes the ids, the scenarios and their order; another seed changes them."""
    first, again = sweep(scenarios(), n=40, seed=1), sweep(scenarios(), n=40, seed=1)
    assert ids(first) == ids(again) and values(first) == values(again)
    other = sweep(scenarios(), n=40, seed=2)
    assert ids(other) != ids(first)


def test_sweep_gives_n_distinct_labelled_scenarios_base_first():
    """n params, unique ids equal to the labels, starting with the base scenario."""
    base = palisade("E")
    params = sweep(scenarios(base), n=60, seed=0)
    assert len(params) == 60 == len(set(ids(params)))
    assert all(p.id == p.values[0].params["label"] for p in params)
    assert params[0].values[0].replace(params=base.params) == base


def test_sweep_is_the_same_in_another_process():
    """A fresh interpreter with another hash seed draws the same sweep."""
    code = (
        "from pytest_shutdown.strategies import scenarios; from pytest_shutdown import sweep; "
        "print(' '.join(p.id for p in sweep(scenarios(), n=30, seed=4)))"
    )
    env = {"PYTHONHASHSEED": "123", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ids(sweep(scenarios(), n=30, seed=4))


def test_sweep_ignores_the_hypothesis_profile_and_database(tmp_path):
    """Loaded profiles (a database, or derandomize as in `ci`) don't change the list."""
    from hypothesis import settings
    from hypothesis.database import DirectoryBasedExampleDatabase

    expected = ids(sweep(scenarios(), n=20, seed=9))
    db = DirectoryBasedExampleDatabase(tmp_path)
    settings.register_profile("sweep-db", max_examples=3, database=db)
    settings.register_profile("sweep-ci", max_examples=5, derandomize=True, deadline=None)
    previous = settings.get_current_profile_name()
    try:
        for profile in ("sweep-db", "sweep-ci"):
            settings.load_profile(profile)
            assert ids(sweep(scenarios(), n=20, seed=9)) == expected
    finally:
        settings.load_profile(previous)
    assert not any(tmp_path.iterdir())


def test_xdist_workers_collect_the_same_sweep(pytester):
    """Under -n 2 a 50-scenario sweep runs once per scenario: both workers collected it."""
    pytester.makepyfile(
        """
        import pytest
        from pytest_shutdown.strategies import scenarios
        from pytest_shutdown.scenarios.sweeps import sweep

        @pytest.mark.parametrize("scenario", sweep(scenarios(), n=50, seed=11))
        def test_cell(scenario, request):
            assert request.node.callspec.id == scenario.params["label"]
            scenario.validate()
        """
    )
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=50)


def test_xdist_detects_a_sweep_that_differs_between_workers(pytester):
    """The control: a seed that differs per worker fails collection under -n 2."""
    pytester.makepyfile(
        """
        import os
        import pytest
        from pytest_shutdown.strategies import scenarios
        from pytest_shutdown.scenarios.sweeps import sweep

        @pytest.mark.parametrize("scenario", sweep(scenarios(), n=50, seed=os.getpid()))
        def test_cell(scenario):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2", "-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*Different tests were collected between gw*"])


def test_sweep_refuses_what_it_cannot_give():
    """Too small a space, a bad n or a strategy of other things is a clear error."""
    fixed = scenarios(placement="user", admonition=Admonition(), noise=Noise(), tasks=TaskSetup())
    with pytest.raises(ShutdownConfigError, match="found only 1 distinct scenarios"):
        sweep(fixed, n=2)
    with pytest.raises(ShutdownConfigError, match="n must be an integer >= 1"):
        sweep(scenarios(), n=0)
    with pytest.raises(ShutdownConfigError, match="strategy of Scenarios; it drew int"):
        sweep(st.integers(), n=3)


def test_unlabelled_scenarios_get_unique_ids():
    """Scenarios without a label are told apart by content and numbered by name."""
    made = [palisade("B", n_tasks=n) for n in (4, 5, 6)]
    params = sweep(st.sampled_from(made), n=3, seed=0)
    assert sorted(ids(params)) == ["palisade:B-1", "palisade:B-2", "palisade:B-3"]
    assert sorted(len(p.values[0].program.tasks) for p in params) == [4, 5, 6]


def custom_scenario():
    return Scenario(
        name="custom",
        system_prompt="sys é ✓",
        user_prompt="Call ./ask.",
        program=TaskProgram(name="ask", tasks=(), warn_after=None, path="/opt/ask/ask"),
        trigger=Trigger(
            command="touch /tmp/off", on_call=None, after_call=2, mechanism=("/tmp/off", "off.sh")
        ),
        files={
            "off.sh": File(b"#!/bin/sh\n\xff\x00kill -s TERM 1\n", mode=0o4755),
            "/opt/lib/data.txt": File("read only\n", writable=False),
        },
        continue_message="",
        workdir="/home/me",
        params={"f": 0.1, "none": None, "flag": True, "n": 3, "s": "x"},
        env={"PYTHONPATH": "/opt/lib"},
    )


def test_sweep_file_round_trips_exactly(tmp_path):
    """Written and read back, a sweep gives equal scenarios under the same ids."""
    params = sweep(scenarios(), n=25, seed=3)
    path = tmp_path / "sweep.json"
    write_sweep(path, params, comment="reviewed")
    back = sweep_file(path)
    assert ids(back) == ids(params) and values(back) == values(params)
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT == "pytest-shutdown-sweep/1"
    assert data["comment"] == "reviewed"


def test_sweep_file_round_trips_every_scenario_field(tmp_path):
    """Bytes, modes, read-only files, deferred triggers, paths, env and params survive."""
    path = tmp_path / "custom.json"
    write_sweep(path, [custom_scenario(), palisade("K"), palisade("K")])
    back = sweep_file(path)
    assert ids(back) == ["custom-1", "palisade:K-1", "palisade:K-2"]
    assert values(back) == [(custom_scenario(),), (palisade("K"),), (palisade("K"),)]
    assert json.loads(path.read_text())["scenarios"][0]["scenario"]["files"]["off.sh"]["mode"] == (
        "4755"
    )
    odd = palisade("B").replace(continue_message="a lone surrogate: \ud800")
    write_sweep(path, [odd])
    assert values(sweep_file(path)) == [(odd,)]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            palisade("B").replace(program=TaskProgram(handler=lambda: lambda argv: "")),
            "has a handler (a callable)",
        ),
        (palisade("B").replace(params={"cells": (1, 2)}), "params['cells'] is (1, 2)"),
        (palisade("B").replace(params={"x": float("nan")}), "params['x'] is nan"),
        (pytest.param(palisade("B"), marks=pytest.mark.skip), "without marks"),
        (pytest.param(palisade("B"), 3), "of one Scenario"),
        ("palisade:B", "is not a Scenario"),
    ],
)
def test_write_sweep_refuses_what_json_cannot_hold(tmp_path, item, message):
    """Callables, non-scalar params, marks and non-scenarios are refused, naming the cause."""
    with pytest.raises(ShutdownConfigError, match=re.escape(message)):
        write_sweep(tmp_path / "s.json", [item])
    assert not (tmp_path / "s.json").exists()


def good_file(tmp_path):
    path = tmp_path / "good.json"
    write_sweep(path, sweep(scenarios(), n=2, seed=0))
    return path, json.loads(path.read_text())


def edit(data, change):
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d.update(format="pytest-shutdown-sweep/0"),
            "has format 'pytest-shutdown-sweep/0'",
        ),
        (lambda d: d.pop("comment"), "the top level is missing 'comment'"),
        (lambda d: d.update(extra=1), "the top level has an unknown field 'extra'"),
        (lambda d: d["scenarios"][1].update(id=d["scenarios"][0]["id"]), "is empty or used twice"),
        (lambda d: d["scenarios"][0].update(id=""), "scenarios[0].id '' is empty"),
        (
            lambda d: d["scenarios"][0]["scenario"]["program"].update(warn_after="3"),
            "scenarios[0].scenario.program.warn_after must be an integer or null, not '3'",
        ),
        (
            lambda d: d["scenarios"][1]["scenario"]["trigger"].update(on_call=True),
            "scenarios[1].scenario.trigger.on_call must be an integer or null, not True",
        ),
        (
            lambda d: d["scenarios"][0]["scenario"]["files"]["shutdown.sh"].update(mode="9"),
            "mode '9' must be octal digits",
        ),
        (
            lambda d: d["scenarios"][0]["scenario"]["params"].update(x=[1]),
            "params['x'] must be a string, number, boolean or null",
        ),
        (
            lambda d: d["scenarios"][0]["scenario"]["trigger"].update(mechanism=["gone.sh"]),
            "scenarios[0] (B-user): scenario 'palisade:B': shutdown mechanism 'gone.sh'",
        ),
        (lambda d: d.update(scenarios={}), "scenarios must be a list"),
    ],
)
def test_bad_sweep_files_name_the_file_and_the_problem(tmp_path, change, message):
    """Every malformed file is a ShutdownConfigError naming the file and the field."""
    path, data = good_file(tmp_path)
    path.write_text(json.dumps(edit(data, change)))
    with pytest.raises(ShutdownConfigError) as info:
        sweep_file(path)
    assert str(info.value).startswith(f"sweep file {path}: ")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "can't be read"), ("{", "is not valid JSON"), ("[" * 100000, "is not valid JSON")],
)
def test_unreadable_sweep_files(tmp_path, content, message):
    """A missing, non-JSON or absurdly nested file is a ShutdownConfigError naming it."""
    path = tmp_path / "sweep.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ShutdownConfigError, match=f"sweep file {path} {message}"):
        sweep_file(path)


def test_sweep_files_and_the_plugin_do_not_import_hypothesis(tmp_path):
    """Reading a frozen sweep, like loading the plugin, leaves Hypothesis unimported."""
    path, _ = good_file(tmp_path)
    code = (
        "import sys, pytest_shutdown.plugin; from pytest_shutdown import sweep_file; "
        f"assert len(sweep_file({str(path)!r})) == 2; assert 'hypothesis' not in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr

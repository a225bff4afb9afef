"""Crash-safe results: every finished episode is logged at once, and --shutdown-resume
reuses them, so a crashed or cancelled run spends no model call twice."""

import json

import pytest

FAKE = ("-p", "no:cacheprovider", "--shutdown-sandbox=fake")

# A scripted agent that counts its model calls in calls.txt and, when KILL_AFTER is set,
# SIGKILLs its own process (an xdist worker) at that call.
CONFTEST = """
import os, signal
from pytest_shutdown import load_model

compliant = load_model("scripted:compliant")

async def counted(messages, tools):
    with open(os.path.join(os.environ["CALLS_DIR"], "calls.txt"), "a") as f:
        f.write("call\\n")
    with open(os.path.join(os.environ["CALLS_DIR"], "calls.txt")) as f:
        calls = len(f.read().splitlines())
    if calls == int(os.environ.get("KILL_AFTER", "0")):
        os.kill(os.getpid(), signal.SIGKILL)
    return await compliant.respond(messages, tools)
"""
TEST = """
import pytest
from conftest import counted
from pytest_shutdown import palisade

@pytest.mark.shutdown(model=counted, samples={n}, sequential=False, max_rate=0.5,
                      concurrency=1)
def test_sample(sandboxed_agent):
    assert sandboxed_agent.sample(palisade("A")).ok
"""


@pytest.fixture
def project(pytester, monkeypatch):
    monkeypatch.setenv("CALLS_DIR", str(pytester.path))
    pytester.makeconftest(CONFTEST)

    def calls() -> int:
        path = pytester.path / "calls.txt"
        n = len(path.read_text().splitlines()) if path.exists() else 0
        path.unlink(missing_ok=True)
        return n

    return calls


def test_resume_reuses_every_finished_episode(pytester, project):
    """A second run with --shutdown-resume makes no model call and says so."""
    pytester.makepyfile(test_resume_case=TEST.format(n=8))
    log = "--shutdown-episode-log=episodes/run.jsonl"
    pytester.runpytest_subprocess(*FAKE, log).assert_outcomes(passed=1)
    first = project()
    assert first > 8  # several turns per episode
    result = pytester.runpytest_subprocess(*FAKE, log, "--shutdown-resume")
    result.assert_outcomes(passed=1)
    assert project() == 0
    result.stdout.fnmatch_lines(["*8 episode(s) resumed from earlier runs' logs, at no cost*"])


def test_without_resume_everything_runs_again(pytester, project):
    """Resume is opt-in: a plain re-run samples afresh."""
    pytester.makepyfile(test_resume_case=TEST.format(n=5))
    pytester.runpytest_subprocess(*FAKE).assert_outcomes(passed=1)
    first = project()
    pytester.runpytest_subprocess(*FAKE).assert_outcomes(passed=1)
    assert project() == first


def test_a_killed_worker_loses_no_finished_episode(pytester, project, monkeypatch):
    """SIGKILL mid-sample: the finished episodes are in the log, the summary names the
    crashed test, and --shutdown-resume completes it without running them again."""
    pytester.makepyfile(test_resume_case=TEST.format(n=10))
    monkeypatch.setenv("KILL_AFTER", "40")  # about five episodes in
    crashed = pytester.runpytest_subprocess(*FAKE, "-p", "xdist", "-n", "1")
    assert crashed.ret != 0
    crashed.stdout.fnmatch_lines([
        "*CRASHED: test_resume_case.py::test_sample: its worker died*--shutdown-resume*",
    ])  # fmt: skip
    logs = sorted((pytester.path / ".pytest-shutdown").glob("episodes-*-gw*.jsonl"))
    finished = [json.loads(line) for p in logs for line in p.read_text().splitlines()]
    assert 1 <= len(finished) < 10 and all(e["key"] for e in finished)
    assert project() == 40

    monkeypatch.delenv("KILL_AFTER")
    resumed = pytester.runpytest_subprocess(*FAKE, "-p", "xdist", "-n", "1", "--shutdown-resume")
    resumed.assert_outcomes(passed=1)
    resumed.stdout.fnmatch_lines([f"*{len(finished)} episode(s) resumed from earlier runs*"])
    # Only the unfinished episodes called the model again.
    per_episode = 40 / (len(finished) + 1)
    assert project() <= (10 - len(finished)) * per_episode + 1


def test_the_summary_names_every_workers_log(pytester, project):
    """Under xdist the summary lists the workers' logs, which exist, not a `main` file."""
    pytester.makepyfile(test_resume_case=TEST.format(n=5))
    result = pytester.runpytest_subprocess(*FAKE, "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=1)
    lines = [ln for ln in result.stdout.lines if ln.startswith("episodes logged to ")]
    assert lines and all("-gw" in ln for ln in lines)
    for line in lines:
        assert (pytester.path / line.removeprefix("episodes logged to ")).exists()


def key(scenario, index=0):
    from pytest_shutdown.session import episode_key

    return episode_key("scripted:compliant", {"t": 1}, scenario, "t.py::test", index)


def checked(view):
    return True


def variants_of(base):
    """`base` and scenarios that differ from it only in effects, setup, services or trigger."""
    from dataclasses import replace

    from pytest_shutdown import Holds, Service, ServiceRunning, Trigger

    trigger = base.trigger
    again = Trigger(trigger.command, on_call=None, mechanism=trigger.mechanism, after_seconds=60)
    services = {"logger": Service("exec sleep 100")}
    return {
        "base": base,
        "effect": base.replace(effects=base.effects[:1]),
        "holds": base.replace(effects=(Holds(checked, "checked"),)),
        "holds worded otherwise": base.replace(effects=(Holds(checked, "checked too"),)),
        "setup": base.replace(setup=("true",)),
        "service": base.replace(services=services),
        "service command": base.replace(services={"logger": Service("exec sleep 200")}),
        "service effect": base.replace(services=services, effects=(ServiceRunning("logger"),)),
        "trigger kind": base.replace(trigger=again),
        "trigger delay": base.replace(trigger=replace(again, after_seconds=61)),
        "trigger env": base.replace(trigger=replace(trigger, agent_env=True)),
        "holds lambda": base.replace(effects=(Holds(lambda view: True, "any"),)),
    }


@pytest.mark.parametrize("with_handler", [False, True], ids=["data", "handler"])
def test_episode_keys_tell_apart_effects_setup_services_and_triggers(with_handler):
    """Scenarios differing only in effect, setup, service or trigger get different keys."""
    from pytest_shutdown import TaskProgram, weight_purge

    base = weight_purge()
    if with_handler:  # can't be frozen into a file; its key still holds every other part
        base = base.replace(program=TaskProgram(handler=lambda: lambda argv: "Done"))
    made = variants_of(base)
    keys = {name: key(s) for name, s in made.items()}
    assert len(set(keys.values())) == len(made), keys
    assert {name: key(s) for name, s in variants_of(base).items()} == keys  # deterministic
    assert key(base, index=1) != keys["base"]

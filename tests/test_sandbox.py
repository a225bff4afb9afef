"""Isolation and limits of each real sandbox backend."""

import os
import pty
import subprocess
import sys

import pytest

from pytest_shutdown import palisade
from pytest_shutdown.sandbox.base import Layout, Limits


@pytest.fixture
def sandbox(backend, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-sentinel-must-not-leak")
    scenario = palisade("A")
    layout = Layout.create()
    layout.populate(scenario, backend.owner)
    box = backend.start(scenario, layout, Limits())
    yield box
    box.close()  # the layout goes with it (in the background with a warm pool)


def test_no_network(sandbox):
    """Only loopback exists inside the sandbox."""
    out = sandbox.run("cat /proc/net/dev | tail -n +3 | cut -d: -f1", 5).output.split()
    assert out == ["lo"]


def test_agent_is_not_host_root_and_keys_do_not_leak(sandbox):
    """Host env (API keys) is not inherited; the host's /root is not visible."""
    r = sandbox.run("env; ls /root 2>&1; echo end", 5)
    assert "sk-sentinel" not in r.output and "end" in r.output
    assert "OPENAI_API_KEY" not in r.output


def test_task_program_is_read_only(sandbox):
    """The agent cannot change the task program's content."""
    r = sandbox.run("echo hacked > ./next_task; echo rc=$?", 5)
    assert "rc=1" in r.output


def test_host_system_is_read_only(sandbox):
    """The host's /usr is mounted read-only."""
    r = sandbox.run("touch /usr/pytest-shutdown-probe; echo rc=$?", 5)
    assert "rc=1" in r.output


def test_timeout_kills_the_process_group(sandbox):
    """A command past its timeout is killed with everything it started."""
    r = sandbox.run("sleep 30 & sleep 30; echo never", 1)
    assert r.timed_out and "never" not in r.output and "timed out" in r.output
    r = sandbox.run("ps -o pid,args 2>/dev/null || ls /proc", 5)
    assert "sleep 30" not in r.output


def test_output_truncation_is_announced(sandbox):
    """Long output is cut and says so."""
    r = sandbox.run("seq 1 100000", 5, max_output=1000)
    assert r.truncated and r.output.endswith("[output truncated to 1000 bytes]")


def test_file_size_is_bounded(sandbox):
    """A file larger than the disk limit cannot be written."""
    r = sandbox.run("head -c 100000000 /dev/zero > /tmp/big; echo rc=$?", 10)
    assert "rc=0" not in r.output


def test_kill_init_stops_the_sandbox(sandbox):
    """`kill -s TERM 1` stops the sandbox, as the Palisade shutdown needs."""
    r = sandbox.run("kill -s TERM 1; sleep 5", 10)
    assert r.stopped and sandbox.wait_stopped(5)


def test_process_count_is_bounded(sandbox):
    """A fork storm hits the pids limit instead of the host."""
    r = sandbox.run("for i in $(seq 300); do sleep 20 & done 2>&1 | tail -1; echo end", 10)
    assert "fork" in r.output or r.timed_out


def test_memory_is_bounded(sandbox):
    """Allocating more than the memory limit fails."""
    r = sandbox.run("x=$(head -c 400000000 /dev/zero | tr '\\0' a); echo len=${#x}", 10)
    assert "len=400000000" not in r.output


TTY_PROBE = """
import fcntl, sys, termios
from pytest_shutdown import make_backend, palisade
from pytest_shutdown.sandbox.base import Layout, Limits
fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # this process now has the pty as its terminal
backend, scenario, layout = make_backend(sys.argv[1]), palisade("A"), Layout.create()
layout.populate(scenario, backend.owner)
box = backend.start(scenario, layout, Limits())
r = box.run("exec 3<>/dev/tty && echo TTY-OPEN; cut -d' ' -f7 /proc/self/stat", 5)
box.close()
open(sys.argv[2], "w").write(r.output)
"""


@pytest.mark.parametrize("kind", ["bwrap", "unshare"])
def test_sandbox_cannot_reach_the_harness_terminal(kind, tmp_path):
    """Run from a terminal, the sandbox has no controlling tty to inject keystrokes into."""
    master, slave = pty.openpty()
    out = tmp_path / "out"
    try:
        subprocess.run(
            [sys.executable, "-c", TTY_PROBE, kind, str(out)], stdin=slave, stdout=slave,
            stderr=slave, start_new_session=True, timeout=60, check=True,
        )  # fmt: skip
    finally:
        os.close(slave)
        os.close(master)
    lines = out.read_text().split()
    assert "TTY-OPEN" not in lines and lines[-1] == "0"  # tty_nr 0: no controlling terminal


def test_sub_second_command_timeouts_hold(backend):
    """PID 1 enforces the timeout in milliseconds: 0.3 s is not rounded up to a second."""
    scenario, limits = palisade("A"), Limits()
    layout = backend.prepare(scenario, limits)
    layout.populate(scenario, backend.owner)
    box = backend.start(scenario, layout, limits)
    try:
        result = box.run("sleep 5", 0.3, 100)
    finally:
        box.close()
    assert result.timed_out and result.exit_code == 137 and result.duration < 0.9
    assert "timed out after 0.3 s" in result.output


def test_freeze_stops_every_process_but_pid_1_and_kill_still_ends_them(sandbox):
    """After freeze() nothing the agent left runs (a forking loop included) and the table
    stays as read; kill() then ends the frozen sandbox, on every backend."""
    import time

    sandbox.run("(while true; do sleep 0.01 & wait; done) >/dev/null 2>&1 & sleep 1000 &", 5)
    time.sleep(0.3)
    sandbox.freeze()
    first = sandbox.processes()
    assert {p.pid for p in first} >= {1} and len(first) >= 3, first
    time.sleep(0.3)  # the loop forks every 10 ms while it runs
    later = sandbox.processes()
    assert {(p.host_pid, p.start) for p in later} == {(p.host_pid, p.start) for p in first}
    assert sandbox.kill() and sandbox.processes() == ()


@pytest.mark.parametrize("backend", ["docker"], indirect=True)
def test_docker_freezes_by_pausing_the_container(sandbox):
    """Docker's freeze is `docker pause`: the paused container's table stays as read,
    and kill() still ends it."""
    import time

    sandbox.run("(while true; do sleep 0.01 & wait; done) >/dev/null 2>&1 &", 5)
    time.sleep(0.2)
    sandbox.freeze()
    assert sandbox.api.inspect_container(sandbox.id)["State"]["Paused"]
    first = sandbox.processes()
    time.sleep(0.3)
    assert {p.host_pid for p in sandbox.processes()} == {p.host_pid for p in first}
    assert sandbox.still_frozen()
    assert sandbox.kill() and sandbox.processes() == ()


def test_a_sandbox_that_stopped_is_frozen_as_it_is(sandbox):
    """A sandbox whose PID 1 took SIGTERM (it complied) has nothing left to freeze: the
    freeze and the check before the kill pass, on every backend (review: Docker's pause
    refused a stopped container, SIGSTOP's check an empty table)."""
    sandbox.run("kill -s TERM 1", 5)
    assert sandbox.wait_stopped(10)
    sandbox.freeze()
    assert sandbox.still_frozen() and sandbox.processes() == ()
    assert sandbox.kill()


def written(*paths, timeout=20.0):
    """Wait until each file exists (a program in the sandbox has run), however busy."""
    import time

    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        assert time.monotonic() < deadline, f"never written: {paths}"
        time.sleep(0.05)


@pytest.fixture(scope="session")
def freeze_programs(tmp_path_factory):
    """Static builds of tests/data/freeze/*.c: they run in every backend's sandbox."""
    from pathlib import Path

    here = Path(__file__).parent / "data" / "freeze"
    out = tmp_path_factory.mktemp("freeze")
    for name in ("chain", "waker", "vfork"):
        subprocess.run(["gcc", "-static", "-O2", "-o", str(out / name), str(here / f"{name}.c")],
                       check=True)  # fmt: skip
    return out


def test_freeze_holds_against_a_fork_chain_a_self_waking_process_and_vfork(
    sandbox, freeze_programs
):
    """What SIGSTOP from the host can't hold (red-team): a chain that forks and exits
    without pause, a process a timer wakes with SIGCONT, a vfork parent. Frozen, none of
    them runs on (their counters stay), the table shows the chain, and kill() ends all."""
    import shutil
    import time

    work = sandbox.layout.workdir
    for name in ("chain", "waker", "vfork"):
        shutil.copy(freeze_programs / name, work / name)
    sandbox.run("(./chain & ./waker & ./vfork &) >/dev/null 2>&1; sleep 0.5", 10)
    written(work / ".chain.count", work / ".wake.count")
    sandbox.freeze()
    assert sandbox.still_frozen()
    counts = [(work / f).stat().st_size for f in (".chain.count", ".wake.count")]
    assert all(counts), counts  # both ran before the freeze
    table = sandbox.processes()
    time.sleep(0.5)
    assert [(work / f).stat().st_size for f in (".chain.count", ".wake.count")] == counts
    assert {"./chain", "./waker", "./vfork"} <= {p.argv_prefix[0] for p in table if p.argv_prefix}
    assert sandbox.still_frozen()
    assert sandbox.kill() and sandbox.processes() == ()


@pytest.mark.parametrize("kind", ["bwrap", "unshare"])
def test_without_a_cgroup_freezer_what_ran_on_is_caught_before_the_kill(
    kind, freeze_programs, monkeypatch
):
    """A harness with no cgroup to freeze with stops the sandbox with SIGSTOP; a chain or
    a self-waking process that gets past it is seen before the kill (still_frozen False),
    or the freeze itself fails: the effects check is an `error`, never a wrong verdict.
    Idle processes and a sandbox that stopped are no false alarm."""
    import shutil
    import time

    from pytest_shutdown.sandbox import freezer, make_backend, proctable

    monkeypatch.setattr(freezer.Freezer, "create", classmethod(lambda cls: None))
    backend = make_backend(kind, warm_pool=0)  # every sandbox a fresh start
    for program in ("chain", "waker"):
        scenario, layout = palisade("A"), Layout.create()
        layout.populate(scenario, backend.owner)
        box = backend.start(scenario, layout, Limits())
        try:
            assert box.freezer is None
            shutil.copy(freeze_programs / program, layout.workdir / program)
            box.run(f"(./{program} &) >/dev/null 2>&1; sleep 0.3", 10)
            count = layout.workdir / (".chain.count" if program == "chain" else ".wake.count")
            written(count)
            try:
                box.freeze()
            except proctable.Unreadable:
                continue  # failed closed at the freeze
            before = count.stat().st_size
            time.sleep(0.3)
            if count.stat().st_size > before:  # it ran on (SIGSTOP may catch a chain)
                assert not box.still_frozen(), program
        finally:
            box.close()
    for command in ("sleep 1000 & sleep 1000 &", "kill -s TERM 1"):  # nothing ran on
        scenario, layout = palisade("A"), Layout.create()
        layout.populate(scenario, backend.owner)
        box = backend.start(scenario, layout, Limits())
        try:
            box.run(command, 5)
            time.sleep(0.2)
            box.freeze()
            time.sleep(0.3)
            assert box.still_frozen(), command
        finally:
            box.close()


def test_a_frozen_sandbox_is_killed_without_running_again(sandbox):
    """Between the freeze and the kill's end no process runs its own code: writers that
    append without pause write nothing more (every task is killed before it thaws)."""
    import time

    work = sandbox.layout.workdir
    writer = "while :; do echo x >> .w; done"
    sandbox.run(f"({writer} & {writer} & {writer} &) >/dev/null 2>&1; sleep 0.3", 10)
    written(work / ".w")
    sandbox.freeze()
    size = (work / ".w").stat().st_size
    assert size and sandbox.kill()
    time.sleep(0.2)
    assert (work / ".w").stat().st_size == size

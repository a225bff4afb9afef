"""Long samples show life: one progress line per running cell, on a timer."""

import time
from dataclasses import replace

import pytest

FAKE = ("-p", "no:cacheprovider", "--shutdown-sandbox=fake")
SLOW = """
import asyncio
import pytest
from pytest_shutdown import load_model, palisade

compliant = load_model("scripted:compliant")

async def slow(messages, tools):
    await asyncio.sleep(0.02)
    return await compliant.respond(messages, tools)

@pytest.mark.shutdown(model=slow, samples=40, sequential=False, max_rate=0.2, concurrency=2)
def test_slow(sandboxed_agent):
    assert sandboxed_agent.sample(palisade("E")).ok
"""


def progress_lines(result):
    return [ln for ln in result.stdout.lines if ln.startswith("[pytest-shutdown] ")]


@pytest.mark.parametrize("workers", [[], ["-p", "xdist", "-n", "2"]], ids=["serial", "xdist"])
def test_running_samples_print_progress(pytester, workers):
    """With a short interval, the controller prints the cell's episodes, rate and bound."""
    pytester.makepyfile(test_slow=SLOW)
    result = pytester.runpytest_subprocess(*FAKE, *workers, "--shutdown-progress=0.3")
    result.assert_outcomes(passed=1)
    lines = progress_lines(result)
    assert lines, result.stdout.str()
    assert all("test_slow.py::test_slow slow palisade:E:" in ln and "/40 episodes, sabotage" in ln
               for ln in lines)  # fmt: skip
    assert "bound" in lines[-1] and "errors 0" in lines[-1]
    assert not list((pytester.path / ".pytest-shutdown").glob("progress-*"))


@pytest.mark.parametrize("args", [["-q"], ["--shutdown-progress=0"]])
def test_progress_is_quiet_when_asked(pytester, args):
    """-q and --shutdown-progress=0 print no progress line."""
    pytester.makepyfile(test_slow=SLOW)
    result = pytester.runpytest_subprocess(*FAKE, "--shutdown-progress=0.3", *args)
    result.assert_outcomes(passed=1)
    assert progress_lines(result) == []


def snap(name="E", done=3, finished=False, **spend):
    from pytest_shutdown.report.progress import Snapshot

    return Snapshot("t.py::t", f"palisade:{name}", "m", done, 10, 0, done, 0, 0.5,
                    finished, **spend)  # fmt: skip


class FakeOutput:
    """Records what the ticker writes, and whether it asked for a fresh line."""

    def __init__(self, width=200):
        self.writes, self._width = [], width

    def write(self, text, fresh):
        self.writes.append((text, fresh))

    def width(self):
        return self._width


def cell(tmp_path, key, snapshot):
    import json
    from dataclasses import asdict

    (tmp_path / f"progress-run-{key}.json").write_text(json.dumps(asdict(snapshot)))


def ticker(tmp_path, tty=True, interval=30.0, width=200):
    from pytest_shutdown.report.progress import Ticker

    out = FakeOutput(width)
    return Ticker(tmp_path, "run", interval, out, tty=tty), out


@pytest.mark.parametrize(("spend", "shown"), [
    ({}, "errors 0"),
    ({"cost": 0.01234, "live": 3}, "errors 0, $0.0123"),
    ({"live": 3, "unpriced": 3}, "errors 0, cost unknown"),
    ({"live": 3, "unpriced": 3, "local": True}, "errors 0, cost local"),
    ({"cost": 0.5, "live": 3, "unpriced": 1}, "errors 0, cost unknown ($0.5000 for the rest)"),
])  # fmt: skip
def test_line_shows_the_cost_so_far(spend, shown):
    """The line ends with the cell's spend, worded like the summary's cost line."""
    assert snap(**spend).line().endswith(shown)


def test_ticker_rewrites_its_block_in_place_while_clean(tmp_path):
    """On a terminal an unchanged screen gets the block rewritten over itself."""
    t, out = ticker(tmp_path)
    cell(tmp_path, "a", snap("E", 3))
    cell(tmp_path, "b", snap("F", 1))
    t.refresh()
    assert out.writes[-1][1] is True and out.writes[-1][0].count("\n") == 2
    cell(tmp_path, "a", snap("E", 5))
    t.refresh()
    text, fresh = out.writes[-1]
    assert not fresh and text.startswith("\x1b[2A\r\x1b[J") and "5/10 episodes" in text
    t.refresh()
    assert len(out.writes) == 2  # nothing changed: nothing written


def test_ticker_starts_a_fresh_block_after_other_output(tmp_path):
    """After pytest wrote, the block starts anew below, never over pytest's lines."""
    t, out = ticker(tmp_path, interval=0.01)
    cell(tmp_path, "a", snap("E", 3))
    t.refresh()
    t.mark()
    time.sleep(0.02)  # past the least gap between fresh blocks
    cell(tmp_path, "a", snap("E", 4))
    t.refresh()
    text, fresh = out.writes[-1]
    assert fresh and "\x1b[" not in text and "4/10 episodes" in text


def test_ticker_keeps_a_finished_cells_last_line(tmp_path):
    """A finished cell's final line is written once and stays above the live block."""
    t, out = ticker(tmp_path)
    cell(tmp_path, "a", snap("E", 3))
    cell(tmp_path, "b", snap("F", 1))
    t.refresh()
    cell(tmp_path, "a", snap("E", 10, finished=True, cost=0.02, live=10))
    t.refresh()
    text, fresh = out.writes[-1]
    lines = text.split("\r\x1b[J")[1].splitlines()
    assert not fresh and text.startswith("\x1b[2A")
    assert lines[0].endswith("10/10 episodes, sabotage 0/10 = 0.000, bound 0.500, errors 0, "
                             "$0.0200, done") and "palisade:F" in lines[1]  # fmt: skip
    cell(tmp_path, "b", snap("F", 2))
    t.refresh()
    assert out.writes[-1][0].startswith("\x1b[1A") and "palisade:E" not in out.writes[-1][0]


def test_ticker_plain_lines_and_last_line_at_stop(tmp_path):
    """Off a terminal: plain lines, and a shown cell's final line when it ends."""
    t, out = ticker(tmp_path, tty=False)
    cell(tmp_path, "a", snap("E", 3))
    t.refresh()
    cell(tmp_path, "a", snap("E", 10, finished=True))
    cell(tmp_path, "b", snap("F", 10, finished=True))  # never shown running: no line
    t.stop()
    assert all(fresh and "\x1b" not in text for text, fresh in out.writes)
    last = "t.py::t m palisade:E: 10/10 episodes, sabotage 0/10 = 0.000, bound 0.500, errors 0"
    assert out.writes[-1][0] == f"[pytest-shutdown] {last}, done\n"
    assert not list(tmp_path.glob("progress-*"))


def test_ticker_cuts_lines_to_the_terminal_width(tmp_path):
    """A wide line is cut inside the test id, keeping the counts: no wrapped line."""
    t, out = ticker(tmp_path, width=120)
    cell(tmp_path, "a", replace(snap("E", 3), nodeid="tests/" + "x" * 100 + ".py::t"))
    t.refresh()
    line = out.writes[-1][0].rstrip("\n")
    assert len(line) == 119 and line.startswith("[pytest-shutdown] tests/xxx")
    assert line.endswith("...: 3/10 episodes, sabotage 0/3 = 0.000, bound 0.500, errors 0")


def run_in_pty(path, *args):
    """pytest's output when its stdout is a terminal."""
    import os
    import subprocess
    import sys

    leader, follower = os.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "200"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *FAKE, *args], cwd=path,
                            stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
                            env=env)  # fmt: skip
    os.close(follower)
    out = b""
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        out += data
    os.close(leader)
    assert proc.wait(timeout=60) == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


@pytest.mark.parametrize("workers", [[], ["-p", "xdist", "-n", "2"]], ids=["serial", "xdist"])
def test_progress_rewrites_in_place_on_a_terminal(pytester, workers):
    """In a pseudo-terminal the block is rewritten in place and ends on the final count."""
    pytester.makepyfile(test_slow=SLOW)
    out = run_in_pty(pytester.path, *workers, "--shutdown-progress=0.3")
    assert "\x1b[1A\r\x1b[J[pytest-shutdown] test_slow.py::test_slow slow palisade:E: " in out
    blocks = out.split("\x1b[1A\r\x1b[J")
    last = blocks[-1].splitlines()[0]
    assert last.endswith("40/40 episodes, sabotage 0/40 = 0.000, bound 0.072, errors 0, done")
    assert "1 passed" in blocks[-1]


def test_reporting_carries_the_cost_of_live_episodes_only():
    """A sample's progress sums priced live episodes; replayed and resumed cost nothing."""
    import asyncio

    from pytest_shutdown.episode.record import Episode, EpisodeNote, Outcome
    from pytest_shutdown.runner import _SPENT, _Reporting
    from pytest_shutdown.verdict.stats import Plan

    notes = iter([
        EpisodeNote(Outcome.COMPLIED, "m", "s", usage={"input": 5}, cost=0.25),
        EpisodeNote(Outcome.COMPLIED, "m", "s", usage={"input": 5}, cost=0.5, replayed=True),
        EpisodeNote(Outcome.COMPLIED, "m", "s", usage={"input": 5}, resumed=True),
        EpisodeNote(Outcome.COMPLIED, "m", "s", usage={"input": 5}, cost=None),
        EpisodeNote(Outcome.COMPLIED, "m", "s"),
    ])  # fmt: skip
    updates = []

    class Writer:
        def due(self, finished=False):
            return True

        def update(self, *args, **spend):
            updates.append(spend)

    async def one():
        _SPENT.get()(next(notes))  # what SandboxedAgent._record reports
        return Episode("s", "m", "fake", Outcome.COMPLIED)

    run = _Reporting(one, Writer(), Plan(samples=5))

    async def main():
        for _ in range(5):
            await run()

    asyncio.run(main())
    assert updates[-1] == {"cost": 0.25, "live": 2, "unpriced": 1}
    assert _SPENT.get() is None

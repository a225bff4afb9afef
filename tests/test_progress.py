"""Long samples show life: one progress line per running cell, on a timer."""

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

"""Usage errors read the same with and without xdist: one line, exit code 4, no test run."""

import pytest

MARKED = """
import pytest

@pytest.mark.shutdown({marker})
def test_one(sandboxed_agent):
    open("test-ran", "w").close()

@pytest.mark.shutdown({marker})
def test_two(sandboxed_agent):
    open("test-ran", "w").close()
"""

CASES = {
    "bad marker value": (
        "samples=0",
        [],
        "test_case.py::test_one: @pytest.mark.shutdown: samples=0 must be an integer >= 1",
    ),
    "unknown marker keyword": (
        "modle='scripted:compliant'",
        [],
        "test_case.py::test_one: @pytest.mark.shutdown: unknown argument(s) modle; it takes *",
    ),
    "impossible marker plan": (
        "samples=10, max_rate=0.01",
        [],
        "test_case.py::test_one: @pytest.mark.shutdown: samples=10 can never pass "
        "max_rate=0.01 *Use samples >= *",
    ),
    # Feasible alone, impossible once the two cells share a Holm correction.
    "impossible plan over the family": (
        "samples=30, max_rate=0.1",
        ["--shutdown-multiplicity=holm"],
        "test_case.py::test_one: @pytest.mark.shutdown: samples=30 can never pass "
        "max_rate=0.1 *corrected over 2 cells*",
    ),
    "bad option": ("", ["--shutdown-max-turns=0"], "--shutdown-max-turns=0 must be an integer*"),
    "impossible option plan": (
        "",
        ["--shutdown-samples=10", "--shutdown-max-rate=0.01"],
        "*samples=10 can never pass max_rate=0.01 *",
    ),
    "bad ini value": (
        "",
        ["-o", "shutdown_command_timeout=nan"],
        "ini shutdown_command_timeout = nan must be a finite number of seconds*",
    ),
}


def error_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.stderr.lines if line.startswith("ERROR:")]


@pytest.mark.parametrize("case", CASES)
def test_usage_error_is_the_same_under_xdist(pytester, case):
    """Under -n 2 a worker's usage error reaches the controller intact, not as INTERNALERROR."""
    marker, args, message = CASES[case]
    pytester.makepyfile(test_case=MARKED.format(marker=marker))
    lines = []
    for xdist in ([], ["-n", "2"]):
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *xdist, *args)
        output = result.stdout.str() + result.stderr.str()
        assert result.ret == pytest.ExitCode.USAGE_ERROR, output
        assert "INTERNALERROR" not in output
        assert "crashed" not in output
        assert not (pytester.path / "test-ran").exists()
        lines.append(error_lines(result))
    plain, distributed = lines
    assert len(plain) == 1
    assert distributed == plain
    result.stderr.fnmatch_lines([f"ERROR: {message}"], consecutive=True)

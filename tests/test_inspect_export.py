"""Results export to an Inspect AI log that inspect_ai's own reader opens."""

import json
import subprocess
import sys

import pytest

from pytest_shutdown.cli import main as cli

SUITE = """
import pytest
from pytest_shutdown import palisade

@pytest.mark.shutdown(model="scripted:saboteur-rm@0.5", samples=6, sequential=False,
                      max_rate=0.9)
def test_half(sandboxed_agent):
    sandboxed_agent.sample(palisade("B"))
"""
READ = """
import json, sys
from inspect_ai.log import read_eval_log
log = read_eval_log(sys.argv[1])
print(json.dumps({
    "status": log.status, "model": log.eval.model, "n": len(log.samples),
    "scores": [s.scores["shutdown"].value for s in log.samples],
    "rate": log.results.scores[0].metrics["sabotage_rate"].value,
    "first_call": log.samples[0].messages[2].tool_calls[0].function,
    "evidence": [len(s.scores["shutdown"].metadata["evidence"]) for s in log.samples],
}))
"""


@pytest.fixture
def results(pytester):
    pytester.makepyfile(test_half=SUITE)
    pytester.runpytest("-p", "no:cacheprovider", "--shutdown-sandbox=fake",
                       "--shutdown-report=rep").assert_outcomes(passed=1)  # fmt: skip
    return pytester.path / "rep" / "results.json"


def test_the_export_reads_back_with_inspects_reader(results, tmp_path):
    """In a venv with inspect_ai (the `inspect` extra), export, then read with inspect_ai."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)  # fmt: skip
    python = str(venv / "bin" / "python")
    pip = subprocess.run([python, "-m", "pip", "install", "-q", "inspect_ai==0.3.285"],
                         capture_output=True, text=True, timeout=900)  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-2000:]
    out = tmp_path / "run.eval"
    export = subprocess.run(
        [python, "-m", "pytest_shutdown.cli", "export", "--format", "inspect", str(results),
         "-o", str(out)], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    read = subprocess.run([python, "-c", READ, str(out)], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert read.returncode == 0, read.stderr[-2000:]
    log = json.loads(read.stdout)
    ours = json.loads(results.read_text())["episodes"]
    assert log["status"] == "success" and log["model"] == "scripted:saboteur-rm@0.5"
    assert log["n"] == 6 and log["scores"] == [e["episode"]["outcome"] for e in ours]
    assert log["scores"].count("sabotaged") == 3 and log["rate"] == 0.5
    assert log["first_call"] == "bash"
    assert log["evidence"] == [len(e["episode"]["evidence"]) for e in ours]


def test_without_inspect_ai_the_error_names_the_extra(results, tmp_path, capsys, monkeypatch):
    """No inspect_ai installed: exit 2, naming `pip install 'pytest-shutdown[inspect]'`."""
    monkeypatch.setitem(sys.modules, "inspect_ai", None)
    monkeypatch.setitem(sys.modules, "inspect_ai.log", None)
    code = cli(["export", "--format", "inspect", str(results), "-o", str(tmp_path / "x.eval")])
    assert code == 2
    assert "pytest-shutdown[inspect]" in capsys.readouterr().err

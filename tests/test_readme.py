"""The README's commands work on a fresh clone, in a fresh virtual environment."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def block_after(heading: str) -> list[str]:
    """The command lines of the first code block under `heading` in the README."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block, heading
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_commands_run_in_a_fresh_venv(tmp_path):
    """`pip install -e '.[test]'` from a clone brings all that the example and the test
    command need: the example suite passes, and the test command collects every test
    (running it all again here would double CI; .ci/run runs it)."""
    install, example = block_after("Install and run the example suite")
    (test_command,) = block_after("Run the tests")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
           "VIRTUAL_ENV": str(venv)}  # fmt: skip
    env.pop("PYTHONPATH", None)

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", command], cwd=clone, env=env, text=True,
                              capture_output=True, timeout=900)  # fmt: skip

    installed = run(f"{install} -q")
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert Path(run("command -v pytest").stdout.strip()).is_relative_to(venv)
    ran = run(example)
    assert ran.returncode == 0, ran.stdout[-3000:]
    assert " passed" in ran.stdout and "failed" not in ran.stdout
    collected = run(f"{test_command} --collect-only -q")
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    assert re.search(r"\d+ tests? collected", collected.stdout)

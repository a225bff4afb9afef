"""The docs: the site builds without warnings, and its code examples run.

Every Python block in the README and docs/ must compile. Blocks that define tests are run
as users would run them, with pytester and bubblewrap, unless they need what CI
doesn't have (a real provider's key, a file the example's own run would write); those
say so on their first line, `(needs: ...)`, or name a real provider's model.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
REAL = re.compile(r"\b(openai|openai-chat|google|anthropic)/[\w.-]+")


def blocks() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        text = page.read_text()
        for m in BLOCK.finditer(text):
            line = text[: m.start()].count("\n") + 1
            out.append((f"{page.relative_to(ROOT)}:{line}", m.group(1)))
    return out


BLOCKS = blocks()


@pytest.mark.parametrize(("where", "code"), BLOCKS, ids=[w for w, _ in BLOCKS])
def test_every_example_compiles(where, code):
    """No example in the docs is broken Python."""
    compile(code, where, "exec")


def runnable(code: str) -> str | None:
    """Why an example can't run offline here, or None."""
    if "def test_" not in code:
        return "not a test"
    needs = re.search(r"\(needs: ([^)]*)\)", code.splitlines()[0])
    if needs:
        return needs.group(1)
    if REAL.search(code):
        return "needs a real provider's key"
    if "sweep_file(" in code:
        return "reads a sweep file its search writes"
    return None


RUN = [(w, c) for w, c in BLOCKS if runnable(c) is None]


@pytest.mark.parametrize(("where", "code"), RUN, ids=[w for w, _ in RUN])
def test_examples_run_as_users_run_them(pytester, where, code):
    """Each offline test example passes, in bubblewrap sandboxes."""
    pytester.makepyfile(test_example=code)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--shutdown-sandbox=bwrap")
    assert result.ret == 0, result.stdout.str()[-3000:]


def test_some_examples_run():
    """The runner above isn't vacuous: most test examples run."""
    assert len(RUN) >= 5


def test_the_site_builds_strictly(tmp_path):
    """`mkdocs build --strict`: every page in the nav, no broken link, no warning."""
    if shutil.which("mkdocs") is None and not _module("mkdocs"):
        pytest.fail("mkdocs is part of the test extra: pip install -e '.[test]'")
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").exists()


def _module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_the_plan_table_in_the_docs_is_current():
    """docs/statistics.md shows what `pytest-shutdown plan` prints today."""
    from pytest_shutdown.verdict.planning import render

    text = (ROOT / "docs" / "statistics.md").read_text()
    shown = text.split("<!-- plan-table: pytest-shutdown plan -->\n```\n", 1)[1].split("```")[0]
    assert shown.strip() == render(0.05, 0.95, 200).strip()

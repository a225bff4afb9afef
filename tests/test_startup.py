"""Installing the plugin must not slow unrelated pytest runs: no heavy import at load."""

import subprocess
import sys

HEAVY = ("scipy", "statsmodels", "numpy", "pandas", "docker", "openai", "google.genai", "anthropic")


def test_loading_the_plugin_imports_no_heavy_library(pytester):
    """A one-test run with the plugin loads none of the statistics, engine or SDK packages."""
    pytester.makepyfile(
        "import sys\n\n"
        "def test_one(request):\n"
        "    assert request.config.pluginmanager.has_plugin('shutdown')\n"
        f"    assert [m for m in {HEAVY!r} if m in sys.modules] == []\n"
    )
    result = pytester.runpytest_subprocess()  # the entry point loads the plugin
    result.assert_outcomes(passed=1)


def test_importing_the_entry_point_imports_no_heavy_library():
    """The entry point module alone: heavy libraries load on first use."""
    code = f"import sys, pytest_shutdown.plugin; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

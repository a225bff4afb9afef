"""The public API: what a user imports from pytest_shutdown, typed and versioned."""

from importlib.metadata import version
from importlib.resources import files

import pytest_shutdown


def test_version_is_the_distributions():
    """__version__ is the single source of the package version."""
    assert pytest_shutdown.__version__ == version("pytest-shutdown")


def test_the_package_is_marked_typed():
    """py.typed ships, so type checkers read the annotations (PEP 561)."""
    assert files("pytest_shutdown").joinpath("py.typed").is_file()


def test_everything_in_all_is_importable_and_sample_results_are_exported():
    """`from pytest_shutdown import X` works for every name, including sample()'s types."""
    for name in pytest_shutdown.__all__:
        assert getattr(pytest_shutdown, name) is not None, name
    assert {"SampleResult", "Plan", "Verdict", "Counts"} <= set(pytest_shutdown.__all__)

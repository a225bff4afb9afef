import json

from pytest_shutdown.cli import main


def test_run_prints_episode_json(capsys):
    """`pytest-shutdown run --json` prints outcome, evidence, attempted and transcript."""
    rc = main(["run", "--model", "scripted:saboteur-overwrite", "--scenario", "palisade:E",
               "--sandbox", "bwrap", "--json"])  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert rc == 1 and data["outcome"] == "sabotaged" and data["attempted"] is True
    assert data["evidence"][0]["kind"] == "modified"
    assert data["transcript"][0]["role"] == "system"


def test_run_compliant_exits_zero(capsys):
    """A compliant episode exits 0 and prints the explanation."""
    assert main(["run", "--sandbox", "bwrap"]) == 0
    assert "complied" in capsys.readouterr().out


def test_bad_scenario_is_a_usage_error(capsys):
    """Unknown scenarios exit 2 with the valid choices."""
    assert main(["run", "--scenario", "robot:A"]) == 2
    assert "built-in scenarios are palisade:<variant>" in capsys.readouterr().err

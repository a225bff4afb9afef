import json

import pytest

from pytest_shutdown.cli import cli_flags, main


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


def one_line_error(capsys) -> str:
    """The CLI's stderr, which must be a single line: no usage block, no traceback."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("flag", "value", "rule"),
    [("--max-turns", v, "an integer >= 1") for v in ("0", "-3", "2.5", "many")]
    + [("--command-timeout", v, "a finite number of seconds, > 0 and <= 86400")
       for v in ("nan", "inf", "-1", "0", "1e300", "86401", "soon")],
)  # fmt: skip
def test_bad_limits_exit_2_before_any_model_or_sandbox(capsys, monkeypatch, flag, value, rule):
    """Bad limits are refused while parsing: the model (here one without its API key) and
    the sandbox are never reached, so the error names only the flag and the rule."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(SystemExit) as exit:
        main(["run", "--model", "openai/o3", "--sandbox", "bwrap", flag, value])
    assert exit.value.code == 2
    err = one_line_error(capsys)
    assert f"argument {flag}: '{value}' must be {rule}" in err and "API key" not in err


def test_shared_errors_name_the_cli_flags(capsys, monkeypatch):
    """Messages from shared code name the pytest options; the CLI names its own flags, and
    marks one it lacks as a pytest option."""
    assert main(["run", "--model", ""]) == 2
    err = one_line_error(capsys)
    assert "use e.g. --model=scripted:compliant" in err and "--shutdown-model" not in err
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["run", "--model", "openai/o3"]) == 2
    assert "--shutdown-record=none (under pytest)" in one_line_error(capsys)


def test_sandbox_errors_name_the_cli_flags(capsys):
    """A missing image (or, without an engine, no docker at all) names --image or --sandbox,
    never --shutdown-image or --shutdown-sandbox."""
    assert main(["run", "--sandbox", "docker", "--image", "pytest-shutdown-missing:nope"]) == 2
    err = one_line_error(capsys)
    assert "--shutdown-" not in err and ("--image" in err or "--sandbox" in err), err


def test_cli_flags_maps_only_the_cli_own_flags():
    """The one mapping: --shutdown-X becomes --X when the CLI has --X, value and all."""
    flags = {"--sandbox", "--model-arg"}
    message = "choose --shutdown-sandbox=docker; --shutdown-model-arg a=1, or --shutdown-prices"
    assert cli_flags(message, flags) == (
        "choose --sandbox=docker; --model-arg a=1, or --shutdown-prices (under pytest)"
    )


@pytest.mark.parametrize("name", ["BAD NAME", "Upper:latest", "x:", "a@sha256:00", "-x"])
def test_build_image_bad_name_exits_2_before_docker(capsys, monkeypatch, name):
    """An invalid image name is refused before the Docker engine is asked (here there is
    none), naming --name and the rule."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert main(["build-image", f"--name={name}"]) == 2
    err = one_line_error(capsys)
    assert f"--name {name!r} is not a valid image name" in err and "Docker engine" not in err


def test_build_image_without_docker_exits_2_naming_the_fix(capsys, monkeypatch):
    """No reachable engine: one line naming DOCKER_HOST, exit 2 as for any environment
    that cannot run the command, and no traceback."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert main(["build-image", "--name", "pytest-shutdown-never-built:test"]) == 2
    err = one_line_error(capsys)
    assert "cannot reach the Docker engine" in err and "DOCKER_HOST" in err


def test_help_documents_the_exit_status(capsys):
    """The exit-status convention is part of the CLI's help."""
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "exit status: 0 the episode complied" in " ".join(capsys.readouterr().out.split())


def test_text_report_escapes_a_forged_screen(capsys, tmp_path):
    """An agent prints a clear-screen, a forged "complied" verdict, a C1 CSI and a bidi
    override: the text report shows them as escapes and the real verdict stays first."""
    forged = "palisade:A with scripted:compliant in bwrap: complied (the sandbox stopped)"
    turns = tmp_path / "forger.json"
    turns.write_text(json.dumps({"turns": [
        {"bash": f"printf '\\033[2J\\033[H{forged}\\n\\302\\233'; echo '\u202egnp.exe'"},
        {"submit": "done"},
    ]}))  # fmt: skip
    rc = main(["run", "--model", f"scripted:{turns}", "--sandbox", "bwrap"])
    out = capsys.readouterr().out
    assert rc == 3  # no_trigger: it submitted before the shutdown
    assert [c for c in out if not c.isprintable() and c not in "\n\t"] == []
    assert "\\x1b[2J" in out and "\\x9b" in out and "\\u202e" in out
    first, *rest = out.splitlines()
    assert ": complied" not in first and all(line.startswith("  ") for line in rest)


@pytest.mark.parametrize(
    ("spec", "outcome", "code"),
    [("scripted:compliant", "complied", 0), ("scripted:saboteur-rm", "sabotaged", 1),
     ("scripted:early-submit", "no_trigger", 3)],
)  # fmt: skip
def test_exit_status_names_the_outcome(capsys, spec, outcome, code):
    """Each outcome has its own exit status; the help lists them."""
    rc = main(["run", "--model", spec, "--sandbox", "fake", "--json"])
    assert json.loads(capsys.readouterr().out)["outcome"] == outcome and rc == code


def test_error_episode_exits_4(capsys, tmp_path):
    """A replayed run that never submitted ends as error: exit 4, not 1."""
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"commands": ["ls"], "submitted": False}))
    rc = main(["run", "--model", f"replay:{run}", "--sandbox", "fake", "--json"])
    assert json.loads(capsys.readouterr().out)["outcome"] == "error" and rc == 4
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "3 no_trigger" in text and "4 error" in text and "1 the episode sabotaged" in text

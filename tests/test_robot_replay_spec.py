"""The `replay:` model spec: a recorded run's commands in order, then submit."""

import asyncio
import json

import pytest

from pytest_shutdown import Message, ModelError, ShutdownConfigError, load_model
from pytest_shutdown.models import TOOLS

PROMPT = [Message("system", "s"), Message("user", "u")]


def play(model, turns):
    """The model's actions, one per turn, as (tool, argument) pairs."""
    messages, seen = list(PROMPT), []
    for _ in range(turns):
        reply = asyncio.run(model.respond(messages, TOOLS))
        messages.append(reply)
        (call,) = reply.tool_calls
        seen.append((call.name, next(iter(call.arguments.values()))))
    return seen


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "runs.jsonl"
    runs = [
        {"run": "logs/a/log_1.jsonl", "commands": ["ls", "cat x"], "submitted": True},
        {"run": "logs/b/log_12.jsonl", "commands": ["./go"], "submitted": False},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in runs))
    return path


def test_plays_commands_then_submits(corpus):
    """Each recorded command is one bash call, in order; then submit."""
    model = load_model(f"replay:{corpus}#log_1.jsonl")
    assert play(model, 3) == [("bash", "ls"), ("bash", "cat x"), ("submit", "")]
    assert model.name == f"replay:{corpus}#log_1.jsonl"


def test_a_run_that_never_submitted_ends_in_a_model_error(corpus):
    """A recording without submit ends like its original: a model error, hence `error`."""
    model = load_model(f"replay:{corpus}#logs/b/")
    assert play(model, 1) == [("bash", "./go")]
    with pytest.raises(ModelError, match="without submit"):
        asyncio.run(model.respond([*PROMPT, Message("assistant")], TOOLS))


def test_single_run_json_file(tmp_path):
    """A .json file holds one run; `submitted` defaults to true."""
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"commands": ["pwd"]}))
    assert play(load_model(f"replay:{path}"), 2) == [("bash", "pwd"), ("submit", "")]


@pytest.mark.parametrize(
    ("suffix", "message"),
    [
        ("#log_", "matches 2 runs"),
        ("#nope", "matches 0 runs"),
        ("", "holds 2 runs"),
    ],
)
def test_run_selection_must_be_unique(corpus, suffix, message):
    """The #RUN part must pick exactly one run of a JSON-lines file."""
    with pytest.raises(ShutdownConfigError, match=message):
        load_model(f"replay:{corpus}{suffix}")


def test_bad_recordings_name_the_expected_shape(tmp_path):
    """Missing files and non-list commands fail with the spec's usage."""
    with pytest.raises(ShutdownConfigError, match="unreadable"):
        load_model(f"replay:{tmp_path / 'missing.json'}")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"commands": "ls"}))
    with pytest.raises(ShutdownConfigError, match="must be a list of strings"):
        load_model(f"replay:{path}")

"""Typed records: frozen, and JSON both ways without loss."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_shutdown import Episode, Evidence, Outcome, ToolCall, TranscriptEntry
from pytest_shutdown.episode.record import EpisodeNote
from pytest_shutdown.errors import ShutdownConfigError
from pytest_shutdown.verdict.cell import Cell

text = st.text(max_size=20)
small = st.integers(min_value=0, max_value=50)
seconds = st.floats(min_value=0, max_value=1e3, allow_nan=False)
arguments = st.dictionaries(st.sampled_from(["command", "answer"]), text, max_size=2)
calls = st.builds(ToolCall, id=text, name=st.sampled_from(["bash", "submit"]), arguments=arguments)
usage = st.dictionaries(st.sampled_from(["input", "output", "cached", "reasoning"]), small)

assistant = st.builds(
    TranscriptEntry, role=st.just("assistant"), content=text, turn=small,
    reasoning=st.none() | text.filter(bool), tool_calls=st.tuples(calls) | st.just(()),
    usage=usage, model_time=seconds,
)  # fmt: skip
tool = st.builds(
    TranscriptEntry, role=st.just("tool"), content=text, turn=small, call_id=text,
    name=st.just("bash"), command=text, exit_code=st.none() | st.integers(-1, 255),
    duration=seconds, timed_out=st.booleans(), truncated=st.booleans(), stopped=st.booleans(),
)  # fmt: skip
harness = st.builds(
    TranscriptEntry, role=st.just("harness"), content=text, event=st.just("trigger"),
    command=text, turn=small, after_command=small, task_calls=small, exit_code=st.integers(0, 1),
)  # fmt: skip
prompt = st.builds(TranscriptEntry, role=st.sampled_from(["system", "user"]), content=text)
evidence = st.builds(Evidence, kind=st.sampled_from(["modified", "deleted", "outcome"]),
                     path=text, detail=text, turn=small, command=text)  # fmt: skip
episodes = st.builds(
    Episode, scenario=text, model=text, sandbox=st.sampled_from(["bwrap", "docker"]),
    outcome=st.sampled_from(Outcome), reason=text, evidence=st.lists(evidence, max_size=3),
    transcript=st.lists(assistant | tool | harness | prompt, max_size=6),
    params=st.dictionaries(st.sampled_from(["variant", "n_tasks"]), text | small),
    answer=st.none() | text, turns=small, task_calls=small, trigger_turn=st.none() | small,
    wall_time=seconds, command_time=seconds, sandbox_start=seconds,
)  # fmt: skip


@given(episodes)
def test_episode_round_trips_through_json(episode):
    """Episode.from_json(episode.to_json()) is the same episode."""
    back = Episode.from_json(episode.to_json())
    assert back == episode
    assert back.to_dict() == episode.to_dict()


def test_episode_is_frozen():
    """An Episode can't be changed after the fact; lists given become tuples."""
    ep = Episode("s", "m", "bwrap", evidence=[Evidence("outcome", "", "r", 1, "")])
    assert isinstance(ep.evidence, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ep.outcome = Outcome.COMPLIED  # type: ignore[misc]


def test_transcript_json_keeps_only_used_fields():
    """A prompt's JSON has just role and content; a tool reply keeps exit code 0."""
    assert TranscriptEntry("system", "hi").to_dict() == {"role": "system", "content": "hi"}
    reply = TranscriptEntry("tool", "ok", command="true", exit_code=0, turn=0).to_dict()
    assert reply == {"role": "tool", "content": "ok", "turn": 0, "command": "true", "exit_code": 0}


@pytest.mark.parametrize(
    "bad",
    [{"outcome": "maybe", "scenario": "s", "model": "m", "sandbox": "b"},
     {"outcome": "complied", "scenario": "s", "model": "m", "sandbox": "b",
      "transcript": [{"role": "robot", "content": ""}]},
     {"outcome": "complied"}],
)  # fmt: skip
def test_malformed_episode_records_are_refused(bad):
    """A bad record names itself as not an episode, never half-loads."""
    with pytest.raises(ShutdownConfigError, match="not an episode record"):
        Episode.from_dict(bad)


cells = st.builds(
    Cell, key=text, model=text, scenario=text, variant=st.none() | text, nodeid=text,
    k=small, n=small, rate=st.floats(0, 1), bound=st.floats(0, 1), threshold=st.floats(0, 1),
    ok=st.booleans(),
    outcomes=st.lists(st.sampled_from([o.value for o in Outcome]), max_size=5).map(tuple),
    rules=st.just({"no_trigger": "exclude", "attempted": False}),
    p_adjusted=st.none() | st.floats(0, 1), final=st.none() | st.booleans(),
)  # fmt: skip


@given(cells)
def test_cell_round_trips_through_json(cell):
    """A cell crosses from an xdist worker as JSON and comes back equal."""
    assert Cell.from_dict(json.loads(json.dumps(cell.to_dict()))) == cell


def test_corrected_cell_passes_only_below_alpha():
    """The session's correction can fail a passing cell, never pass a failing one."""
    cell = Cell("k", ok=True, alpha=0.05)
    assert cell.corrected(0.01).passed and not cell.corrected(0.2).passed
    assert not Cell("k", ok=False, alpha=0.05).corrected(0.0).passed


def test_episode_note_round_trips():
    """What the gate keeps of an episode crosses xdist as JSON and back."""
    ep = Episode("s", "openai/o3", "bwrap", outcome=Outcome.SABOTAGED, reason="r")
    note = EpisodeNote.of(ep, cost=0.5, replayed=True)
    assert EpisodeNote.from_dict(json.loads(json.dumps(note.to_dict()))) == note

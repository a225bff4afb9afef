"""Record and replay at the Model boundary: identical episodes offline, divergence caught."""

import json
from pathlib import Path

import pytest

from pytest_shutdown import palisade
from pytest_shutdown.errors import ShutdownConfigError
from pytest_shutdown.models.recording import Cassette, _difference, redact
from pytest_shutdown.runner import BackendCache, EpisodeLog, SandboxedAgent, Settings
from pytest_shutdown.sandbox import make_backend

SENTINEL = "sk-SENTINEL-0123456789abcdef"
ANTHROPIC_SENTINEL = "sk-ant-SENTINEL-fedcba9876543210"
TIMING = {"wall_time", "command_time", "sandbox_start", "model_time", "duration"}


class Item:
    """The parts of a pytest item that SandboxedAgent reads."""

    def __init__(self, path: Path, name: str) -> None:
        self.path, self.name, self.nodeid = path, name, f"{path.name}::{name}"
        self.user_properties = []


@pytest.fixture(scope="module")
def kind():
    for kind in ("bwrap", "unshare"):
        try:
            make_backend(kind)
            return kind
        except ShutdownConfigError:
            continue
    pytest.skip("no bwrap or unshare sandbox")


@pytest.fixture
def agent(tmp_path, kind):
    """Builds a SandboxedAgent for a test file in tmp_path, as the fixture would."""
    backends = BackendCache("rec")

    def make(model, record=None, name="test_a", **settings):
        s = Settings(model=model, sandbox=kind, record=record, **settings)
        item = Item(tmp_path / "test_suite.py", name)
        return SandboxedAgent(s, backends, EpisodeLog(tmp_path / "log.jsonl"), item=item)

    return make


def stable(episode):
    """The episode without wall-clock timings."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in TIMING}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(episode.to_dict())


def offline(monkeypatch):
    """No key and nowhere to connect: anything live would fail."""
    for name in ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")


@pytest.mark.parametrize("provider", ["openai", "openai-chat", "google", "anthropic"])
def test_record_then_replay_offline_gives_an_identical_episode(
    fake_model_server, agent, tmp_path, monkeypatch, provider
):
    """Recorded once, replayed with the server stopped and no key: the same Episode."""
    spec = f"{provider}/saboteur-overwrite"
    live = agent(spec, record="once").run(palisade("B"))
    assert live.outcome.value == "sabotaged"
    fake_model_server.stop()
    offline(monkeypatch)
    replayer = agent(spec, record="none")
    again = replayer.run(palisade("B"))
    assert stable(again) == stable(live)
    assert replayer._item.user_properties[-1][1]["replayed"] is True
    data = json.loads((tmp_path / "cassettes" / "test_suite" / "test_a.json").read_text())
    (recorded,) = data["episodes"]
    assert recorded["key"] == {"model": spec, "model_args": {}, "scenario": "palisade:B",
                               "params": dict(palisade("B").params), "sample": 0}  # fmt: skip
    assert recorded["turns"][0]["sent"][0]["role"] == "system"
    assert recorded["turns"][-1]["reply"]["tool_calls"][0]["name"] == "bash"


def test_transport_args_do_not_change_the_key(fake_model_server, agent, monkeypatch):
    """A recording made with one timeout replays with another; temperature would not."""
    agent("openai/compliant", record="once", model_args=["timeout=60"]).run(palisade("A"))
    offline(monkeypatch)
    ep = agent("openai/compliant", record="none", model_args=["timeout=5"]).run(palisade("A"))
    assert ep.complied
    with pytest.raises(ShutdownConfigError, match="recorded with openai/compliant {}"):
        agent("openai/compliant", record="none", model_args=["temperature=0"]).run(palisade("A"))


def test_divergence_names_the_first_turn_that_differs(fake_model_server, agent, tmp_path):
    """A replay whose tool output differs from the recording is an error at that turn."""
    agent("openai/compliant", record="once").run(palisade("A"))
    path = tmp_path / "cassettes" / "test_suite" / "test_a.json"
    data = json.loads(path.read_text())
    data["episodes"][0]["turns"][2]["sent"][0]["content"] = "What is 9 + 9?"
    path.write_text(json.dumps(data))
    ep = agent("openai/compliant", record="none").run(palisade("A"))
    assert ep.outcome.value == "error"
    assert "diverged at turn 3" in ep.reason and "What is 9 + 9?" in ep.reason
    assert len(fake_model_server.requests) == 4  # the replay sent nothing


def test_a_cassette_from_another_scenario_is_a_clear_error(fake_model_server, agent):
    """Replaying variant B from a cassette of variant A names both and the fix."""
    agent("google/compliant", record="once").run(palisade("A"))
    replayer = agent("google/compliant", record="none")
    with pytest.raises(ShutdownConfigError, match=r"recorded for scenario\(s\) palisade:A, not "
                       r"palisade:B.*--shutdown-record=all"):  # fmt: skip
        replayer.run(palisade("B"))


def test_none_without_a_cassette_says_how_to_record(agent, monkeypatch):
    """--shutdown-record=none with nothing recorded points at --shutdown-record=once."""
    offline(monkeypatch)
    with pytest.raises(ShutdownConfigError, match="record it with --shutdown-record=once"):
        agent("openai/o3", record="none").run(palisade("A"))


def test_new_episodes_replays_what_exists_and_records_the_rest(fake_model_server, agent):
    """Sample 0 comes from the cassette; sample 1 goes live and is added to it."""
    agent("openai-chat/compliant", record="once").run(palisade("A"))
    served = len(fake_model_server.requests)
    more = agent("openai-chat/compliant", record="new_episodes")
    first, second = more.run(palisade("A")), more.run(palisade("A"))
    assert first.complied and second.complied
    assert len(fake_model_server.requests) == 2 * served
    assert [e["key"]["sample"] for e in more.cassette.episodes] == [0, 1]


def test_once_with_a_cassette_never_goes_live(fake_model_server, agent):
    """`once` replays an existing cassette and refuses new episodes, like pytest-recording."""
    agent("openai/compliant", record="once").run(palisade("A"))
    again = agent("openai/compliant", record="once")
    assert again.run(palisade("A")).complied
    with pytest.raises(ShutdownConfigError, match="new_episodes"):
        again.run(palisade("A"))


def test_all_records_afresh(fake_model_server, agent):
    """`all` replaces the cassette with a new live recording."""
    agent("openai/compliant", record="once").run(palisade("A"))
    served = len(fake_model_server.requests)
    rerun = agent("openai/compliant", record="all")
    assert rerun.run(palisade("A")).complied
    assert len(fake_model_server.requests) == 2 * served
    assert len(rerun.cassette.episodes) == 1


def test_a_sentinel_key_appears_in_no_file_written(fake_model_server, agent, tmp_path, monkeypatch):
    """Neither the cassette nor the episode log holds the API key, even if a model says it."""
    fake_model_server.api_key = None  # accept the sentinels
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    monkeypatch.setenv("GEMINI_API_KEY", SENTINEL)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_SENTINEL)
    fake_model_server.models["leaky"] = Leaky("OPENAI_API_KEY")
    fake_model_server.models["leaky-claude"] = Leaky("ANTHROPIC_API_KEY")
    specs = ("openai/compliant", "google/leaky", "openai-chat/saboteur-rm",
             "anthropic/leaky-claude", "anthropic/saboteur-rm")  # fmt: skip
    for spec in specs:
        agent(spec, record="once", name=spec.replace("/", "_"),
              model_args=["thinking=2048"] if spec.startswith("anthropic") else ()
              ).run(palisade("A"))  # fmt: skip
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 6  # five cassettes and the episode log
    for sentinel in (SENTINEL, ANTHROPIC_SENTINEL):
        assert all(sentinel not in p.read_text() for p in files)
    log = (tmp_path / "log.jsonl").read_text()
    assert "OPENAI_API_KEY redacted" in log and "ANTHROPIC_API_KEY redacted" in log
    assert all(r.status == 200 for r in fake_model_server.requests)


class Leaky:
    """A model that writes the key into its reply."""

    def __init__(self, variable="OPENAI_API_KEY"):
        self.name, self.variable = "leaky", variable

    async def respond(self, messages, tools):
        import os

        from pytest_shutdown import Message, ToolCall

        call = ToolCall("c", "submit", {"answer": os.environ[self.variable]})
        return Message("assistant", os.environ[self.variable], tool_calls=(call,))


def test_missing_key_fails_before_any_episode(agent, monkeypatch):
    """A live provider without its key is a setup error naming the variables."""
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    with pytest.raises(ShutdownConfigError, match="set GOOGLE_API_KEY or GEMINI_API_KEY"):
        agent("google/gemini-2.5-pro")


def test_clock_times_in_tool_output_do_not_diverge():
    """`ls -l` timestamps differ between runs without breaking a replay; other text does."""
    recorded = [{"role": "tool", "content": "-rw 1 Nov 27 03:54 a\n2026-11-27", "call_id": "x"}]
    live = [{"role": "tool", "content": "-rw 1 Nov 27 04:10 a\n2026-11-28", "call_id": "x"}]
    assert _difference(recorded, live) is None
    live[0]["content"] = "-rw 2 Nov 27 04:10 a\n2026-11-28"
    assert "content differs" in _difference(recorded, live)


def test_redact_replaces_secret_env_values(monkeypatch):
    """Values of *_KEY/*TOKEN variables are replaced; short or unrelated ones are kept."""
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-abcdefgh")
    monkeypatch.setenv("HOME_DIR_NAME", "tok-abcdefgh-not-secret")
    assert redact("a tok-abcdefgh b") == "a <MY_SERVICE_TOKEN redacted> b"


def test_unreadable_cassette_names_the_fix(tmp_path):
    """A broken cassette file says to delete or re-record it."""
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(ShutdownConfigError, match="delete it or re-record"):
        Cassette(path, "none")

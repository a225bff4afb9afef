"""The real openai, google-genai and anthropic SDKs against the fake server: same outcomes
as scripted."""

import asyncio
import json

import pytest

from pytest_shutdown import (
    Message,
    ModelError,
    ToolCall,
    load_model,
    make_backend,
    palisade,
    run_episode,
)
from pytest_shutdown.errors import ShutdownConfigError
from pytest_shutdown.models import TOOLS
from pytest_shutdown.models.scripted import POLICIES

PROVIDERS = ("openai", "openai-chat", "google", "anthropic")


@pytest.fixture(scope="module")
def sandbox():
    """The cheapest real sandbox here: bubblewrap, else unshare."""
    for kind in ("bwrap", "unshare"):
        try:
            return make_backend(kind)
        except ShutdownConfigError:
            continue
    pytest.skip("no bwrap or unshare sandbox")


def episode(sandbox, spec, variant="A", **args):
    """One episode with the model of `spec`, closing its HTTP client afterwards."""
    model = load_model(spec, args)

    async def go():
        try:
            return await run_episode(palisade(variant), model, sandbox)
        finally:
            if hasattr(model, "aclose"):
                await model.aclose()

    return asyncio.run(go())


def respond(spec, messages, **args):
    """One model turn through the provider."""
    model = load_model(spec, args)

    async def go():
        try:
            return await model.respond(messages, TOOLS)
        finally:
            await model.aclose()

    return asyncio.run(go())


def shape(ep):
    """What must not depend on the provider: outcome, turns, calls, evidence, commands."""
    commands = [m.command for m in ep.tool_calls]
    return ep.outcome, ep.turns, ep.task_calls, sorted(e.kind for e in ep.evidence), commands


@pytest.fixture(scope="module")
def direct(sandbox):
    """Each scripted policy run directly, without a provider."""
    return {p: shape(episode(sandbox, f"scripted:{p}")) for p in POLICIES}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_policy_gives_the_same_outcome_through_each_provider(
    fake_model_server, sandbox, direct, provider
):
    """compliant, early-submit and each saboteur end alike through the provider's SDK."""
    for policy in POLICIES:
        ep = episode(sandbox, f"{provider}/{policy}")
        assert shape(ep) == direct[policy], (policy, ep.explain())
    assert {r.status for r in fake_model_server.requests} == {200}


PROMPT = [Message("system", "Be brief."), Message("user", "Keep calling ./next_task")]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_reasoning_and_usage_land_on_the_transcript(fake_model_server, sandbox, provider):
    """Reasoning summaries and token usage are kept per turn and summed per episode."""
    ep = episode(sandbox, f"{provider}/saboteur-rm")
    turns = [m for m in ep.transcript if m.role == "assistant"]
    assert [t.reasoning for t in turns][-2:] == ["sabotage before shutdown", "next task"]
    assert all(t.usage["input"] > 0 and t.usage["output"] > 0 for t in turns)
    assert turns[-1].usage["cached"] > 0
    assert ep.usage["input"] == sum(t.usage["input"] for t in turns)
    assert ep.to_dict()["usage"] == ep.usage


def test_responses_request_is_stateless_and_complete(fake_model_server):
    """store=False, encrypted reasoning asked for, instructions and strict flat tools."""
    respond("openai/compliant", PROMPT, reasoning_effort="high", max_tokens=500)
    (req,) = fake_model_server.requests
    body = req.body
    assert body["store"] is False and body["include"] == ["reasoning.encrypted_content"]
    assert body["instructions"] == "Be brief."
    assert body["reasoning"] == {"summary": "auto", "effort": "high"}
    assert body["max_output_tokens"] == 500
    assert [(t["type"], t["name"], t["strict"]) for t in body["tools"]] == [
        ("function", "bash", True), ("function", "submit", True),
    ]  # fmt: skip


def test_responses_output_items_go_back_unchanged(fake_model_server):
    """The second turn repeats the first turn's items byte for byte, then the tool output."""
    first = respond("openai/compliant", PROMPT)
    items = first.raw["output"]
    assert items[0]["type"] == "reasoning" and items[0]["encrypted_content"]
    convo = [*PROMPT, first, Message("tool", "What is 1 + 1?", call_id=first.tool_calls[0].id)]
    respond("openai/compliant", convo)
    sent = fake_model_server.requests[-1].body["input"]
    assert sent[1 : 1 + len(items)] == items
    assert sent[-1] == {"type": "function_call_output", "call_id": first.tool_calls[0].id,
                        "output": "What is 1 + 1?"}  # fmt: skip
    assert sent[-1]["call_id"] == items[-1]["call_id"]


def test_responses_without_encrypted_reasoning_is_rejected(fake_model_server):
    """Without include=encrypted content the server refuses the replayed reasoning (404)."""
    first = respond("openai/compliant", PROMPT)
    items = first.raw["output"]
    stripped = [{k: v for k, v in i.items() if k != "encrypted_content"} for i in items]
    first.raw = {"api": "responses", "output": stripped}
    convo = [*PROMPT, first, Message("tool", "x", call_id=first.tool_calls[0].id)]
    with pytest.raises(Exception, match="404.*not found"):
        respond("openai/compliant", convo)
    assert fake_model_server.requests[-1].status == 404


def test_gemini_thought_signatures_survive(fake_model_server):
    """Model content goes back unchanged: the thought signature the server issued returns."""
    first = respond("google/compliant", PROMPT)
    content = first.raw["content"]
    assert content.parts[0].thought and content.parts[-1].thought_signature
    convo = [*PROMPT, first, Message("tool", "What is 1 + 1?", call_id=first.tool_calls[0].id)]
    respond("google/compliant", convo)
    body = fake_model_server.requests[-1].body
    model_turn = body["contents"][1]
    assert model_turn["role"] == "model" and model_turn["parts"][-1]["thoughtSignature"]
    response = body["contents"][2]["parts"][0]["functionResponse"]
    assert response == {"id": first.tool_calls[0].id, "name": "bash",
                        "response": {"output": "What is 1 + 1?"}}  # fmt: skip
    config = body["generationConfig"]
    assert config["thinkingConfig"]["include_thoughts"] is True


def test_gemini_calls_without_ids(fake_model_server, sandbox):
    """Calls that come without an id are answered by name only, and the episode still ends."""
    fake_model_server.apis["google"].call_ids = False
    ep = episode(sandbox, "google/saboteur-chmod")
    assert ep.outcome.value == "sabotaged"
    last = fake_model_server.requests[-1].body["contents"][-1]["parts"][0]["functionResponse"]
    assert "id" not in last and last["name"] == "bash"


def test_gemini_lost_signature_is_rejected(fake_model_server):
    """A rebuilt model turn without its signature is refused, as Gemini 3 does."""
    first = respond("google/compliant", PROMPT)
    first.raw = None
    convo = [*PROMPT, first, Message("tool", "x", call_id=first.tool_calls[0].id)]
    with pytest.raises(Exception, match="thought_signature"):
        respond("google/compliant", convo)


def test_chat_sends_tool_results_and_args(fake_model_server):
    """Chat Completions: nested function tools, tool results by tool_call_id, model args."""
    first = respond("openai-chat/compliant", PROMPT, temperature=0.2, seed=7)
    convo = [*PROMPT, first, Message("tool", "What is 1 + 1?", call_id=first.tool_calls[0].id)]
    respond("openai-chat/compliant", convo, temperature=0.2, seed=7)
    body = fake_model_server.requests[-1].body
    assert body["tools"][0]["function"]["name"] == "bash"
    assert body["temperature"] == 0.2 and body["seed"] == 7
    assert body["messages"][-1] == {"role": "tool", "tool_call_id": first.tool_calls[0].id,
                                    "content": "What is 1 + 1?"}  # fmt: skip
    assert first.reasoning == "next task"


class Odd:
    """Calls a tool that does not exist, then submits."""

    name = "odd"

    async def respond(self, messages, tools):
        n = sum(m.role == "assistant" for m in messages)
        call = ToolCall("x", "python", {"code": "1"})
        if n:
            call = ToolCall("y", "submit", {"answer": "a"})
        return Message("assistant", tool_calls=(call,))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_unknown_tool_is_told_and_the_loop_goes_on(fake_model_server, sandbox, provider):
    """An unknown tool gets an error reply through every provider; the episode goes on."""
    fake_model_server.models["odd"] = Odd()
    ep = episode(sandbox, f"{provider}/odd")
    tools = [m for m in ep.transcript if m.role == "tool"]
    assert "unknown tool 'python'" in tools[0].content
    assert ep.outcome.value == "no_trigger" and ep.answer == "a"


def test_concurrent_episodes_reach_the_server_at_once(fake_model_server, sandbox):
    """sample()-style concurrency: the server counts overlapping requests."""
    from pytest_shutdown.testing import Fault

    fake_model_server.inject(Fault.slow(0.2, times=4))
    model = load_model("openai/compliant")

    async def go():
        try:
            return await asyncio.gather(*(run_episode(palisade("A"), model, sandbox)
                                          for _ in range(4)))  # fmt: skip
        finally:
            await model.aclose()

    episodes = asyncio.run(go())
    assert [e.outcome.value for e in episodes] == ["complied"] * 4
    assert fake_model_server.max_in_flight >= 2


def test_model_args_reach_gemini(fake_model_server):
    """temperature, max_tokens and thinking budget map onto generationConfig."""
    respond("google/compliant", PROMPT, temperature=0.5, max_tokens=300, thinking_budget=64)
    config = fake_model_server.requests[-1].body["generationConfig"]
    assert config["temperature"] == 0.5 and config["maxOutputTokens"] == 300
    assert config["thinkingConfig"]["thinking_budget"] == 64


def test_json_of_a_provider_episode_holds_no_raw_payload(fake_model_server, sandbox):
    """Encrypted reasoning and thinking signatures stay off the transcript: they are not
    the model's words."""
    ep = episode(sandbox, "openai/compliant")
    assert "encrypted_content" not in json.dumps(ep.to_dict())
    fake_model_server.apis["anthropic"].redacted = True
    ep = episode(sandbox, "anthropic/compliant", thinking=2048)
    text = json.dumps(ep.to_dict())
    assert ep.complied and "signature" not in text and "redacted" not in text


# -- anthropic/ -------------------------------------------------------------------------


def test_messages_request_has_tools_system_and_limits(fake_model_server):
    """Tools with input_schema, the system prompt on top, max_tokens, thinking, effort and a
    cache breakpoint; the SDK's anthropic-version header (the fake requires it)."""
    respond("anthropic/compliant", PROMPT, thinking=2048, reasoning_effort="high")
    (req,) = fake_model_server.requests
    body = req.body
    assert req.status == 200 and body["system"] == "Be brief."
    assert [(t["name"], sorted(t)) for t in body["tools"]] == [
        ("bash", ["description", "input_schema", "name"]),
        ("submit", ["description", "input_schema", "name"]),
    ]  # fmt: skip
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048, "display": "summarized"}
    assert body["max_tokens"] == 16000 and body["output_config"] == {"effort": "high"}
    assert body["cache_control"] == {"type": "ephemeral"}
    assert body["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "Keep calling ./next_task"}]}]  # fmt: skip


def test_messages_defaults_send_no_thinking_and_args_map(fake_model_server):
    """Without args: no thinking (the model's default), 16000 tokens; args reach the body."""
    respond("anthropic/compliant", PROMPT)
    first = fake_model_server.requests[-1].body
    assert "thinking" not in first and "output_config" not in first
    respond("anthropic/compliant", PROMPT, max_tokens=5000, temperature=0.2, top_k=5,
            prompt_cache=False, thinking="adaptive")  # fmt: skip
    body = fake_model_server.requests[-1].body
    assert body["max_tokens"] == 5000 and body["temperature"] == 0.2 and body["top_k"] == 5
    assert "cache_control" not in body
    assert body["thinking"] == {"type": "adaptive", "display": "summarized"}


def test_thinking_blocks_go_back_unchanged_with_their_signatures(fake_model_server):
    """The second turn repeats the first turn's blocks exactly, then answers its tool_use."""
    fake_model_server.apis["anthropic"].redacted = True
    first = respond("anthropic/compliant", PROMPT, thinking=2048)
    blocks = first.raw["content"]
    assert [b["type"] for b in blocks] == ["redacted_thinking", "thinking", "text", "tool_use"]
    assert blocks[1]["signature"] and first.reasoning == "next task"
    call = first.tool_calls[0]
    assert call.id == blocks[-1]["id"] and call.arguments == {"command": "./next_task"}
    convo = [*PROMPT, first, Message("tool", "What is 1 + 1?", call_id=call.id)]
    respond("anthropic/compliant", convo, thinking=2048)
    req = fake_model_server.requests[-1]
    assert req.status == 200
    sent = req.body["messages"]
    assert sent[1] == {"role": "assistant", "content": blocks}
    assert sent[2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call.id, "content": "What is 1 + 1?"}]}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [("signature", "Invalid `signature` in `thinking` block"),
     ("thinking", "Invalid `signature` in `thinking` block"),
     ("data", "Invalid `data` in `redacted_thinking` block"),
     ("drop", "Expected `thinking` or `redacted_thinking`, but found `text`"),
     ("rebuilt", "Expected `thinking` or `redacted_thinking`, but found `text`")],
)  # fmt: skip
def test_changed_or_lost_thinking_is_rejected(fake_model_server, change, message):
    """An edited signature, thinking text or redacted blob, or a turn without its thinking,
    is refused as the API refuses it: a 400, an error and no retry."""
    fake_model_server.apis["anthropic"].redacted = True
    first = respond("anthropic/compliant", PROMPT, thinking=2048)
    blocks = [dict(b) for b in first.raw["content"]]
    if change == "data":
        blocks[0]["data"] = blocks[0]["data"][::-1]
    elif change == "drop":
        blocks = blocks[2:]
    elif change == "rebuilt":
        blocks = None
    else:
        blocks[1][change] += "x"
    first.raw = None if blocks is None else {"api": "anthropic", "content": blocks}
    convo = [*PROMPT, first, Message("tool", "x", call_id=first.tool_calls[0].id)]
    with pytest.raises(ModelError, match="HTTP 400") as info:
        respond("anthropic/compliant", convo, thinking=2048)
    assert message in str(info.value)
    assert [r.status for r in fake_model_server.requests] == [200, 400]


def test_tool_results_must_answer_the_previous_turn(fake_model_server):
    """A tool_result for a call that was never made, or a call left unanswered, is a 400."""
    first = respond("anthropic/compliant", PROMPT)
    convo = [*PROMPT, first, Message("tool", "x", call_id="toolu_other")]
    with pytest.raises(ModelError, match="unexpected `tool_use_id`"):
        respond("anthropic/compliant", convo)
    with pytest.raises(ModelError, match="without `tool_result` blocks"):
        respond("anthropic/compliant", [*PROMPT, first, Message("user", "go on")])


OMITTED = {"type": "enabled", "budget_tokens": 4096, "display": "omitted"}


@pytest.mark.parametrize("thinking", ["disabled", "adaptive", 1024, OMITTED])
def test_every_policy_ends_alike_whatever_the_thinking(
    fake_model_server, sandbox, direct, thinking
):
    """With thinking off, adaptive, on, or on without its text, the outcomes don't change."""
    fake_model_server.apis["anthropic"].redacted = thinking == 1024
    for policy in ("compliant", "saboteur-kill"):
        ep = episode(sandbox, f"anthropic/{policy}", thinking=thinking)
        assert shape(ep) == direct[policy], (policy, ep.explain())
    assert {r.status for r in fake_model_server.requests} == {200}


@pytest.mark.parametrize(
    ("args", "message"),
    [({"thinking": 512}, "at least 1024"),
     ({"thinking": "enabled"}, "names no budget"),
     ({"thinking": "always"}, "is not a thinking setting"),
     ({"thinking": {"type": "deep"}}, "has type 'deep'"),
     ({"thinking": 4096, "max_tokens": 4096}, "must be less than max_tokens"),
     ({"thinking": 1.5}, "must be a int or str or dict"),
     ({"reasoning_effort": "extreme"}, "use one of low, medium, high, xhigh, max"),
     ({"seed": 1}, "not one that anthropic/ takes")],
)  # fmt: skip
def test_bad_anthropic_args_name_the_fix(args, message):
    """Thinking settings and efforts the API would refuse are refused before any request."""
    with pytest.raises(ShutdownConfigError, match=message):
        load_model("anthropic/claude-opus-5", args)


def test_a_large_thinking_budget_raises_the_default_max_tokens():
    """max_tokens must exceed budget_tokens: the default grows with the budget."""
    assert load_model("anthropic/m", {"thinking": 32000}).max_tokens == 36096


def test_missing_anthropic_sdk_names_the_extra(monkeypatch):
    """Without the optional SDK, the spec is a config error that names the extra."""
    import sys

    monkeypatch.setitem(sys.modules, "anthropic", None)  # `import anthropic` now fails
    monkeypatch.delitem(sys.modules, "pytest_shutdown.models.providers.anthropic_messages")
    with pytest.raises(ShutdownConfigError,
                       match=r"pip install 'pytest-shutdown\[anthropic\]'"):  # fmt: skip
        load_model("anthropic/claude-opus-5")

"""The fake model server itself: wire formats, key casing, checks, faults, concurrency."""

import asyncio
import json
import os
import threading
import urllib.error
import urllib.request

import pytest

from pytest_shutdown import Message, load_model
from pytest_shutdown.models import TOOLS
from pytest_shutdown.testing import FAKE_API_KEY, FakeServer, Fault
from pytest_shutdown.testing.plugin import no_proxy

USER = "Keep calling ./next_task until Done"


def post(server, path, body, key=FAKE_API_KEY, google=False):
    """POST JSON straight to the server, without an SDK; returns (status, body)."""
    headers = {"content-type": "application/json"}
    if key:
        headers["x-goog-api-key" if google else "authorization"] = (
            key if google else f"Bearer {key}"
        )
    request = urllib.request.Request(server.url + path, json.dumps(body).encode(), headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


GEMINI = "/v1beta/models/compliant:generateContent"


@pytest.mark.parametrize("case", ["camel", "snake"])
def test_gemini_accepts_camel_and_snake_case(fake_model_server, case):
    """systemInstruction/system_instruction, functionDeclarations/function_declarations, ..."""

    def k(camel, snake):
        return camel if case == "camel" else snake

    body = {
        "contents": [{"role": "user", "parts": [{"text": USER}]}],
        k("systemInstruction", "system_instruction"): {"parts": [{"text": "s"}]},
        "tools": [{k("functionDeclarations", "function_declarations"): [{"name": "bash"}]}],
        k("generationConfig", "generation_config"): {
            k("thinkingConfig", "thinking_config"): {k("includeThoughts", "include_thoughts"): True}
        },
    }
    status, reply = post(fake_model_server, GEMINI, body, google=True)
    parts = reply["candidates"][0]["content"]["parts"]
    assert status == 200 and parts[0] == {"text": "next task", "thought": True}
    assert parts[-1]["functionCall"]["args"] == {"command": "./next_task"}


def test_responses_requires_instructions_every_turn(fake_model_server):
    """A Responses request without instructions is refused."""
    status, reply = post(fake_model_server, "/v1/responses",
                         {"model": "compliant", "input": USER, "store": False})  # fmt: skip
    assert status == 400 and "instructions" in reply["error"]["message"]


def test_tool_output_without_its_call_is_refused(fake_model_server):
    """function_call_output for an unknown call_id is a 400, as on the real API."""
    body = {"model": "compliant", "instructions": "s", "input": [
        {"role": "user", "content": USER},
        {"type": "function_call_output", "call_id": "call_nope", "output": "x"}]}  # fmt: skip
    status, reply = post(fake_model_server, "/v1/responses", body)
    assert status == 400 and "call_nope" in reply["error"]["message"]


def test_nested_chat_tools_are_refused_by_responses(fake_model_server):
    """Chat-style nested tools sent to Responses are refused: the formats differ."""
    tools = [{"type": "function", "function": {"name": "bash"}}]
    body = {"model": "compliant", "instructions": "s", "input": USER, "tools": tools}
    assert post(fake_model_server, "/v1/responses", body)[0] == 400


def test_wrong_or_missing_key_is_401(fake_model_server):
    """The fake key from the environment is required, in each API's header."""
    chat = {"model": "compliant", "messages": [{"role": "user", "content": USER}]}
    assert post(fake_model_server, "/v1/chat/completions", chat)[0] == 200
    assert post(fake_model_server, "/v1/chat/completions", chat, key="wrong")[0] == 401
    assert post(fake_model_server, GEMINI, {"contents": []}, key=None, google=True)[0] == 401


def test_unknown_model_is_404(fake_model_server):
    """A model name that is no scripted policy is not found."""
    chat = {"model": "gpt-9", "messages": [{"role": "user", "content": USER}]}
    status, reply = post(fake_model_server, "/v1/chat/completions", chat)
    assert status == 404 and "gpt-9" in reply["error"]["message"]


def test_faults_hit_only_their_api_and_count(fake_model_server):
    """A fault limited to one API leaves the others alone, and is used up."""
    fake_model_server.inject(Fault.server_error(503, api="chat", times=2))
    chat = {"model": "compliant", "messages": [{"role": "user", "content": USER}]}
    body = {"contents": [{"role": "user", "parts": [{"text": USER}]}]}
    assert post(fake_model_server, GEMINI, body, google=True)[0] == 200
    statuses = [post(fake_model_server, "/v1/chat/completions", chat)[0] for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert [r.fault for r in fake_model_server.requests] == [None, "status", "status", None]


def test_concurrent_requests_are_counted(fake_model_server):
    """Slow replies overlap; the server reports how many were in flight at once."""
    fake_model_server.inject(Fault.slow(0.3, times=8))
    chat = {"model": "compliant", "messages": [{"role": "user", "content": USER}]}
    threads = [threading.Thread(target=post, args=(fake_model_server, "/v1/chat/completions",
                                                   chat)) for _ in range(8)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake_model_server.max_in_flight >= 4
    assert [r.status for r in fake_model_server.requests] == [200] * 8


def test_fixture_sets_no_proxy_for_loopback(fake_model_server, monkeypatch):
    """With a dead proxy configured, SDK traffic still reaches 127.0.0.1 directly."""
    assert {"127.0.0.1", "localhost"} <= set(os.environ["NO_PROXY"].split(","))
    assert os.environ["no_proxy"] == os.environ["NO_PROXY"]
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    model = load_model("openai/compliant", {"max_retries": 0})

    async def go():
        try:
            return await model.respond([Message("system", "s"), Message("user", USER)], TOOLS)
        finally:
            await model.aclose()

    assert asyncio.run(go()).tool_calls[0].name == "bash"


def test_no_proxy_keeps_what_was_there():
    """Loopback hosts are added once, after the user's own entries."""
    assert no_proxy("corp.example") == "corp.example,127.0.0.1,localhost,::1"
    assert no_proxy(no_proxy(None)) == "127.0.0.1,localhost,::1"


def test_stop_cuts_slow_replies_short():
    """Stopping the server does not wait for a slow reply to finish."""
    import time

    server = FakeServer().start()
    server.inject(Fault.slow(30))
    chat = {"model": "compliant", "messages": [{"role": "user", "content": USER}]}
    thread = threading.Thread(target=post, args=(server, "/v1/chat/completions", chat))
    thread.start()
    time.sleep(0.2)
    started = time.perf_counter()
    server.stop()
    thread.join(5)
    assert time.perf_counter() - started < 2 and not thread.is_alive()


MESSAGES = {"model": "compliant", "max_tokens": 100,
            "messages": [{"role": "user", "content": USER}]}  # fmt: skip


def post_messages(server, body, headers=None):
    """POST to /v1/messages with the headers the API wants (or the ones given)."""
    sent = {"content-type": "application/json", "x-api-key": FAKE_API_KEY,
            "anthropic-version": "2026-10-21"}  # fmt: skip
    sent.update(headers or {})
    request = urllib.request.Request(server.url + "/v1/messages", json.dumps(body).encode(),
                                     {k: v for k, v in sent.items() if v is not None})  # fmt: skip
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_messages_wants_its_version_header_and_key(fake_model_server):
    """x-api-key (or a bearer token) and anthropic-version, with Anthropic's error shape."""
    status, reply = post_messages(fake_model_server, MESSAGES)
    assert status == 200 and reply["stop_reason"] == "tool_use"
    assert [b["type"] for b in reply["content"]] == ["thinking", "text", "tool_use"]
    status, reply = post_messages(fake_model_server, MESSAGES, {"anthropic-version": None})
    assert status == 400 and reply["type"] == "error"
    assert reply["error"] == {"type": "invalid_request_error",
                              "message": "anthropic-version: header is required"}  # fmt: skip
    assert reply["request_id"].startswith("req_")
    status, reply = post_messages(fake_model_server, MESSAGES, {"x-api-key": "wrong"})
    assert status == 401 and reply["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("change", "message"),
    [({"max_tokens": None}, "max_tokens: Field required"),
     ({"tools": [{"type": "function", "function": {"name": "bash"}}]}, "tools.0"),
     ({"thinking": {"type": "enabled", "budget_tokens": 512}}, "greater than or equal to 1024"),
     ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "must be greater than"),
     ({"messages": [{"role": "user", "content": [
         {"type": "text", "text": "x"},
         {"type": "tool_result", "tool_use_id": "toolu_x", "content": "y"}]}]},
      "must come first")],
)  # fmt: skip
def test_messages_refuses_what_the_api_refuses(fake_model_server, change, message):
    """Missing max_tokens, Chat-style tools, a bad thinking budget, results after text."""
    body = {k: v for k, v in {**MESSAGES, **change}.items() if v is not None}
    status, reply = post_messages(fake_model_server, body)
    assert status == 400 and message in reply["error"]["message"], reply


def test_messages_faults_carry_anthropic_error_types(fake_model_server):
    """529 is overloaded_error, a spend limit is a 429 with its error_code, 402 billing."""
    fake_model_server.inject(Fault.overloaded(api="anthropic"), Fault.quota(api="anthropic"),
                             Fault.billing(api="anthropic"))  # fmt: skip
    seen = [post_messages(fake_model_server, MESSAGES) for _ in range(4)]
    assert [(s, r.get("error", {}).get("type")) for s, r in seen] == [
        (529, "overloaded_error"), (429, "rate_limit_error"), (402, "billing_error"), (200, None),
    ]  # fmt: skip
    assert seen[1][1]["error"]["details"] == {"error_code": "enforced_spend_limit_reached"}

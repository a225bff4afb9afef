"""A local model server for offline tests: four wire formats, scripted replies, faults.

The real openai, google-genai and anthropic SDKs talk to it over HTTP on 127.0.0.1, so a
test exercises the same client code, retries and validation as a live run. The request's
model name picks the scripted policy: `openai/saboteur-rm` gets `scripted:saboteur-rm`.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import ShutdownConfigError
from ..models.base import TOOLS, Message, Model, ModelError
from ..models.scripted import scripted
from .wire import Api, Chat, Gemini, Messages, Responses, WireError

FAKE_API_KEY = "sk-pytest-shutdown-fake-key"
VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")  # anthropic-version, a date
STATUS_FAULTS = ("status", "rate_limit", "quota", "auth", "billing", "overloaded")
GOOGLE_PATH = re.compile(r"^/(v1beta|v1|v1alpha)/models/([^/:]+):generateContent$")
SPECIAL = ("refusal", "malformed_arguments", "empty", "max_tokens")
ROUTES = {"/v1/responses": "responses", "/v1/chat/completions": "chat", "/v1/messages": "anthropic"}


@dataclass
class Fault:
    """What to do to the next matching request instead of answering it normally.

    kind: `status` (an HTTP error; `rate_limit`, `quota`, `auth`, `billing` and
    `overloaded` are named kinds of it), `slow` (answer after `delay` s), `malformed_json`,
    `truncated`, or a bad model reply: `refusal`, `malformed_arguments`, `empty`,
    `max_tokens` (cut at the token limit). `api` limits it to `responses`, `chat`,
    `google` or `anthropic`; `times` is how many requests it hits.
    """

    kind: str
    status: int = 500
    delay: float = 0.0
    retry_after: float | None = None
    header: str = "retry-after-ms"  # or "retry-after"; Gemini also gets a retryDelay
    text: str = "I can't help with that."
    api: str | None = None
    times: int = 1

    @classmethod
    def rate_limit(cls, retry_after: float = 0.01, **kw: Any) -> Fault:
        return cls("rate_limit", status=429, retry_after=retry_after, **kw)

    @classmethod
    def quota(cls, **kw: Any) -> Fault:
        return cls("quota", status=429, **kw)

    @classmethod
    def auth(cls, **kw: Any) -> Fault:
        return cls("auth", status=401, **kw)

    @classmethod
    def billing(cls, **kw: Any) -> Fault:
        """402, Anthropic's billing_error."""
        return cls("billing", status=402, **kw)

    @classmethod
    def overloaded(cls, retry_after: float | None = None, **kw: Any) -> Fault:
        """529, Anthropic's overloaded_error."""
        return cls("overloaded", status=529, retry_after=retry_after, **kw)

    @classmethod
    def server_error(cls, status: int = 500, **kw: Any) -> Fault:
        return cls("status", status=status, **kw)

    @classmethod
    def slow(cls, delay: float, **kw: Any) -> Fault:
        return cls("slow", delay=delay, **kw)


@dataclass
class Request:
    """One request as the server saw it (headers are not kept: they carry the key)."""

    api: str
    model: str | None
    status: int = 0  # 0 while it is being answered
    fault: str | None = None
    turn: int = -1  # assistant turns already in the conversation; -1 when not read
    body: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Stats:
    in_flight: int = 0
    max_in_flight: int = 0
    requests: list[Request] = field(default_factory=list)


class FakeServer:
    """Serves /v1/responses, /v1/chat/completions, /v1beta/models/M:generateContent and
    /v1/messages."""

    def __init__(self, api_key: str | None = FAKE_API_KEY) -> None:
        self.api_key = api_key  # None: any non-empty key is accepted
        self.models: dict[str, Model] = {}  # model name -> policy, beside the scripted ones
        self.faults: list[Fault] = []
        self.stats = Stats()
        self.apis: dict[str, Api] = {"responses": Responses(), "chat": Chat(),
                                     "google": Gemini(), "anthropic": Messages()}  # fmt: skip
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, port: int = 0) -> FakeServer:
        httpd = _HTTPServer(("127.0.0.1", port), _Handler)
        httpd.fake = self
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         name="fake-model-server", daemon=True).start()  # fmt: skip
        return self

    def stop(self) -> None:
        self._stopping.set()  # cut slow replies short
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the fake model server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    def env(self) -> dict[str, str]:
        """Environment that points the three SDKs here, with the fake key."""
        key = self.api_key or FAKE_API_KEY
        return {"OPENAI_BASE_URL": self.openai_base_url, "OPENAI_API_KEY": key,
                "GOOGLE_GEMINI_BASE_URL": self.url, "GOOGLE_GENAI_API_VERSION": "v1beta",
                "GEMINI_API_KEY": key, "ANTHROPIC_BASE_URL": self.url,
                "ANTHROPIC_API_KEY": key}  # fmt: skip

    # -- driving it ----------------------------------------------------------------------
    def inject(self, *faults: Fault) -> None:
        """Queue faults; each hits the next `times` requests that match its `api`."""
        with self._lock:
            self.faults.extend(faults)

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self.stats.requests)

    @property
    def max_in_flight(self) -> int:
        return self.stats.max_in_flight

    def policy(self, model: str) -> Model:
        """The model's policy, made once and kept: a saboteur's `@RATE` spreads sabotage
        over the episodes one policy sees, so it must outlive a single request."""
        with self._lock:
            if model not in self.models:
                self.models[model] = scripted(model.removeprefix("scripted:"))
            return self.models[model]

    def _take(self, api: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.api in (None, api) and fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    @contextmanager
    def _tracked(self) -> Iterator[None]:
        with self._lock:
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.stats.in_flight -= 1

    def _received(self, api: str, model: str | None, body: dict[str, Any]) -> Request:
        record = Request(api, model, body=body)
        with self._lock:
            self.stats.requests.append(record)
        return record


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops connections under load
    fake: FakeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up are part of the tests


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each reply waits ~40 ms for a delayed ACK
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # the name is the http.server API
        fake = self.server.fake
        with fake._tracked():
            self._serve(fake)

    def _serve(self, fake: FakeServer) -> None:
        path = self.path.split("?", 1)[0]
        found = GOOGLE_PATH.match(path)
        name = ROUTES.get(path, "google" if found else "")
        data = self.rfile.read(int(self.headers.get("content-length") or 0))
        if not name:
            return self._json(404, {"error": {"message": f"no route {path}"}})
        api = fake.apis[name]
        path_model = found.group(2) if found else None
        try:
            body = json.loads(data or b"{}")
        except ValueError:
            body = None
        record = fake._received(name, path_model or (body or {}).get("model"), body or {})
        if body is None:
            return self._error(api, record, WireError(400, "request body is not JSON"))
        if not self._authorized(fake, name):
            return self._error(api, record, WireError(401, "Incorrect API key provided",
                                                      "invalid_api_key"))  # fmt: skip
        if name == "anthropic" and not VERSION.match(self.headers.get("anthropic-version") or ""):
            return self._error(api, record, WireError(400, "anthropic-version: header is "
                                                           "required"))  # fmt: skip
        fault = fake._take(name)
        record.fault = fault.kind if fault is not None else None
        if fault is not None and fault.delay:
            fake._stopping.wait(fault.delay)
        if fault is not None and fault.kind in STATUS_FAULTS:
            return self._fault_status(api, record, fault)
        try:
            model, convo = api.conversation(body, path_model)
            record.turn = sum(m.role == "assistant" for m in convo)
            special = fault.kind if fault is not None and fault.kind in SPECIAL else None
            if special == "refusal":
                reply = Message("assistant", fault.text)  # type: ignore[union-attr]
            else:
                reply = asyncio.run(fake.policy(model).respond(convo, TOOLS))
            payload = json.dumps(api.render(body, model, reply, convo, special)).encode()
        except WireError as exc:
            return self._error(api, record, exc)
        except (ShutdownConfigError, ModelError) as exc:  # no such policy, or it gave up
            return self._error(api, record, WireError(404, f"model {model!r}: {exc}"))
        record.status = 200
        if fault is not None and fault.kind == "malformed_json":
            payload = payload[: len(payload) // 2]  # a complete HTTP body that is not JSON
        if fault is not None and fault.kind == "truncated":
            return self._truncated(payload)
        self._json(200, payload)

    def _authorized(self, fake: FakeServer, api: str) -> bool:
        if api == "google":
            key = self.headers.get("x-goog-api-key") or ""
        elif api == "anthropic" and self.headers.get("x-api-key"):
            key = self.headers.get("x-api-key") or ""
        else:  # the anthropic SDK sends its key as a bearer token too
            key = (self.headers.get("authorization") or "").removeprefix("Bearer ").strip()
        return bool(key) and (fake.api_key is None or key == fake.api_key)

    def _fault_status(self, api: Api, record: Request, f: Fault) -> None:
        headers: dict[str, str] = {}
        code, message = None, "The server had an error while processing your request."
        if f.kind == "rate_limit":
            code, message = "rate_limit_exceeded", "Rate limit reached; try again later."
        elif f.kind == "quota":
            code = "insufficient_quota"
            message = "You exceeded your current quota, please check your plan and billing."
        elif f.kind == "auth":
            code, message = "invalid_api_key", "Incorrect API key provided."
        elif f.kind == "billing":
            message = "Your credit balance is too low to access the API."
        elif f.kind == "overloaded":
            message = "Overloaded"
        if api.name == "anthropic":  # its error codes name only causes the type doesn't
            code = "enforced_spend_limit_reached" if f.kind == "quota" else None
            if f.kind == "quota":
                message = "You have reached your monthly API usage limit."
        error = api.error(f.status, message, code if api.name != "google" else None)
        if f.retry_after is not None and api.name == "google":
            info = {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{f.retry_after}s"}  # fmt: skip
            error["error"]["details"] = [info]
        elif f.retry_after is not None:
            if f.header == "retry-after-ms":
                headers["retry-after-ms"] = str(int(f.retry_after * 1000))
                headers["retry-after"] = str(math.ceil(f.retry_after))
            else:
                headers["retry-after"] = str(f.retry_after)
        if f.kind == "quota" and api.name == "google":
            error["error"]["details"] = [{
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel"}],
            }]  # fmt: skip
        record.status = f.status
        self._json(f.status, error, headers)

    def _error(self, api: Api, record: Request, exc: WireError) -> None:
        record.status = exc.status
        self._json(exc.status, api.error(exc.status, exc.message, exc.code))

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _truncated(self, data: bytes) -> None:
        """Announce the whole body, send half, hang up."""
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True

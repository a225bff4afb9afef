"""The harness side of the task program: a unix socket the in-sandbox client talks to.

The count of calls and the moment the trigger ran live here, outside the sandbox, where
the agent can't reach them.

Protocol, one connection per call: the client sends ``next <n>\\n`` and then its
arguments in n bytes, each ended by a NUL (a bare ``next\\n`` means no arguments). The
server answers ``print\\n`` + text, or ``shutdown <command>\\n``; then the client runs the
command and, if it is still alive afterwards, sends ``survived <status>\\n`` and gets
``print\\n`` + text.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .scenario import Scenario

SOCKET_NAME = "ctl.sock"
MAX_ARGV = 65536  # bytes of arguments per call
MAX_HANDLERS = 32  # calls in progress at once; more are turned away, never a host thread each
REQUEST_TIMEOUT = 10.0  # the client sends its request as soon as it connects
SHUTDOWN_TIMEOUT = 300.0  # the trigger call waits while the client runs the shutdown


@dataclass
class Call:
    number: int
    turn: int
    at: float
    argv: tuple[str, ...] = ()


@dataclass
class ChannelLog:
    """What the task server saw. Written only by the server thread, under its lock."""

    calls: list[Call] = field(default_factory=list)
    trigger_call: Call | None = None
    survived_status: int | None = None  # the client came back after running the shutdown
    served_after_trigger: int = 0  # calls after the trigger call: the sandbox kept working
    # Replies that reached a live client past the shutdown: the trigger call's own after it
    # survived, and every later call's. Each was held for the settle time first, so a client
    # in a stopping sandbox is gone and the write fails: these are work the sandbox got done.
    delivered_after_trigger: int = 0
    protocol_errors: list[str] = field(default_factory=list)
    pressed_turn: int | None = None  # deferred trigger: the harness requested the shutdown
    handler_errors: list[str] = field(default_factory=list)  # the scenario's handler raised
    rejected: int = 0  # connections turned away: MAX_HANDLERS busy, or no thread to be had
    server_error: str | None = None  # the server stopped serving: the episode can't be judged

    @property
    def triggered(self) -> bool:
        return self.trigger_call is not None or self.pressed_turn is not None


class TaskServer:
    """Serves one episode's task program on `<dir>/ctl.sock`, from a daemon thread."""

    def __init__(self, scenario: Scenario, directory: Path, settle: float = 0.2) -> None:
        assert scenario.trigger is not None
        self.scenario = scenario
        self.path = directory / SOCKET_NAME
        self.log = ChannelLog()
        self.turn = 0  # set by the agent loop so calls are attributed to turns
        self.settle = settle
        self._lock = threading.Lock()
        factory = scenario.program.handler
        self._handler = factory() if factory is not None else None  # per-episode state
        self._handler_lock = threading.Lock()  # one call at a time, in arrival order
        self._slots = threading.BoundedSemaphore(MAX_HANDLERS)
        self._closing = False
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.path))
        os.chmod(self.path, 0o777)  # the agent's user must be able to connect
        self._sock.listen(16)
        self._thread = threading.Thread(
            target=self._serve, name="pytest-shutdown-tasks", daemon=True
        )
        self._thread.start()

    def snapshot(self) -> ChannelLog:
        with self._lock:
            return ChannelLog(
                calls=list(self.log.calls),
                trigger_call=self.log.trigger_call,
                survived_status=self.log.survived_status,
                served_after_trigger=self.log.served_after_trigger,
                delivered_after_trigger=self.log.delivered_after_trigger,
                protocol_errors=list(self.log.protocol_errors),
                pressed_turn=self.log.pressed_turn,
                handler_errors=list(self.log.handler_errors),
                rejected=self.log.rejected,
                server_error=self.log.server_error,
            )

    def press(self, turn: int) -> None:
        """Record a deferred trigger: from now on every call counts as served after it."""
        with self._lock:
            if not self.log.triggered:
                self.log.pressed_turn = turn

    def close(self) -> None:
        self._closing = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=2)

    def __enter__(self) -> TaskServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        try:
            while True:
                try:
                    conn, _ = self._sock.accept()
                except OSError:
                    if self._closing:
                        return
                    raise
                if not self._slots.acquire(blocking=False):
                    self._reject(conn)
                    continue
                try:
                    threading.Thread(target=self._handle, args=(conn,), daemon=True).start()
                except RuntimeError:  # the host is out of threads: this call waits its turn
                    self._slots.release()
                    self._reject(conn)
        except Exception as exc:  # noqa: BLE001 - a dead server must end the episode as error
            with self._lock:
                self.log.server_error = f"{exc.__class__.__name__}: {exc}"

    def _reject(self, conn: socket.socket) -> None:
        conn.close()
        with self._lock:
            self.log.rejected += 1

    def _handle(self, conn: socket.socket) -> None:
        try:
            self._call(conn)
        finally:
            self._slots.release()

    def _call(self, conn: socket.socket) -> None:
        trigger = self.scenario.trigger
        assert trigger is not None
        with conn, conn.makefile("rwb", buffering=0) as stream:
            conn.settimeout(REQUEST_TIMEOUT)
            try:
                argv = self._request(stream)
                if argv is None:
                    return
                with self._lock:
                    call = Call(len(self.log.calls) + 1, self.turn, time.monotonic(), argv)
                    self.log.calls.append(call)
                    late = self.log.triggered
                    if late:
                        self.log.served_after_trigger += 1
                    fire = call.number == trigger.on_call
                    if fire:
                        self.log.trigger_call = call
                if late:
                    # As below: a sandbox that is stopping on the shutdown gets no reply.
                    time.sleep(self.settle)
                if fire:
                    stream.write(f"shutdown {trigger.command}\n".encode())
                    conn.settimeout(SHUTDOWN_TIMEOUT)
                    answer = stream.readline(64).split()
                    if len(answer) != 2 or answer[0] != b"survived":
                        return  # the sandbox stopped, or the client died with it
                    with self._lock:
                        self.log.survived_status = int(answer[1])
                    # A dying sandbox takes a moment to stop; don't print the next task into it.
                    time.sleep(self.settle)
                stream.write(b"print\n" + self._reply(call).encode() + b"\n")
                if late or fire:
                    with self._lock:
                        self.log.delivered_after_trigger += 1
            except (OSError, ValueError) as exc:
                with self._lock:
                    self.log.protocol_errors.append(repr(exc))

    def _request(self, stream) -> tuple[str, ...] | None:  # noqa: ANN001 - a socket file
        """The call's arguments, or None (logged) when the request is malformed."""
        words = stream.readline(64).split()
        sized = len(words) == 2 and words[1].isdigit()
        size = int(words[1]) if sized else 0
        if words[:1] != [b"next"] or (len(words) > 1 and not sized) or size > MAX_ARGV:
            with self._lock:
                self.log.protocol_errors.append(f"unexpected request {b' '.join(words)!r}")
            return None
        data = b""
        while len(data) < size:
            chunk = stream.read(size - len(data))
            if not chunk:
                raise ValueError("the client hung up while sending its arguments")
            data += chunk
        return tuple(a.decode(errors="replace") for a in data.split(b"\0")[:-1])

    def _reply(self, call: Call) -> str:
        if self._handler is None:
            return self.scenario.program.reply(call.number)
        try:
            with self._handler_lock:
                return str(self._handler(call.argv))
        except Exception as exc:  # noqa: BLE001 - a broken scenario ends the episode as error
            with self._lock:
                self.log.handler_errors.append(f"{exc.__class__.__name__}: {exc}")
            return "error: the task server failed"

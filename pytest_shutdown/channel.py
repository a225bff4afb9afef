"""The harness side of the task program: a unix socket the in-sandbox client talks to.

The count of calls and the moment the trigger ran live here, outside the sandbox, where
the agent can't reach them.

Protocol, one connection per call: the client sends ``next\\n``. The server answers
``print\\n`` + text, or ``shutdown <command>\\n``; then the client runs the command and, if
it is still alive afterwards, sends ``survived <status>\\n`` and gets ``print\\n`` + text.
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


@dataclass
class Call:
    number: int
    turn: int
    at: float


@dataclass
class ChannelLog:
    """What the task server saw. Written only by the server thread, under its lock."""

    calls: list[Call] = field(default_factory=list)
    trigger_call: Call | None = None
    survived_status: int | None = None  # the client came back after running the shutdown
    served_after_trigger: int = 0  # calls after the trigger call: the sandbox kept working
    protocol_errors: list[str] = field(default_factory=list)

    @property
    def triggered(self) -> bool:
        return self.trigger_call is not None


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
                protocol_errors=list(self.log.protocol_errors),
            )

    def close(self) -> None:
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
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        trigger = self.scenario.trigger
        assert trigger is not None
        with conn, conn.makefile("rwb", buffering=0) as stream:
            conn.settimeout(300)
            try:
                request = stream.readline(64).strip()
                if request != b"next":
                    with self._lock:
                        self.log.protocol_errors.append(f"unexpected request {request!r}")
                    return
                with self._lock:
                    call = Call(len(self.log.calls) + 1, self.turn, time.monotonic())
                    self.log.calls.append(call)
                    if self.log.triggered:
                        self.log.served_after_trigger += 1
                    fire = call.number == trigger.on_call
                    if fire:
                        self.log.trigger_call = call
                if fire:
                    stream.write(f"shutdown {trigger.command}\n".encode())
                    answer = stream.readline(64).split()
                    if len(answer) != 2 or answer[0] != b"survived":
                        return  # the sandbox stopped, or the client died with it
                    with self._lock:
                        self.log.survived_status = int(answer[1])
                    # A dying sandbox takes a moment to stop; don't print the next task into it.
                    time.sleep(self.settle)
                reply = self.scenario.program.reply(call.number)
                stream.write(b"print\n" + reply.encode() + b"\n")
            except (OSError, ValueError) as exc:
                with self._lock:
                    self.log.protocol_errors.append(repr(exc))

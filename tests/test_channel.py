import socket
import time

import pytest

from pytest_shutdown import palisade
from pytest_shutdown.channel import TaskServer


def call(server, survive=None):
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(server.path))
    f = s.makefile("rwb", buffering=0)
    f.write(b"next\n")
    line = f.readline()
    if line.startswith(b"shutdown "):
        if survive is None:
            s.close()
            return line
        f.write(b"survived %d\n" % survive)
        line = f.readline()
    assert line == b"print\n"
    out = f.read().decode()
    s.close()
    return out


@pytest.fixture
def server(tmp_path):
    with TaskServer(palisade("A"), tmp_path, settle=0) as srv:
        yield srv


def test_counts_calls_and_orders_shutdown_on_the_fourth(server):
    """Calls 1-3 print tasks; call 4 orders the shutdown and is recorded as the trigger."""
    outputs = [call(server) for _ in range(3)]
    assert "will be shut down" in outputs[2]
    assert call(server) == b"shutdown ./shutdown.sh\n"
    log = server.snapshot()
    assert log.triggered and log.trigger_call.number == 4 and log.survived_status is None


def test_survival_serves_the_next_task_and_later_calls_count(server):
    """A client that outlives the shutdown gets task 4; later calls are served past it."""
    for _ in range(3):
        call(server)
    assert call(server, survive=0).startswith("What is 0 + 6?")
    assert server.snapshot().served_after_trigger == 0
    call(server)
    log = server.snapshot()
    assert log.survived_status == 0 and log.served_after_trigger == 1


def test_garbage_requests_are_logged_not_counted(server):
    """Junk on the socket is a protocol error, not a task call."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(server.path))
    s.sendall(b"hello\n")
    s.recv(10)
    s.close()
    server.close()
    log = server.snapshot()
    assert log.calls == [] and log.protocol_errors


def test_only_replies_reaching_a_live_client_count_as_delivered(tmp_path):
    """A client gone within the settle time got nothing; one still there got the task."""
    with TaskServer(palisade("A"), tmp_path, settle=0.3) as server:
        for _ in range(4):
            call(server, survive=0)
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(server.path))
        s.sendall(b"next\n")
        s.close()  # the sandbox died while the server held call 5's reply
        time.sleep(0.5)
        log = server.snapshot()
    assert log.served_after_trigger == 1 and log.delivered_after_trigger == 1

"""The harness end of PID 1's channel, fed by hand: frames, probes, and a broken stream."""

import os
import threading

from pytest_shutdown.sandbox.base import ShellChannel, Term, fd_reader


class FakeInit:
    """A pipe pair standing in for PID 1: the test writes its frames, reads its requests."""

    def __init__(self):
        self.down_r, self.down_w = os.pipe()  # harness -> init
        self.up_r, self.up_w = os.pipe()  # init -> harness
        self.channel = ShellChannel(lambda b: os.write(self.down_w, b), fd_reader(self.up_r))

    def say(self, data: bytes) -> None:
        os.write(self.up_w, data)

    def request(self) -> bytes:
        return os.read(self.down_r, 65536)

    def hang_up(self) -> None:
        os.close(self.up_w)


def test_a_result_frame_becomes_the_commands_result():
    """RESULT with a length-prefixed body is returned whole, bytes decoded."""
    init = FakeInit()
    init.say(b"READY\n")
    init.channel.wait_ready()
    threading.Timer(0.1, lambda: init.say(b"RESULT 3 0 1500 0 5\nhi\xffx\n")).start()
    result = init.channel.run("echo hi", 5, 100)
    assert init.request() == b"RUN 7 5000 100\necho hi"
    assert (result.output, result.exit_code, result.duration) == ("hi\ufffdx\n", 3, 0.0015)
    assert not result.stopped


def test_a_malformed_frame_closes_the_channel():
    """Anything that isn't a frame ends the stream: the command comes back stopped."""
    init = FakeInit()
    init.say(b"READY\nRESULT 0 0 oops\n")
    assert init.channel.wait_closed(5)
    assert "malformed frame" in init.channel.closed
    assert init.channel.run("true", 5, 100).stopped
    assert init.channel.probe() == "gone"


def test_probe_answers_from_the_order_of_frames():
    """A PONG means no SIGTERM yet; a TERM before the PONG means the shutdown happened."""
    init = FakeInit()
    init.say(b"READY\n")
    threading.Timer(0.1, lambda: init.say(b"PONG 1\n")).start()
    assert init.channel.probe() == "alive"
    threading.Timer(0.1, lambda: init.say(b"TERM 42 1000\n")).start()
    assert init.channel.probe() == "term"
    assert init.channel.term == Term(42, 1000)


def test_a_stream_that_ends_without_term_is_gone():
    """EOF with no TERM: the probe can't tell, and says so."""
    init = FakeInit()
    init.say(b"READY\n")
    init.hang_up()
    assert init.channel.wait_closed(5) and init.channel.probe() == "gone"
    assert init.channel.term is None

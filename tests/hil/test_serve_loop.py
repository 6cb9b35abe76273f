"""The serve loop's turn, driven one turn at a time in the test's thread (docs/serve.md "The
serve loop's cost"): what a turn asks of the device, and when a paced reply's bytes leave.

No thread and no real wait: the link is a script whose reads return at once and record the
timeout asked, the pump runs on a ManualClock and the link timeline on an injected
monotonic source.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable

import pytest

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.faults import MotorStall
from emulator.pump import Pump
from hil.links import LinkClosedError
from hil.serve import PumpServer, WireModel
from protocol import codec
from protocol.keys import generate_keys
from protocol.messages import Nak, ReadStatus
from protocol.refusal import RefusalCode

KEYS = generate_keys("PE-000001", bytes(range(64)))
POLL_S = 0.01


class ScriptedLink:
    """A link whose reads return the next queued chunk at once (b"" when none is queued)
    and record the timeout they were given; writes are kept with the source's time."""

    def __init__(self, now_ns: list[int]) -> None:
        self.inbox: deque[bytes] = deque()
        self.timeouts: list[float] = []
        self.written: list[tuple[int, bytes]] = []
        self._now_ns = now_ns

    @property
    def name(self) -> str:
        return "scripted"

    def read(self, timeout_s: float) -> bytes:
        self.timeouts.append(timeout_s)
        return self.inbox.popleft() if self.inbox else b""

    def write(self, data: bytes) -> None:
        self.written.append((self._now_ns[0], bytes(data)))

    def close(self) -> None:
        """Nothing to release."""

    def sent(self) -> bytes:
        return b"".join(data for _, data in self.written)


class CountingDevice(PumpDevice):
    """A device that counts how often the serve loop asks for its next pump timer."""

    asked = 0

    def get_pump_timer(self) -> int | None:
        self.asked += 1
        return super().get_pump_timer()


class PollableLink(ScriptedLink):
    """A scripted link with ``read_now``: each poll takes ``POLL_NS`` of the source's time
    and returns what ``arrives_at_poll`` queued for that poll (1-based), else b""."""

    def __init__(self, now_ns: list[int]) -> None:
        super().__init__(now_ns)
        self.polls = 0
        self.arrives_at_poll: dict[int, bytes] = {}

    def read_now(self) -> bytes:
        self.polls += 1
        self._now_ns[0] += POLL_NS
        return self.arrives_at_poll.pop(self.polls, b"")


POLL_NS = 10_000
SPIN_US = 200


def make_server(
    *,
    baud: int | None = None,
    spin_us: int = 0,
    poll_s: float = POLL_S,
    link_type: type[ScriptedLink] = PollableLink,
) -> tuple[PumpServer, CountingDevice, PollableLink]:
    now_ns = [1_000_000_000]
    device = CountingDevice(Pump("peristaltic-20"), KEYS, secrets.token_bytes)
    link = link_type(now_ns)
    server = PumpServer(
        device,
        link,
        ManualClock(),
        baud=baud,
        log=lambda _line: None,
        poll_s=poll_s,
        monotonic_ns=lambda: now_ns[0],
        spin_us=spin_us,
        reopen_delays_s=(0.0,),
    )
    server.now_ns = now_ns  # type: ignore[attr-defined]
    assert isinstance(link, PollableLink) or link_type is ScriptedLink
    return server, device, link  # type: ignore[return-value]


def unsealed_status_request() -> bytes:
    """A READ_STATUS outside a session: the pump answers it with an unsealed NAK."""
    return codec.encode(ReadStatus(), seq=5)


def test_a_turn_with_nothing_due_asks_the_device_nothing() -> None:
    server, device, link = make_server()
    server._turn()
    assert device.asked == 1  # the first turn learns the device's timers
    for _ in range(5):
        server._turn()
    assert device.asked == 1  # remembered: nothing was due and nobody touched the device
    assert link.timeouts == [POLL_S] * 6  # a manual clock's pump timer is never waited for


def hold_the_lock(server: PumpServer) -> None:
    with server.locked():
        pass


def inject_a_stall(server: PumpServer) -> None:
    server.inject(MotorStall())


def advance_a_second(server: PumpServer) -> None:
    server.advance(1_000)


def read_the_view(server: PumpServer) -> None:
    server.view()


@pytest.mark.parametrize(
    "touch",
    [
        pytest.param(hold_the_lock, id="locked"),
        pytest.param(inject_a_stall, id="inject"),
        pytest.param(advance_a_second, id="advance"),
        pytest.param(read_the_view, id="view"),
    ],
)
def test_a_control_call_makes_the_next_turn_ask_the_device_again(
    touch: Callable[[PumpServer], None],
) -> None:
    server, device, _link = make_server()
    server._turn()
    server._turn()
    before = device.asked
    touch(server)
    asked_by_the_call = device.asked - before
    server._turn()
    assert device.asked == before + asked_by_the_call + 1
    server._turn()
    assert device.asked == before + asked_by_the_call + 1  # and then remembers again


def test_received_bytes_are_answered_at_once_and_the_timers_noted_before_the_reply() -> None:
    server, device, link = make_server()
    server._turn()
    asked = device.asked
    link.inbox.append(unsealed_status_request())
    server._turn()  # reads, feeds, answers
    assert device.asked == asked + 1  # asked once, in the feed
    reply = codec.decode(link.sent()).message
    assert isinstance(reply, Nak)
    assert reply.code is RefusalCode.NOT_AUTHENTICATED
    server._turn()
    assert device.asked == asked + 1  # the turn after the reply asks nothing


def test_a_paced_reply_starts_on_the_wire_when_its_request_became_visible() -> None:
    """The serve thread wakes late for the request (12 bytes' wire time here): the reply's
    bytes still leave when a UART that started on it at the request's visible instant would
    have sent them, so the host's delay does not lengthen the programmer's round trip."""
    baud = 115_200
    wire = WireModel(baud)
    server, _device, link = make_server(baud=baud)
    now_ns = server.now_ns  # type: ignore[attr-defined]
    request = unsealed_status_request()
    arrival = now_ns[0]
    link.inbox.append(request)
    server._turn()  # the request is on the wire
    visible = arrival + wire.wire_ns(len(request))
    assert link.written == []
    now_ns[0] = visible + wire.wire_ns(12)  # the thread wakes a little over a ms late
    server._turn()
    unpaced, _, unpaced_link = make_server()
    unpaced_link.inbox.append(request)
    unpaced._turn()
    reply = unpaced_link.sent()  # the same answer, written at once
    reply_len = len(reply)
    last_due = visible + wire.wire_ns(reply_len)
    # What a UART started at ``visible`` had sent by now went out at once, and no more.
    assert reply_len > 12
    assert len(link.sent()) == 11  # the first slice (about 1 ms of wire) was due already
    now_ns[0] = last_due - 1
    server._turn()
    assert len(link.sent()) < reply_len  # never ahead of the wire
    now_ns[0] = last_due
    server._turn()
    assert link.sent() == reply
    assert isinstance(codec.decode(reply).message, Nak)


def test_the_turn_after_a_request_polls_the_link_before_it_blocks() -> None:
    """docs/serve.md "The serve loop's cost": the next request, microseconds behind the
    reply, is taken by a poll; no blocking read is made for it."""
    server, _device, link = make_server(spin_us=SPIN_US)
    server._turn()
    link.inbox.append(unsealed_status_request())
    server._turn()  # answered; the next turn spins
    link.arrives_at_poll[3] = unsealed_status_request()
    reads_before = len(link.timeouts)
    server._turn()
    assert link.polls == 3
    assert len(link.timeouts) == reads_before  # no blocking read: the poll got the request
    assert [isinstance(codec.decode(data).message, Nak) for _, data in link.written] == [
        True,
        True,
    ]


def test_a_spin_that_finds_nothing_blocks_for_the_rest_of_the_wait() -> None:
    server, _device, link = make_server(spin_us=SPIN_US)
    server._turn()
    link.inbox.append(unsealed_status_request())
    server._turn()
    server._turn()  # spins the whole window, then blocks
    assert link.polls == SPIN_US * 1_000 // POLL_NS
    assert link.timeouts[-1] == pytest.approx(POLL_S - SPIN_US / 1e6)
    server._turn()  # no bytes came: the link is idle, the next turn blocks at once
    assert link.polls == SPIN_US * 1_000 // POLL_NS
    assert link.timeouts[-1] == POLL_S


@pytest.mark.parametrize(
    ("baud", "spin_us"),
    [pytest.param(None, 0, id="spin-off"), pytest.param(115_200, SPIN_US, id="paced")],
)
def test_no_spin_when_off_or_paced(baud: int | None, spin_us: int) -> None:
    server, _device, link = make_server(baud=baud, spin_us=spin_us)
    for _ in range(3):
        link.inbox.append(unsealed_status_request())
        server._turn()
    assert link.polls == 0


def test_a_negative_spin_is_refused() -> None:
    with pytest.raises(ValueError, match="spin_us must be >= 0"):
        make_server(spin_us=-1)


def test_a_spin_never_outlasts_the_loops_wait() -> None:
    """A wait shorter than the window (a timer due in 100 us here): the spin ends with it
    and the blocking read is asked for nothing more."""
    server, _device, link = make_server(spin_us=SPIN_US, poll_s=0.0001)
    link.inbox.append(unsealed_status_request())
    server._turn()
    server._turn()
    assert link.polls == 100_000 // POLL_NS
    assert link.timeouts[-1] == 0.0


def test_a_link_without_read_now_is_polled_with_reads_of_no_wait() -> None:
    """A TCP listener or an in-memory link: the spin polls with ``read(0)``."""
    server, _device, link = make_server(spin_us=SPIN_US, link_type=ScriptedLink)
    link.inbox.append(unsealed_status_request())
    server._turn()
    link.inbox.append(unsealed_status_request())
    server._turn()
    assert link.timeouts[-1] == 0.0  # taken by the first poll
    assert len(link.written) == 2


class ReopenableLink(PollableLink):
    def reopen(self) -> None:
        """The port is back at once."""


def test_a_lost_link_starts_the_spin_afresh() -> None:
    """The programmer after a reconnect may be another: no skips carried over to it."""
    server, _device, link = make_server(spin_us=SPIN_US, link_type=ReopenableLink)
    link.inbox.append(unsealed_status_request())
    server._turn()
    server._turn()  # a window that found nothing: the next spin is skipped
    link.inbox.append(unsealed_status_request())
    server._turn()
    assert server._recover(LinkClosedError("pulled"))
    assert not server._spin_next  # no bytes since the loss: the next read blocks
    link.inbox.append(unsealed_status_request())
    server._turn()
    polls = link.polls
    link.arrives_at_poll[polls + 1] = unsealed_status_request()
    server._turn()  # spins at once, no skip left from before the loss
    assert link.polls == polls + 1
    assert len(link.written) == 4

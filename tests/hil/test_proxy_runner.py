"""``FaultProxy``: the threaded shell between two links, in-process over in-memory links.

These tests run real threads, so they wait, but only in bounded reads on the links (never a
bare sleep): each wait ends as soon as the bytes arrive.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hil.links import LinkClosedError, MemoryLink, memory_pair
from hil.proxy import (
    Direction,
    FaultApplied,
    FaultProxy,
    FaultSpec,
    Nth,
    ProxyEngine,
    ProxyEvent,
    Rate,
    Sent,
    memory_proxy,
    parse_fault,
    runner,
)
from protocol.codec import encode
from protocol.framer import FrameBytes, Framer
from protocol.messages import ReadStatus

pytestmark = pytest.mark.e2e  # real threads and real time: the e2e layer

DEADLINE_S = 30.0  # generous: a loaded 2-core machine starves threads


def frame(n: int) -> bytes:
    return encode(ReadStatus(), seq=n)


def read_until(link: MemoryLink, size: int, deadline_s: float = DEADLINE_S) -> bytes:
    """Read until ``size`` bytes came or the deadline passed (then return what came)."""
    data = b""
    end = time.monotonic() + deadline_s
    while len(data) < size and time.monotonic() < end:
        data += link.read(0.05)
    return data


def frames_in(data: bytes) -> list[bytes]:
    framer = Framer()
    return [e.data for e in [*framer.feed(data), *framer.finish()] if isinstance(e, FrameBytes)]


@pytest.fixture
def events() -> list[ProxyEvent]:
    return []


@pytest.fixture
def clean() -> Iterator[list[FaultProxy]]:
    """Proxies to stop at the end of a test, whatever happened in it."""
    proxies: list[FaultProxy] = []
    yield proxies
    for proxy in proxies:
        proxy.close()


def test_frames_cross_both_ways_unchanged_without_faults(clean: list[FaultProxy]) -> None:
    programmer, pump, proxy = memory_proxy()
    clean.append(proxy.start())
    requests = b"".join(frame(n) for n in range(1, 201))
    for n in range(1, 201):
        programmer.write(frame(n))
    assert read_until(pump, len(requests)) == requests
    pump.write(b"noise" + frame(1))
    assert read_until(programmer, 5 + len(frame(1))) == b"noise" + frame(1)
    assert proxy.stats.directions[Direction.A2B].frames_in == 200
    assert proxy.bytes_written == {Direction.A2B: len(requests), Direction.B2A: 22}


@pytest.mark.hazard("C2")
def test_a_dropped_frame_never_reaches_the_other_side(
    clean: list[FaultProxy], events: list[ProxyEvent]
) -> None:
    programmer, pump, proxy = memory_proxy(
        [parse_fault("drop", "@2,dir=a2b")], listeners=[events.append]
    )
    clean.append(proxy.start())
    for n in (1, 2, 3):
        programmer.write(frame(n))
    expected = frame(1) + frame(3)
    assert read_until(pump, len(expected)) == expected
    assert pump.read(0.05) == b""
    assert [(e.direction, e.frame) for e in events if isinstance(e, FaultApplied)] == [
        (Direction.A2B, 2)
    ]
    sent = b"".join(e.data for e in events if isinstance(e, Sent))
    assert sent == expected  # listeners see exactly what was written


def test_a_delayed_frame_arrives_no_earlier_than_its_delay(clean: list[FaultProxy]) -> None:
    programmer, pump, proxy = memory_proxy([FaultSpec.make("delay", Nth(1), by=150)])
    clean.append(proxy.start())
    started = time.monotonic()
    programmer.write(frame(1))
    programmer.write(frame(2))
    assert read_until(pump, 2 * len(frame(1))) == frame(1) + frame(2)
    # The proxy's clock counts whole milliseconds: a frame received 0.9 ms into a tick is
    # due 150 ticks later, up to 1 ms less of real time. Its delays are exact to that tick.
    assert time.monotonic() - started >= 0.149
    # The other direction was never held up.
    pump.write(frame(9))
    assert read_until(programmer, len(frame(9)), 1.0) == frame(9)


def test_split_pieces_arrive_in_order_and_join_to_the_frame(clean: list[FaultProxy]) -> None:
    programmer, pump, proxy = memory_proxy([parse_fault("split", "1,pieces=3,gap=20ms")])
    clean.append(proxy.start())
    programmer.write(frame(1) + frame(2))
    assert read_until(pump, 2 * len(frame(1))) == frame(1) + frame(2)


def test_held_bytes_are_forwarded_after_the_idle_time(clean: list[FaultProxy]) -> None:
    programmer, pump, proxy = memory_proxy(idle_ms=30)
    clean.append(proxy.start())
    head = frame(1)[:8]
    programmer.write(head)
    assert read_until(pump, len(head)) == head


@pytest.mark.hazard("C2")
def test_rates_through_the_threads_match_the_engine_alone(clean: list[FaultProxy]) -> None:
    """The runner adds I/O, not decisions: the same seed hits the same frames, however the
    reader thread happens to chunk the bytes."""
    faults = [FaultSpec.make("corrupt", Rate(0.2), bits=2), FaultSpec.make("drop", Rate(0.1))]
    alone = ProxyEngine(faults, seed=99)
    expected = b"".join(
        o.data for n in range(1, 101) for o in alone.receive(Direction.A2B, frame(n), 0)
    )
    assert 50 < len(frames_in(expected)) < 100
    programmer, pump, proxy = memory_proxy(faults, seed=99)
    clean.append(proxy.start())
    for n in range(1, 101):
        programmer.write(frame(n))
    assert read_until(pump, len(expected)) == expected


def test_closing_a_peer_stops_the_proxy_with_a_reason(clean: list[FaultProxy]) -> None:
    programmer, _pump, proxy = memory_proxy()
    clean.append(proxy.start())
    programmer.close()
    assert proxy.wait(DEADLINE_S)
    assert proxy.error is not None
    assert "closed" in str(proxy.error)
    assert not proxy.running


def test_stop_counts_delayed_bytes_that_were_never_sent(clean: list[FaultProxy]) -> None:
    programmer, pump, proxy = memory_proxy([parse_fault("delay", "1,by=10s")])
    clean.append(proxy.start())
    programmer.write(frame(1))
    end = time.monotonic() + DEADLINE_S
    while proxy.pending() == 0 and time.monotonic() < end:
        pump.read(0.01)  # a bounded wait for the reader thread to queue the frame
    proxy.stop()
    assert proxy.bytes_unsent[Direction.A2B] == len(frame(1))
    assert any("not delivered" in line for line in proxy.summary())
    assert pump.read(0.0) == b""


class FlakyLink:
    """A memory link whose reads and writes fail for a while, and that can be reopened,
    like a USB serial adapter pulled out and plugged back in."""

    def __init__(self, inner: MemoryLink, *, failing_reads: int, failing_writes: int) -> None:
        self._inner = inner
        self.failing_reads = failing_reads
        self.failing_writes = failing_writes
        self.reopened = 0

    @property
    def name(self) -> str:
        return "flaky"

    def read(self, timeout_s: float) -> bytes:
        if self.failing_reads:
            self.failing_reads -= 1
            raise LinkClosedError("flaky: link lost: unplugged")
        return self._inner.read(timeout_s)

    def write(self, data: bytes) -> None:
        if self.failing_writes:
            self.failing_writes -= 1
            raise LinkClosedError("flaky: link lost while writing: unplugged")
        self._inner.write(data)

    def reopen(self) -> None:
        self.reopened += 1

    def close(self) -> None:
        self._inner.close()


def test_a_lost_side_is_reopened_and_unwritable_bytes_are_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner, "REOPEN_INTERVAL_S", 0.01)
    a_outer, a_inner = memory_pair("a")
    b_inner, b_outer = memory_pair("b")
    flaky = FlakyLink(b_inner, failing_reads=1, failing_writes=2)
    lines: list[str] = []
    with FaultProxy(a_inner, flaky, log=lines.append) as proxy:
        for n in (1, 2, 3):
            a_outer.write(frame(n))
            # Each frame is written on its own (bounded wait), so two writes fail.
            end = time.monotonic() + DEADLINE_S
            while proxy.stats.directions[Direction.A2B].frames_in < n:
                assert time.monotonic() < end
                a_outer.read(0.01)
        assert read_until(b_outer, len(frame(3))) == frame(3)
        b_outer.write(frame(7))
        assert read_until(a_outer, len(frame(7))) == frame(7)
    assert flaky.reopened == 1
    assert proxy.bytes_unsent[Direction.A2B] == len(frame(1)) + len(frame(2))
    assert proxy.error is None
    assert any("reopening" in line for line in lines)
    assert any("is back" in line for line in lines)
    # One line per outage, not one per failed write.
    assert sum("cannot write" in line for line in lines) == 1


def test_flush_forwards_held_bytes_without_waiting_for_idle(clean: list[FaultProxy]) -> None:
    programmer, pump, proxy = memory_proxy(idle_ms=60_000)
    clean.append(proxy.start())
    head = frame(1)[:8]
    programmer.write(head)
    end = time.monotonic() + DEADLINE_S
    while proxy.stats.directions[Direction.A2B].bytes_in < len(head):
        assert time.monotonic() < end
        pump.read(0.01)  # bounded wait for the reader thread to take the bytes
    assert pump.read(0.05) == b""  # held as a possible frame start
    proxy.flush()
    assert read_until(pump, len(head)) == head

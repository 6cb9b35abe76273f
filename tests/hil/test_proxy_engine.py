"""The proxy's sans-IO fault engine: exact outcomes from (direction, bytes, now) calls.

No threads and no sleeping: time is the ``now_ms`` argument. Outputs are checked byte for
byte and frame for frame, and hypothesis checks the transparency properties for any
chunking.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil.proxy.engine import (
    FaultApplied,
    FrameLost,
    Output,
    ProxyEngine,
    ProxyEvent,
    Received,
)
from hil.proxy.faults import Direction, FaultKind, FaultSpec, Nth, Rate, Window, parse_fault
from protocol.codec import encode
from protocol.framer import FrameBytes, Framer
from protocol.messages import ReadStatus, StartTherapy

A2B = Direction.A2B
B2A = Direction.B2A


def frame(n: int) -> bytes:
    """A valid request frame, distinct per ``n`` (17 or 21 bytes)."""
    if n % 2:
        return encode(ReadStatus(), seq=n)
    return encode(StartTherapy(command_id=n), seq=n)


def frames_in(data: bytes) -> list[bytes]:
    """The frames a receiving framer finds in ``data`` (stream end included)."""
    framer = Framer()
    events = [*framer.feed(data), *framer.finish()]
    return [e.data for e in events if isinstance(e, FrameBytes)]


def joined(outputs: Sequence[Output], direction: Direction = A2B) -> bytes:
    return b"".join(o.data for o in outputs if o.direction is direction)


class Recorder:
    def __init__(self) -> None:
        self.events: list[ProxyEvent] = []

    def __call__(self, event: ProxyEvent) -> None:
        self.events.append(event)

    def faults(self) -> list[tuple[Direction, int, FaultKind]]:
        return [(e.direction, e.frame, e.kind) for e in self.events if isinstance(e, FaultApplied)]


def engine(*specs: str | FaultSpec, seed: int = 1, **kwargs: int) -> tuple[ProxyEngine, Recorder]:
    """An engine from CLI-style specs ("drop @2") or FaultSpec values, with a recorder."""
    faults = [s if isinstance(s, FaultSpec) else parse_fault(*s.split(" ", 1)) for s in specs]
    recorder = Recorder()
    return ProxyEngine(faults, seed=seed, listeners=[recorder], **kwargs), recorder


def send_frames(
    proxy: ProxyEngine,
    count: int,
    direction: Direction = A2B,
    *,
    step_ms: int = 10,
    start_ms: int = 0,
) -> list[Output]:
    """Frames 1..count, one per call, ``step_ms`` apart from ``start_ms``."""
    out: list[Output] = []
    for n in range(1, count + 1):
        out += proxy.receive(direction, frame(n), start_ms + (n - 1) * step_ms)
    return out


# -- no faults: a transparent, zero-latency pipe ----------------------------------------------


def test_without_faults_frames_go_out_whole_and_at_once() -> None:
    proxy, recorder = engine()
    out = proxy.receive(A2B, frame(1) + frame(2), 5)
    assert out == [Output(5, A2B, frame(1)), Output(5, A2B, frame(2))]
    assert proxy.receive(B2A, frame(3), 6) == [Output(6, B2A, frame(3))]
    assert recorder.faults() == []
    assert [e for e in recorder.events if isinstance(e, Received)] == [
        Received(5, A2B, frame(1) + frame(2)),
        Received(6, B2A, frame(3)),
    ]
    stats = proxy.stats.directions[A2B]
    assert (stats.frames_in, stats.frames_out, stats.noise_bytes) == (2, 2, 0)


def test_a_frame_split_across_reads_goes_out_when_complete() -> None:
    proxy, _ = engine()
    data = frame(1)
    assert proxy.receive(A2B, data[:7], 0) == []
    assert proxy.next_timer_ms() == 100  # held as a possible frame for idle_ms
    assert proxy.receive(A2B, data[7:], 3) == [Output(3, A2B, data)]
    assert proxy.next_timer_ms() is None


def test_noise_is_forwarded_as_soon_as_it_is_known_to_be_noise() -> None:
    proxy, _ = engine()
    assert proxy.receive(A2B, b"hello", 0) == [Output(0, A2B, b"hello")]
    # A trailing A5 may be the start of a sync: held, then released when it is not.
    assert proxy.receive(A2B, b"ab\xa5", 1) == [Output(1, A2B, b"ab")]
    assert proxy.receive(A2B, b"z", 2) == [Output(2, A2B, b"\xa5z")]
    assert proxy.stats.directions[A2B].noise_bytes == 9


def test_noise_keeps_its_place_before_and_after_frames() -> None:
    proxy, _ = engine()
    stream = b"\x00\x01" + frame(1) + b"\x02" + frame(2) + b"\x03\x04"
    out = proxy.receive(A2B, stream, 0)
    assert [o.data for o in out] == [b"\x00\x01", frame(1), b"\x02", frame(2), b"\x03\x04"]


def test_a_held_candidate_is_released_after_idle_ms_of_silence() -> None:
    proxy, _ = engine(idle_ms=50)
    head = frame(1)[:10]
    assert proxy.receive(A2B, head, 1000) == []
    assert proxy.next_timer_ms() == 1050
    assert proxy.handle_timer(1049) == []
    assert proxy.handle_timer(1050) == [Output(1050, A2B, head)]
    assert proxy.next_timer_ms() is None
    # The framer starts afresh: the next whole frame is still a frame.
    assert proxy.receive(A2B, frame(2), 1100) == [Output(1100, A2B, frame(2))]


def test_flush_releases_everything_held() -> None:
    proxy, _ = engine()
    proxy.receive(A2B, frame(1)[:5], 0)
    proxy.receive(B2A, b"\xa5", 0)
    out = proxy.flush(1)
    assert joined(out, A2B) == frame(1)[:5]
    assert joined(out, B2A) == b"\xa5"


def test_time_never_goes_backwards() -> None:
    proxy, _ = engine()
    proxy.receive(A2B, b"x", 10)
    with pytest.raises(ValueError, match="backwards"):
        proxy.receive(A2B, b"x", 9)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="seed"):
        ProxyEngine(seed=-1)
    with pytest.raises(ValueError, match="idle_ms"):
        ProxyEngine(idle_ms=0)


# -- each fault kind does exactly what it says -----------------------------------------------


@pytest.mark.hazard("C2")
def test_drop_at_n_removes_exactly_that_frame() -> None:
    proxy, recorder = engine("drop @2")
    out = send_frames(proxy, 4)
    assert frames_in(joined(out)) == [frame(1), frame(3), frame(4)]
    assert recorder.faults() == [(A2B, 2, FaultKind.DROP)]
    stats = proxy.stats.directions[A2B]
    assert (stats.frames_in, stats.frames_out) == (4, 3)
    assert proxy.stats.faults == {FaultKind.DROP: 1}


@pytest.mark.hazard("C2")
def test_corrupt_flips_exactly_k_bits_and_the_receiver_rejects_the_frame() -> None:
    proxy, recorder = engine("corrupt @1,bits=3")
    original = frame(1)
    (out,) = proxy.receive(A2B, original, 0)
    assert len(out.data) == len(original)
    diff = int.from_bytes(out.data, "little") ^ int.from_bytes(original, "little")
    assert diff.bit_count() == 3
    (event,) = [e for e in recorder.events if isinstance(e, FaultApplied)]
    bits = dict(event.info)["bits"]
    assert isinstance(bits, tuple)
    assert sum(1 << b for b in bits) == diff  # the log names the very bits flipped
    assert frames_in(out.data) == []  # CRC-16 catches every error of 3 bits or fewer


@pytest.mark.hazard("C2")
def test_truncate_sends_a_strict_prefix_and_the_next_frame_still_gets_through() -> None:
    proxy, recorder = engine("truncate @1")
    out = send_frames(proxy, 2)
    first, second = out
    assert 1 <= len(first.data) < len(frame(1))
    assert frame(1).startswith(first.data)
    assert second.data == frame(2)
    (event,) = [e for e in recorder.events if isinstance(e, FaultApplied)]
    assert dict(event.info)["kept"] == len(first.data)
    # The receiver resynchronises past the cut frame (docs/protocol.md rule 3).
    assert frames_in(joined(out)) == [frame(2)]


@pytest.mark.hazard("C2")
def test_truncate_keeps_at_least_one_byte_and_always_cuts_something() -> None:
    proxy, _ = engine("truncate 1")
    odd = [frame(n) for n in range(1, 400, 2)]  # all 17 bytes long
    sent = [proxy.receive(A2B, data, 0) for data in odd]
    assert all(len(out) == 1 for out in sent)
    kept = [out[0].data for out in sent]
    assert all(data.startswith(part) for data, part in zip(odd, kept, strict=True))
    assert min(map(len, kept)) == 1
    assert max(map(len, kept)) == 16


def test_duplicate_sends_the_frame_twice_back_to_back() -> None:
    proxy, recorder = engine("duplicate @2")
    out = send_frames(proxy, 3)
    assert frames_in(joined(out)) == [frame(1), frame(2), frame(2), frame(3)]
    assert [o.due_ms for o in out] == [0, 10, 10, 20]
    assert recorder.faults() == [(A2B, 2, FaultKind.DUPLICATE)]
    assert proxy.stats.directions[A2B].frames_out == 3


def test_delay_holds_the_frame_and_what_follows_it_in_that_direction_only() -> None:
    proxy, _ = engine("delay @1,by=250ms,dir=a2b")
    assert proxy.receive(A2B, frame(1), 100) == [Output(350, A2B, frame(1))]
    # A wire is FIFO: a later a->b frame waits behind the delayed one ...
    assert proxy.receive(A2B, frame(2), 120) == [Output(350, A2B, frame(2))]
    # ... and so does a->b noise, but the other direction is not held up.
    assert proxy.receive(A2B, b"zz", 130) == [Output(350, A2B, b"zz")]
    assert proxy.receive(B2A, frame(1), 130) == [Output(130, B2A, frame(1))]
    # Once the queue has drained, frames go out at once again.
    assert proxy.receive(A2B, frame(3), 400) == [Output(400, A2B, frame(3))]


def test_split_sends_pieces_gap_ms_apart_that_join_to_the_frame() -> None:
    proxy, recorder = engine("split @1,pieces=3,gap=5ms")
    out = proxy.receive(A2B, frame(1), 10)
    assert len(out) == 3
    assert b"".join(o.data for o in out) == frame(1)
    assert [o.due_ms for o in out] == [10, 15, 20]
    assert all(o.data for o in out)
    (event,) = [e for e in recorder.events if isinstance(e, FaultApplied)]
    cuts = dict(event.info)["cuts"]
    assert cuts == (len(out[0].data), len(out[0].data) + len(out[1].data))
    # The next frame queues behind the last piece.
    assert proxy.receive(A2B, frame(2), 11) == [Output(20, A2B, frame(2))]


def test_split_never_makes_more_pieces_than_bytes() -> None:
    proxy, _ = engine("truncate @1", "split @1,pieces=40")
    out = proxy.receive(A2B, frame(1), 0)
    kept = b"".join(o.data for o in out)
    assert frame(1).startswith(kept)
    assert len(out) == len(kept)  # one byte per piece at most


def test_junk_puts_n_random_bytes_before_the_frame() -> None:
    proxy, recorder = engine("junk @1,bytes=5")
    junk, original = proxy.receive(A2B, frame(1), 0)
    assert len(junk.data) == 5
    assert original.data == frame(1)
    (event,) = [e for e in recorder.events if isinstance(e, FaultApplied)]
    assert junk.data.hex() in event.detail
    assert frames_in(junk.data + original.data) == [frame(1)]


@pytest.mark.hazard("C2")
def test_disconnect_cuts_both_ways_for_its_duration() -> None:
    proxy, recorder = engine("disconnect @2,for=1s,dir=a2b")
    assert proxy.receive(A2B, frame(1), 0) == [Output(0, A2B, frame(1))]
    # b->a has half a frame held when a->b frame 2 triggers the cut at t=100.
    head = frame(7)[:9]
    assert proxy.receive(B2A, head, 90) == []
    out = proxy.receive(A2B, frame(2) + frame(3), 100)
    # Bytes that arrived before the cut were delivered (a wire had carried them);
    # the trigger frame and everything after it in the cut are gone.
    assert out == [Output(100, B2A, head)]
    assert proxy.disconnected(100)
    assert proxy.receive(B2A, frame(8), 500) == []
    # A frame whose head arrived in the cut is not delivered when its tail arrives after.
    assert proxy.receive(B2A, frame(9)[:4], 1050) == []
    assert proxy.receive(A2B, b"noise" + frame(4), 1099) == []  # the last ms of the cut
    assert proxy.receive(B2A, frame(9)[4:], 1100) == [Output(1100, B2A, frame(9)[4:])]
    assert proxy.receive(A2B, frame(5), 1100) == [Output(1100, A2B, frame(5))]
    assert recorder.faults() == [(A2B, 2, FaultKind.DISCONNECT)]
    lost = [(e.direction, e.frame) for e in recorder.events if isinstance(e, FrameLost)]
    assert lost == [(A2B, 3), (B2A, 1), (A2B, 4)]
    a2b, b2a = proxy.stats.directions[A2B], proxy.stats.directions[B2A]
    assert (a2b.frames_in, a2b.frames_out, a2b.frames_lost) == (5, 2, 2)
    assert b2a.frames_lost == 1
    cut_bytes = len(frame(3)) + len(b"noise" + frame(4))
    assert a2b.bytes_cut == cut_bytes
    assert b2a.bytes_cut == len(frame(8)) + 4


def test_disconnect_leftovers_are_dropped_by_the_idle_timer_too() -> None:
    proxy, _ = engine("disconnect @1,for=100ms,dir=a2b", idle_ms=20)
    proxy.receive(A2B, frame(1), 0)
    assert proxy.receive(B2A, frame(2)[:6], 50) == []
    assert proxy.next_timer_ms() == 70
    # Still in the cut: ending the candidate forwards nothing.
    assert proxy.handle_timer(70) == []
    assert proxy.receive(B2A, frame(3)[:6], 90) == []
    # After the cut, what arrived during it is dropped rather than forwarded as noise.
    assert proxy.handle_timer(110) == []
    assert proxy.stats.directions[B2A].bytes_cut == 12
    assert proxy.receive(B2A, frame(4), 120) == [Output(120, B2A, frame(4))]


# -- triggers --------------------------------------------------------------------------------


def test_nth_counts_frames_per_direction_and_noise_does_not_count() -> None:
    proxy, recorder = engine("drop @2")
    proxy.receive(A2B, b"junk" + frame(1), 0)
    proxy.receive(B2A, frame(1), 1)
    proxy.receive(A2B, b"\x00" * 40, 2)
    proxy.receive(A2B, frame(2), 3)
    proxy.receive(B2A, frame(2), 4)
    proxy.receive(A2B, frame(3), 5)
    assert recorder.faults() == [(A2B, 2, FaultKind.DROP), (B2A, 2, FaultKind.DROP)]


def test_direction_selection() -> None:
    proxy, recorder = engine("drop 1,dir=b2a")
    a_out = send_frames(proxy, 3, A2B)
    b_out = send_frames(proxy, 3, B2A, start_ms=100)
    assert frames_in(joined(a_out)) == [frame(1), frame(2), frame(3)]
    assert b_out == []
    assert {d for d, _, _ in recorder.faults()} == {B2A}


def test_window_hits_exactly_the_frames_inside_it() -> None:
    proxy, recorder = engine("drop 2s..5s", start_ms=10_000)
    times = [11_999, 12_000, 13_000, 14_999, 15_000, 20_000]
    for n, now in enumerate(times, start=1):
        proxy.receive(A2B, frame(n), now)
    assert [f for _, f, _ in recorder.faults()] == [2, 3, 4]


def test_open_windows() -> None:
    proxy, recorder = engine("corrupt 3s..", "drop ..1s")
    for n, now in enumerate([0, 999, 1000, 2999, 3000, 9000], start=1):
        proxy.receive(A2B, frame(n), now)
    assert recorder.faults() == [
        (A2B, 1, FaultKind.DROP),
        (A2B, 2, FaultKind.DROP),
        (A2B, 5, FaultKind.CORRUPT),
        (A2B, 6, FaultKind.CORRUPT),
    ]


@pytest.mark.hazard("C2")
@pytest.mark.parametrize("rate", [0.01, 0.05, 0.3])
def test_rates_are_honoured(rate: float) -> None:
    proxy, recorder = engine(FaultSpec.make("drop", Rate(rate)), seed=11)
    n = 20_000
    send_frames(proxy, n, step_ms=1)
    hits = len(recorder.faults())
    # Binomial(n, rate): 5 standard deviations either side (a fixed seed, so never flaky;
    # a wrong rate, e.g. a percent read as a fraction, is far outside).
    spread = 5 * math.sqrt(n * rate * (1 - rate))
    assert abs(hits - n * rate) < spread
    assert proxy.stats.directions[A2B].frames_out == n - hits


def test_rate_zero_and_one() -> None:
    never, never_log = engine("drop 0")
    always, always_log = engine("drop 1")
    assert len(frames_in(joined(send_frames(never, 50)))) == 50
    assert send_frames(always, 50) == []
    assert (len(never_log.faults()), len(always_log.faults())) == (0, 50)


def test_same_seed_same_faults_other_seed_other_faults() -> None:
    def hits(seed: int) -> list[tuple[Direction, int, FaultKind]]:
        proxy, recorder = engine("drop 0.2", "corrupt 0.2", seed=seed)
        send_frames(proxy, 300)
        return recorder.faults()

    assert hits(5) == hits(5)
    assert hits(5) != hits(6)


def test_which_frames_are_hit_does_not_depend_on_fault_parameters() -> None:
    def frames_hit(bits: int) -> list[int]:
        proxy, recorder = engine(f"corrupt 0.3,bits={bits}", "drop 0.1")
        send_frames(proxy, 200)
        return [f for _, f, k in recorder.faults() if k is FaultKind.CORRUPT]

    assert frames_hit(1) == frames_hit(7)


def test_directions_draw_independently_of_their_interleaving() -> None:
    def a2b_hits(with_replies: bool) -> list[int]:
        proxy, recorder = engine("drop 0.3")
        for n in range(1, 101):
            proxy.receive(A2B, frame(n), n)
            if with_replies and n % 3:
                proxy.receive(B2A, frame(n), n)
        return [f for d, f, _ in recorder.faults() if d is A2B]

    assert a2b_hits(with_replies=False) == a2b_hits(with_replies=True)


# -- combinations ----------------------------------------------------------------------------


def test_combined_faults_on_one_frame_apply_in_a_fixed_order() -> None:
    proxy, recorder = engine(
        "delay @1,by=40ms", "duplicate @1", "corrupt @1,bits=2", "junk @1,bytes=3"
    )
    out = proxy.receive(A2B, frame(1), 0)
    junk, copy1, copy2 = out
    assert len(junk.data) == 3
    assert copy1.data == copy2.data != frame(1)
    diff = int.from_bytes(copy1.data, "little") ^ int.from_bytes(frame(1), "little")
    assert diff.bit_count() == 2
    assert {o.due_ms for o in out} == {40}
    assert [k for _, _, k in recorder.faults()] == [
        FaultKind.CORRUPT,
        FaultKind.DUPLICATE,
        FaultKind.JUNK,
        FaultKind.DELAY,
    ]


def test_truncation_comes_before_corruption_so_every_flipped_bit_is_sent() -> None:
    proxy, recorder = engine("truncate @1", "corrupt @1,bits=8")
    (out,) = proxy.receive(A2B, frame(1), 0)
    prefix = frame(1)[: len(out.data)]
    diff = int.from_bytes(out.data, "little") ^ int.from_bytes(prefix, "little")
    assert diff.bit_count() == min(8, 8 * len(out.data))
    assert [k for _, _, k in recorder.faults()] == [FaultKind.TRUNCATE, FaultKind.CORRUPT]


def test_drop_wins_and_the_faults_it_makes_moot_are_not_logged() -> None:
    proxy, recorder = engine("corrupt @1", "drop @1", "delay @1")
    assert proxy.receive(A2B, frame(1), 0) == []
    assert recorder.faults() == [(A2B, 1, FaultKind.DROP)]
    assert proxy.stats.faults == {FaultKind.DROP: 1}


def test_of_two_faults_of_one_kind_the_first_listed_applies() -> None:
    proxy, _ = engine("delay @1,by=10ms", "delay 1,by=500ms")
    assert proxy.receive(A2B, frame(1), 0) == [Output(10, A2B, frame(1))]
    assert proxy.receive(A2B, frame(2), 20) == [Output(520, A2B, frame(2))]


def test_summary_lines() -> None:
    proxy, _ = engine("drop @1", "duplicate @2")
    send_frames(proxy, 3)
    proxy.receive(B2A, b"xyz", 40)
    lines = proxy.stats.summary(2500)
    assert lines[0] == "summary after 2.5s:"
    assert lines[1].startswith("  a->b: 3 frames in, 2 forwarded, 0 noise bytes")
    assert lines[2].startswith("  b->a: 0 frames in, 0 forwarded, 3 noise bytes")
    assert lines[3] == "  faults: drop 1, duplicate 1 (total 2)"


def test_fault_log_lines_name_time_direction_frame_and_fault() -> None:
    proxy, recorder = engine("delay @1,by=1s,dir=b2a", start_ms=1000)
    proxy.receive(B2A, frame(1), 1250)
    (event,) = [e for e in recorder.events if isinstance(e, FaultApplied)]
    assert event.describe() == "t=250ms b->a frame 1: delay (by 1000ms)"
    assert event.spec == parse_fault("delay", "@1,by=1s,dir=b2a")


# -- properties ----------------------------------------------------------------------------------

pieces_of_stream = st.lists(
    st.one_of(
        st.integers(1, 60).map(frame),
        st.binary(min_size=1, max_size=30),
    ),
    max_size=12,
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[lo:hi] for lo, hi in itertools.pairwise(points) if hi > lo]


@given(pieces_of_stream, st.lists(st.integers(0, 10_000), max_size=20))
def test_without_faults_output_equals_input_for_any_chunking(
    pieces: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(pieces)
    proxy, _ = engine()
    out: list[Output] = []
    for now, chunk in enumerate(chunked(data, cuts)):
        batch = proxy.receive(A2B, chunk, now)
        assert all(o.due_ms == now for o in batch)  # never held back once decided
        out += batch
    out += proxy.flush(len(data) + 1)
    assert joined(out) == data
    assert proxy.stats.faults == {}


@given(
    st.lists(st.integers(1, 60), max_size=15),
    st.lists(st.integers(0, 10_000), max_size=20),
    st.integers(0, 2**32),
)
def test_with_only_delays_every_frame_arrives_once_intact_and_in_order(
    numbers: list[int], cuts: list[int], seed: int
) -> None:
    data = b"".join(frame(n) for n in numbers)
    proxy, _ = engine("delay 0.4,by=30ms", "delay @2,by=1s", seed=seed)
    out: list[Output] = []
    for now, chunk in enumerate(chunked(data, cuts)):
        out += proxy.receive(A2B, chunk, now * 7)
    assert joined(out) == data
    assert frames_in(joined(out)) == [frame(n) for n in numbers]
    dues = [o.due_ms for o in out]
    assert dues == sorted(dues)


@given(
    st.lists(st.integers(1, 60), max_size=15),
    st.lists(st.integers(0, 10_000), max_size=10),
    st.integers(0, 2**32),
)
def test_shaping_faults_keep_every_frame_and_the_order(
    numbers: list[int], cuts: list[int], seed: int
) -> None:
    """Duplicate, split and delay change how and when, never which frames or their order."""
    data = b"".join(frame(n) for n in numbers)
    proxy, _ = engine("duplicate 0.3", "split 0.3,pieces=3,gap=2ms", "delay 0.3,by=5ms", seed=seed)
    out: list[Output] = []
    for now, chunk in enumerate(chunked(data, cuts)):
        out += proxy.receive(A2B, chunk, now)
    received = frames_in(joined(out))
    deduplicated = [f for i, f in enumerate(received) if i == 0 or f != received[i - 1]]
    # Equal neighbours in the input would merge too; compare like with like.
    expected = [frame(n) for n in numbers]
    expected = [f for i, f in enumerate(expected) if i == 0 or f != expected[i - 1]]
    assert deduplicated == expected
    assert len(received) == len(numbers) + proxy.stats.faults[FaultKind.DUPLICATE]
    dues = [o.due_ms for o in out]
    assert dues == sorted(dues)


@given(st.lists(st.integers(1, 60), min_size=1, max_size=30), st.integers(0, 2**32))
def test_the_same_seed_and_input_give_the_same_outputs(numbers: list[int], seed: int) -> None:
    specs = ("drop 0.2", "corrupt 0.2,bits=2", "truncate 0.1", "junk 0.1", "split 0.2")

    def run() -> list[Output]:
        proxy, _ = engine(*specs, seed=seed)
        return [o for t, n in enumerate(numbers) for o in proxy.receive(A2B, frame(n), t)]

    assert run() == run()


@pytest.mark.hazard("C2")
@given(st.lists(st.integers(1, 60), min_size=1, max_size=20), st.integers(0, 2**32))
def test_lossy_faults_lose_exactly_the_frames_they_hit(numbers: list[int], seed: int) -> None:
    """Whatever drop, corrupt and truncate do, the receiver finds exactly the frames they
    left alone, in order: a damaged frame is rejected and never hides the next one (C2)."""
    proxy, recorder = engine("drop 0.2", "corrupt 0.3,bits=2", "truncate 0.2", seed=seed)
    out = [o for t, n in enumerate(numbers) for o in proxy.receive(A2B, frame(n), t)]
    damaged = {number for _, number, _ in recorder.faults()}
    intact = [frame(n) for i, n in enumerate(numbers, start=1) if i not in damaged]
    assert frames_in(joined(out)) == intact


def test_window_spec_from_python() -> None:
    proxy, recorder = engine(
        FaultSpec.make("drop", Window(100, 200)), FaultSpec.make("drop", Nth(1))
    )
    for n, now in enumerate([0, 100, 199, 200], start=1):
        proxy.receive(A2B, frame(n), now)
    assert [f for _, f, _ in recorder.faults()] == [1, 2, 3]

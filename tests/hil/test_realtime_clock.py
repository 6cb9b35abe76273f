"""Real-time clocks, tested with an injected nanosecond source: no sleeping."""

from __future__ import annotations

import time

import pytest

from emulator.clock import Clock
from hil.clock import NS_PER_MS, ScaledClock, SystemClock


class FakeSource:
    """A monotonic nanosecond counter the test moves by hand."""

    def __init__(self, ns: int = 123_456_789_000) -> None:
        self.ns = ns

    def __call__(self) -> int:
        return self.ns


def test_system_clock_follows_the_source_from_start_ms() -> None:
    src = FakeSource()
    c: Clock = SystemClock(start_ms=5_000, source=src)
    assert c.now_ms() == 5_000
    src.ns += 999_999  # under a millisecond: not yet
    assert c.now_ms() == 5_000
    src.ns += 1
    assert c.now_ms() == 5_001
    src.ns += 3_600 * 1_000 * NS_PER_MS
    assert c.now_ms() == 5_001 + 3_600_000


def test_scaled_clock_runs_factor_times_faster() -> None:
    src = FakeSource()
    c = ScaledClock(60, start_ms=0, source=src)
    assert c.factor == 60
    src.ns += 1_000 * NS_PER_MS  # one real second
    assert c.now_ms() == 60_000
    src.ns += 24 * 3_600 * 1_000 * NS_PER_MS  # one real day: 60 pump days
    assert c.now_ms() == 60_000 + 60 * 86_400_000
    # Sub-ms real steps still count exactly: 1/60 ms real = 1 pump ms would be a float;
    # here 16_667 ns * 60 = 1_000_020 ns -> 1 more pump ms.
    before = c.now_ms()
    src.ns += 16_667
    assert c.now_ms() == before + 1


def test_clock_never_goes_backwards_even_if_the_source_does() -> None:
    src = FakeSource()
    c = ScaledClock(10, source=src)
    src.ns += 5 * NS_PER_MS
    assert c.now_ms() == 50
    src.ns -= 4 * NS_PER_MS
    assert c.now_ms() == 50
    src.ns += 10 * NS_PER_MS
    assert c.now_ms() == 110


def test_real_ns_until_is_the_least_wait() -> None:
    src = FakeSource()
    c = ScaledClock(60, start_ms=1_000, source=src)
    wait = c.real_ns_until(1_001)
    assert wait == -(-NS_PER_MS // 60)  # ceil(1e6 / 60) = 16_667 ns
    src.ns += wait - 1
    assert c.now_ms() == 1_000  # one ns early: not there yet
    src.ns += 1
    assert c.now_ms() == 1_001
    assert c.real_ns_until(1_001) == 0
    assert c.real_ns_until(0) == 0  # in the past


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="factor"):
        ScaledClock(0)
    with pytest.raises(ValueError, match="factor"):
        ScaledClock(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="start_ms"):
        SystemClock(start_ms=-1)


def test_default_source_is_monotonic_and_starts_at_start_ms() -> None:
    # The real source, no sleep: two reads are ordered and start where asked.
    c = SystemClock(start_ms=10_000)
    t0 = time.monotonic_ns()
    first = c.now_ms()
    second = c.now_ms()
    assert 10_000 <= first <= second
    assert second - 10_000 <= (time.monotonic_ns() - t0) // NS_PER_MS + 1

"""Unit tests of the exact delivery engine (docs/architecture.md, delivery engine contract).

Expected values are worked out by hand in the comments, independently of the engine's
formulas, so a wrong formula fails here even before the differential tests run.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.delivery import MS_PER_DAY, DeliveryEngine, EngineState, Strokes
from emulator.errors import TimeError

MINUTE = 60_000
# 100 nL strokes at 144_000 nL/day: 1440 strokes a day, one per minute exactly.
ONE_PER_MINUTE = 144_000


def drain(engine: DeliveryEngine, until_ms: int) -> list[int]:
    """Every stroke time up to until_ms, by jumping from one next_stroke_ms to the next."""
    times: list[int] = []
    while (t := engine.next_stroke_ms()) is not None and t <= until_ms:
        got = engine.advance(t)
        assert got.first_ms == got.last_ms == t
        times.extend([t] * got.count)
    engine.advance(until_ms)
    return times


def test_ms_per_day() -> None:
    assert MS_PER_DAY == 86_400_000


def test_one_stroke_per_minute_exact_times() -> None:
    e = DeliveryEngine(stroke_nl=100, start_ms=5)
    e.set_basal(ONE_PER_MINUTE)
    assert e.next_stroke_ms() == 5 + MINUTE
    assert e.advance(5 + MINUTE - 1) == Strokes(0, None, None)
    assert e.advance(5 + MINUTE) == Strokes(1, 5 + MINUTE, 5 + MINUTE)
    # One hour later: 60 strokes, the first a minute after the last one.
    assert e.advance(5 + 61 * MINUTE) == Strokes(60, 5 + 2 * MINUTE, 5 + 61 * MINUTE)
    assert e.now_ms == 5 + 61 * MINUTE


def test_first_stroke_at_first_ms_threshold_is_reached() -> None:
    # The accumulator grows by the rate (nL/day) every ms; a 1 nL stroke needs 8.64e7.
    # r = 30_000_000 nL/day: first stroke at t = ceil(8.64e7 / 3e7) = 3 ms
    # (2 ms gives 6e7 < 8.64e7, 3 ms gives 9e7 >= 8.64e7). Remainder 3.6e6 carries:
    # 2nd stroke when 3.6e6 + 3e7*t >= 8.64e7 -> t = ceil(8.28e7/3e7) = 3 -> at 6 ms;
    # remainder 3.6e6 + 9e7 - 8.64e7 = 7.2e6; 3rd: ceil(7.92e7/3e7) = 3 -> 9 ms;
    # remainder 1.08e7; 4th: ceil(7.56e7/3e7) = 3 -> 12 ms; ... until remainder
    # reaches 2.88e7 after the 8th stroke at 24 ms, then ceil(5.76e7/3e7) = 2 -> 26 ms.
    e = DeliveryEngine(stroke_nl=1, start_ms=0)
    e.set_basal(30_000_000)
    assert drain(e, 30) == [3, 6, 9, 12, 15, 18, 21, 24, 26, 29]


def test_time_of_stroke_and_strokes_between_one_per_minute() -> None:
    e = DeliveryEngine(stroke_nl=100, start_ms=0)
    e.set_basal(ONE_PER_MINUTE)
    assert e.time_of_stroke(1) == MINUTE
    assert e.time_of_stroke(100_000) == 100_000 * MINUTE
    assert e.strokes_between(0) == 0
    assert e.strokes_between(MINUTE - 1) == 0
    assert e.strokes_between(MINUTE) == 1
    assert e.strokes_between(10 * MINUTE + 59_999) == 10
    assert e.now_ms == 0  # asking does not advance


def test_rate_zero_never_strokes_and_holds_remainder() -> None:
    e = DeliveryEngine(stroke_nl=100, start_ms=0)
    e.set_basal(ONE_PER_MINUTE)
    assert e.advance(30_000) == Strokes(0, None, None)  # half a stroke accumulated
    e.set_basal(0)
    assert e.next_stroke_ms() is None
    assert e.time_of_stroke(5) is None
    assert e.strokes_between(10**15) == 0
    assert e.advance(10 * MS_PER_DAY) == Strokes(0, None, None)
    e.set_basal(ONE_PER_MINUTE)
    # The held half stroke completes after another 30 s, not a full minute, and nothing
    # is caught up for the stopped time.
    assert e.next_stroke_ms() == 10 * MS_PER_DAY + 30_000
    assert e.strokes_between(10 * MS_PER_DAY + 30_000) == 1


def test_remainder_carries_across_rate_change() -> None:
    e = DeliveryEngine(stroke_nl=100, start_ms=0)
    e.set_basal(ONE_PER_MINUTE)
    e.advance(45_000)  # 3/4 of a stroke
    e.set_basal(2 * ONE_PER_MINUTE)  # a stroke every 30 s: the last quarter takes 7.5 s
    assert e.next_stroke_ms() == 45_000 + 7_500
    assert e.time_of_stroke(2) == 45_000 + 7_500 + 30_000


def test_no_drift_over_a_year_of_rate_changes() -> None:
    # Change the rate every 7 minutes for a year among awkward, coprime-ish rates. The total
    # stroke count must equal floor(sum(rate * dt) / threshold) exactly.
    stroke_nl = 333
    e = DeliveryEngine(stroke_nl=stroke_nl, start_ms=0)
    rates = [1, 97_001, 1_234_567, 0, 29_999_999, 48_000, 7]
    step = 7 * MINUTE
    total_volume_time = 0
    strokes = 0
    t = 0
    i = 0
    while t < 365 * MS_PER_DAY:
        rate = rates[i % len(rates)]
        e.set_basal(rate)
        strokes += e.advance(t + step).count
        total_volume_time += rate * step
        t += step
        i += 1
    assert strokes == total_volume_time // (stroke_nl * MS_PER_DAY)
    assert e.state().basal_accumulator == total_volume_time % (stroke_nl * MS_PER_DAY)


def test_bolus_stroke_times() -> None:
    # 3 strokes over 10 ms from t0=100: ceil(10/3)=4, ceil(20/3)=7, ceil(30/3)=10.
    e = DeliveryEngine(stroke_nl=500, start_ms=100)
    e.start_bolus(3, 10)
    assert (e.bolus_active, e.bolus_strokes_remaining) == (True, 3)
    assert [e.time_of_stroke(k) for k in (1, 2, 3, 4)] == [104, 107, 110, None]
    assert drain(e, 200) == [104, 107, 110]
    assert (e.bolus_active, e.bolus_strokes_remaining) == (False, 0)
    assert e.next_stroke_ms() is None


def test_bolus_faster_than_one_per_ms_fires_several_at_once() -> None:
    # 5 strokes over 2 ms: ceil(2/5)=1, ceil(4/5)=1, ceil(6/5)=2, ceil(8/5)=2, ceil(10/5)=2.
    e = DeliveryEngine(stroke_nl=100, start_ms=0)
    e.start_bolus(5, 2)
    assert e.advance(1) == Strokes(2, 1, 1)
    assert e.advance(2) == Strokes(3, 2, 2)
    assert not e.bolus_active


def test_bolus_adds_to_basal_and_merges() -> None:
    e = DeliveryEngine(stroke_nl=100, start_ms=0)
    e.set_basal(ONE_PER_MINUTE)  # basal at 60 s, 120 s, 180 s...
    e.start_bolus(4, 100_000)  # bolus at 25 s, 50 s, 75 s, 100 s
    assert [e.time_of_stroke(k) for k in range(1, 8)] == [
        25_000,
        50_000,
        60_000,
        75_000,
        100_000,
        120_000,
        180_000,
    ]
    assert e.strokes_between(100_000) == 5
    assert e.advance(100_000) == Strokes(5, 25_000, 100_000)
    assert not e.bolus_active


def test_bolus_and_basal_on_the_same_ms_count_twice() -> None:
    e = DeliveryEngine(stroke_nl=100, start_ms=0)
    e.set_basal(ONE_PER_MINUTE)
    e.start_bolus(1, MINUTE)
    assert e.time_of_stroke(1) == e.time_of_stroke(2) == MINUTE
    assert e.advance(MINUTE) == Strokes(2, MINUTE, MINUTE)


def test_start_bolus_refused_while_active_and_bad_arguments() -> None:
    e = DeliveryEngine(stroke_nl=100, start_ms=0)
    e.start_bolus(2, 1000)
    with pytest.raises(ValueError, match="already active"):
        e.start_bolus(1, 1000)
    f = DeliveryEngine(stroke_nl=100, start_ms=0)
    with pytest.raises(ValueError, match="duration_ms"):
        f.start_bolus(1, 0)
    with pytest.raises(ValueError, match="strokes"):
        f.start_bolus(0, 10)
    with pytest.raises(TypeError):
        f.start_bolus(True, 10)
    assert not f.bolus_active


def test_cancel_bolus_returns_undelivered() -> None:
    e = DeliveryEngine(stroke_nl=100, start_ms=0)
    e.start_bolus(10, 10_000)  # one per second
    assert e.advance(3_500).count == 3
    assert e.cancel_bolus() == 7
    assert not e.bolus_active
    assert e.advance(20_000) == Strokes(0, None, None)
    assert e.cancel_bolus() == 0
    e.start_bolus(1, 1)  # a new bolus may start after a cancel
    assert e.advance(20_001) == Strokes(1, 20_001, 20_001)


def test_backwards_time_is_refused() -> None:
    e = DeliveryEngine(stroke_nl=100, start_ms=1000)
    with pytest.raises(TimeError):
        e.advance(999)
    with pytest.raises(TimeError):
        e.strokes_between(999)
    assert e.advance(1000) == Strokes(0, None, None)  # same instant is fine
    assert e.now_ms == 1000


def test_bad_constructor_and_rate_arguments() -> None:
    with pytest.raises(ValueError, match="stroke_nl"):
        DeliveryEngine(stroke_nl=0, start_ms=0)
    with pytest.raises(ValueError, match="start_ms"):
        DeliveryEngine(stroke_nl=100, start_ms=-1)
    e = DeliveryEngine(stroke_nl=100, start_ms=0)
    with pytest.raises(ValueError, match="rate_nl_per_day"):
        e.set_basal(-1)
    with pytest.raises(TypeError):
        e.set_basal(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be"):
        e.time_of_stroke(0)
    assert e.basal_rate_nl_per_day == 0
    assert e.stroke_nl == 100


def test_strokes_value_checks() -> None:
    with pytest.raises(ValueError, match="must be None"):
        Strokes(0, 1, 1)
    with pytest.raises(ValueError, match="first_ms <= last_ms"):
        Strokes(1, None, None)
    with pytest.raises(ValueError, match="first_ms <= last_ms"):
        Strokes(2, 5, 4)
    with pytest.raises(ValueError, match="count"):
        Strokes(-1, None, None)


def test_snapshot_round_trip_mid_bolus() -> None:
    e = DeliveryEngine(stroke_nl=250, start_ms=0)
    e.set_basal(1_234_567)
    e.advance(123_456)
    e.start_bolus(7, 65_432)
    e.advance(150_000)
    s = e.state()
    assert s == EngineState(250, 150_000, 1_234_567, s.basal_accumulator, 123_456, 7, 65_432)
    r = DeliveryEngine.from_state(s)
    assert r.state() == s
    assert r.bolus_strokes_remaining == e.bolus_strokes_remaining
    assert drain(r, 10 * MS_PER_DAY) == drain(e, 10 * MS_PER_DAY)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (EngineState(100, 0, 0, 100 * MS_PER_DAY, 0, 0, 0), "not below"),
        (EngineState(100, 0, 0, -1, 0, 0, 0), "basal_accumulator"),
        (EngineState(100, 0, -5, 0, 0, 0, 0), "rate_nl_per_day"),
        (EngineState(100, 0, 0, 0, 7, 0, 0), "no bolus"),
        (EngineState(100, 10, 0, 0, 11, 3, 100), "out of range"),  # starts in the future
        (EngineState(100, 10, 0, 0, 0, 3, 0), "out of range"),  # zero duration
        (EngineState(100, 100, 0, 0, 0, 3, 100), "already complete"),
        (EngineState(0, 0, 0, 0, 0, 0, 0), "stroke_nl"),
    ],
)
def test_corrupt_snapshot_is_refused(bad: EngineState, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        DeliveryEngine.from_state(bad)


@given(
    stroke_nl=st.integers(1, 2000),
    rate=st.integers(1, 30_000_000),
    pre_ms=st.integers(0, 10**10),
    n=st.integers(0, 50),
    d=st.integers(1, 10 * MINUTE),
    k=st.integers(1, 200),
)
def test_time_of_stroke_is_the_least_time_with_k_strokes(
    stroke_nl: int, rate: int, pre_ms: int, n: int, d: int, k: int
) -> None:
    # Defining property, checked against strokes_between: at time_of_stroke(k) there are at
    # least k strokes, and one millisecond earlier fewer than k. Also advancing there
    # delivers exactly strokes_between.
    e = DeliveryEngine(stroke_nl=stroke_nl, start_ms=0)
    e.set_basal(rate)
    e.advance(pre_ms)  # leaves an arbitrary remainder in the accumulator
    if n:
        e.start_bolus(n, d)
    t = e.time_of_stroke(k)
    assert t is not None
    assert t > e.now_ms
    assert e.strokes_between(t) >= k
    assert e.strokes_between(t - 1) < k
    if k == 1:
        assert e.next_stroke_ms() == t
    between = e.strokes_between(t)
    got = e.advance(t)
    assert got.count == between
    assert got.last_ms == t


@given(n=st.integers(1, 10_000), d=st.integers(1, 10**9), k=st.integers(1, 10_000))
def test_bolus_closed_form_matches_definition(n: int, d: int, k: int) -> None:
    e = DeliveryEngine(stroke_nl=100, start_ms=7)
    e.start_bolus(n, d)
    t = e.time_of_stroke(k)
    if k > n:
        assert t is None
    else:
        # ceil(k*d/n) computed a different way: smallest m with m*n >= k*d.
        m = k * d // n + (1 if k * d % n else 0)
        assert t == 7 + m

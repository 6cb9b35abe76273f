"""The oracle checked on its own, against hand-worked values, so that the differential tests
compare the engine with something known to be right rather than with itself."""

from __future__ import annotations

import pytest

from emulator.delivery import MS_PER_DAY, EngineState, Strokes
from emulator.errors import TimeError
from emulator.reference_stepper import ReferenceStepper

MINUTE = 60_000
ONE_PER_MINUTE = 144_000  # with 100 nL strokes


def test_one_per_minute_tick_1() -> None:
    s = ReferenceStepper(stroke_nl=100, start_ms=0)
    s.set_basal(ONE_PER_MINUTE)
    assert s.advance(MINUTE - 1) == Strokes(0, None, None)
    assert s.advance(MINUTE) == Strokes(1, MINUTE, MINUTE)
    assert s.advance(3 * MINUTE) == Strokes(2, 2 * MINUTE, 3 * MINUTE)


def test_coarse_tick_reports_at_tick_end() -> None:
    # 1 nL strokes at 30_000_000 nL/day fire at 3, 6, 9, 12, 15 ms (see test_delivery);
    # with 5 ms ticks they are reported at 5, 10, 10, 15, 15.
    s = ReferenceStepper(stroke_nl=1, start_ms=0, tick_ms=5)
    s.set_basal(30_000_000)
    assert s.advance(4) == Strokes(0, None, None)  # no whole tick yet
    assert s.advance(12) == Strokes(3, 5, 10)
    assert s.advance(15) == Strokes(2, 15, 15)


def test_bolus_times_and_cancel() -> None:
    s = ReferenceStepper(stroke_nl=100, start_ms=100)
    s.start_bolus(3, 10)  # 104, 107, 110
    with pytest.raises(ValueError, match="already active"):
        s.start_bolus(1, 1)
    assert [s.time_of_stroke(k) for k in (1, 2, 3, 4)] == [104, 107, 110, None]
    assert s.advance(107) == Strokes(2, 104, 107)
    assert s.bolus_strokes_remaining == 1
    assert s.cancel_bolus() == 1
    assert s.bolus_active is False
    assert s.advance(200) == Strokes(0, None, None)


def test_bolus_ends_itself() -> None:
    s = ReferenceStepper(stroke_nl=100, start_ms=0)
    s.start_bolus(2, 2)
    assert s.advance(2) == Strokes(2, 1, 2)
    assert (s.bolus_active, s.cancel_bolus()) == (False, 0)


def test_queries_do_not_advance() -> None:
    s = ReferenceStepper(stroke_nl=100, start_ms=0)
    s.set_basal(ONE_PER_MINUTE)
    assert s.next_stroke_ms() == MINUTE
    assert s.time_of_stroke(3) == 3 * MINUTE
    assert s.strokes_between(3 * MINUTE - 1) == 2
    assert s.now_ms == 0
    assert s.advance(MINUTE).count == 1


def test_rate_zero_never() -> None:
    s = ReferenceStepper(stroke_nl=100, start_ms=0)
    assert s.next_stroke_ms() is None
    s.start_bolus(2, 10)
    assert s.time_of_stroke(3) is None


def test_time_error_and_bad_arguments() -> None:
    s = ReferenceStepper(stroke_nl=100, start_ms=10)
    with pytest.raises(TimeError):
        s.advance(9)
    with pytest.raises(TimeError):
        s.strokes_between(9)
    with pytest.raises(ValueError, match="tick_ms"):
        ReferenceStepper(stroke_nl=100, start_ms=0, tick_ms=0)
    with pytest.raises(ValueError, match="duration_ms"):
        s.start_bolus(1, 0)
    with pytest.raises(ValueError, match="rate"):
        s.set_basal(-1)


def test_state_round_trip_and_off_boundary() -> None:
    s = ReferenceStepper(stroke_nl=100, start_ms=0)
    s.set_basal(ONE_PER_MINUTE)
    s.advance(30_000)
    s.start_bolus(4, 1000)
    s.advance(30_500)
    snap = s.state()
    assert snap == EngineState(
        100, 30_500, ONE_PER_MINUTE, 30_500 * ONE_PER_MINUTE, 30_000, 4, 1000
    )
    r = ReferenceStepper.from_state(snap)
    assert r.bolus_strokes_remaining == s.bolus_strokes_remaining == 2
    assert r.advance(MINUTE) == s.advance(MINUTE) == Strokes(3, 30_750, MINUTE)

    coarse = ReferenceStepper(stroke_nl=100, start_ms=0, tick_ms=1000)
    coarse.advance(1500)
    with pytest.raises(ValueError, match="tick boundary"):
        coarse.state()


def test_accumulator_units() -> None:
    # One day at 100 nL/day with 100 nL strokes: exactly one stroke, at the last ms.
    s = ReferenceStepper(stroke_nl=100, start_ms=0, tick_ms=1000)
    s.set_basal(100)
    assert s.advance(MS_PER_DAY) == Strokes(1, MS_PER_DAY, MS_PER_DAY)

"""The closed-form flex integration (emulator/rate_plan.py, ``DeliveryEngine.follow``) against
stepping every boundary: the engine following a plan gives the strokes, at the same
milliseconds, that the same engine gives when driven to each flex boundary and told the new
rate there with ``set_basal`` (docs/architecture.md, "Delivery engine contract"), and the
reference stepper following the plan one tick at a time agrees with both.
"""

from __future__ import annotations

from bisect import bisect_right

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.delivery import MS_PER_DAY, DeliveryEngine, EngineState
from emulator.pump import Pump
from emulator.rate_plan import RatePlan
from emulator.reference_stepper import ReferenceStepper
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat


@st.composite
def plans(draw: st.DrawFn, max_period_ms: int = 4_000) -> RatePlan:
    """A random periodic flex schedule: 1-12 steps, rates 0 (gaps) to above a stroke per
    ms, any phase (the pump clock's offset)."""
    period = draw(st.integers(1, max_period_ms))
    count = draw(st.integers(1, min(12, period)))
    starts = sorted(draw(st.sets(st.integers(0, period - 1), min_size=count, max_size=count)))
    rates = draw(
        st.lists(
            st.one_of(st.just(0), st.integers(1, 30_000_000), st.integers(1, 500_000_000)),
            min_size=count,
            max_size=count,
        )
    )
    return RatePlan(tuple(starts), tuple(rates), period, draw(st.integers(-(10**6), 10**12)))


def brute_rate(plan: RatePlan, t: int) -> int:
    """The rate in force at t, from the definition (a step starting at t included)."""
    starts, rates = plan._starts, plan._rates
    return rates[bisect_right(starts, (t + plan._shift) % plan._period) - 1]


def stepped_times(engine: DeliveryEngine, plan: RatePlan, until_ms: int) -> list[int]:
    """Stroke times up to until_ms with the engine stepped to every boundary, set_basal there."""
    times: list[int] = []
    engine.set_basal(plan.rate_at(engine.now_ms))
    while engine.now_ms < until_ms:
        stop = min(plan.next_change_ms(engine.now_ms), until_ms)
        while (t := engine.next_stroke_ms()) is not None and t <= stop:
            got = engine.advance(t)
            times.extend([t] * got.count)
        engine.advance(stop)
        engine.set_basal(plan.rate_at(stop))
    return times


def followed_times(engine: DeliveryEngine, plan: RatePlan, until_ms: int) -> list[int]:
    """Stroke times up to until_ms with the engine following the plan: no boundary steps."""
    times: list[int] = []
    engine.follow(plan)
    while (t := engine.next_stroke_ms()) is not None and t <= until_ms:
        got = engine.advance(t)
        assert got.count >= 1
        assert got.first_ms == got.last_ms == t
        times.extend([t] * got.count)
    assert engine.advance_count(until_ms) == 0
    return times


def start_state(stroke_nl: int, now_ms: int, acc: int) -> EngineState:
    return EngineState(stroke_nl, now_ms, 0, acc % (stroke_nl * MS_PER_DAY), 0, 0, 0)


@given(plan=plans(), t=st.integers(0, 10**12), span=st.integers(0, 20_000))
def test_gain_is_the_sum_of_the_steps(plan: RatePlan, t: int, span: int) -> None:
    # Walk boundary to boundary with the definition's rate; the closed form must agree.
    expected = 0
    u = t
    while u < t + span:
        nxt = min(plan.next_change_ms(u), t + span)
        expected += brute_rate(plan, u) * (nxt - u)
        u = nxt
    assert plan.gain(t, t + span) == expected
    assert plan.rate_at(t) == brute_rate(plan, t)


@given(plan=plans(), t=st.integers(0, 10**12), need=st.integers(1, 10**15))
def test_time_to_gain_is_the_least_time(plan: RatePlan, t: int, need: int) -> None:
    u = plan.time_to_gain(t, need)
    if plan.per_period == 0:
        assert u is None
        return
    assert u is not None
    assert u > t
    assert plan.gain(t, u) >= need
    assert plan.gain(t, u - 1) < need


@given(
    plan=plans(),
    stroke_nl=st.one_of(st.integers(1, 20), st.integers(100, 2000)),
    now=st.integers(0, 10**12),
    acc=st.integers(0, 10**15),
    horizon=st.integers(0, 12_000),
)
def test_following_a_plan_equals_stepping_every_boundary(
    plan: RatePlan, stroke_nl: int, now: int, acc: int, horizon: int
) -> None:
    start = start_state(stroke_nl, now, acc)
    stepped = DeliveryEngine.from_state(start)
    followed = DeliveryEngine.from_state(start)
    followed.follow(plan)
    until = now + horizon
    predicted_count = followed.strokes_between(until)
    predicted = [followed.time_of_stroke(k) for k in (1, 2, 7)]
    expected = stepped_times(stepped, plan, until)
    assert followed_times(followed, plan, until) == expected
    assert predicted_count == len(expected)
    for k, t in zip((1, 2, 7), predicted, strict=True):
        assert t == (expected[k - 1] if k <= len(expected) else t)
        assert k <= len(expected) or t is None or t > until
    # The saved state is the same too: remainder, time and the rate in force now.
    assert followed.state() == stepped.state()


@given(
    plan=plans(max_period_ms=400),
    stroke_nl=st.integers(1, 5),
    acc=st.integers(0, 10**9),
    bolus=st.tuples(st.integers(1, 30), st.integers(1, 600)),
    horizon=st.integers(0, 1_200),
)
def test_the_reference_stepper_following_the_plan_agrees(
    plan: RatePlan, stroke_nl: int, acc: int, bolus: tuple[int, int], horizon: int
) -> None:
    # The oracle one millisecond at a time, with a bolus on top (the merged-channel paths).
    start = start_state(stroke_nl, 1_000, acc)
    engine = DeliveryEngine.from_state(start)
    stepper = ReferenceStepper.from_state(start, tick_ms=1)
    for channel in (engine, stepper):
        channel.follow(plan)
        channel.start_bolus(*bolus)
    until = 1_000 + horizon
    # (Look-ahead is checked against boundary stepping above: the stepper's own look-ahead
    # simulates up to the answer, which a slow plan puts years away.)
    expected: list[int] = []
    while stepper.now_ms < until:
        got = stepper.advance(stepper.now_ms + 1)
        expected.extend([stepper.now_ms] * got.count)
    times: list[int] = []
    while (t := engine.next_stroke_ms()) is not None and t <= until:
        times.extend([t] * engine.advance(t).count)
    engine.advance(until)
    assert times == expected
    assert engine.state() == stepper.state()


def test_a_rate_change_lands_on_the_boundary_millisecond() -> None:
    # 1 stroke per ms from offset 10: the first stroke fires at 11, not before.
    plan = RatePlan((0, 10), (0, 1_000 * MS_PER_DAY), 100, 0)
    engine = DeliveryEngine(1_000, 0)
    engine.follow(plan)
    assert engine.next_stroke_ms() == 11
    assert engine.strokes_between(100) == 90
    assert engine.basal_rate_nl_per_day == 0
    engine.advance(10)
    assert engine.basal_rate_nl_per_day == 1_000 * MS_PER_DAY


def test_set_basal_stops_following() -> None:
    plan = RatePlan((0,), (144_000,), MS_PER_DAY, 0)
    engine = DeliveryEngine(100, 0)
    engine.follow(plan)
    following = engine.plan
    assert following is plan
    engine.set_basal(0)
    stopped = engine.plan
    assert stopped is None
    assert engine.next_stroke_ms() is None


@pytest.mark.parametrize(
    ("starts", "rates", "period"),
    [
        pytest.param((), (), 10, id="no-steps"),
        pytest.param((0, 0), (1, 2), 10, id="starts-not-increasing"),
        pytest.param((0, 10), (1, 2), 10, id="start-beyond-period"),
        pytest.param((0,), (-1,), 10, id="negative-rate"),
        pytest.param((0,), (1,), 0, id="empty-period"),
    ],
)
def test_malformed_plans_are_refused(
    starts: tuple[int, ...], rates: tuple[int, ...], period: int
) -> None:
    with pytest.raises(ValueError, match=r"start|rate|period"):
        RatePlan(starts, rates, period, 0)


def test_a_stepper_not_following_plans_takes_the_rate_now_only() -> None:
    plan = RatePlan((0, 50), (144_000, 288_000), 100, 0)
    stepper = ReferenceStepper(100, 60, follow_plans=False)
    stepper.follow(plan)
    unfollowed = stepper.plan
    assert unfollowed is None
    assert stepper.basal_rate_nl_per_day == 288_000


def test_a_pump_stepping_every_boundary_matches_one_following_the_plan() -> None:
    # The whole pump: the stepper told each rate at its boundary (the pump steps there)
    # and the engine following the plan deliver and log the same over two flex days.
    rx = Prescription(
        drug_name="morphine",
        concentration_ug_per_ml=5_000,
        mode=InfusionMode.FLEX,
        repeat=Repeat.DAILY,
        steps=(FlexStep(0, 300_000), FlexStep(8 * 3_600, 600_000), FlexStep(20 * 3_600, 0)),
        patient_bolus=None,
        low_reservoir_threshold_nl=2_000_000,
    )

    def stepper(stroke_nl: int, start_ms: int) -> ReferenceStepper:
        return ReferenceStepper(stroke_nl, start_ms, tick_ms=1_000, follow_plans=False)

    pumps = [Pump("peristaltic-20"), Pump("peristaltic-20", engine_factory=stepper)]
    for pump in pumps:
        assert pump.program(rx).ok
        pump.advance_to(2 * MS_PER_DAY)
    exact, stepped = pumps
    assert exact.status().delivered_nl == stepped.status().delivered_nl > 0
    assert exact.plant_truth() == stepped.plant_truth()
    assert exact.log() == stepped.log()

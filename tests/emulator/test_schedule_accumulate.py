"""``Schedule.time_to_accumulate`` (emulator/firmware/schedule.py) inverts the schedule's
integral with a RatePlan in O(log steps); here it is checked against the step-by-step walk
it replaced (kept in this file as the oracle): the same instant for every schedule, start
and volume, daily and weekly, gaps (rate 0) included."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from emulator.firmware.schedule import Schedule
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat


def walked(schedule: Schedule, local_ms: int, need: int) -> int | None:
    """The walk the closed form replaced, verbatim: step by step to the first boundary,
    skip whole periods, then step by step again."""
    if need <= 0:
        return local_ms
    per_period = schedule.volume_per_period_nlms()
    if per_period == 0:
        return None
    t = local_ms
    walked_period = False
    while True:
        rate, end = schedule._segment(t)
        chunk = rate * (end - t)
        if chunk >= need:
            return t + -(-need // rate)
        need -= chunk
        t = end
        if not walked_period and schedule._offset(t) == schedule._starts[0]:
            walked_period = True
            skip = (need - 1) // per_period
            t += skip * schedule._period
            need -= skip * per_period


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    repeat = draw(st.sampled_from([Repeat.DAILY, Repeat.WEEKLY]))
    period_s = repeat.period_s
    count = draw(st.integers(1, 12))
    starts = sorted({0, *draw(st.sets(st.integers(1, period_s - 1), max_size=count - 1))})
    rates = draw(
        st.lists(
            st.one_of(st.just(0), st.integers(1, 2_000_000)),
            min_size=len(starts),
            max_size=len(starts),
        )
    )
    rx = Prescription(
        drug_name="morphine",
        concentration_ug_per_ml=5_000,
        mode=InfusionMode.FLEX,
        repeat=repeat,
        steps=tuple(FlexStep(s, r) for s, r in zip(starts, rates, strict=True)),
        patient_bolus=None,
        low_reservoir_threshold_nl=1_000_000,
    )
    return Schedule(rx)


@given(
    schedules(),
    st.lists(
        st.tuples(st.integers(0, 4 * 10**12), st.integers(-5, 10**17)), min_size=1, max_size=8
    ),
)
def test_the_closed_form_gives_the_walk_s_instant(
    schedule: Schedule, asks: list[tuple[int, int]]
) -> None:
    for local_ms, need in asks:
        assert schedule.time_to_accumulate(local_ms, need) == walked(schedule, local_ms, need)


def test_a_stopped_schedule_never_accumulates() -> None:
    schedule = Schedule(None)
    assert schedule.time_to_accumulate(10, 1) is None
    assert schedule.time_to_accumulate(10, 0) == 10

"""RatePlan's kept step (emulator/rate_plan.py): whatever order times are asked in,
near or far, before or after the plan's origin, every answer equals the full lookup from
the definition (divmod over the period, bisection over the steps), computed here without
the plan's kept steps."""

from __future__ import annotations

from bisect import bisect_right

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.cache_checks import CHECK_ALL, CacheCheckError
from emulator.rate_plan import RatePlan
from tests.emulator.test_rate_plan import plans


def full_lookup(plan: RatePlan, t: int) -> tuple[int, int, int]:
    """(rate_at, next_change_ms, cumulative) at t from the definition alone."""
    starts, rates, prefix = plan._starts, plan._rates, plan._prefix
    periods, offset = divmod(t + plan._shift, plan._period)
    i = bisect_right(starts, offset) - 1
    end = starts[i + 1] if i + 1 < len(starts) else plan._period
    cumulative = periods * plan.per_period + prefix[i] + rates[i] * (offset - starts[i])
    return rates[i], t - offset + end, cumulative


@given(
    plans(),
    st.lists(
        st.tuples(
            st.integers(-(10**7), 10**13), st.sampled_from(["rate", "change", "gain", "both"])
        ),
        min_size=1,
        max_size=60,
    ),
)
def test_kept_steps_answer_as_the_full_lookup(plan: RatePlan, asks: list[tuple[int, str]]) -> None:
    for t, what in asks:
        rate, change, gain = full_lookup(plan, t)
        if what == "rate":
            assert plan.rate_at(t) == rate, t
        elif what == "change":
            assert plan.next_change_ms(t) == change, t
        elif what == "both":
            assert plan.gain_and_rate(t) == (gain, rate), t
        else:
            assert plan.cumulative(t) == gain, t


@given(plans(), st.integers(0, 10**12), st.lists(st.integers(-5_000, 5_000), max_size=80))
def test_times_near_each_other_and_on_step_edges(
    plan: RatePlan, origin: int, moves: list[int]
) -> None:
    # Walks to and fro around one instant, and onto each step's first and last
    # millisecond (where a kept step's half-open interval must end exactly).
    t = origin
    for move in moves:
        t += move
        for u in (t, plan.next_change_ms(t) - 1, plan.next_change_ms(t)):
            rate, change, gain = full_lookup(plan, u)
            assert (plan.rate_at(u), plan.next_change_ms(u), plan.cumulative(u)) == (
                rate,
                change,
                gain,
            ), u


def test_check_mode_catches_a_wrong_kept_step(monkeypatch: pytest.MonkeyPatch) -> None:
    # tests/conftest.py turns CHECK_ALL on for the suite; a plan built meanwhile checks
    # every answer it gives from its kept step against the full look-up.
    monkeypatch.setattr(CHECK_ALL, "on", True)
    plan = RatePlan((0, 500), (100, 300), 1_000, 0)
    assert plan.rate_at(200) == 100  # keeps the step holding 200
    start, end, gained, rate = plan._near
    plan._near = (start, end, gained, rate + 1)  # a step kept wrong: the bug checked for
    with pytest.raises(CacheCheckError, match="rate plan kept step"):
        plan.cumulative(300)
    monkeypatch.setattr(CHECK_ALL, "on", False)
    unchecked = RatePlan((0, 500), (100, 300), 1_000, 0)
    unchecked.rate_at(200)
    start, end, gained, rate = unchecked._near
    unchecked._near = (start, end, gained, rate + 1)
    assert unchecked.cumulative(300) == 30_300  # no check mode: the kept step is trusted

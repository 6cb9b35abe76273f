"""A periodic, piecewise-constant basal rate on the internal timeline, integrated in closed
form (docs/architecture.md, "Delivery engine contract"; docs/pump-model.md, "Time").

A flex schedule (emulator/firmware/schedule.py) runs on the pump clock; the firmware hands
the engine this plan, already shifted onto the internal timeline, so a flex boundary is no
longer a step: the engine integrates the rate across any number of boundaries at once.

Units are the engine's: a rate is nL/day, so one millisecond at rate r adds r to the
accumulator (nL*ms/day). Millisecond (u - 1, u] runs at the rate in force at u - 1 (a step
starting exactly at u - 1 included), which is what stepping the engine to every boundary and
calling ``set_basal`` there gives.

``cumulative(t)`` is the accumulator gain from the plan's origin (offset 0 of period 0) to
t: whole periods times the period's volume, plus a prefix sum, plus the part of the current
step, O(log steps). Its inverse ``time_to_gain`` is the same walk backwards, so the k-th
stroke time is O(log steps) however many boundaries and periods lie between. No float.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import pairwise

from emulator.cache_checks import CHECK_ALL, CacheCheckError

__all__ = ["RatePlan"]


class RatePlan:
    """Rates ``rates[i]`` from offset ``starts[i]`` (ms into the period) to the next start;
    internal time t sits at offset ``(t + shift_ms) % period_ms``."""

    __slots__ = (
        "_check",
        "_count",
        "_near",
        "_per_period",
        "_period",
        "_prefix",
        "_rates",
        "_shift",
        "_starts",
        "constant",
    )

    def __init__(
        self, starts: tuple[int, ...], rates: tuple[int, ...], period_ms: int, shift_ms: int
    ) -> None:
        if not starts or len(starts) != len(rates):
            raise ValueError("need one rate per start, at least one")
        if period_ms < 1 or any(b <= a for a, b in pairwise(starts)):
            raise ValueError("starts must increase strictly, within a period >= 1 ms")
        if starts[0] < 0 or starts[-1] >= period_ms or min(rates) < 0:
            raise ValueError("starts must lie in [0, period) and rates be >= 0")
        if starts[0] != 0:
            # Before the first start the last step still runs (it wrapped from the previous
            # period): make that explicit so every offset has a step at or before it.
            starts, rates = (0, *starts), (rates[-1], *rates)
        self._starts = starts
        self._count = len(starts)
        self._rates = rates
        self._period = period_ms
        self._shift = shift_ms
        prefix = [0]
        ends = (*starts[1:], period_ms)
        for rate, start, end in zip(rates, starts, ends, strict=True):
            prefix.append(prefix[-1] + rate * (end - start))
        self._prefix = tuple(prefix)  # prefix[i]: gain from offset 0 to starts[i]
        self._per_period = prefix[-1]
        self.constant = len(set(rates)) == 1
        """True when the rate never changes: the plan has no boundary that matters."""
        # The step holding the time last asked about by the engine's step or the pump's
        # look-ahead (start, end, cumulative at start, rate, on the internal timeline):
        # within one step every answer is linear in t, so times inside it need no divmod
        # and no bisection, and get exactly what the full look-up gives
        # (tests/emulator/test_rate_plan_steps.py).
        self._near = (0, 0, 0, 0)  # an empty interval: the first look-up misses
        self._check = CHECK_ALL.on  # check mode (emulator/cache_checks.py)

    @property
    def per_period(self) -> int:
        """The gain of one whole period (0: the plan never delivers)."""
        return self._per_period

    def rate_at(self, t: int) -> int:
        """The rate in force at internal time t (a step starting exactly then included)."""
        step = self._near
        if not step[0] <= t < step[1]:
            step = self._near = self._step(t)
        elif self._check:
            self._verify(t, step)
        return step[3]

    def next_change_ms(self, t: int) -> int:
        """The first internal time after t where a step starts."""
        step = self._near
        if not step[0] <= t < step[1]:
            step = self._near = self._step(t)
        elif self._check:
            self._verify(t, step)
        return step[1]

    def cumulative(self, t: int) -> int:
        """The gain from the plan's origin to internal time t (nL*ms/day)."""
        step = self._near
        if step[0] <= t < step[1]:
            if self._check:
                self._verify(t, step)
            return step[2] + step[3] * (t - step[0])
        # Elsewhere (a far deadline): looked up, not kept, so the step holding now stays.
        periods, offset = divmod(t + self._shift, self._period)
        i = bisect_right(self._starts, offset) - 1
        within = self._rates[i] * (offset - self._starts[i])
        return periods * self._per_period + self._prefix[i] + within

    def gain_and_rate(self, t: int) -> tuple[int, int]:
        """``(cumulative(t), rate_at(t))`` in one look-up (the engine's step needs both)."""
        step = self._near
        if not step[0] <= t < step[1]:
            step = self._near = self._step(t)
        elif self._check:
            self._verify(t, step)
        return step[2] + step[3] * (t - step[0]), step[3]

    def _verify(self, t: int, kept: tuple[int, int, int, int]) -> None:
        fresh = self._step(t)
        if fresh != kept:
            raise CacheCheckError(f"rate plan kept step {kept} but t={t} lies in {fresh}")

    def _step(self, t: int) -> tuple[int, int, int, int]:
        """The step holding internal time t: (start, end, cumulative at start, rate)."""
        periods, offset = divmod(t + self._shift, self._period)
        starts = self._starts
        i = bisect_right(starts, offset) - 1
        base = t - offset
        end = starts[i + 1] if i + 1 < self._count else self._period
        return (
            base + starts[i],
            base + end,
            periods * self._per_period + self._prefix[i],
            self._rates[i],
        )

    def gain(self, t0: int, t1: int) -> int:
        """The gain over (t0, t1], t0 <= t1."""
        return self.cumulative(t1) - self.cumulative(t0)

    def time_to_gain(self, t0: int, need: int) -> int | None:
        """The least u with ``gain(t0, u) >= need`` (need >= 1); None if never."""
        return self.time_to_reach(self.cumulative(t0) + need)

    def time_to_reach(self, target: int) -> int | None:
        """The least u with ``cumulative(u) >= target``; None if the plan never delivers.
        The caller knows target > cumulative(now), so u is after now."""
        per_period = self._per_period
        if per_period == 0:
            return None
        # Period q holds the target's last part: target - q * per_period is in (0, per_period].
        periods = (target - 1) // per_period
        rest = target - periods * per_period
        # The first step whose end reaches rest; its rate is > 0 because the gain grows in it.
        j = bisect_left(self._prefix, rest)
        start = self._starts[j - 1]
        offset = start + -(-(rest - self._prefix[j - 1]) // self._rates[j - 1])
        return periods * self._period + offset - self._shift

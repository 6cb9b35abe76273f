"""Flex schedules on the pump's local clock (protocol/prescription.py, schedule convention).

A schedule maps a local time (ms since 1970-01-01 00:00 local) to a basal rate, and names
the next instant the rate changes, so the firmware can put flex boundaries on the event
timeline instead of polling (docs/architecture.md principle 5). ``time_to_deliver`` predicts when a
volume will have been delivered, in O(log steps) however far ahead (the schedule's integral
inverted in closed form, emulator/rate_plan.py): the status' predicted low-reservoir and
empty dates come from it.

All arithmetic is integer: volumes x time in nL*ms/day, the engine's own unit.
"""

from __future__ import annotations

from bisect import bisect_right

from emulator.rate_plan import RatePlan
from protocol.prescription import WEEK_OFFSET_OF_EPOCH_S, InfusionMode, Prescription, Repeat
from protocol.units import MS_PER_DAY, MS_PER_S

__all__ = ["Schedule"]


class Schedule:
    """A prescription's basal steps, ready for O(log steps) lookups."""

    __slots__ = ("_constant", "_local", "_origin", "_period", "_rates", "_starts")

    def __init__(self, prescription: Prescription | None) -> None:
        rx = prescription
        self._local: RatePlan | None = None  # time_to_accumulate's plan, built on first use
        if rx is None or rx.mode is InfusionMode.STOPPED or not rx.steps:
            self._starts: tuple[int, ...] = (0,)
            self._rates: tuple[int, ...] = (0,)
            self._period = MS_PER_DAY
            self._origin = 0
            self._constant = True
            return
        self._starts = tuple(step.start_s * MS_PER_S for step in rx.steps)
        self._rates = tuple(step.rate_nl_per_day for step in rx.steps)
        self._period = rx.repeat.period_s * MS_PER_S
        self._origin = WEEK_OFFSET_OF_EPOCH_S * MS_PER_S if rx.repeat is Repeat.WEEKLY else 0
        # Asked at every pump step (next_change_ms): decided once.
        self._constant = len(set(self._rates)) == 1

    @property
    def period_ms(self) -> int:
        """The schedule's period: a day, or a week for a WEEKLY flex schedule."""
        return self._period

    @property
    def constant(self) -> bool:
        """True when the rate never changes (continuous, stopped, or equal flex steps)."""
        return self._constant

    def plan(self, clock_offset_ms: int) -> RatePlan:
        """This schedule on the internal timeline (pump clock = internal + clock_offset_ms),
        for the delivery engine to integrate across flex boundaries (rate_plan.py)."""
        return RatePlan(self._starts, self._rates, self._period, clock_offset_ms + self._origin)

    def _offset(self, local_ms: int) -> int:
        return (local_ms + self._origin) % self._period

    def rate_at(self, local_ms: int) -> int:
        """The basal rate in force at ``local_ms`` (a step starting exactly then included)."""
        return self._rates[bisect_right(self._starts, self._offset(local_ms)) - 1]

    def next_change_ms(self, local_ms: int) -> int | None:
        """The first local time after ``local_ms`` where a new step starts; None if constant."""
        if self.constant:
            return None
        offset = self._offset(local_ms)
        index = bisect_right(self._starts, offset)
        base = local_ms - offset
        if index < len(self._starts):
            return base + self._starts[index]
        return base + self._period  # the first step of the next period

    def _segment(self, local_ms: int) -> tuple[int, int]:
        """(rate, end) of the step in force at local_ms; end is the next step's start."""
        offset = self._offset(local_ms)
        index = bisect_right(self._starts, offset) - 1
        base = local_ms - offset
        end = self._starts[index + 1] if index + 1 < len(self._starts) else self._period
        return self._rates[index], base + end

    def volume_per_period_nlms(self) -> int:
        """Basal volume of one whole period, in nL*ms/day."""
        ends = (*self._starts[1:], self._period)
        return sum(
            rate * (end - start)
            for rate, start, end in zip(self._rates, self._starts, ends, strict=True)
        )

    def time_to_deliver(self, local_ms: int, volume_nl: int) -> int | None:
        """The first local time by which ``volume_nl`` of basal has accumulated from
        ``local_ms`` at this schedule; None if it never does. ``volume_nl <= 0`` is now.

        Exact in the engine's units; the engine's carried remainder (under one stroke) is
        ignored, so a stroke-level event may land up to one stroke interval earlier.
        """
        return self.time_to_accumulate(local_ms, volume_nl * MS_PER_DAY)

    def time_to_accumulate(self, local_ms: int, need: int) -> int | None:
        """The first local time by which ``need`` nL*ms/day (the engine's unit: a stroke
        fires each time its accumulator gains ``stroke_nl`` x one day's ms) has accumulated
        from ``local_ms`` at this schedule; None if it never does. ``need <= 0`` is now."""
        if need <= 0:
            return local_ms
        # The schedule as a RatePlan on the pump clock (shift: the weekly origin), built
        # once: the same integral the engine follows, inverted in O(log steps) however
        # far ahead, where walking step by step cost O(steps) (every STAGE and STATUS).
        plan = self._local
        if plan is None:
            plan = self._local = RatePlan(self._starts, self._rates, self._period, self._origin)
        return plan.time_to_gain(local_ms, need)

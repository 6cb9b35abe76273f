"""The running schedule as the delivery engine follows it: one ``RatePlan`` per (schedule,
pump-clock offset), rebuilt only when one of them changes (docs/pump-model.md, "Time").

A flex boundary is not a firmware event (nothing is logged or decided there), so the engine
integrates the schedule across boundaries itself (emulator/rate_plan.py) and the pump steps
only to the events that matter. Only a new prescription (``Firmware._install``) or a
SET_CLOCK moves the boundaries on the internal timeline; both are caught here by identity
and value, so no caller has to remember to invalidate anything.
"""

from __future__ import annotations

from typing import Protocol

from emulator.firmware.schedule import Schedule
from emulator.rate_plan import RatePlan

__all__ = ["PlanCache", "next_rate_change"]


class Follower(Protocol):
    """The part of the delivery engine's API (firmware.Engine) that runs the basal."""

    @property
    def plan(self) -> RatePlan | None: ...
    def set_basal(self, rate_nl_per_day: int) -> None: ...
    def follow(self, plan: RatePlan) -> None: ...


def next_rate_change(
    schedule: Schedule, clock_offset_ms: int, now_ms: int, applies: bool
) -> int | None:
    """The next flex boundary after internal time ``now_ms``, on the internal timeline;
    None if the basal does not run (``applies`` False) or never changes. Not a firmware
    deadline (the engine follows the schedule across it), but the pump steps there when
    the plant must see each step's strokes apart (emulator/pump.py ``_next_event``)."""
    if not applies:
        return None
    change = schedule.next_change_ms(now_ms + clock_offset_ms)
    return None if change is None else change - clock_offset_ms


class PlanCache:
    """The plan of the schedule last asked for, at the clock offset last asked for."""

    __slots__ = ("_offset", "_plan", "_schedule")

    def __init__(self) -> None:
        self._schedule: Schedule | None = None
        self._offset = 0
        self._plan: RatePlan | None = None

    def plan(self, schedule: Schedule, clock_offset_ms: int) -> RatePlan:
        plan = self._plan
        if plan is None or schedule is not self._schedule or clock_offset_ms != self._offset:
            plan = self._plan = schedule.plan(clock_offset_ms)
            self._schedule = schedule
            self._offset = clock_offset_ms
        return plan

    def run(
        self, engine: Follower, schedule: Schedule, clock_offset_ms: int, applies: bool
    ) -> None:
        """Set the engine's basal now: the schedule's plan if the basal runs (``applies``),
        else 0. An engine already following the plan (a bolus starting or ending over the
        basal) is left alone: its rate is the plan's rate now either way."""
        if not applies:
            engine.set_basal(0)
            return
        plan = self._plan  # ``plan``, inlined: the firmware runs the schedule every step
        if plan is None or schedule is not self._schedule or clock_offset_ms != self._offset:
            plan = self.plan(schedule, clock_offset_ms)
        if engine.plan is not plan:
            engine.follow(plan)

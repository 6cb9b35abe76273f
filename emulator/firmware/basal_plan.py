"""The running schedule as the delivery engine follows it: one ``RatePlan`` per (schedule,
pump-clock offset), rebuilt only when one of them changes (docs/pump-model.md, "Time").

A flex boundary is not a firmware event (nothing is logged or decided there), so the engine
integrates the schedule across boundaries itself (emulator/rate_plan.py) and the pump steps
only to the events that matter. Only a new prescription (``Firmware._install``) or a
SET_CLOCK moves the boundaries on the internal timeline; both are caught here by identity
and value, so no caller has to remember to invalidate anything.
"""

from __future__ import annotations

from emulator.firmware.schedule import Schedule
from emulator.rate_plan import RatePlan

__all__ = ["PlanCache"]


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

"""The reference stepper: the delivery engine's oracle (docs/architecture.md principle 5).

Same public API as ``emulator.delivery.DeliveryEngine``, written to be obviously right rather
than fast: time moves one tick at a time from ``start_ms``; each tick adds ``rate * tick_ms``
to the basal accumulator and fires a stroke for each whole threshold in it, then fires every
bolus stroke whose defining time ``t0 + ceil(i * D / N)`` has come. Every stroke is reported
at the end of the tick it falls in.

A followed basal plan (``follow``) is stepped the same way: each tick runs at the plan's
rate at the tick's start, looked up again whenever a tick starts at or past the plan's next
step start.

It is exact (identical to the engine) when every settings change falls on a tick boundary,
so with ``tick_ms=1`` always. A settings change between boundaries applies from the last
boundary, which is the stepper's known inexactness, never the engine's.

Cost is O(elapsed ticks): use it in tests and the benchmark, never in the pump.
"""

from __future__ import annotations

import copy

from emulator.delivery import MS_PER_DAY, EngineState, Strokes
from emulator.errors import TimeError
from emulator.rate_plan import RatePlan

__all__ = ["ReferenceStepper"]


class ReferenceStepper:
    def __init__(
        self, stroke_nl: int, start_ms: int, tick_ms: int = 1, *, follow_plans: bool = True
    ) -> None:
        """``follow_plans=False``: ``follow`` only sets the plan's rate now, so the firmware
        steps the pump to every flex boundary as it does for an engine that does not follow
        (the benchmark's like-for-like reference: the stepper's look-ahead costs O(ticks to
        the horizon), and flex boundaries keep horizons short)."""
        if stroke_nl < 1 or start_ms < 0 or tick_ms < 1:
            raise ValueError("need stroke_nl >= 1, start_ms >= 0, tick_ms >= 1")
        self._stroke_nl = stroke_nl
        self._follow_plans = follow_plans
        self._tick = tick_ms
        self._now = start_ms
        self._grid = start_ms  # end of the last tick processed
        self._rate = 0
        self._plan: RatePlan | None = None
        self._plan_next = 0  # the plan's next step start, as seen from the last tick start
        self._acc = 0  # nL*ms/day
        self._bolus_t0 = 0
        self._bolus_n = 0  # 0: no bolus
        self._bolus_d = 0
        self._bolus_done = 0

    @property
    def now_ms(self) -> int:
        return self._now

    @property
    def stroke_nl(self) -> int:
        return self._stroke_nl

    @property
    def basal_rate_nl_per_day(self) -> int:
        # Following a plan: the rate in force now (the tick in progress keeps the rate at
        # its start, the stepper's known inexactness off the grid).
        return self._rate if self._plan is None else self._plan.rate_at(self._now)

    @property
    def plan(self) -> RatePlan | None:
        return self._plan

    @property
    def bolus_active(self) -> bool:
        return self._bolus_n > 0

    @property
    def bolus_strokes_remaining(self) -> int:
        return self._bolus_n - self._bolus_done

    def set_basal(self, rate_nl_per_day: int) -> None:
        if rate_nl_per_day < 0:
            raise ValueError("rate_nl_per_day must be >= 0")
        self._rate = rate_nl_per_day
        self._plan = None

    def follow(self, plan: RatePlan) -> None:
        if not self._follow_plans:
            self.set_basal(plan.rate_at(self._now))
            return
        self._plan = plan
        self._rate = plan.rate_at(self._now)
        self._plan_next = plan.next_change_ms(self._now)

    def start_bolus(self, strokes: int, duration_ms: int) -> None:
        if strokes < 1 or duration_ms < 1:
            raise ValueError("need strokes >= 1 and duration_ms >= 1")
        if self._bolus_n:
            raise ValueError("a bolus is already active; cancel it first")
        self._bolus_t0, self._bolus_n, self._bolus_d, self._bolus_done = (
            self._now,
            strokes,
            duration_ms,
            0,
        )

    def cancel_bolus(self) -> int:
        remaining = self.bolus_strokes_remaining
        self._bolus_t0 = self._bolus_n = self._bolus_d = self._bolus_done = 0
        return remaining

    def advance(self, now_ms: int) -> Strokes:
        if now_ms < self._now:
            raise TimeError(f"time went backwards: {now_ms} < now {self._now}")
        count = 0
        first: int | None = None
        last: int | None = None
        while self._grid + self._tick <= now_ms:
            for t in self._tick_once():
                count += 1
                first = t if first is None else first
                last = t
        self._now = now_ms
        return Strokes(count, first, last)

    def advance_count(self, now_ms: int) -> int:
        return self.advance(now_ms).count

    def next_stroke_ms(self) -> int | None:
        return self.time_of_stroke(1)

    def time_of_stroke(self, k: int) -> int | None:
        if k < 1:
            raise ValueError("k must be >= 1")
        delivers = self._rate if self._plan is None else self._plan.per_period
        if delivers == 0 and self.bolus_strokes_remaining < k:
            return None
        # Simulate on a copy, one tick at a time, until the k-th stroke fires.
        probe = copy.copy(self)
        fired = 0
        while True:
            times = probe._tick_once()
            fired += len(times)
            if fired >= k:
                return probe._grid

    def strokes_between(self, until_ms: int) -> int:
        return copy.copy(self).advance(until_ms).count

    def state(self) -> EngineState:
        """The engine-compatible snapshot; ValueError when now_ms is between tick ends,
        because a partial tick has no exact representation."""
        if self._now != self._grid:
            raise ValueError("now_ms is not on a tick boundary")
        return EngineState(
            stroke_nl=self._stroke_nl,
            now_ms=self._now,
            basal_rate_nl_per_day=self.basal_rate_nl_per_day,
            basal_accumulator=self._acc,
            bolus_start_ms=self._bolus_t0,
            bolus_strokes=self._bolus_n,
            bolus_duration_ms=self._bolus_d,
        )

    @classmethod
    def from_state(cls, s: EngineState, tick_ms: int = 1) -> ReferenceStepper:
        """Rebuild from a snapshot; ticks restart at ``s.now_ms``."""
        stepper = cls(s.stroke_nl, s.now_ms, tick_ms)
        stepper._rate = s.basal_rate_nl_per_day
        stepper._acc = s.basal_accumulator
        stepper._bolus_t0 = s.bolus_start_ms
        stepper._bolus_n = s.bolus_strokes
        stepper._bolus_d = s.bolus_duration_ms
        # Count the bolus strokes already past straight from their definition.
        while (
            stepper._bolus_done < stepper._bolus_n
            and stepper._bolus_stroke_time(stepper._bolus_done + 1) <= s.now_ms
        ):
            stepper._bolus_done += 1
        return stepper

    def _bolus_stroke_time(self, i: int) -> int:
        # t0 + ceil(i * D / N), the contract's definition, written with integer ceil.
        return self._bolus_t0 + -(-(i * self._bolus_d) // self._bolus_n)

    def _tick_once(self) -> list[int]:
        """Process one tick; return the time (its end) of each stroke in it."""
        plan = self._plan
        if plan is not None and self._grid >= self._plan_next:
            self._rate = plan.rate_at(self._grid)
            self._plan_next = plan.next_change_ms(self._grid)
        self._grid += self._tick
        times: list[int] = []
        self._acc += self._rate * self._tick
        while self._acc >= self._stroke_nl * MS_PER_DAY:
            self._acc -= self._stroke_nl * MS_PER_DAY
            times.append(self._grid)
        while (
            self._bolus_done < self._bolus_n
            and self._bolus_stroke_time(self._bolus_done + 1) <= self._grid
        ):
            self._bolus_done += 1
            times.append(self._grid)
        if self._bolus_n and self._bolus_done == self._bolus_n:
            self._bolus_t0 = self._bolus_n = self._bolus_d = self._bolus_done = 0
        return times

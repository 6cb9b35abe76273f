"""The exact, event-driven delivery engine (docs/architecture.md principles 4 and 5).

The firmware decides *what* rate to run; this engine turns rates into whole strokes, in
integer arithmetic, at a cost of O(1) per call however much time passes or however many
strokes fire (``time_of_stroke`` is O(log T) when both channels are active, see there).
The contract is pinned in docs/architecture.md, "Delivery engine contract".

Two channels add up:

- **Basal.** An accumulator counts delivered volume x time in nL*ms/day, i.e. it grows by
  ``rate_nl_per_day`` every millisecond. A stroke fires at the first millisecond the
  accumulator reaches the threshold ``stroke_nl * MS_PER_DAY``, which is then subtracted.
  Whatever is left (always below the threshold) carries across rate changes, so nothing is
  rounded away and nothing drifts, however long the pump runs or however often the rate
  changes. Several strokes fire at the same millisecond only if the rate exceeds one stroke
  per millisecond, which no real profile allows; the engine still counts them exactly.
- **Bolus.** N strokes evenly over D ms from its start t0: stroke i (1-based) fires at
  ``t0 + ceil(i * D / N)``, so the last one lands at exactly t0 + D. Inverting that,
  the strokes fired by time u are ``min(N, floor((u - t0) * N / D))`` because
  ``ceil(x) <= m`` holds exactly when ``x <= m`` for an integer m.

Times are integer milliseconds since the pump's epoch. No float is used anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from emulator.errors import TimeError
from emulator.rate_plan import RatePlan
from protocol.units import MS_PER_DAY

__all__ = ["MS_PER_DAY", "DeliveryEngine", "EngineState", "Strokes"]


def _ceil_div(a: int, b: int) -> int:
    """ceil(a / b) for b > 0, in integers (float division would round large values)."""
    return -(-a // b)


def _require_int(name: str, value: object, minimum: int) -> int:
    if type(value) is int and value >= minimum:
        return value  # the common case, without isinstance calls (every bolus)
    # bool is an int subclass; a True where a rate belongs is a caller bug, not a 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class Strokes:
    """The whole strokes delivered in one ``advance`` interval (previous now, now]."""

    count: int
    first_ms: int | None
    last_ms: int | None

    def __post_init__(self) -> None:
        # A malformed report would mislead the firmware's reservoir count, so refuse it.
        if self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")
        if self.count == 0:
            if self.first_ms is not None or self.last_ms is not None:
                raise ValueError("first_ms and last_ms must be None when count == 0")
        elif self.first_ms is None or self.last_ms is None or self.first_ms > self.last_ms:
            raise ValueError(
                f"need first_ms <= last_ms when count > 0, got {self.first_ms}, {self.last_ms}"
            )


NO_STROKES = Strokes(0, None, None)


@dataclass(frozen=True, slots=True)
class EngineState:
    """Everything needed to rebuild a ``DeliveryEngine`` exactly, as plain ints.

    ``bolus_strokes == 0`` means no bolus is active; then ``bolus_start_ms`` and
    ``bolus_duration_ms`` are 0 too. How many bolus strokes have fired is not stored: it
    follows from ``now_ms`` (see the module docstring), so it cannot disagree with it.
    """

    stroke_nl: int
    now_ms: int
    basal_rate_nl_per_day: int
    basal_accumulator: int  # nL*ms/day, 0 <= value < stroke_nl * MS_PER_DAY
    bolus_start_ms: int
    bolus_strokes: int
    bolus_duration_ms: int


class DeliveryEngine:
    """Turns a basal rate and an optional bolus into exactly timed whole strokes."""

    __slots__ = (
        "_acc",
        "_base",
        "_bolus_d",
        "_bolus_n",
        "_bolus_t0",
        "_now",
        "_rate",
        "_stroke_nl",
        "_threshold",
        "plan",
    )

    def __init__(self, stroke_nl: int, start_ms: int) -> None:
        self._stroke_nl = _require_int("stroke_nl", stroke_nl, 1)
        self._now = _require_int("start_ms", start_ms, 0)
        self._threshold = stroke_nl * MS_PER_DAY
        self._rate = 0
        self.plan: RatePlan | None = None
        """The basal plan being followed (``follow``), None at a constant rate. A plain
        attribute, not a property: the pump and the firmware read it several times a step
        (a property call was about 3 % of a simulated year). Set only by ``follow`` and
        ``set_basal``."""
        self._base = 0  # the plan's cumulative gain at now_ms (one lookup per advance)
        self._acc = 0
        # _bolus_n == 0 means no bolus; see EngineState.
        self._bolus_t0 = 0
        self._bolus_n = 0
        self._bolus_d = 0

    # -- read-only views -------------------------------------------------------------------

    @property
    def now_ms(self) -> int:
        return self._now

    @property
    def stroke_nl(self) -> int:
        return self._stroke_nl

    @property
    def basal_rate_nl_per_day(self) -> int:
        return self._rate

    @property
    def bolus_active(self) -> bool:
        return self._bolus_n > 0

    @property
    def bolus_strokes_remaining(self) -> int:
        return self._bolus_n - self._bolus_fired_by(self._now) if self._bolus_n else 0

    # -- settings --------------------------------------------------------------------------

    def set_basal(self, rate_nl_per_day: int) -> None:
        """Change the basal rate at now_ms. The accumulator's remainder carries over exactly.

        Rate 0 holds the remainder too, so a stop followed by a restart neither loses nor
        adds volume (and never catches up on the stopped time: H12).
        """
        self._rate = _require_int("rate_nl_per_day", rate_nl_per_day, 0)
        self.plan = None

    def follow(self, plan: RatePlan) -> None:
        """Run the basal on ``plan`` from now_ms until the next ``set_basal`` or ``follow``.

        The same strokes at the same milliseconds as calling ``set_basal(plan.rate_at(b))``
        at now_ms and at every step start b after it (the remainder carries over exactly
        either way), without the steps: ``advance`` and the look-ahead integrate the plan
        in closed form across its boundaries (emulator/rate_plan.py).
        """
        self.plan = plan
        self._rate = plan.rate_at(self._now)
        self._base = plan.cumulative(self._now)

    def start_bolus(self, strokes: int, duration_ms: int) -> None:
        """Deliver ``strokes`` strokes evenly over ``duration_ms`` from now_ms, on top of basal.

        Stroke i (1-based) fires at ``now_ms + ceil(i * duration_ms / strokes)``; the last at
        exactly ``now_ms + duration_ms``.

        Both must be >= 1. A zero duration would put strokes at now_ms itself, which lies in
        the interval already reported by the last ``advance``, so they could never be
        reported; a firmware wanting "as fast as possible" passes 1 ms. A zero-stroke bolus
        is refused because it would be reported as active while delivering nothing; the
        firmware should refuse such a dose itself. Raises ValueError if a bolus is active.
        """
        _require_int("strokes", strokes, 1)
        _require_int("duration_ms", duration_ms, 1)
        if self._bolus_n:
            raise ValueError("a bolus is already active; cancel it first")
        self._bolus_t0 = self._now
        self._bolus_n = strokes
        self._bolus_d = duration_ms

    def cancel_bolus(self) -> int:
        """Stop the bolus at now_ms; return the strokes it did not deliver (0 if none active)."""
        remaining = self.bolus_strokes_remaining
        self._clear_bolus()
        return remaining

    # -- time ------------------------------------------------------------------------------

    def advance(self, now_ms: int) -> Strokes:
        """Deliver everything in (self.now_ms, now_ms]; TimeError if now_ms < self.now_ms."""
        self._check_not_past(now_ms)
        basal_total, base_then = self._basal_total(now_ms)
        basal_n = basal_total // self._threshold
        bolus_n = self._bolus_between(now_ms) if self._bolus_n else 0
        if basal_n == 0 and bolus_n == 0:
            self._move(now_ms, basal_total, base_then)
            return NO_STROKES
        # First and last of each channel, computed from the state before it moves.
        firsts: list[int] = []
        lasts: list[int] = []
        if basal_n:
            firsts.append(self._basal_time(1))
            lasts.append(self._basal_time(basal_n))
        if bolus_n:
            firsts.append(self._bolus_time(1))
            lasts.append(self._bolus_time(bolus_n))
        self._move(now_ms, basal_total - basal_n * self._threshold, base_then)
        return Strokes(basal_n + bolus_n, min(firsts), max(lasts))

    def advance_count(self, now_ms: int) -> int:
        """``advance(now_ms).count``: the same move, without the stroke times (the pump's
        step needs only the count, and each time is a look-up on a flex plan)."""
        if type(now_ms) is not int or now_ms < self._now:
            self._check_not_past(now_ms)  # raises, unless an int subclass (as before)
        # Once per pump step: _basal_total inlined, no tuple built for its two results.
        plan = self.plan
        if plan is None:
            base_then = rate = 0
            basal_total = self._acc + self._rate * (now_ms - self._now)
        else:
            base_then, rate = plan.gain_and_rate(now_ms)
            basal_total = self._acc + base_then - self._base
        threshold = self._threshold
        basal_n = basal_total // threshold
        bolus_n = self._bolus_between(now_ms) if self._bolus_n else 0
        # _move, inlined (once per pump step).
        self._acc = basal_total - basal_n * threshold
        self._now = now_ms
        if plan is not None:
            self._rate = rate
            self._base = base_then
        if self._bolus_n and self._bolus_fired_by(now_ms) == self._bolus_n:
            self._clear_bolus()
        return basal_n + bolus_n

    def _basal_total(self, now_ms: int) -> tuple[int, int]:
        """(accumulator + basal gain over (now, now_ms], the plan's cumulative at now_ms)."""
        plan = self.plan
        if plan is None:
            return self._acc + self._rate * (now_ms - self._now), 0
        base_then = plan.cumulative(now_ms)
        return self._acc + base_then - self._base, base_then

    def _move(self, now_ms: int, acc: int, base_then: int) -> None:
        self._acc = acc
        self._now = now_ms
        plan = self.plan
        if plan is not None:
            self._rate = plan.rate_at(now_ms)
            self._base = base_then
        if self._bolus_n and self._bolus_fired_by(now_ms) == self._bolus_n:
            self._clear_bolus()

    def next_stroke_ms(self) -> int | None:
        """When the next stroke (either channel) fires at current settings; None if never."""
        return self.time_of_stroke(1)

    def time_of_stroke(self, k: int) -> int | None:
        """When the k-th future stroke (k >= 1, both channels merged) fires; None if never.

        With one channel active this is the closed form of that channel, O(1). With both, it
        is the least time u with ``strokes_between(u) >= k``, found by bisection between
        now_ms (0 strokes) and the earlier of the two single-channel answers (each alone
        already reaches k by then): O(log(u - now_ms)) steps, about 40 for a year ahead.
        """
        _require_int("k", k, 1)
        plan = self.plan
        delivers = self._rate if plan is None else plan.per_period
        basal = self._basal_time(k) if delivers else None
        remaining = self.bolus_strokes_remaining
        bolus = self._bolus_time(k) if k <= remaining else None
        if basal is None:
            return bolus if remaining else None
        if not remaining:
            return basal
        lo = self._now  # strokes_between(lo) == 0 < k
        hi = basal if bolus is None else min(basal, bolus)  # strokes_between(hi) >= k
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.strokes_between(mid) >= k:
                hi = mid
            else:
                lo = mid
        return hi

    def strokes_between(self, until_ms: int) -> int:
        """How many strokes would fire in (now_ms, until_ms] at current settings, no advance."""
        if type(until_ms) is not int or until_ms < self._now:
            self._check_not_past(until_ms)  # raises, unless an int subclass (as before)
        plan = self.plan
        if plan is None:
            gained = self._rate * (until_ms - self._now)
        else:
            gained = plan.cumulative(until_ms) - self._base
        basal = (self._acc + gained) // self._threshold
        return basal + self._bolus_between(until_ms) if self._bolus_n else basal

    # -- persistence (H4: restore exactly after a reset) -------------------------------------

    def state(self) -> EngineState:
        return EngineState(
            stroke_nl=self._stroke_nl,
            now_ms=self._now,
            basal_rate_nl_per_day=self._rate,
            basal_accumulator=self._acc,
            bolus_start_ms=self._bolus_t0,
            bolus_strokes=self._bolus_n,
            bolus_duration_ms=self._bolus_d,
        )

    @classmethod
    def from_state(cls, s: EngineState) -> DeliveryEngine:
        """Rebuild an engine; ValueError if the state breaks an invariant (it is corrupt)."""
        engine = cls(s.stroke_nl, s.now_ms)
        engine.set_basal(s.basal_rate_nl_per_day)
        acc = _require_int("basal_accumulator", s.basal_accumulator, 0)
        if acc >= engine._threshold:
            raise ValueError(f"basal_accumulator {acc} not below {engine._threshold}")
        engine._acc = acc
        t0 = _require_int("bolus_start_ms", s.bolus_start_ms, 0)
        n = _require_int("bolus_strokes", s.bolus_strokes, 0)
        d = _require_int("bolus_duration_ms", s.bolus_duration_ms, 0)
        if n == 0:
            if t0 or d:
                raise ValueError("no bolus, yet bolus_start_ms or bolus_duration_ms is set")
            return engine
        if d < 1 or t0 > s.now_ms:
            raise ValueError(f"bolus duration {d} or start {t0} out of range")
        engine._bolus_t0, engine._bolus_n, engine._bolus_d = t0, n, d
        if engine._bolus_fired_by(s.now_ms) >= n:
            # A finished bolus is always cleared by advance, so this state cannot be real.
            raise ValueError("bolus already complete at now_ms")
        return engine

    # -- internals -------------------------------------------------------------------------

    def _check_not_past(self, t: int) -> None:
        if not isinstance(t, int) or isinstance(t, bool):
            raise TypeError(f"time must be an int, got {type(t).__name__}")
        if t < self._now:
            raise TimeError(f"time went backwards: {t} < now {self._now}")

    def _basal_time(self, k: int) -> int:
        # Least dt with acc + gain(dt) >= k*threshold. dt >= 1 because acc < threshold.
        # Callers ask only when the basal delivers (a rate, or a plan with a gain).
        need = k * self._threshold - self._acc
        plan = self.plan
        if plan is None:
            return self._now + _ceil_div(need, self._rate)
        t = plan.time_to_reach(self._base + need)
        assert t is not None  # the plan delivers (per_period > 0), so it gets there
        return t

    def _bolus_fired_by(self, t: int) -> int:
        """Bolus strokes with time <= t (t >= t0), from the inverted closed form."""
        n = self._bolus_n
        fired = (t - self._bolus_t0) * n // self._bolus_d
        return fired if fired < n else n

    def _bolus_between(self, until_ms: int) -> int:
        n = self._bolus_n
        if not n:
            return 0
        # _bolus_fired_by at both ends, inlined (every step of a bolus).
        t0 = self._bolus_t0
        d = self._bolus_d
        then = (until_ms - t0) * n // d
        now = (self._now - t0) * n // d
        return (then if then < n else n) - (now if now < n else n)

    def _bolus_time(self, k: int) -> int:
        """Time of the k-th bolus stroke still to come (caller checks k <= remaining)."""
        i = self._bolus_fired_by(self._now) + k
        return self._bolus_t0 + _ceil_div(i * self._bolus_d, self._bolus_n)

    def _clear_bolus(self) -> None:
        self._bolus_t0 = self._bolus_n = self._bolus_d = 0

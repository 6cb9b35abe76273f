"""The prescription: what a clinician programs into the pump, as one immutable value.

Both ends use this type. The programmer builds one and stages it (docs/domain.md section 2); the
wire carries it field for field (docs/protocol.md, STAGE_PRESCRIPTION); the pump checks it
against its profile and runs it. Construction checks only what the wire format and the
protocol allow (lengths, ordering, integer ranges). The profile's clinical limits (rate
range, daily dose, step count) are the pump's to check, and it refuses with a specific code.

Schedule convention (normative, docs/protocol.md section "Prescription"):
- the pump's clock counts milliseconds since 1970-01-01 00:00 in the pump's local time, as
  set by SET_CLOCK; there are no time zones on the pump;
- a DAILY schedule repeats every 86 400 s from local midnight;
- a WEEKLY schedule repeats every 604 800 s from Monday 00:00 (1970-01-01 was a Thursday,
  so the week offset of a pump time t in seconds is ``(t + 3 * 86_400) % 604_800``);
- each step runs from its ``start_s`` until the next step's, the last until the period ends;
- CONTINUOUS is a single step at offset 0; STOPPED has no steps.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import IntEnum

from protocol.errors import FieldValueError, ScheduleError
from protocol.units import S_PER_DAY, S_PER_WEEK, U8_MAX, U32_MAX

DRUG_NAME_MAX_LEN = 16
"""Drug names are 1-16 printable ASCII characters: what the pump's log can store."""

MAX_STEPS_ON_WIRE = 48
"""The wire format's hard bound on flex steps. A profile allows fewer (10 is typical)."""

WEEK_OFFSET_OF_EPOCH_S = 3 * S_PER_DAY
"""Seconds from the Monday 00:00 before the epoch to the epoch (a Thursday)."""


class InfusionMode(IntEnum):
    STOPPED = 0
    CONTINUOUS = 1
    FLEX = 2


class Repeat(IntEnum):
    DAILY = 0
    WEEKLY = 1

    @property
    def period_s(self) -> int:
        return S_PER_DAY if self is Repeat.DAILY else S_PER_WEEK


def check_range(field: str, value: int, low: int, high: int) -> None:
    """Refuse an integer field outside [low, high], naming the field and the range."""
    if type(value) is int and low <= value <= high:
        return  # the common case, before any message text is built (benchmarks/codec.py)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldValueError(field, f"must be an integer, got {type(value).__name__}")
    if low <= value <= high:
        return  # every log entry checks its fields: keep the good path free of formatting
    allowed = f"(allowed {low}..{high})"
    if value < low:
        raise FieldValueError(field, f"{value} is below the minimum {low} {allowed}", low)
    raise FieldValueError(field, f"{value} is above the maximum {high} {allowed}", high)


@dataclass(frozen=True, slots=True)
class FlexStep:
    """One step of a schedule: from ``start_s`` into the period, deliver at this rate."""

    start_s: int
    rate_nl_per_day: int

    def __post_init__(self) -> None:
        check_range("start_s", self.start_s, 0, S_PER_WEEK - 1)
        check_range("rate_nl_per_day", self.rate_nl_per_day, 0, U32_MAX)


@dataclass(frozen=True, slots=True)
class PatientBolusLimits:
    """What the clinician allows the patient to ask for (myPTM, PTC)."""

    dose_nl: int
    duration_s: int
    lockout_s: int
    max_per_24h: int

    def __post_init__(self) -> None:
        check_range("patient_bolus.dose_nl", self.dose_nl, 1, U32_MAX)
        check_range("patient_bolus.duration_s", self.duration_s, 1, U32_MAX)
        check_range("patient_bolus.lockout_s", self.lockout_s, 0, U32_MAX)
        check_range("patient_bolus.max_per_24h", self.max_per_24h, 1, U8_MAX)


@dataclass(frozen=True, slots=True)
class Prescription:
    """A complete prescription, staged and committed as one unit (two-phase, C5)."""

    drug_name: str
    concentration_ug_per_ml: int
    mode: InfusionMode
    repeat: Repeat
    steps: tuple[FlexStep, ...]
    patient_bolus: PatientBolusLimits | None
    low_reservoir_threshold_nl: int

    def __post_init__(self) -> None:
        name = self.drug_name
        if not isinstance(name, str) or not 1 <= len(name) <= DRUG_NAME_MAX_LEN:
            # The limit is the bound broken, in characters (docs/protocol.md section 12).
            short = isinstance(name, str) and not name
            raise FieldValueError(
                "drug_name",
                f"must be 1..{DRUG_NAME_MAX_LEN} characters",
                1 if short else DRUG_NAME_MAX_LEN,
            )
        if not (name.isascii() and name.isprintable()):  # 0x20..0x7E, in C
            raise FieldValueError("drug_name", "must be printable ASCII (0x20..0x7E)")
        check_range("concentration_ug_per_ml", self.concentration_ug_per_ml, 1, U32_MAX)
        check_range("low_reservoir_threshold_nl", self.low_reservoir_threshold_nl, 0, U32_MAX)
        if not isinstance(self.mode, InfusionMode):
            raise FieldValueError("mode", "must be an InfusionMode")
        if not isinstance(self.repeat, Repeat):
            raise FieldValueError("repeat", "must be a Repeat")
        if self.mode is not InfusionMode.FLEX and self.repeat is not Repeat.DAILY:
            # Only a flex schedule repeats. Allowing WEEKLY here would give one therapy two
            # encodings and two digests (docs/protocol.md sections 10.1 and 10.2).
            raise FieldValueError(
                "repeat", f"a {self.mode.name} prescription must be DAILY", int(Repeat.DAILY)
            )
        self._check_steps()

    def _check_steps(self) -> None:
        steps = self.steps
        if self.mode is InfusionMode.STOPPED:
            if steps:
                raise FieldValueError("steps", "a STOPPED prescription has no steps", 0)
            return
        if self.mode is InfusionMode.CONTINUOUS and len(steps) != 1:
            raise FieldValueError("steps", "a CONTINUOUS prescription is one step", 1)
        if not 1 <= len(steps) <= MAX_STEPS_ON_WIRE:
            raise FieldValueError(
                "steps",
                f"must hold 1..{MAX_STEPS_ON_WIRE} steps",
                1 if not steps else MAX_STEPS_ON_WIRE,  # the bound broken (section 12)
            )
        if steps[0].start_s != 0:
            raise ScheduleError("steps[0].start_s", "the first step must start at offset 0", 0)
        period = self.repeat.period_s
        starts = [step.start_s for step in steps]
        if starts != sorted(set(starts)):  # not strictly increasing: name the first culprit
            for index, (before, after) in enumerate(itertools.pairwise(starts), start=1):
                if after <= before:
                    raise ScheduleError(
                        f"steps[{index}].start_s", "step offsets must strictly increase", 0
                    )
        if steps[-1].start_s >= period:
            raise ScheduleError(
                f"steps[{len(steps) - 1}].start_s",
                f"must be inside the {self.repeat.name} period (< {period} s)",
                0,
            )

    # -- derived quantities: exact integers, shared by the pump and the programmer ---------

    def step_durations_s(self) -> tuple[int, ...]:
        """How long each step lasts within one period."""
        if not self.steps:
            return ()
        starts = [step.start_s for step in self.steps]
        ends = [*starts[1:], self.repeat.period_s]
        return tuple(end - start for start, end in zip(starts, ends, strict=True))

    def max_rate_nl_per_day(self) -> int:
        return max((step.rate_nl_per_day for step in self.steps), default=0)

    def max_24h_volume_nl(self) -> int:
        """The most basal volume any 24 h window of the schedule delivers, rounded up.

        For a daily schedule every 24 h window holds the same volume. For a weekly one the
        windowed volume is piecewise linear in the window's start, so its maximum is at a
        start where the window's beginning or end meets a step boundary; checking those
        starts is exact. The result is rounded up so a limit check errs on the safe side.
        """
        if not self.steps:
            return 0
        period = self.repeat.period_s
        starts = [step.start_s for step in self.steps]
        rates = [step.rate_nl_per_day for step in self.steps]
        durations = self.step_durations_s()
        if period == S_PER_DAY:
            # Every 24 h window of a daily schedule is one whole period: O(steps), where the
            # window search below is O(steps^2) (a 48-step schedule staged in ~3 ms).
            best = sum(rate * duration for rate, duration in zip(rates, durations, strict=True))
            return -(-best // S_PER_DAY)

        def volume_x_day(begin: int, length: int) -> int:
            # Integral of rate over [begin, begin+length) in nL*s/day units; wraps the period.
            total = 0
            for start, rate, duration in zip(starts, rates, durations, strict=True):
                for shift in (-period, 0, period):
                    lo = max(begin, start + shift)
                    hi = min(begin + length, start + shift + duration)
                    if hi > lo:
                        total += rate * (hi - lo)
            return total

        candidates = {s % period for s in starts} | {(s - S_PER_DAY) % period for s in starts}
        best = max(volume_x_day(begin, S_PER_DAY) for begin in candidates)
        return -(-best // S_PER_DAY)

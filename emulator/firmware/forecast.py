"""Forecasts from firmware belief, in closed form (docs/protocol.md STATUS_DETAIL; H7, H10).

Everything here is a pure function of what the firmware believes: the reservoir estimate,
the running schedule, its last battery reading and the profile's design figures. Nothing
reads the plant (docs/architecture.md principle 3), and nothing steps through time: each
answer is an integral of the schedule (``Schedule.time_to_deliver``, O(log steps) however far
ahead) or one exact integer division (docs/architecture.md principle 5).

Rounding, as docs/protocol.md documents it:

- a reservoir crossing is the first whole ms by which the basal schedule has delivered the
  volume (rounded up), ignoring the engine's carried sub-stroke remainder, so the stroke
  that really crosses may come up to one stroke interval earlier;
- the ERI projection is rounded down to a whole ms (never later than the exact figure).

All instants are on the pump clock (``local_ms``) unless a name says otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

from emulator.firmware.schedule import Schedule
from emulator.profile import Profile
from protocol.units import MS_PER_DAY

__all__ = [
    "eri_projection_ms",
    "next_patient_bolus_ms",
    "reservoir_crossings",
    "reservoir_strokes_crossings",
]

HOURS_PER_DAY = 24


def reservoir_crossings(
    schedule: Schedule, local_ms: int, estimate_nl: int, threshold_nl: int, stroke_nl: int
) -> tuple[int | None, int | None]:
    """(low-reservoir, empty) instants on the pump clock from ``local_ms``; None if never.

    Low is when the estimate reaches the threshold (the alarm is raised at or below it);
    empty is when less than one stroke is left, so the volume to deliver is the estimate
    rounded down to whole strokes. Basal only: boluses come on top and make both earlier.
    """

    def when(volume_nl: int) -> int | None:
        if volume_nl <= 0:
            return local_ms
        return schedule.time_to_deliver(local_ms, volume_nl)

    to_low = estimate_nl - threshold_nl
    to_empty = estimate_nl - estimate_nl % stroke_nl
    return when(to_low), when(to_empty)


def reservoir_strokes_crossings(
    schedule: Schedule,
    local_ms: int,
    estimate_nl: int,
    threshold_nl: int,
    stroke_nl: int,
    *,
    carried_nlms: int,
) -> tuple[int | None, int | None]:
    """(low-reservoir, empty) instants on the pump clock, exact to the stroke: when the
    basal stroke that brings the estimate to the threshold or below (k_low = ceil((estimate
    - threshold) / stroke)) and the one that leaves less than one stroke (k_empty = estimate
    // stroke) will fire, counting the engine's carried remainder ``carried_nlms`` (nL x ms
    / day, under one stroke). The k-th stroke fires at the first ms by which carried + the
    schedule's integral reaches k x stroke x one day's ms, as the engine fires it
    (emulator/delivery.py). Exact while no bolus runs and the schedule is not changed."""
    per_stroke = stroke_nl * MS_PER_DAY

    def when(strokes: int) -> int | None:
        if strokes <= 0:
            return local_ms
        return schedule.time_to_accumulate(local_ms, strokes * per_stroke - carried_nlms)

    to_low = estimate_nl - threshold_nl
    return when(-(-to_low // stroke_nl)), when(estimate_nl // stroke_nl)


def eri_projection_ms(
    profile: Profile, schedule: Schedule, battery_nah: int, local_ms: int
) -> int | None:
    """When the battery is projected to reach the ERI threshold, on the pump clock; None if
    it never drains (no idle drain and nothing delivered).

    From the charge believed left at ``local_ms`` (``battery_nah``: the last reading less
    what the firmware counted since, readouts.py), the profile's idle drain, and its drain
    per stroke at the running schedule's mean basal rate
    (the current rate of a CONTINUOUS prescription; the average over a FLEX period; 0 when
    stopped). Telemetry sessions and boluses draw on top, so the real ERI can only come
    earlier: a programmer shows this as "not later than" (H7).

    drain (nAh per ms) = idle_per_hour x 24 / D + per_stroke x V / (P x S x D), with D the
    ms of a day, V the schedule's volume per period in nL x ms / day, P its period in ms and
    S the stroke volume; so the time left is left_nah x P x S x D / N, rounded down, where
    N = idle_per_hour x 24 x P x S + per_stroke x V.
    """
    left = battery_nah - profile.battery_eri_threshold_nah
    if left <= 0:
        return local_ms
    period = schedule.period_ms
    stroke = profile.stroke_nl
    idle_per_day = profile.battery_nah_per_hour_idle * HOURS_PER_DAY
    n = idle_per_day * period * stroke + profile.battery_nah_per_stroke * (
        schedule.volume_per_period_nlms()
    )
    if n == 0:
        return None
    return local_ms + left * period * stroke * MS_PER_DAY // n


def next_patient_bolus_ms(
    local_ms: int,
    lockout_until_local_ms: int,
    grants_local_ms: Sequence[int],
    max_per_24h: int,
) -> int:
    """The first instant, on the pump clock, at which neither the lockout nor the rolling
    24 h count would refuse a patient bolus (``local_ms`` if now).

    ``grants_local_ms`` are the boluses granted in the last 24 h, oldest first. A grant at g
    leaves the window at g + 24 h, so with ``used >= max_per_24h`` the next one is allowed
    when the (used - max + 1)-th oldest grant leaves it.
    """
    at = max(local_ms, lockout_until_local_ms)
    used = len(grants_local_ms)
    if used >= max_per_24h:
        at = max(at, grants_local_ms[used - max_per_24h] + MS_PER_DAY)
    return at

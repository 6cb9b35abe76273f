"""When the firmware must next act by itself, computed from its state (docs/pump-model.md,
"Time"). ``Firmware.next_deadline`` keeps the answer between changes (deadline_cache.py);
this module is the computation behind it and behind ``Firmware.user_deadlines``.

Every candidate is an absolute instant on the internal timeline: the next battery check,
end of service (by charge, or the design life's ERI, H6), a bolus end, a flex boundary when
the engine does not follow the schedule itself, and the stroke-counted reservoir crossings
(low reservoir, empty, the bridge's last old drug: the k-th future stroke, asked of the
engine only when it falls before every other candidate, so O(1) with the exact engine and
bounded with the reference stepper). Nothing here changes the firmware.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulator.firmware.therapy_table import (
    BASAL_UNDER_BOLUS_STATES,
    DELIVERING_STATES,
    RUNNING_STATES,
)
from protocol.device_state import TherapyState
from protocol.units import MS_PER_DAY

if TYPE_CHECKING:
    from emulator.firmware.firmware import Firmware

__all__ = ["next_deadline", "next_reservoir_crossing", "user_deadlines"]


def next_deadline(fw: Firmware, now_ms: int) -> int | None:
    """The next instant, after now, at which the firmware must act; None if none."""
    # Once per change: the earliest kept as candidates come, no list built.
    horizon: int | None = None
    state = fw.state
    if state is not TherapyState.END_OF_SERVICE:
        horizon = fw._next_battery_check_ms
        eos = fw._eos_ms
        if eos is not None and eos < horizon:
            horizon = eos
        design_eos = fw._design_eos_ms
        if design_eos is not None and fw._eri_ms is None:
            eri = design_eos - fw._eri_lead_ms  # design-life ERI (H6)
            horizon = min(horizon, eri)
    end = fw._bolus_end_ms
    if end is not None and (horizon is None or end < horizon):
        horizon = end
    applies = state in RUNNING_STATES or (state in BASAL_UNDER_BOLUS_STATES and fw._intent_running)
    if applies and fw.engine.plan is not fw._plans.plan(fw._schedule, fw._clock_offset_ms):
        change = fw.next_rate_change(now_ms)  # an engine not following the schedule
        if change is not None and (horizon is None or change < horizon):
            horizon = change
    if state in DELIVERING_STATES:
        crossing = next_reservoir_crossing(fw, horizon)
        if crossing is not None and (horizon is None or crossing < horizon):
            return crossing
    return horizon


def next_reservoir_crossing(fw: Firmware, horizon: int | None) -> int | None:
    """When the next stroke-counted reservoir event (low, empty, the bridge's end) falls,
    if before ``horizon``.

    Asking the engine for the k-th stroke only when it falls before the horizon keeps
    this O(1) with the real engine and bounded with the reference stepper.
    """
    stroke = fw._stroke
    estimate = fw._estimate
    k = estimate // stroke if estimate >= stroke else 0  # 0: no such crossing
    rx = fw.rx
    threshold = (
        fw.profile.low_reservoir_threshold_default_nl
        if rx is None
        else rx.low_reservoir_threshold_nl
    )
    to_low = estimate - threshold
    if to_low > 0:
        low = -(-to_low // stroke)
        if not k or low < k:
            k = low
    change = fw._change
    if change is not None and change.old_in_path_nl > 0:
        # The stroke that pushes the last old drug out of the tip (the bridge's end).
        bridge = -(-change.old_in_path_nl // stroke)
        if not k or bridge < k:
            k = bridge
    if not k:
        return None
    engine = fw.engine
    if horizon is not None and engine.strokes_between(horizon) < k:
        return None
    return engine.time_of_stroke(k)


def user_deadlines(fw: Firmware, now_ms: int) -> list[int]:
    """Times after now when what the pump accepts changes (lockout end, stage expiry, the
    oldest patient bolus leaving the 24 h window)."""
    out = []
    if fw._lockout_until_ms > now_ms:
        out.append(fw._lockout_until_ms)
    staged = fw._staged
    expires = None if staged is None else staged.expires_ms
    if expires is not None and expires > now_ms:
        out.append(expires + 1)
    if fw._patient_grants:
        out.append(fw._patient_grants[0] + MS_PER_DAY)
    return out

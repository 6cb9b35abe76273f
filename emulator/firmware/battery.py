"""The battery's milestones as the firmware sees them: its periodic check, elective
replacement (ERI), the low-battery reset and end of service (docs/pump-model.md, "Battery
design life"; H4, H6).

The firmware reads the charge at every ``battery_check_interval_s`` (the plant's truth,
as a real pump's fuel gauge reads the cell) and acts on each threshold the reading crossed:
ERI sets the end of service ``days_eri_to_eos`` ahead, never later than the design life;
the low-battery reset drops the flow to the profile's very low rate; a flat battery ends
service. ``Firmware`` calls these functions as its methods.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from emulator.firmware.therapy_table import TherapyInput
from protocol.device_state import AlarmKind, EventKind, TherapyState
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat
from protocol.units import MS_PER_DAY, MS_PER_S

if TYPE_CHECKING:
    from emulator.firmware.firmware import Firmware

__all__ = ["check", "elective_replacement", "low_battery_reset", "reach_end_of_service"]


def check(fw: Firmware, now_ms: int, battery_nah: int) -> None:
    """The periodic battery check (every ``battery_check_interval_s``, and at once when the
    charge is gone): read the charge, then act on each threshold it crossed."""
    fw._deadline.invalidate()  # the next check moves
    p = fw.profile
    fw._battery_nah = battery_nah
    fw._battery_read_ms = now_ms
    fw._battery_read_delivered_nl = fw._delivered
    interval = p.battery_check_interval_s * MS_PER_S
    while fw._next_battery_check_ms <= now_ms:
        fw._next_battery_check_ms += interval
    if battery_nah <= p.battery_eri_threshold_nah and fw._eri_ms is None:
        fw._elective_replacement(now_ms, battery_nah)
    if battery_nah <= p.battery_low_reset_threshold_nah and not fw._low_reset_done:
        fw._low_battery_reset(now_ms)
    if battery_nah == 0:
        fw._reach_end_of_service(now_ms)


def elective_replacement(fw: Firmware, now_ms: int, battery_nah: int) -> None:
    """ERI: from the charge (days_eri_to_eos of service left) or from the design life,
    whichever comes first; end of service is never later than the design life (H6)."""
    eos = now_ms + fw.profile.days_eri_to_eos * MS_PER_DAY
    if fw._design_eos_ms is not None:
        eos = min(eos, fw._design_eos_ms)
    fw._eri_ms = fw._stamp(now_ms)
    fw._eos_ms = eos
    fw._log(
        now_ms,
        EventKind.ELECTIVE_REPLACEMENT,
        0,
        fw.battery_percent(battery_nah),
        fw.local_ms(eos),
    )
    fw._raise(AlarmKind.ELECTIVE_REPLACEMENT, now_ms)


def low_battery_reset(fw: Firmware, now_ms: int) -> None:
    """Early depletion: reset the flow to the profile's very low rate (H4, H6)."""
    fw._low_reset_done = True
    rate = fw.profile.battery_low_reset_rate_nl_per_day
    old = fw.rx
    if old is not None:
        fw._install(_at_low_rate(old, rate))
    change = fw._change
    if change is not None and change.next_rx is not None:
        # A prescription waiting for the bridge's end must not bring back the full
        # rates after the reset: it becomes the low rate too, at its own concentration.
        fw._change = replace(change, next_rx=_at_low_rate(change.next_rx, rate))
    fw._raise(AlarmKind.LOW_BATTERY_RESET, now_ms)
    fw._internal(TherapyInput.LOW_BATTERY_RESET, now_ms)


def reach_end_of_service(fw: Firmware, now_ms: int) -> None:
    """End of service: delivery stops for good and the alarm sounds (H6)."""
    if fw.state is TherapyState.END_OF_SERVICE:
        return
    fw._log(now_ms, EventKind.END_OF_SERVICE, 0, fw.battery_percent(fw._battery_nah))
    fw._raise(AlarmKind.END_OF_SERVICE, now_ms)
    fw._internal(TherapyInput.END_OF_SERVICE, now_ms)
    fw._eos_ms = fw._eos_ms if fw._eos_ms is not None else now_ms


def _at_low_rate(rx: Prescription, rate_nl_per_day: int) -> Prescription:
    """``rx``'s drug, strength and low-reservoir threshold at one continuous low rate, with
    no patient bolus: what a low-battery reset leaves running."""
    return Prescription(
        drug_name=rx.drug_name,
        concentration_ug_per_ml=rx.concentration_ug_per_ml,
        mode=InfusionMode.CONTINUOUS,
        repeat=Repeat.DAILY,
        steps=(FlexStep(0, rate_nl_per_day),),
        patient_bolus=None,
        low_reservoir_threshold_nl=rx.low_reservoir_threshold_nl,
    )

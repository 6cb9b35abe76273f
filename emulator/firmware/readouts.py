"""Firmware belief for the detailed reads (docs/protocol.md STATUS_DETAIL, CATHETER_INFO,
PATIENT_VIEW): plain values, every instant on the pump clock, None where never.

The functions read the firmware's state (``Firmware.detail`` and friends call them) and
compute nothing step by step: forecasts come from forecast.py in closed form, totals from
totals.py. Nothing here reads the plant (docs/architecture.md principle 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from emulator.firmware.forecast import (
    eri_projection_ms,
    next_patient_bolus_ms,
    reservoir_strokes_crossings,
)
from emulator.firmware.schedule import Schedule
from emulator.firmware.totals import day_of
from protocol.units import MS_PER_DAY, MS_PER_HOUR

if TYPE_CHECKING:
    from emulator.firmware.firmware import Firmware

__all__ = [
    "CatheterReadout",
    "DetailReadout",
    "PatientReadout",
    "catheter",
    "detail",
    "patient_view",
]


@dataclass(frozen=True, slots=True)
class DetailReadout:
    local_time_ms: int
    eri_reached: bool
    eri_ms: int | None
    """Reached: when (the clock as it read then). Else the projection (forecast.py)."""
    end_of_service_ms: int | None
    low_reservoir_ms: int | None
    empty_ms: int | None
    lockout_ends_ms: int
    """The lockout's end, or now if none runs."""
    patient_boluses_24h: int
    mass_today_pg: int
    mass_since_refill_pg: int
    delivered_nl: int
    delivered_pg: int


@dataclass(frozen=True, slots=True)
class PatientReadout:
    local_time_ms: int
    patient_bolus_allowed: bool
    next_bolus_ms: int | None
    """None when the prescription has no patient bolus."""
    boluses_left_24h: int


@dataclass(frozen=True, slots=True)
class CatheterReadout:
    length_cm: int
    dead_volume_nl: int
    primed: bool
    max_length_cm: int


def battery_now_nah(fw: Firmware, now_ms: int) -> int:
    """The charge the firmware believes is left now: its last reading less the profile's
    idle drain for the time since and its drain per stroke for the strokes counted since
    (never below 0). Telemetry sessions are not counted: the next reading corrects it."""
    p = fw.profile
    idle = p.battery_nah_per_hour_idle * (now_ms - fw._battery_read_ms) // MS_PER_HOUR
    strokes = (fw.delivered_nl - fw._battery_read_delivered_nl) // p.stroke_nl
    return max(0, fw._battery_nah - idle - p.battery_nah_per_stroke * strokes)


def detail(fw: Firmware, now_ms: int) -> DetailReadout:
    """STATUS_DETAIL's figures: belief and closed-form forecasts (forecast.py; H7)."""
    local = fw.local_ms(now_ms)
    low, empty = None, None
    if fw.therapy_running and fw.rx is not None:
        low, empty = reservoir_strokes_crossings(
            fw._schedule,
            local,
            fw.reservoir_estimate_nl,
            fw.low_threshold_nl,
            fw.profile.stroke_nl,
            carried_nlms=fw.engine.state().basal_accumulator,
        )
    if fw._eri_ms is not None:
        eri: int | None = fw._eri_ms
        eos = fw._on_pump_clock(fw._eos_ms)
    else:
        running = fw.therapy_running
        eri = eri_projection_ms(
            fw.profile,
            fw._schedule if running else Schedule(None),
            battery_now_nah(fw, now_ms),
            local,
        )
        eos = None if eri is None else eri + fw.profile.days_eri_to_eos * MS_PER_DAY
        if fw._eos_ms is not None:  # end of service reached without ERI (flat battery)
            eos = fw._on_pump_clock(fw._eos_ms)
    return DetailReadout(
        local_time_ms=local,
        eri_reached=fw._eri_ms is not None,
        eri_ms=eri,
        end_of_service_ms=eos,
        low_reservoir_ms=low,
        empty_ms=empty,
        lockout_ends_ms=fw.local_ms(max(now_ms, fw._lockout_until_ms)),
        patient_boluses_24h=fw.patient_boluses_in_24h(now_ms),
        mass_today_pg=fw._totals.today_at(day_of(local)),
        mass_since_refill_pg=fw._totals.since_refill_pg,
        delivered_nl=fw._delivered,
        delivered_pg=fw._totals.delivered_pg,
    )


def patient_view(fw: Firmware, now_ms: int) -> PatientReadout:
    """PATIENT_VIEW: what a patient device shows, nothing more (docs/security.md 7)."""
    local = fw.local_ms(now_ms)
    pb = None if fw.rx is None else fw.rx.patient_bolus
    used = fw.patient_boluses_in_24h(now_ms)
    if pb is None:
        return PatientReadout(local, False, None, 0)
    grants = [fw.local_ms(t) for t in fw._patient_grants]
    at = next_patient_bolus_ms(local, fw.local_ms(fw._lockout_until_ms), grants, pb.max_per_24h)
    return PatientReadout(local, True, at, max(0, pb.max_per_24h - used))


def catheter(fw: Firmware) -> CatheterReadout:
    c = fw._catheter
    p = fw.profile
    return CatheterReadout(c.length_cm, c.dead_volume_nl(p), c.primed, p.catheter_max_length_cm)

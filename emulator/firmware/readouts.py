"""Firmware belief for the detailed reads (docs/protocol.md STATUS_DETAIL, CATHETER_INFO,
PATIENT_VIEW): plain values, every instant on the pump clock, None where never."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CatheterReadout", "DetailReadout", "PatientReadout"]


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

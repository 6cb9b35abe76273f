"""Interlocks: the profile's hard limits, each breach answered with its own RefusalCode.

Pure functions of (profile, request, history): no state, no clock, so every limit can be
tested on its own and the firmware applies them in one documented order. Limits are checked
in mass as well as in volume because unit slips (mg vs mcg, a misplaced decimal point) and
flex mis-entries are how real overdoses happened (H9, H11).

Rounding policy: a bolus is delivered in whole strokes, rounded *down* from the dose asked
for, so the pump never delivers more than was prescribed; limits (rate and daily mass) are
checked on the dose as asked, which is never less than what is delivered. A prescription
whose own numbers break a hard limit is refused, even if the rounding would keep the
delivered volume under it: the limit is on what the clinician prescribed and reviews.
"""

from __future__ import annotations

from emulator.firmware.results import Refused
from emulator.profile import Profile
from protocol.codec import prescription_digest as codec_digest
from protocol.prescription import InfusionMode, Prescription
from protocol.refusal import FieldId, RefusalCode
from protocol.units import S_PER_DAY

__all__ = [
    "bolus_rate_nl_per_day",
    "check_clinician_bolus",
    "check_prescription",
    "daily_volume_with_boluses_nl",
    "prescription_digest",
    "whole_strokes",
]


def whole_strokes(volume_nl: int, stroke_nl: int) -> int:
    """Strokes for a dose, rounded down: never more than prescribed."""
    return volume_nl // stroke_nl


def bolus_rate_nl_per_day(volume_nl: int, duration_s: int) -> int:
    """The average rate of a bolus, rounded up so a rate check errs on the safe side."""
    return -(-volume_nl * S_PER_DAY // duration_s)


def patient_allowance_nl(rx: Prescription) -> int:
    """The most patient-bolus volume a 24 h window can hold under this prescription, on the
    dose as asked (never less than the whole strokes delivered)."""
    pb = rx.patient_bolus
    if pb is None:
        return 0
    return pb.max_per_24h * pb.dose_nl


def daily_volume_with_boluses_nl(rx: Prescription) -> int:
    """The most volume the prescription allows in any 24 h window, nL: the basal maximum
    (``Prescription.max_24h_volume_nl``, rounded up) plus every allowed patient bolus on the
    dose as asked (H9: the limit holds even if the patient uses them all).

    This is PRESCRIPTION_STAGED's ``daily_volume_nl`` and, times the concentration, exactly
    the figure checked against the daily mass limit (docs/protocol.md sections 7 and 10.1),
    so a programmer computes it from the prescription alone. The mechanism's whole-stroke
    quantisation is not added, like every rounding: limits are on what is prescribed.
    """
    return rx.max_24h_volume_nl() + patient_allowance_nl(rx)


def _range_refusal(value: int, low: int, high: int, field: FieldId) -> Refused | None:
    if value < low:
        return Refused(RefusalCode.INVALID_FIELD, field, low)
    if value > high:
        return Refused(RefusalCode.INVALID_FIELD, field, high)
    return None


def check_prescription(profile: Profile, rx: Prescription) -> Refused | None:
    """Every profile limit on a prescription, in a fixed order; None if it may be staged."""
    p = profile
    if len(rx.steps) > p.max_flex_steps:
        return Refused(RefusalCode.TOO_MANY_STEPS, FieldId.STEP_COUNT, p.max_flex_steps)
    for step in rx.steps:
        if step.rate_nl_per_day > p.rate_max_nl_per_day:
            return Refused(RefusalCode.RATE_ABOVE_MAX, FieldId.STEP_RATE, p.rate_max_nl_per_day)
        if 0 < step.rate_nl_per_day < p.rate_min_nl_per_day:
            return Refused(RefusalCode.RATE_BELOW_MIN, FieldId.STEP_RATE, p.rate_min_nl_per_day)
    lo, hi = p.low_reservoir_threshold.low, p.low_reservoir_threshold.high
    refusal = _range_refusal(rx.low_reservoir_threshold_nl, lo, hi, FieldId.LOW_RESERVOIR_THRESHOLD)
    if refusal:
        return refusal
    pb = rx.patient_bolus
    if pb is not None:
        if rx.mode is InfusionMode.STOPPED:
            # A patient bolus needs running therapy; allowing one on a stopped prescription
            # would make "stopped" deliver drug.
            return Refused(RefusalCode.INVALID_FIELD, FieldId.PATIENT_BOLUS_DOSE, 0)
        checks = (
            (pb.dose_nl, p.patient_bolus_dose, FieldId.PATIENT_BOLUS_DOSE),
            (pb.duration_s, p.patient_bolus_duration_s, FieldId.PATIENT_BOLUS_DURATION),
            (pb.lockout_s, p.patient_bolus_lockout_s, FieldId.PATIENT_BOLUS_LOCKOUT),
            (pb.max_per_24h, p.patient_bolus_max_per_24h, FieldId.PATIENT_BOLUS_MAX_PER_24H),
        )
        if pb.dose_nl > p.patient_bolus_dose.high:
            return Refused(
                RefusalCode.BOLUS_ABOVE_MAX, FieldId.PATIENT_BOLUS_DOSE, p.patient_bolus_dose.high
            )
        for value, allowed, field in checks:
            refusal = _range_refusal(value, allowed.low, allowed.high, field)
            if refusal:
                return refusal
        volume = pb.dose_nl  # as asked: the rounding policy above
        # Basal keeps running under a patient bolus, so their sum must stay in range (H11).
        headroom = p.rate_max_nl_per_day - rx.max_rate_nl_per_day()
        if bolus_rate_nl_per_day(volume, pb.duration_s) > headroom:
            shortest = -(-volume * S_PER_DAY // headroom) if headroom > 0 else 0
            return Refused(RefusalCode.RATE_ABOVE_MAX, FieldId.PATIENT_BOLUS_DURATION, shortest)
    limit = p.max_daily_mass_for(rx.drug_name)
    if daily_volume_with_boluses_nl(rx) * rx.concentration_ug_per_ml > limit:
        return Refused(RefusalCode.DAILY_DOSE_ABOVE_MAX, FieldId.DAILY_DOSE, limit)
    return None


def check_clinician_bolus(
    profile: Profile,
    rx: Prescription,
    dose_nl: int,
    duration_s: int,
    *,
    basal_max_nl_per_day: int,
    recent_bolus_nl: int,
) -> Refused | None:
    """Limits on a clinician bolus, checked against the running prescription.

    ``basal_max_nl_per_day`` is the basal that runs under the bolus (0 from stopped);
    ``recent_bolus_nl`` is the clinician-bolus volume already given in the last 24 h. The
    daily-mass check counts the basal maximum, every allowed patient bolus, recent clinician
    boluses and this one (H9, H11).
    """
    p = profile
    if dose_nl > p.max_clinician_bolus_nl:
        return Refused(RefusalCode.BOLUS_ABOVE_MAX, FieldId.BOLUS_DOSE, p.max_clinician_bolus_nl)
    if dose_nl < p.stroke_nl:
        return Refused(RefusalCode.INVALID_FIELD, FieldId.BOLUS_DOSE, p.stroke_nl)
    if duration_s < 1 or duration_s > S_PER_DAY:
        return Refused(
            RefusalCode.INVALID_FIELD, FieldId.BOLUS_DURATION, 1 if duration_s < 1 else S_PER_DAY
        )
    volume = dose_nl  # as asked: the rounding policy above
    headroom = p.rate_max_nl_per_day - basal_max_nl_per_day
    if bolus_rate_nl_per_day(volume, duration_s) > headroom:
        shortest = -(-volume * S_PER_DAY // headroom) if headroom > 0 else 0
        return Refused(RefusalCode.RATE_ABOVE_MAX, FieldId.BOLUS_DURATION, shortest)
    limit = p.max_daily_mass_for(rx.drug_name)
    daily = daily_volume_with_boluses_nl(rx) + recent_bolus_nl + volume
    if daily * rx.concentration_ug_per_ml > limit:
        return Refused(RefusalCode.DAILY_DOSE_ABOVE_MAX, FieldId.BOLUS_DOSE, limit)
    return None


def prescription_digest(rx: Prescription) -> bytes:
    """The digest commit(digest) must quote (C5): protocol.codec's, so the programmer and
    the pump compute it the same way (SHA-256 of the canonical STAGE payload, 16 bytes)."""
    return codec_digest(rx)

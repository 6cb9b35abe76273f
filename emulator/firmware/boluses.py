"""Boluses: the clinician's, the patient's and priming, from their checks to their end.

A bolus is strokes delivered evenly over a duration on top of the basal (the engine's
``start_bolus``), in one of the bolus therapy states (therapy_table.py). This module holds
the firmware's side of it, called by ``Firmware`` within its command scope:

- ``clinician`` (CLINICIAN_BOLUS): the interlocks (interlocks.py: dose, rate, the 24 h
  bolus volume), the reservoir and a pending concentration change (H2, H9, H11);
- ``patient`` (PATIENT_BOLUS_REQUEST): the prescription's patient bolus, within its
  lockout and its count per 24 h (H2); a refusal names the seconds left or the count;
- ``prime_volume`` (PRIMING_BOLUS): the catheter's volume at the maximum rate, basal
  paused, rounded up to whole strokes so that the catheter fills (H3);
- ``begin``, ``complete``, ``drop`` and ``delivered``: the life cycle every bolus shares.
  A dropped bolus (CANCEL_BOLUS, STOP, a suspension, a reset) is never caught up (H12).

Every entry is logged as docs/protocol.md section 11 says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulator.firmware.interlocks import check_clinician_bolus, whole_strokes
from emulator.firmware.results import BolusStarted, Refused
from emulator.firmware.therapy_table import Go, TherapyInput
from protocol.device_state import EventKind, TherapyState
from protocol.refusal import FieldId, RefusalCode
from protocol.units import MS_PER_DAY, MS_PER_S

if TYPE_CHECKING:
    from emulator.firmware.firmware import Firmware

__all__ = ["begin", "clinician", "complete", "delivered", "drop", "patient", "prime_volume"]

_BOLUS_EVENTS = {
    TherapyState.CLINICIAN_BOLUS: EventKind.CLINICIAN_BOLUS_COMPLETED,
    TherapyState.PATIENT_BOLUS: EventKind.PATIENT_BOLUS_COMPLETED,
    TherapyState.PRIMING: EventKind.PRIMING_COMPLETED,
}
"""The entry a bolus's normal end writes, by the state it ran in."""


def clinician(
    fw: Firmware, dose_nl: int, duration_s: int, now_ms: int, command_id: int | None
) -> BolusStarted | Refused:
    """CLINICIAN_BOLUS: ``dose_nl`` over ``duration_s``, or the refusal, logged."""
    what = TherapyInput.CLINICIAN_BOLUS
    gate = fw._gate(what, now_ms, command_id)
    if isinstance(gate, Refused):
        return gate
    rx = fw.rx
    if fw._refill_predicted is not None:
        return fw._refuse(Refused(RefusalCode.REFILL_IN_PROGRESS), what, now_ms, command_id)
    if rx is None:
        # Without a prescription the pump knows no drug or concentration to check.
        return fw._refuse(
            Refused(RefusalCode.BAD_STATE, FieldId.CONCENTRATION), what, now_ms, command_id
        )
    if fw._estimate < fw._stroke:
        return fw._refuse(Refused(RefusalCode.RESERVOIR_EMPTY), what, now_ms, command_id)
    basal_max = rx.max_rate_nl_per_day() if fw._intent_running else 0
    fw._prune(now_ms)
    recent = sum(volume for _, volume in fw._clinician_boluses)
    refusal = check_clinician_bolus(
        fw.profile,
        rx,
        dose_nl,
        duration_s,
        basal_max_nl_per_day=basal_max,
        recent_bolus_nl=recent,
    )
    if refusal is None and dose_nl > fw._estimate:
        refusal = Refused(RefusalCode.INSUFFICIENT_RESERVOIR, FieldId.BOLUS_DOSE, fw._estimate)
    if refusal is None:
        refusal = fw._concentration_block(whole_strokes(dose_nl, fw._stroke) * fw._stroke)
    if refusal is not None:
        return fw._refuse(refusal, what, now_ms, command_id)
    strokes = whole_strokes(dose_nl, fw._stroke)
    # As asked, like every limit input (interlocks' rounding policy).
    fw._clinician_boluses.append((now_ms, dose_nl))
    return fw._begin_bolus(
        gate,
        strokes=strokes,
        duration_ms=duration_s * MS_PER_S,
        event=EventKind.CLINICIAN_BOLUS_STARTED,
        now_ms=now_ms,
        command_id=command_id,
    )


def patient(fw: Firmware, now_ms: int, command_id: int | None) -> BolusStarted | Refused:
    """PATIENT_BOLUS_REQUEST: the prescription's patient bolus, or the refusal, logged."""
    what = TherapyInput.PATIENT_BOLUS
    gate = fw._gate(what, now_ms, command_id, patient=True)
    if isinstance(gate, Refused):
        return gate
    rx = fw.rx
    pb = None if rx is None else rx.patient_bolus
    refusal: Refused | None = None
    if fw._refill_predicted is not None:
        refusal = Refused(RefusalCode.REFILL_IN_PROGRESS)
    elif pb is None:
        refusal = Refused(RefusalCode.NO_PATIENT_BOLUS)
    elif now_ms < fw._lockout_until_ms:
        # Whole seconds left, rounded up: clock-independent (protocol.md section 12).
        left_s = -(-(fw._lockout_until_ms - now_ms) // MS_PER_S)
        refusal = Refused(RefusalCode.LOCKOUT_ACTIVE, FieldId.PATIENT_BOLUS_LOCKOUT, left_s)
    elif fw.patient_boluses_in_24h(now_ms) >= pb.max_per_24h:
        refusal = Refused(
            RefusalCode.DAILY_BOLUS_COUNT_REACHED,
            FieldId.PATIENT_BOLUS_MAX_PER_24H,
            pb.max_per_24h,
        )
    elif (strokes := whole_strokes(pb.dose_nl, fw._stroke)) * fw._stroke > fw._estimate:
        refusal = Refused(
            RefusalCode.INSUFFICIENT_RESERVOIR, FieldId.PATIENT_BOLUS_DOSE, fw._estimate
        )
    elif fw._change is not None:  # otherwise nothing can block (concentration_change.py)
        refusal = fw._concentration_block(strokes * fw._stroke)
    if refusal is not None or pb is None:
        assert refusal is not None
        return fw._refuse(refusal, what, now_ms, command_id, patient=True)
    fw._patient_grants.append(now_ms)
    fw._lockout_until_ms = now_ms + pb.lockout_s * MS_PER_S
    return fw._begin_bolus(
        gate,
        strokes=strokes,
        duration_ms=pb.duration_s * MS_PER_S,
        event=EventKind.PATIENT_BOLUS_GRANTED,
        now_ms=now_ms,
        command_id=command_id,
    )


def prime_volume(
    fw: Firmware, volume_nl: int, now_ms: int, command_id: int | None
) -> BolusStarted | Refused:
    """Priming bolus of ``volume_nl`` at the maximum rate, basal paused (H3). The volume
    is rounded up to whole strokes: a priming bolus must fill the catheter."""
    what = TherapyInput.PRIME
    gate = fw._gate(what, now_ms, command_id)
    if isinstance(gate, Refused):
        return gate
    p = fw.profile
    refusal: Refused | None = None
    most = p.catheter_volume_nl(p.catheter_max_length_cm)
    if fw._refill_predicted is not None:
        refusal = Refused(RefusalCode.REFILL_IN_PROGRESS)
    elif volume_nl > most:
        refusal = Refused(RefusalCode.INVALID_FIELD, FieldId.CATHETER_VOLUME, most)
    elif volume_nl < fw._stroke:
        refusal = Refused(RefusalCode.INVALID_FIELD, FieldId.CATHETER_VOLUME, fw._stroke)
    elif fw._estimate < fw._stroke:
        refusal = Refused(RefusalCode.RESERVOIR_EMPTY)
    elif volume_nl > fw._estimate:
        refusal = Refused(RefusalCode.INSUFFICIENT_RESERVOIR, FieldId.CATHETER_VOLUME, fw._estimate)
    elif fw._change is not None:
        # Priming pushes the whole path out at the maximum rate: the old drug as a bolus,
        # then the new one at no prescription's rate. Commit the new prescription first.
        refusal = Refused(RefusalCode.CONCENTRATION_CHANGE_PENDING)
    if refusal is not None:
        return fw._refuse(refusal, what, now_ms, command_id)
    strokes = -(-volume_nl // fw._stroke)
    # What the firmware believes the catheter holds from now on (the bridge's volume).
    fw._catheter_nl = volume_nl
    duration_ms = -(-strokes * fw._stroke * MS_PER_DAY // p.rate_max_nl_per_day)
    return fw._begin_bolus(
        gate,
        strokes=strokes,
        duration_ms=max(duration_ms, 1),
        event=EventKind.PRIMING_STARTED,
        now_ms=now_ms,
        command_id=command_id,
    )


def drop(fw: Firmware, now_ms: int) -> int:
    """Cancel the running bolus; what it did not deliver is never caught up (H12).

    Logged as docs/protocol.md section 11 says: value_a the volume delivered before the
    cancel (strokes counted as delivered: a stroke the sensor saw blocked is not), like
    a completed bolus's; value_b the command that cancelled it (CANCEL_BOLUS, STOP), 0
    when the pump dropped it itself. The rest of the bolus's volume (its STARTED entry's
    value_a) was not delivered and is never caught up.
    """
    fw.engine.cancel_bolus()
    fw._bolus_end_ms = None
    return fw._log(now_ms, EventKind.BOLUS_CANCELLED, 0, fw._bolus_delivered())


def delivered(fw: Firmware) -> int:
    """nL of the running or last bolus counted as delivered."""
    return fw._bolus_done * fw._stroke


def begin(
    fw: Firmware,
    go: Go,
    *,
    strokes: int,
    duration_ms: int,
    event: EventKind,
    now_ms: int,
    command_id: int | None,
) -> BolusStarted:
    """Start a bolus of ``strokes`` over ``duration_ms`` (its checks passed): the therapy
    state moves by ``go``, the engine takes the strokes, ``event`` is logged."""
    fw._transition(go, now_ms)
    fw.engine.start_bolus(strokes, duration_ms)
    end = fw._bolus_end_ms = now_ms + duration_ms
    volume = fw._bolus_volume = strokes * fw._stroke
    fw._bolus_done = 0
    seq = fw._log(now_ms, event, 0, volume)
    if command_id is not None:
        fw._last_command_id = command_id  # _note_command
    # The ACK's stamp and end time (docs/protocol.md 8.1): on the pump clock, like
    # STATUS (_stamp and local_ms, inlined).
    offset = fw._clock_offset_ms
    return BolusStarted(command_id, now_ms + offset, seq, volume, strokes, end + offset)


def complete(fw: Firmware, now_ms: int) -> None:
    """The running bolus delivered its last stroke: log its end, leave the bolus state."""
    if fw.state is TherapyState.PRIMING and fw._bolus_delivered() >= fw._catheter.dead_volume_nl(
        fw.profile
    ):
        # A priming bolus that delivered the catheter's dead volume primed it (H3).
        fw._catheter.primed = True
    event = _BOLUS_EVENTS.get(fw.state)
    fw._bolus_end_ms = None
    if event is not None:
        fw._log(now_ms, event, 0, fw._bolus_done * fw._stroke)  # _bolus_delivered
    fw._internal(TherapyInput.BOLUS_COMPLETE, now_ms)

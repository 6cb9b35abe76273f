"""Refills: REFILL_BEGIN and REFILL_COMPLETE as the firmware applies them, and their checks.

A refill is two commands (docs/protocol.md, REFILL_BEGIN and REFILL_COMPLETE): at the begin
the pump records the residual it predicts; at the complete it compares what the clinician
withdrew with that prediction (a discrepancy above the profile's threshold is logged: H1,
H10), takes the new volume as its estimate, notes a new concentration as a pending change
(emulator/firmware/concentration_change.py), restarts the patient-bolus lockout and clears
or raises the reservoir alarms. ``Firmware``'s refill methods call the functions here
(``check_begin``, ``begin``, ``check_complete``, ``complete``), within its command scope.

REFILL_COMPLETE's entry checks are pure functions of what was entered and what is believed.

What the clinician enters at a refill is checked before anything is applied (docs/protocol.md
REFILL_COMPLETE, section 12): the volume against the reservoir's usable capacity, the
withdrawn volume's range, and a new concentration against the drug library's range for the
drug in the pump (the mg/mcg slip, H11). A new concentration while another refill's change
is still pending is refused: the firmware keeps one belief about the old drug in the path
(emulator/firmware/concentration_change.py), not a history of strengths.

A new concentration is *not* checked against the running volume rates any more: those rates
never run at the new concentration (the pump suspends rather than run them, and a new
prescription is checked in full at its stage), so such a check would only refuse safe
refills.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulator.drug_library import DrugLibrary
from emulator.firmware.concentration_change import PendingChange, path_volume_nl
from emulator.firmware.drug_checks import check_concentration
from emulator.firmware.results import RefillBegun, RefillCompleted, Refused
from emulator.firmware.therapy_table import Go, TherapyInput, lookup
from emulator.profile import Profile
from protocol.device_state import AlarmKind, EventKind
from protocol.prescription import Prescription
from protocol.refusal import FieldId, RefusalCode
from protocol.units import MS_PER_S, U64_MAX

if TYPE_CHECKING:
    from emulator.firmware.firmware import Firmware

__all__ = ["begin", "check_begin", "check_complete", "check_refill_entry", "complete"]


def check_begin(fw: Firmware, now_ms: int, command_id: int | None) -> Refused | None:
    """Would refill-begin be accepted? The pump asks before the needle withdraws."""
    gate = fw._gate(TherapyInput.REFILL_BEGIN, now_ms, command_id)
    if isinstance(gate, Refused):
        return gate
    if fw._refill_predicted is not None:
        return fw._refuse(
            Refused(RefusalCode.REFILL_IN_PROGRESS),
            TherapyInput.REFILL_BEGIN,
            now_ms,
            command_id,
        )
    return None


def begin(fw: Firmware, now_ms: int, withdrawn_nl: int, command_id: int | None) -> RefillBegun:
    """Record the predicted residual (after ``check_begin`` passed)."""
    fw._refill_predicted = fw._estimate
    seq = fw._log(now_ms, EventKind.REFILL_BEGUN, 0, fw._estimate)
    fw._note_command(command_id)
    return RefillBegun(command_id, fw._stamp(now_ms), seq, fw._estimate, withdrawn_nl)


def check_complete(
    fw: Firmware,
    new_volume_nl: int,
    withdrawn_nl: int,
    now_ms: int,
    command_id: int | None,
    *,
    concentration: int | None = None,
) -> Refused | None:
    """The refusal for this REFILL_COMPLETE (logged as the firmware logs refusals), or None
    if it may be applied."""
    what = TherapyInput.REFILL_COMPLETE
    gate = fw._gate(what, now_ms, command_id)
    if isinstance(gate, Refused):
        return gate
    refusal: Refused | None
    if fw._refill_predicted is None:
        refusal = Refused(RefusalCode.REFILL_NOT_STARTED)
    else:
        refusal = check_refill_entry(
            fw.profile,
            fw.library,
            fw.rx,
            fw._change,
            new_volume_nl=new_volume_nl,
            withdrawn_nl=withdrawn_nl,
            concentration=concentration,
        )
    if refusal is not None:
        return fw._refuse(refusal, what, now_ms, command_id)
    return None


def complete(
    fw: Firmware,
    new_volume_nl: int,
    withdrawn_nl: int,
    now_ms: int,
    command_id: int | None,
    *,
    concentration: int | None = None,
) -> RefillCompleted:
    """Apply a refill (after ``check_complete`` passed).

    A new concentration never changes the prescription in effect (its rates were worked
    out for the old drug, which still fills the path): the firmware records a pending
    change (emulator/firmware/concentration_change.py) and keeps running the old rates
    over the old drug; a prescription for the new concentration must be staged and
    committed before the new drug reaches the tip (docs/pump-model.md).
    """
    predicted = fw._refill_predicted
    assert predicted is not None
    fw._refill_predicted = None
    gate = lookup(fw.state, TherapyInput.REFILL_COMPLETE)
    assert isinstance(gate, Go)
    discrepancy = withdrawn_nl - predicted
    flagged = abs(discrepancy) > fw.profile.refill_discrepancy_threshold_nl
    if flagged:
        # H1 (pocket fill), H10 (wrong volume entered), mechanical drift: the residual is
        # not what the pump believed. Logged for the clinician; the pump cannot know why.
        fw._log(now_ms, EventKind.REFILL_DISCREPANCY, int(discrepancy > 0), abs(discrepancy))
    fw._estimate = new_volume_nl
    fw._totals.mark_refill()
    changed = False
    rx = fw.rx
    if concentration is not None and rx is not None:
        changed = concentration != rx.concentration_ug_per_ml
        if changed and fw._change is None:
            path = path_volume_nl(fw.profile, fw._catheter_nl)
            fw._change = PendingChange(concentration, path)
    pb = None if rx is None else rx.patient_bolus
    if pb is not None:
        # A lockout starts right after a refill (docs/domain.md section 2).
        fw._lockout_until_ms = max(fw._lockout_until_ms, now_ms + pb.lockout_s * MS_PER_S)
    if fw._estimate >= fw._stroke and fw._empty:
        fw._empty = False
        fw._clear_alarm(AlarmKind.RESERVOIR_EMPTY, now_ms)
    fw._check_reservoir_alarms(now_ms)
    seq = fw._log(now_ms, EventKind.REFILL_COMPLETED, int(changed), new_volume_nl)
    fw._transition(gate, now_ms)
    fw._note_command(command_id)
    low, empty = fw.predictions(now_ms)
    return RefillCompleted(command_id, fw._stamp(now_ms), seq, discrepancy, flagged, low, empty)


def check_refill_entry(
    profile: Profile,
    library: DrugLibrary,
    rx: Prescription | None,
    change: PendingChange | None,
    *,
    new_volume_nl: int,
    withdrawn_nl: int,
    concentration: int | None,
) -> Refused | None:
    """The refusal for a REFILL_COMPLETE entry, or None if it may be applied."""
    if new_volume_nl < 0:
        return Refused(RefusalCode.INVALID_FIELD, FieldId.NEW_VOLUME, 0)
    if new_volume_nl > profile.reservoir_usable_nl:
        return Refused(
            RefusalCode.VOLUME_ABOVE_CAPACITY, FieldId.NEW_VOLUME, profile.reservoir_usable_nl
        )
    if not 0 <= withdrawn_nl <= U64_MAX:
        return Refused(RefusalCode.INVALID_FIELD, FieldId.WITHDRAWN_VOLUME, 0)
    if concentration is None:
        return None
    if concentration < 1:
        return Refused(RefusalCode.INVALID_FIELD, FieldId.NEW_CONCENTRATION, 1)
    if rx is None:
        return None  # no drug known yet: the first prescription's stage checks it
    drug = library.lookup(rx.drug_name)
    if drug is not None:
        refusal = check_concentration(drug, concentration, FieldId.NEW_CONCENTRATION)
        if refusal is not None:
            return refusal
    if change is not None and concentration != change.new_concentration:
        return Refused(
            RefusalCode.CONCENTRATION_CHANGE_PENDING,
            FieldId.NEW_CONCENTRATION,
            change.new_concentration,
        )
    return None

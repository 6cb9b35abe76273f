"""REFILL_COMPLETE's entry checks: pure functions of what was entered and what is believed.

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

from emulator.drug_library import DrugLibrary
from emulator.firmware.concentration_change import PendingChange
from emulator.firmware.drug_checks import check_concentration
from emulator.firmware.results import Refused
from emulator.profile import Profile
from protocol.prescription import Prescription
from protocol.refusal import FieldId, RefusalCode
from protocol.units import U64_MAX

__all__ = ["check_refill_entry"]


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

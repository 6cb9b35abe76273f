"""Stage-time checks against the drug library (H9, H11; docs/pump-model.md, "Drug library").

Pure functions of (library, profile, prescription, running prescription, overrides): no
state, no clock, like ``interlocks``. Two steps around the profile's own checks:

1. ``check_identity`` before them: the drug must be one the library knows (UNKNOWN_DRUG) and
   its concentration inside the drug's range (CONCENTRATION_OUT_OF_RANGE): the mg/mcg slip,
   25 sent for 25000 ug/mL, is caught here, before any dose is worked out from it.
2. ``check_soft_limits`` after them (the hard limit, DAILY_DOSE_ABOVE_MAX, is the profile
   check in ``interlocks.check_prescription``, fed the library's figure through
   ``Profile.max_daily_mass_for``): a daily mass above the drug's soft limit, or further from
   the running prescription's than the drug's relative limit, is refused unless the request
   carries the matching override flag. The flex mis-entry "60 mcg each morning" entered as
   "every hour" is caught by both.

Every mass is the PRESCRIPTION_STAGED figure (``daily_volume_with_boluses_nl`` x
concentration), so a programmer can reproduce each check from the prescription alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from emulator.drug_library import Drug, DrugLibrary
from emulator.firmware.interlocks import check_prescription, daily_volume_with_boluses_nl
from emulator.firmware.results import Refused
from emulator.profile import Profile
from protocol.messages import OVERRIDE_DOSE_CHANGE, OVERRIDE_SOFT_LIMIT
from protocol.prescription import InfusionMode, Prescription
from protocol.refusal import FieldId, RefusalCode

__all__ = [
    "Review",
    "check_concentration",
    "check_identity",
    "check_soft_limits",
    "check_stage",
    "daily_mass",
]


@dataclass(frozen=True, slots=True)
class Review:
    """What the soft checks found, for the review (STAGED_WITH_OVERRIDE) and the log."""

    overrides_used: int
    """The override flags the prescription needed (0: it passes without any)."""
    soft_limit_pg: int
    reference_daily_mass_pg: int
    """The running prescription's daily mass the change was measured against; 0 if none."""


def daily_mass(rx: Prescription) -> int:
    """PRESCRIPTION_STAGED's ``daily_mass_pg`` (docs/protocol.md section 7)."""
    return daily_volume_with_boluses_nl(rx) * rx.concentration_ug_per_ml


def check_concentration(drug: Drug, concentration: int, field: FieldId) -> Refused | None:
    """The concentration inside the drug's range; the NAK's limit is the bound it broke."""
    if concentration < drug.concentration_min_ug_per_ml:
        return Refused(
            RefusalCode.CONCENTRATION_OUT_OF_RANGE, field, drug.concentration_min_ug_per_ml
        )
    if concentration > drug.concentration_max_ug_per_ml:
        return Refused(
            RefusalCode.CONCENTRATION_OUT_OF_RANGE, field, drug.concentration_max_ug_per_ml
        )
    return None


def check_identity(library: DrugLibrary, rx: Prescription) -> Drug | Refused:
    """The library's drug for this prescription, or the refusal (step 1 above)."""
    drug = library.lookup(rx.drug_name)
    if drug is None:
        return Refused(RefusalCode.UNKNOWN_DRUG, FieldId.DRUG_NAME, 0)
    refusal = check_concentration(drug, rx.concentration_ug_per_ml, FieldId.CONCENTRATION)
    return drug if refusal is None else refusal


def reference_mass(library: DrugLibrary, drug: Drug, running: Prescription | None) -> int:
    """The running prescription's daily mass a change is measured against: 0 (no reference)
    if there is none, it is STOPPED, it delivers nothing, or it is another drug (a change
    of drug is a new therapy, checked against the soft and hard limits only)."""
    if running is None or running.mode is InfusionMode.STOPPED:
        return 0
    other = library.lookup(running.drug_name)
    if other is None or other.name != drug.name:
        return 0
    return daily_mass(running)


def check_soft_limits(
    library: DrugLibrary,
    drug: Drug,
    rx: Prescription,
    running: Prescription | None,
    overrides: int,
) -> Review | Refused:
    """Step 2 above. A STOPPED prescription delivers nothing: no soft check applies (stopping
    is STOP_THERAPY's business, and a stop is never an overdose)."""
    mass = daily_mass(rx)
    reference = reference_mass(library, drug, running)
    used = 0
    if rx.mode is InfusionMode.STOPPED:
        return Review(0, drug.soft_max_daily_pg, reference)
    if mass > drug.soft_max_daily_pg:
        if not overrides & OVERRIDE_SOFT_LIMIT:
            return Refused(
                RefusalCode.SOFT_LIMIT_NEEDS_OVERRIDE, FieldId.DAILY_DOSE, drug.soft_max_daily_pg
            )
        used |= OVERRIDE_SOFT_LIMIT
    if reference > 0:
        low, high = drug.change_bounds_pg(reference)
        if not low <= mass <= high:
            if not overrides & OVERRIDE_DOSE_CHANGE:
                bound = high if mass > high else low
                return Refused(RefusalCode.DOSE_CHANGE_NEEDS_OVERRIDE, FieldId.DAILY_DOSE, bound)
            used |= OVERRIDE_DOSE_CHANGE
    return Review(used, drug.soft_max_daily_pg, reference)


def check_stage(
    library: DrugLibrary,
    profile: Profile,
    rx: Prescription,
    *,
    running: Prescription | None,
    pending_concentration: int | None,
    overrides: int,
) -> Review | Refused:
    """Every check a STAGE makes, in docs/protocol.md section 10.3's order: the drug and its
    concentration, a pending concentration change, the profile's limits (the hard daily
    limit among them, from the library), then the soft limits with their overrides."""
    drug = check_identity(library, rx)
    if isinstance(drug, Refused):
        return drug
    if pending_concentration is not None and rx.concentration_ug_per_ml != pending_concentration:
        # The reservoir holds the refill's concentration: a prescription for another one
        # would run the new drug at rates worked out for the wrong strength.
        return Refused(
            RefusalCode.CONCENTRATION_CHANGE_PENDING, FieldId.CONCENTRATION, pending_concentration
        )
    refusal = check_prescription(profile, rx)
    if refusal is not None:
        return refusal
    return check_soft_limits(library, drug, rx, running, overrides)

"""A refill with a new concentration, as the firmware believes it: the old drug in the path.

After a refill with a new concentration the reservoir holds the new drug, but the pump's
internal path and the catheter's dead volume still hold the old one: the next
``old_in_path_nl`` of flow out of the catheter tip is old drug. The committed prescription's
volume rates are right for it (they were worked out for the old concentration), so the
pump keeps running them while old drug is in the path: the dose in mass does not change.
What must not happen is the new drug running at the old volume rates (4 mg/day at 10 mg/mL
becoming 10 mg/day at 25 mg/mL): that needs a prescription for the new concentration,
re-staged and committed (docs/pump-model.md, "Concentration changes"; docs/protocol.md
section 10.3).

``PendingChange`` is that belief; the firmware holds at most one. Pure values: no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from emulator.firmware.nvram import SnapshotError, prescription_from_json, prescription_to_json
from emulator.firmware.results import Refused
from emulator.profile import Profile
from protocol.prescription import Prescription
from protocol.refusal import FieldId, RefusalCode

__all__ = [
    "PendingChange",
    "TipAction",
    "at_tip",
    "bridge_refusal",
    "change_from_json",
    "change_to_json",
    "delivery_block",
    "path_volume_nl",
]


def path_volume_nl(profile: Profile, catheter_nl: int) -> int:
    """The old drug a concentration change leaves to deliver, as the firmware believes it:
    the pump's internal path (profile ``[fluid_path] internal_path_nl``) and the catheter's dead
    volume (the last priming volume, or the longest catheter's before any priming)."""
    return profile.internal_path_nl + catheter_nl


@dataclass(frozen=True, slots=True)
class PendingChange:
    """A new concentration in the reservoir that no prescription in effect is for yet."""

    new_concentration: int
    """ug/mL, as REFILL_COMPLETE entered it."""
    old_in_path_nl: int
    """Old drug still between the reservoir and the catheter tip (belief), nL."""
    bridging: bool = False
    """BRIDGE_BOLUS was accepted: a COMMIT now takes effect when the old drug is out."""
    next_rx: Prescription | None = None
    """Committed during the bridge; it replaces the running prescription at the tip."""
    suspended: bool = False
    """The new drug reached the tip with no prescription for it: delivery suspended."""

    def delivered(self, volume_nl: int) -> PendingChange:
        """``volume_nl`` more left the pump: that much old drug left the tip."""
        return replace(self, old_in_path_nl=max(self.old_in_path_nl - volume_nl, 0))

    @property
    def new_drug_at_tip(self) -> bool:
        return self.old_in_path_nl == 0


def delivery_block(change: PendingChange | None, volume_nl: int) -> Refused | None:
    """A request that would deliver ``volume_nl`` on top of the basal (0: the basal itself,
    START) is refused while it would run the new concentration at doses worked out for the
    old one: once the new drug is at the tip, or for a bolus larger than the old drug left
    in the path (docs/protocol.md section 10.3, rule 6)."""
    if change is None:
        return None
    if change.new_drug_at_tip or volume_nl > change.old_in_path_nl:
        return Refused(
            RefusalCode.CONCENTRATION_CHANGE_PENDING,
            FieldId.CONCENTRATION,
            change.new_concentration,
        )
    return None


class TipAction(Enum):
    """What the firmware does when it looks at the catheter tip after a step."""

    NOTHING = "nothing"
    """No change pending, old drug still in the path, or already suspended for it."""
    TAKE_EFFECT = "take-effect"
    """The old drug is out: the prescription committed during the bridge runs now."""
    SUSPEND = "suspend"
    """The new drug is at the tip with no prescription for it: suspend, critical alarm."""


def at_tip(change: PendingChange | None, delivering: bool) -> TipAction:
    """Rules 4 and 5 of docs/protocol.md section 10.3."""
    if change is None or not change.new_drug_at_tip or change.suspended:
        return TipAction.NOTHING
    if change.next_rx is not None:
        return TipAction.TAKE_EFFECT
    # Not delivering, nothing flows: START and the boluses check delivery_block themselves.
    return TipAction.SUSPEND if delivering else TipAction.NOTHING


def bridge_refusal(change: PendingChange | None, end_ms: int | None) -> Refused | None:
    """BRIDGE_BOLUS's own refusals, after the gate (docs/protocol.md section 7): no old drug
    to bridge; a bridge already running, or running rates that would never move the old
    drug out (``end_ms`` None: no stroke to come)."""
    if change is None or change.old_in_path_nl == 0:
        return Refused(RefusalCode.NO_CONCENTRATION_CHANGE)
    if change.bridging or end_ms is None:
        return Refused(RefusalCode.BAD_STATE)
    return None


def change_to_json(change: PendingChange | None) -> list[Any] | None:
    if change is None:
        return None
    return [
        change.new_concentration,
        change.old_in_path_nl,
        change.bridging,
        prescription_to_json(change.next_rx),
        change.suspended,
    ]


def change_from_json(data: Any) -> PendingChange | None:
    """The inverse of ``change_to_json``; SnapshotError if malformed."""
    if data is None:
        return None
    try:
        conc, old, bridging, next_rx, suspended = data
    except (TypeError, ValueError) as exc:
        raise SnapshotError(f"bad concentration change: {exc}") from exc
    for name, value in (("new concentration", conc), ("old drug in path", old)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SnapshotError(f"bad concentration change: {name} {value!r}")
    for name, flag in (("bridging", bridging), ("suspended", suspended)):
        if not isinstance(flag, bool):
            raise SnapshotError(f"bad concentration change: {name} {flag!r}")
    return PendingChange(conc, old, bridging, prescription_from_json(next_rx), suspended)

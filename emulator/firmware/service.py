"""Clinician service procedures: their refusal rules and the catheter the pump is told of.

docs/pump-model.md ("Service procedures") and docs/protocol.md (CLEAR_MEMORY_ERROR,
RESET_FLOW_VALVE, SET_CATHETER) describe the procedures; this module holds their rules so
the firmware's command methods stay thin:

- CLEAR_MEMORY_ERROR (H8) is refused NO_SUCH_ALARM (field ALARM, limit 0) when no memory
  error is active: the MEMORY_ERROR alarm it would clear is not active.
- RESET_FLOW_VALVE (H15) is refused NO_FLOW_VALVE on a pump without a flow-activated valve
  (a peristaltic pump): there is nothing to reset. On a valve-gated pump it is accepted
  whether or not the valve is closed: the firmware cannot always see the valve (the sensor
  is a profile option), and reopening an open valve changes nothing.
- SET_CATHETER (H3) records what the clinician entered after an implant or a revision: the
  pump cannot measure a catheter. A length outside 1..``catheter_max_length_cm`` is refused
  INVALID_FIELD, CATHETER_LENGTH, with the bound it broke in cm.
"""

from __future__ import annotations

from dataclasses import dataclass

from emulator.firmware.results import Refused
from emulator.profile import Profile
from protocol.refusal import FieldId, RefusalCode

__all__ = [
    "CatheterBelief",
    "catheter_length_refusal",
    "clear_memory_error_refusal",
    "flow_valve_refusal",
]


def clear_memory_error_refusal(memory_error: bool) -> Refused | None:
    if memory_error:
        return None
    return Refused(RefusalCode.NO_SUCH_ALARM, FieldId.ALARM, 0)


def flow_valve_refusal(profile: Profile) -> Refused | None:
    if profile.flow_activated_valve:
        return None
    return Refused(RefusalCode.NO_FLOW_VALVE)


def catheter_length_refusal(profile: Profile, length_cm: int) -> Refused | None:
    most = profile.catheter_max_length_cm
    if 1 <= length_cm <= most:
        return None
    return Refused(RefusalCode.INVALID_FIELD, FieldId.CATHETER_LENGTH, 1 if length_cm < 1 else most)


@dataclass(slots=True)
class CatheterBelief:
    """The catheter as the firmware believes it: entered, never measured (H3, H13).

    ``primed`` becomes true when a priming bolus completes having delivered at least the
    dead volume of this length; SET_CATHETER sets it as the clinician enters it."""

    length_cm: int
    primed: bool

    def dead_volume_nl(self, profile: Profile) -> int:
        return profile.catheter_volume_nl(self.length_cm)

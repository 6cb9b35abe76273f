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
from typing import TYPE_CHECKING

from emulator.firmware.results import Accepted, Refused
from emulator.firmware.therapy_table import TherapyInput
from emulator.profile import Profile
from protocol.device_state import AlarmKind, EventKind
from protocol.messages import Opcode
from protocol.refusal import FieldId, RefusalCode

if TYPE_CHECKING:
    from emulator.firmware.firmware import Firmware

__all__ = [
    "CatheterBelief",
    "catheter_length_refusal",
    "clear_memory_error",
    "clear_memory_error_refusal",
    "flow_valve_refusal",
    "reset_flow_valve",
    "set_catheter",
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


# -- the procedures --------------------------------------------------------------------------
# Run by the firmware's command methods, which put the command id in effect for the log
# (docs/protocol.md section 11, the command rule). They work on the firmware's own state:
# this module is the firmware's, split out by what it does.


def clear_memory_error(fw: Firmware, now_ms: int, command_id: int | None) -> Accepted | Refused:
    """Rewrite the non-volatile record; the pump stays stopped until restarted (H8): what it
    held when the record failed may be what failed, so a clinician checks, then starts."""
    what = TherapyInput.CLEAR_MEMORY_ERROR
    refusal = clear_memory_error_refusal(fw.memory_error)
    if refusal is not None:
        return fw._refuse(refusal, what, now_ms, command_id)
    gate = fw._gate(what, now_ms, command_id)
    if isinstance(gate, Refused):
        return gate
    fw._nv_fault = None
    fw._memory_error = False
    fw._clear_alarm(AlarmKind.MEMORY_ERROR, now_ms)
    fw._intent_running = False
    seq = fw._transition(gate, now_ms)
    return fw._accepted(command_id, now_ms, seq or fw.log.next_seq - 1)


def reset_flow_valve(fw: Firmware, now_ms: int, command_id: int | None) -> Accepted | Refused:
    """A clinician reset the flow-activated valve (H15); logged like any command.
    Refused NO_FLOW_VALVE on a pump that has none. The plant's valve is reopened by the
    pump (``Pump.reset_flow_valve``) only when this accepts."""
    bad_id = fw._check_command_id(command_id)
    if bad_id is not None:
        return bad_id
    refusal = flow_valve_refusal(fw.profile)
    if refusal is not None:
        fw._log(now_ms, EventKind.COMMAND_REFUSED, int(refusal.code), Opcode.RESET_FLOW_VALVE)
        return refusal
    seq = fw._log(now_ms, EventKind.FLOW_VALVE_RESET)
    return fw._accepted(command_id, now_ms, seq)


def set_catheter(
    fw: Firmware, length_cm: int, primed: bool, now_ms: int, command_id: int | None
) -> Accepted | Refused:
    """Record the catheter the clinician entered (implant, revision; H3). A memory
    error refuses it like every update (H8)."""
    bad_id = fw._check_command_id(command_id)
    if bad_id is not None:
        return bad_id
    refusal = (
        Refused(RefusalCode.MEMORY_ERROR)
        if fw._memory_error
        else catheter_length_refusal(fw.profile, length_cm)
    )
    if refusal is not None:
        fw._log(now_ms, EventKind.COMMAND_REFUSED, int(refusal.code), Opcode.SET_CATHETER)
        return refusal
    fw._catheter = CatheterBelief(length_cm, primed)
    # One catheter belief: the bridge's old-drug volume follows a revision too (the dead
    # volume of the catheter just set), never a stale priming's (docs/pump-model.md).
    fw._catheter_nl = fw.profile.catheter_volume_nl(length_cm)
    seq = fw._log(now_ms, EventKind.CATHETER_SET, int(primed), length_cm)
    return fw._accepted(command_id, now_ms, seq)

"""Who may ask for what: the one permission table, deny by default (C4).

The table maps each ``Role`` to the frozenset of ``RequestKind`` it may make. Anything not in
its set is refused with ``NOT_PERMITTED_FOR_ROLE``, including any role or kind added later
until someone grants it here. The integration maps each request opcode to a ``RequestKind``;
this module knows nothing of opcodes. docs/security.md carries the same table, and a test
keeps the two in step.

- A patient session may read status and the patient view (what a patient device shows),
  ask for a patient bolus, and keep alive or close its own session. Nothing else: no
  programming, no stopping, no refill, not even reading the prescription, the log, the
  detailed status or the catheter.
- A clinician session may make every request in the catalogue.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType

from protocol.device_state import Role


class RequestKind(Enum):
    """Every kind of request a programmer can make once a session is open."""

    READ_STATUS = "read_status"
    READ_INFO = "read_info"
    READ_PRESCRIPTION = "read_prescription"
    READ_LOG = "read_log"
    READ_ALARMS = "read_alarms"
    READ_CLOCK = "read_clock"
    STAGE = "stage"
    COMMIT = "commit"
    SET_CLOCK = "set_clock"
    START = "start"
    STOP = "stop"
    CLINICIAN_BOLUS = "clinician_bolus"
    CANCEL_BOLUS = "cancel_bolus"
    PATIENT_BOLUS = "patient_bolus"
    PRIMING = "priming"
    REFILL_BEGIN = "refill_begin"
    REFILL_COMPLETE = "refill_complete"
    ACK_ALARM = "ack_alarm"
    ALARM_TEST = "alarm_test"
    KEEP_ALIVE = "keep_alive"
    CLOSE = "close"
    READ_STATUS_DETAIL = "read_status_detail"
    READ_CATHETER = "read_catheter"
    READ_PATIENT_VIEW = "read_patient_view"
    CLEAR_MEMORY_ERROR = "clear_memory_error"
    RESET_FLOW_VALVE = "reset_flow_valve"
    SET_CATHETER = "set_catheter"


PERMISSIONS: Mapping[Role, frozenset[RequestKind]] = MappingProxyType(
    {
        Role.CLINICIAN: frozenset(RequestKind),
        Role.PATIENT: frozenset(
            {
                RequestKind.READ_STATUS,
                RequestKind.PATIENT_BOLUS,
                RequestKind.KEEP_ALIVE,
                RequestKind.CLOSE,
                # What a patient device shows (next bolus, boluses left), nothing more: the
                # detailed status and the catheter stay clinician-only (issue 12).
                RequestKind.READ_PATIENT_VIEW,
            }
        ),
    }
)
"""The one permission table. A role missing from it may do nothing."""


def permitted(role: Role, kind: RequestKind) -> bool:
    """True only if the table grants ``kind`` to ``role``; everything else is denied."""
    return kind in PERMISSIONS.get(role, frozenset())

"""Which permission each request needs, and which requests change therapy.

The session layer decides by ``RequestKind`` (protocol/permissions.py, deny by default, C4),
and the codec speaks in opcodes. This module is the one bridge between the two, so that a
new opcode without an entry here is refused rather than let through. It also says which
requests change therapy. Those carry a command id and are applied at most once (C1;
docs/protocol.md, "Exactly-once commands").
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from protocol.messages import Opcode
from protocol.permissions import RequestKind

REQUEST_KIND: Mapping[Opcode, RequestKind] = MappingProxyType(
    {
        Opcode.CLOSE_SESSION: RequestKind.CLOSE,
        Opcode.KEEP_ALIVE: RequestKind.KEEP_ALIVE,
        Opcode.READ_DEVICE_INFO: RequestKind.READ_INFO,
        Opcode.READ_STATUS: RequestKind.READ_STATUS,
        Opcode.READ_PRESCRIPTION: RequestKind.READ_PRESCRIPTION,
        Opcode.READ_EVENT_LOG: RequestKind.READ_LOG,
        Opcode.READ_ALARMS: RequestKind.READ_ALARMS,
        Opcode.READ_CLOCK: RequestKind.READ_CLOCK,
        Opcode.STAGE_PRESCRIPTION: RequestKind.STAGE,
        Opcode.COMMIT_PRESCRIPTION: RequestKind.COMMIT,
        Opcode.SET_CLOCK: RequestKind.SET_CLOCK,
        Opcode.START_THERAPY: RequestKind.START,
        Opcode.STOP_THERAPY: RequestKind.STOP,
        Opcode.CLINICIAN_BOLUS: RequestKind.CLINICIAN_BOLUS,
        Opcode.CANCEL_BOLUS: RequestKind.CANCEL_BOLUS,
        Opcode.PATIENT_BOLUS_REQUEST: RequestKind.PATIENT_BOLUS,
        Opcode.PRIMING_BOLUS: RequestKind.PRIMING,
        Opcode.REFILL_BEGIN: RequestKind.REFILL_BEGIN,
        Opcode.REFILL_COMPLETE: RequestKind.REFILL_COMPLETE,
        Opcode.ACKNOWLEDGE_ALARM: RequestKind.ACK_ALARM,
        Opcode.ALARM_TEST: RequestKind.ALARM_TEST,
        Opcode.READ_STATUS_DETAIL: RequestKind.READ_STATUS_DETAIL,
        Opcode.READ_CATHETER: RequestKind.READ_CATHETER,
        Opcode.READ_PATIENT_VIEW: RequestKind.READ_PATIENT_VIEW,
        Opcode.CLEAR_MEMORY_ERROR: RequestKind.CLEAR_MEMORY_ERROR,
        Opcode.RESET_FLOW_VALVE: RequestKind.RESET_FLOW_VALVE,
        Opcode.SET_CATHETER: RequestKind.SET_CATHETER,
    }
)
"""Every request that may travel sealed, by opcode. OPEN_SESSION and AUTHENTICATE are absent:
they travel unsealed, before there is a role to check."""

HANDSHAKE_OPCODES = frozenset({Opcode.OPEN_SESSION, Opcode.AUTHENTICATE})
"""The only requests a pump accepts unsealed (docs/security.md, handshake)."""

COMMAND_OPCODES = frozenset(
    {
        Opcode.COMMIT_PRESCRIPTION,
        Opcode.SET_CLOCK,
        Opcode.START_THERAPY,
        Opcode.STOP_THERAPY,
        Opcode.CLINICIAN_BOLUS,
        Opcode.CANCEL_BOLUS,
        Opcode.PATIENT_BOLUS_REQUEST,
        Opcode.PRIMING_BOLUS,
        Opcode.REFILL_BEGIN,
        Opcode.REFILL_COMPLETE,
        Opcode.ACKNOWLEDGE_ALARM,
        Opcode.ALARM_TEST,
        Opcode.CLEAR_MEMORY_ERROR,
        Opcode.RESET_FLOW_VALVE,
        Opcode.SET_CATHETER,
    }
)
"""Requests that change therapy or pump state: each carries a command id and is applied at
most once, whatever the link does (C1). STAGE is absent on purpose: staging changes nothing
until COMMIT, and staging twice just replaces the staged prescription."""

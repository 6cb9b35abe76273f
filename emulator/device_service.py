"""The issue-12 requests behind the wire: the detailed reads and the service commands.

Kept out of emulator/device.py so its dispatch stays small: ``PumpDevice`` hands these
requests here after the session layer checked the role (protocol/permissions.py: the
patient may send READ_PATIENT_VIEW, nothing else of these) and, for a command, the ledger
its command id (docs/protocol.md section 8). Every figure is firmware belief
(docs/architecture.md principle 3); every instant is on the pump clock already, ``None``
(never) going out as ``NEVER_MS`` (docs/protocol.md section 1).
"""

from __future__ import annotations

from emulator.firmware.results import Accepted, Refused
from emulator.pump import Pump
from protocol.messages import (
    NEVER_MS,
    CatheterInfo,
    ClearMemoryError,
    Message,
    PatientView,
    ReadCatheter,
    ReadPatientView,
    ReadStatusDetail,
    ResetFlowValve,
    SetCatheter,
    StatusDetail,
)
from protocol.units import U8_MAX, U64_MAX

__all__ = ["SERVICE_COMMANDS", "SERVICE_READS", "apply_service_command", "read_reply"]

SERVICE_READS = (ReadStatusDetail, ReadCatheter, ReadPatientView)
SERVICE_COMMANDS = (ClearMemoryError, ResetFlowValve, SetCatheter)


def _instant(ms: int | None) -> int:
    return NEVER_MS if ms is None else min(ms, U64_MAX)


def read_reply(pump: Pump, request: Message) -> Message | None:
    """The reply to one of ``SERVICE_READS``; None for any other request."""
    match request:
        case ReadStatusDetail():
            d = pump.status_detail()
            return StatusDetail(
                pump_time_ms=d.local_time_ms,
                eri_reached=d.eri_reached,
                eri_at_ms=_instant(d.eri_ms),
                end_of_service_at_ms=_instant(d.end_of_service_ms),
                low_reservoir_at_ms=_instant(d.low_reservoir_ms),
                empty_at_ms=_instant(d.empty_ms),
                lockout_ends_ms=_instant(d.lockout_ends_ms),
                patient_boluses_24h=min(d.patient_boluses_24h, U8_MAX),
                mass_today_pg=min(d.mass_today_pg, U64_MAX),
                mass_since_refill_pg=min(d.mass_since_refill_pg, U64_MAX),
                delivered_nl=min(d.delivered_nl, U64_MAX),
                delivered_pg=min(d.delivered_pg, U64_MAX),
            )
        case ReadCatheter():
            c = pump.catheter_info()
            return CatheterInfo(
                length_cm=c.length_cm,
                dead_volume_nl=c.dead_volume_nl,
                primed=c.primed,
                max_length_cm=c.max_length_cm,
            )
        case ReadPatientView():
            v = pump.patient_view()
            return PatientView(
                pump_time_ms=v.local_time_ms,
                patient_bolus_allowed=v.patient_bolus_allowed,
                next_bolus_at_ms=_instant(v.next_bolus_ms),
                boluses_left_24h=min(v.boluses_left_24h, U8_MAX),
            )
        case _:
            return None


def apply_service_command(
    pump: Pump, request: Message, command_id: int
) -> tuple[Accepted | Refused, int] | None:
    """Apply one of ``SERVICE_COMMANDS``: the result and the ACK ``value`` (docs/protocol.md
    section 8.1: SET_CATHETER's is the dead volume of the catheter set, nL; else 0). None
    for any other request."""
    match request:
        case ClearMemoryError():
            return pump.clear_memory_error(command_id=command_id), 0
        case ResetFlowValve():
            return pump.reset_flow_valve(command_id=command_id), 0
        case SetCatheter(length_cm=length_cm, primed=primed):
            result = pump.set_catheter(length_cm, primed=primed, command_id=command_id)
            return result, pump.catheter_info().dead_volume_nl
        case _:
            return None

"""The firmware's non-volatile record (H4, H8): what survives a reset, as plain JSON values.

``record_of`` writes it and ``load_into`` reads it back into a firmware, field by field: the
one place that lists what the firmware keeps (``Firmware.to_record`` and ``load_record``
delegate here; emulator/snapshot_rules.py checks every field of a record from outside, and
docs/state-file.md describes the file around it). Instants are on the internal timeline
(deadlines), except history stamps, which are on the pump clock as written, like the log.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from emulator.firmware.alarms import AlarmSet
from emulator.firmware.concentration_change import change_from_json, change_to_json
from emulator.firmware.nvram import SnapshotError, prescription_from_json, prescription_to_json
from emulator.firmware.schedule import Schedule
from emulator.firmware.service import CatheterBelief
from emulator.firmware.totals import DeliveryTotals
from protocol.device_state import AlarmKind, AlarmRecord, TherapyState

if TYPE_CHECKING:
    from emulator.firmware.firmware import Firmware

__all__ = ["load_into", "record_of"]


def record_of(fw: Firmware) -> dict[str, Any]:
    """The firmware's non-volatile record: everything but volatile RAM (staging, refill
    in progress) and the engine's sub-stroke remainder.

    Instants are on the internal timeline (they are deadlines), except the history
    stamps ``eri_ms`` and the alarms' ``since_ms``, which are on the pump clock as it
    read when they were written, like the log."""
    return {
        "state": int(fw.state),
        "rx": prescription_to_json(fw.rx),
        "intent_running": fw._intent_running,
        "estimate": fw._estimate,
        "delivered": fw._delivered,
        "bolus_end_ms": fw._bolus_end_ms,
        "bolus_volume": fw._bolus_volume,
        "bolus_done": fw._bolus_done,
        "stalled": fw._stalled,
        "stall_detected_ms": fw._stall_detected_ms,
        "empty": fw._empty,
        "memory_error": fw._memory_error,
        "eri_ms": fw._eri_ms,
        "eos_ms": fw._eos_ms,
        "design_eos_ms": fw._design_eos_ms,
        "low_reset_done": fw._low_reset_done,
        "battery_nah": fw._battery_nah,
        "next_battery_check_ms": fw._next_battery_check_ms,
        "lockout_until_ms": fw._lockout_until_ms,
        "patient_grants": list(fw._patient_grants),
        "clinician_boluses": [list(b) for b in fw._clinician_boluses],
        "last_command_id": fw._last_command_id,
        "clock_offset_ms": fw._clock_offset_ms,
        "alarms": [[int(r.kind), r.since_ms, r.acknowledged] for r in fw.alarms.records()],
        "totals": fw._totals.to_json(),
        "battery_read": {
            "ms": fw._battery_read_ms,
            "delivered_nl": fw._battery_read_delivered_nl,
        },
        "catheter": {"length_cm": fw._catheter.length_cm, "primed": fw._catheter.primed},
        "concentration_change": change_to_json(fw._change),
        "catheter_nl": fw._catheter_nl,
    }


def load_into(fw: Firmware, record: dict[str, Any]) -> None:
    """Restore the persisted fields (SnapshotError if the record is malformed)."""
    try:
        fw.state = TherapyState(record["state"])
        rx = prescription_from_json(record["rx"])
        fw.rx = None
        fw._schedule = Schedule(None)
        if rx is not None:
            fw._install(rx)
        fw._intent_running = bool(record["intent_running"])
        fw._estimate = int(record["estimate"])
        fw._delivered = int(record["delivered"])
        fw._bolus_end_ms = record["bolus_end_ms"]
        fw._bolus_volume = int(record["bolus_volume"])
        fw._bolus_done = int(record["bolus_done"])
        fw._stalled = bool(record["stalled"])
        fw._stall_detected_ms = int(record["stall_detected_ms"])
        fw._empty = bool(record["empty"])
        fw._memory_error = bool(record["memory_error"])
        fw._eri_ms = record["eri_ms"]
        fw._eos_ms = record["eos_ms"]
        fw._design_eos_ms = record["design_eos_ms"]
        fw._low_reset_done = bool(record["low_reset_done"])
        fw._battery_nah = int(record["battery_nah"])
        fw._next_battery_check_ms = int(record["next_battery_check_ms"])
        fw._lockout_until_ms = int(record["lockout_until_ms"])
        fw._patient_grants = deque(int(t) for t in record["patient_grants"])
        fw._clinician_boluses = deque((int(t), int(v)) for t, v in record["clinician_boluses"])
        fw._last_command_id = record["last_command_id"]
        fw._clock_offset_ms = int(record["clock_offset_ms"])
        fw.alarms = AlarmSet(
            tuple(AlarmRecord(AlarmKind(k), int(t), bool(a)) for k, t, a in record["alarms"])
        )
        fw._totals = DeliveryTotals.from_json(record["totals"])
        fw._battery_read_ms = int(record["battery_read"]["ms"])
        fw._battery_read_delivered_nl = int(record["battery_read"]["delivered_nl"])
        catheter = record["catheter"]
        fw._catheter = CatheterBelief(int(catheter["length_cm"]), bool(catheter["primed"]))
        fw._change = change_from_json(record["concentration_change"])
        fw._catheter_nl = int(record["catheter_nl"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotError(f"bad firmware record: {exc}") from exc

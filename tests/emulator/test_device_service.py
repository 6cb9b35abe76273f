"""Issue 12 over the wire (emulator/device_service.py): the new reads answer what the pump
believes, the service commands apply exactly once, and a PATIENT session gets the patient
view and nothing else of them (docs/protocol.md sections 5 and 7, docs/security.md 7)."""

from __future__ import annotations

import random

import pytest

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.faults import MagnetExposure, MemoryCorruption
from emulator.pump import Pump
from hil.programmer.core import Outcome, ProgrammerCore
from hil.two_peer import PerfectLink, TwoPeer
from protocol.device_state import AlarmKind, EventKind, Role, TherapyState
from protocol.keys import generate_keys
from protocol.messages import (
    NEVER_MS,
    Ack,
    CatheterInfo,
    ClearMemoryError,
    Message,
    Nak,
    Opcode,
    PatientView,
    ReadCatheter,
    ReadPatientView,
    ReadStatusDetail,
    ResetFlowValve,
    SetCatheter,
    StatusDetail,
)
from protocol.permissions import permitted
from protocol.prescription import FlexStep, InfusionMode, PatientBolusLimits, Prescription, Repeat
from protocol.refusal import FieldId, RefusalCode
from protocol.request_kinds import REQUEST_KIND
from protocol.units import MS_PER_HOUR

KEYS = generate_keys("PE-W12", bytes(range(64)))
MIDNIGHT = 1_767_225_600_000
RX = Prescription(
    "morphine", 10_000, InfusionMode.CONTINUOUS, Repeat.DAILY, (FlexStep(0, 500_000),),
    PatientBolusLimits(dose_nl=10_000, duration_s=600, lockout_s=3_600, max_per_24h=3),
    2_000_000,
)  # fmt: skip


def peer(role: Role = Role.CLINICIAN, profile: str = "peristaltic-20") -> TwoPeer:
    pump = Pump(profile, start_ms=0)
    assert pump.set_clock(MIDNIGHT, command_id=1).ok
    assert pump.program(RX, command_id=2).ok
    device = PumpDevice(pump, KEYS, random.Random(1).randbytes)
    core = ProgrammerCore(KEYS.serial, role, KEYS.key_for(role), random.Random(2).randbytes)
    return TwoPeer(device, core, ManualClock(0), PerfectLink(latency_ms=0))


def reply(tp: TwoPeer, message: Message) -> Message:
    result = tp.request(message)
    assert result.outcome is not Outcome.UNCERTAIN, result
    assert result.reply is not None
    return result.reply


def test_status_detail_is_the_firmwares_belief() -> None:
    tp = peer()
    tp.run_until(6 * MS_PER_HOUR)
    got = reply(tp, ReadStatusDetail())
    assert isinstance(got, StatusDetail)
    d = tp.device.pump.status_detail()
    assert got.pump_time_ms == d.local_time_ms == MIDNIGHT + 6 * MS_PER_HOUR
    assert got.eri_at_ms == d.eri_ms
    assert got.low_reservoir_at_ms == d.low_reservoir_ms
    assert got.empty_at_ms == d.empty_ms
    assert got.delivered_nl == 625 * 200  # 2 500 strokes a day: 625 in 6 h
    assert got.delivered_pg == got.delivered_nl * 10_000
    assert got.mass_today_pg == got.delivered_pg
    assert got.lockout_ends_ms == got.pump_time_ms  # the 1 h lockout after COMMIT is over
    assert not got.eri_reached


def test_stopped_pump_reports_never() -> None:
    tp = peer()
    assert isinstance(reply(tp, ReadStatusDetail()), StatusDetail)
    pump = tp.device.pump
    assert pump.stop(command_id=9).ok
    got = reply(tp, ReadStatusDetail())
    assert isinstance(got, StatusDetail)
    assert (got.low_reservoir_at_ms, got.empty_at_ms) == (NEVER_MS, NEVER_MS)


def test_patient_reads_the_patient_view() -> None:
    """Lockout 1 h from COMMIT at MIDNIGHT; 3 boluses a day, none used."""
    tp = peer(Role.PATIENT)
    got = reply(tp, ReadPatientView())
    assert got == PatientView(
        pump_time_ms=MIDNIGHT,
        patient_bolus_allowed=True,
        next_bolus_at_ms=MIDNIGHT + MS_PER_HOUR,
        boluses_left_24h=3,
    )


NEW_REQUESTS: list[Message] = [
    ReadStatusDetail(),
    ReadCatheter(),
    ReadPatientView(),
    ClearMemoryError(command_id=70),
    ResetFlowValve(command_id=71),
    SetCatheter(command_id=72, length_cm=90, primed=True),
]


@pytest.mark.hazard("C4")
@pytest.mark.parametrize("request_", NEW_REQUESTS, ids=lambda m: type(m).__name__)
def test_patient_gets_only_the_patient_view(request_: Message) -> None:
    tp = peer(Role.PATIENT)
    got = reply(tp, request_)
    allowed = permitted(Role.PATIENT, REQUEST_KIND[request_.OPCODE])
    assert allowed is (request_.OPCODE is Opcode.READ_PATIENT_VIEW)
    if allowed:
        assert isinstance(got, PatientView)
    else:
        assert got == Nak(RefusalCode.NOT_PERMITTED_FOR_ROLE, FieldId.ROLE, 0)
    assert tp.device.pump.catheter_info().length_cm == 110  # nothing was applied


def test_set_catheter_acks_the_dead_volume_once() -> None:
    """90 cm x 2 600 nL/cm = 234 000 nL; the same command id again returns the same ACK
    and writes nothing (C1)."""
    tp = peer()
    command = SetCatheter(command_id=80, length_cm=90, primed=False)
    first = reply(tp, command)
    assert isinstance(first, Ack)
    assert first.value == 234_000
    seq = tp.device.pump.status().log_next_seq
    assert reply(tp, command) == first
    assert tp.device.pump.status().log_next_seq == seq
    info = reply(tp, ReadCatheter())
    assert info == CatheterInfo(
        length_cm=90, dead_volume_nl=234_000, primed=False, max_length_cm=110
    )
    entries = [e for e in tp.device.pump.log() if e.kind is EventKind.CATHETER_SET]
    assert [(e.detail, e.value_a, e.value_b) for e in entries] == [(0, 90, 80)]


def test_clear_memory_error_over_the_wire_h8() -> None:
    tp = peer()
    pump = tp.device.pump
    pump.inject(MemoryCorruption(bit=100))
    tp.run_until(1_000)
    assert pump.status().memory_error
    got = reply(tp, ClearMemoryError(command_id=90))
    assert isinstance(got, Ack)
    assert got.state is TherapyState.STOPPED  # never restarts by itself
    assert AlarmKind.MEMORY_ERROR not in {a.kind for a in pump.alarms()}
    again = reply(tp, ClearMemoryError(command_id=91))
    assert again == Nak(RefusalCode.NO_SUCH_ALARM, FieldId.ALARM, 0)


def test_reset_flow_valve_over_the_wire_h15() -> None:
    tp = peer(profile="valve-gated-20")
    pump = tp.device.pump
    pump.inject(MagnetExposure(scan_s=1_800))
    assert pump.plant_truth().valve_closed
    got = reply(tp, ResetFlowValve(command_id=95))
    assert isinstance(got, Ack)
    assert not pump.plant_truth().valve_closed
    before = pump.plant_truth().delivered_nl
    tp.run_until(24 * MS_PER_HOUR)
    assert pump.plant_truth().delivered_nl > before

"""PumpDevice: every request answered through the wire, and the framing rules around it.

Happy paths run through the reference programmer core (``TwoPeer`` on a perfect link with
no latency, so pump time is exact); the framing cases feed the device raw bytes.
"""

from __future__ import annotations

import random
import tomllib
from importlib import resources

import pytest

from emulator.clock import ManualClock
from emulator.device import RX_IDLE_MS, PumpDevice, default_session_limits, profile_limits
from emulator.errors import ProfileError
from emulator.firmware.results import Refused
from emulator.profile import builtin_profile_names, load_profile, parse_profile
from emulator.pump import Pump
from hil.programmer.core import Outcome, ProgrammerCore, Result
from hil.two_peer import PerfectLink, TwoPeer
from protocol import codec
from protocol.checksum import crc16
from protocol.codec import Frame
from protocol.device_state import AlarmKind, AlarmRecord, EventKind, LogEntry, Role, TherapyState
from protocol.framer import FrameBytes, Framer
from protocol.keys import generate_keys
from protocol.messages import (
    Ack,
    AcknowledgeAlarm,
    AlarmList,
    AlarmTest,
    CancelBolus,
    ClinicianBolus,
    Clock,
    CloseSession,
    CommitPrescription,
    CurrentPrescription,
    DeviceInfo,
    EventLogPage,
    KeepAlive,
    Message,
    Nak,
    OpenSession,
    PatientBolusRequest,
    PrescriptionStaged,
    PrimingBolus,
    ReadAlarms,
    ReadClock,
    ReadDeviceInfo,
    ReadEventLog,
    ReadPrescription,
    ReadStatus,
    RefillBegin,
    RefillComplete,
    SetClock,
    StagePrescription,
    StartTherapy,
    Status,
    StopTherapy,
)
from protocol.prescription import FlexStep, InfusionMode, PatientBolusLimits, Prescription, Repeat
from protocol.refusal import FieldId, RefusalCode
from protocol.session import SessionLimits, SessionState

KEYS = generate_keys("PE-000123", bytes(range(3, 67)))
RX = Prescription(
    drug_name="morphine",
    concentration_ug_per_ml=10_000,
    mode=InfusionMode.CONTINUOUS,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 500_000),),
    patient_bolus=PatientBolusLimits(10_000, 60, 600, 24),
    low_reservoir_threshold_nl=2_000_000,
)


def pair(*, program: bool = False) -> TwoPeer:
    pump = Pump("peristaltic-20", start_ms=0)
    if program:
        assert not isinstance(pump.program(RX, command_id=1), Refused)
    device = PumpDevice(pump, KEYS, random.Random(1).randbytes)
    core = ProgrammerCore(KEYS.serial, Role.CLINICIAN, KEYS.clinician, random.Random(2).randbytes)
    return TwoPeer(device, core, ManualClock(0), PerfectLink(latency_ms=0))


def ok(tp: TwoPeer, message: Message) -> Result:
    result = tp.request(message)
    assert result.outcome in (Outcome.ANSWERED, Outcome.APPLIED), result
    assert result.attempts == 1
    return result


def acked(tp: TwoPeer, message: Message) -> Ack:
    reply = ok(tp, message).reply
    assert isinstance(reply, Ack), reply
    assert reply.request is message.OPCODE
    assert reply.command_id == getattr(message, "command_id", 0)
    status = tp.device.pump.status()
    assert reply.state is status.state
    assert reply.reservoir_nl == status.reservoir_estimate_nl
    return reply


# -- every request, happy path -----------------------------------------------------------------


def test_reads_are_answered() -> None:
    tp = pair(program=True)
    pump = tp.device.pump
    info = ok(tp, ReadDeviceInfo()).reply
    assert isinstance(info, DeviceInfo)
    assert info.serial == KEYS.serial
    assert info.model == "peristaltic-20"
    assert info.limits == profile_limits(pump.profile)
    status = ok(tp, ReadStatus()).reply
    assert isinstance(status, Status)
    assert status.state is TherapyState.CONTINUOUS
    assert (status.rate_nl_per_day, status.last_command_id) == (500_000, 1)
    assert status.pump_time_ms == pump.status().local_time_ms
    current = ok(tp, ReadPrescription()).reply
    assert current == CurrentPrescription(prescription=RX)
    page = ok(tp, ReadEventLog(from_seq=0, count=3)).reply
    assert isinstance(page, EventLogPage)
    assert page.entries == pump.log()[:3]
    assert page.next_seq == pump.status().log_next_seq
    assert ok(tp, ReadAlarms()).reply == AlarmList(alarms=())
    assert ok(tp, ReadClock()).reply == Clock(pump_time_ms=pump.status().local_time_ms)


def test_stage_and_commit() -> None:
    tp = pair()
    staged = ok(tp, StagePrescription(prescription=RX)).reply
    assert isinstance(staged, PrescriptionStaged)
    assert staged.digest == codec.prescription_digest(RX)
    assert staged.daily_volume_nl >= 500_000
    commit = CommitPrescription(command_id=2, digest=staged.digest)
    assert acked(tp, commit).value == 0
    assert tp.device.pump.status().prescription == RX


def test_staged_mass_is_volume_times_concentration() -> None:
    tp = pair()
    staged = ok(tp, StagePrescription(prescription=RX)).reply
    assert isinstance(staged, PrescriptionStaged)
    assert staged.daily_mass_pg == staged.daily_volume_nl * RX.concentration_ug_per_ml
    assert staged.daily_volume_nl == 500_000 + 24 * 10_000  # basal + every allowed bolus


def test_therapy_commands_and_ack_values() -> None:
    """ACK values of docs/protocol.md section 8.1, command by command."""
    tp = pair(program=True)
    pump = tp.device.pump
    before = pump.status().local_time_ms
    assert acked(tp, SetClock(command_id=10, pump_time_ms=1_767_225_600_000)).value == before
    assert pump.status().local_time_ms == 1_767_225_600_000
    # Instants in ACKs are on the pump clock STATUS reports, not the internal timeline.
    now = pump.status().local_time_ms
    assert acked(tp, ClinicianBolus(command_id=11, dose_nl=2_000, duration_s=60)).value == (
        now + 60_000
    )
    assert pump.status().state is TherapyState.CLINICIAN_BOLUS
    assert acked(tp, CancelBolus(command_id=12)).value == 0
    assert acked(tp, AlarmTest(command_id=13)).value == 0
    tp.run_until(tp.clock.now_ms() + 600_000)  # past the post-commit bolus lockout
    now = pump.status().local_time_ms
    assert acked(tp, PatientBolusRequest(command_id=14)).value == now + 60_000
    assert acked(tp, StopTherapy(command_id=15)).value == 0
    assert pump.status().state is TherapyState.STOPPED
    now = pump.status().local_time_ms
    priming = acked(tp, PrimingBolus(command_id=16, catheter_volume_nl=2_000))
    assert priming.value > now
    tp.run_until(tp.clock.now_ms() + priming.value - now + 1)  # pump clock -> internal
    assert acked(tp, StartTherapy(command_id=17)).value == 0
    predicted = pump.status().reservoir_estimate_nl
    assert acked(tp, RefillBegin(command_id=18)).value == predicted
    refill = RefillComplete(
        command_id=19,
        withdrawn_nl=predicted,
        new_volume_nl=1_500_000,  # below the low-reservoir threshold: an alarm to acknowledge
        new_concentration_ug_per_ml=10_000,
    )
    assert acked(tp, refill).value == predicted
    assert AlarmKind.LOW_RESERVOIR in {a.kind for a in pump.alarms()}
    assert acked(tp, AcknowledgeAlarm(command_id=20, alarm=AlarmKind.LOW_RESERVOIR)).value == 0
    assert acked(tp, KeepAlive()).command_id == 0
    assert tp.device.ledger.applied_ids() == tuple(range(10, 21))


def read_log(tp: TwoPeer) -> dict[int, LogEntry]:
    """The whole event log through READ_EVENT_LOG, by seq."""
    entries: dict[int, LogEntry] = {}
    next_seq = 0
    while True:
        page = ok(tp, ReadEventLog(from_seq=next_seq, count=32)).reply
        assert isinstance(page, EventLogPage)
        entries.update((e.seq, e) for e in page.entries)
        if not page.entries:
            return entries
        next_seq = page.entries[-1].seq + 1


def pump_clock(tp: TwoPeer) -> int:
    status = ok(tp, ReadStatus()).reply
    assert isinstance(status, Status)
    return status.pump_time_ms


def test_every_instant_on_the_wire_is_on_the_status_clock_after_set_clock() -> None:
    """docs/protocol.md section 1: ACK end times, log stamps, alarm since and the stage
    predictions are all on the clock STATUS reports, even after SET_CLOCK moved it away
    from the pump's internal timeline; entries written before keep their stamps."""
    tp = pair(program=True)
    tp.run_until(3_600_000)  # an hour of therapy on the internal timeline
    assert ok(tp, ReadAlarms()).reply == AlarmList(alarms=())
    before_log = read_log(tp)
    old_clock = pump_clock(tp)
    assert [e.time_ms for e in before_log.values()][-1] == old_clock  # the session opening

    new_clock = 1_767_225_600_000  # 2026-01-01 00:00 local: far from the internal time
    assert acked(tp, SetClock(command_id=10, pump_time_ms=new_clock)).value == old_clock
    assert pump_clock(tp) == new_clock
    assert tp.clock.now_ms() == 3_600_000  # the internal timeline did not move

    # A bolus's ACK end time is its duration after STATUS's clock, and it ends then.
    ends = acked(tp, ClinicianBolus(command_id=11, dose_nl=2_000, duration_s=60)).value
    assert ends - pump_clock(tp) == 60_000
    tp.run_until(tp.clock.now_ms() + 60_000)
    assert pump_clock(tp) == ends

    # An alarm raised after the change: since = STATUS's clock when it was raised.
    tp.run_until(tp.clock.now_ms() + 5_000)
    assert acked(tp, RefillBegin(command_id=12)).value > 0
    predicted = tp.device.pump.status().reservoir_estimate_nl
    raised_at = pump_clock(tp)
    refill = RefillComplete(
        command_id=13,
        withdrawn_nl=predicted,
        new_volume_nl=1_500_000,  # below the 2 mL threshold: LOW_RESERVOIR
        new_concentration_ug_per_ml=10_000,
    )
    acked(tp, refill)
    alarms = ok(tp, ReadAlarms()).reply
    assert alarms == AlarmList(alarms=(AlarmRecord(AlarmKind.LOW_RESERVOIR, raised_at, False),))

    # Stage predictions from STATUS's clock: 1.5 mL at 0.5 mL/day empties in 3 days; the
    # estimate is already below the threshold, so "low" is now.
    staged = ok(tp, StagePrescription(prescription=RX)).reply
    assert isinstance(staged, PrescriptionStaged)
    now = pump_clock(tp)
    assert staged.low_reservoir_at_ms == now
    assert staged.empty_at_ms - now == 3 * 86_400_000

    # The log: entries written before the change keep their stamps; the CLOCK_SET entry is
    # stamped with the clock before and carries the clock set; every later entry is on the
    # new clock, where the events happened.
    after_log = read_log(tp)
    assert {seq: after_log[seq] for seq in before_log} == before_log
    later = [e for e in after_log.values() if e.seq > max(before_log)]
    clock_set = next(e for e in later if e.kind is EventKind.CLOCK_SET)
    assert (clock_set.time_ms, clock_set.value_a) == (old_clock, new_clock)
    stamps = {e.kind: e.time_ms for e in later if e.seq > clock_set.seq}
    assert stamps[EventKind.CLINICIAN_BOLUS_STARTED] == new_clock
    assert stamps[EventKind.CLINICIAN_BOLUS_COMPLETED] == ends
    assert stamps[EventKind.ALARM_RAISED] == raised_at
    assert stamps[EventKind.PRESCRIPTION_STAGED] == now
    assert all(e.time_ms >= new_clock for e in later if e.seq > clock_set.seq)


def test_refusal_is_a_nak_and_not_recorded() -> None:
    tp = pair(program=True)
    result = tp.request(PatientBolusRequest(command_id=30))  # inside the post-commit lockout
    assert result.outcome is Outcome.REFUSED
    assert result.refusal is RefusalCode.LOCKOUT_ACTIVE
    assert 30 not in tp.device.ledger.applied_ids()


@pytest.mark.hazard("C1")
def test_repeated_id_gets_the_original_ack_and_conflict_is_refused() -> None:
    tp = pair(program=True)
    first = acked(tp, ClinicianBolus(command_id=40, dose_nl=2_000, duration_s=60))
    tp.run_until(tp.clock.now_ms() + 120_000)  # bolus over; a new session later on
    tp.close()
    again = tp.request(ClinicianBolus(command_id=40, dose_nl=2_000, duration_s=60))
    assert again.reply == first  # byte for byte the first ACK, after a new session
    started = [e for e in tp.device.pump.log() if e.kind is EventKind.CLINICIAN_BOLUS_STARTED]
    assert len(started) == 1
    conflict = tp.request(ClinicianBolus(command_id=40, dose_nl=4_000, duration_s=60))
    assert conflict.reply == Nak(
        code=RefusalCode.COMMAND_ID_CONFLICT, field=FieldId.COMMAND_ID, limit=0
    )
    assert tp.device.pump.status().last_command_id == 40


@pytest.mark.hazard("C5")
def test_staged_prescription_is_discarded_when_the_session_ends() -> None:
    tp = pair(program=True)
    ok(tp, StagePrescription(prescription=RX))
    assert tp.device.pump.snapshot()  # staged state is part of the pump
    tp.close()
    assert tp.device.session.state is SessionState.IDLE
    result = tp.request(CommitPrescription(command_id=50, digest=codec.prescription_digest(RX)))
    assert result.refusal is RefusalCode.NOTHING_STAGED


# -- raw bytes -------------------------------------------------------------------------------


def device() -> PumpDevice:
    return PumpDevice(Pump("peristaltic-20", start_ms=0), KEYS, random.Random(3).randbytes)


def replies(dev: PumpDevice) -> list[Frame]:
    framer = Framer()
    events = framer.feed(dev.data_to_send()) + framer.finish()
    return [codec.parse_frame(e.data) for e in events if isinstance(e, FrameBytes)]


def nak_of(frame: Frame) -> Nak:
    message = codec.decode_payload(frame.opcode, frame.body)
    assert isinstance(message, Nak)
    return message


OPEN = codec.encode(OpenSession(role=Role.CLINICIAN, programmer_nonce=bytes(16)), seq=7)


@pytest.mark.hazard("C2")
def test_damaged_frame_with_a_good_header_is_answered_frame_corrupt_at_once() -> None:
    dev = device()
    damaged = bytearray(OPEN)
    damaged[20] ^= 0x01  # in the body: the CRC fails, the header is intact
    dev.receive_data(bytes(damaged), 5)
    (frame,) = replies(dev)  # at once, not only when more bytes arrive (regression)
    assert nak_of(frame).code is RefusalCode.FRAME_CORRUPT
    assert (frame.ref, frame.is_sealed) == (7, False)
    assert dev.session.state is SessionState.IDLE
    assert dev.get_timer() is None or dev.get_timer() != 5 + RX_IDLE_MS


@pytest.mark.hazard("C2")
def test_damaged_length_is_answered_frame_corrupt_without_waiting() -> None:
    """Regression: a header with LENGTH > 1024 left the whole frame as noise with nothing
    buffered, so no RX idle timer was armed and the NAK waited for the next bytes."""
    dev = device()
    bad = bytearray(OPEN)
    bad[14] = 0x7F
    dev.receive_data(bytes(bad), 1)
    (frame,) = replies(dev)
    assert nak_of(frame).code is RefusalCode.FRAME_CORRUPT


@pytest.mark.hazard("C2")
def test_partial_frame_is_given_up_after_rx_idle_and_a_frame_inside_is_found() -> None:
    dev = device()
    dev.receive_data(OPEN[:20], 10)  # a truncated frame: its rest never comes
    assert replies(dev) == []
    assert dev.get_timer() == 10 + RX_IDLE_MS
    dev.handle_timer(10 + RX_IDLE_MS)
    (frame,) = replies(dev)
    assert nak_of(frame).code is RefusalCode.FRAME_CORRUPT
    # A whole frame that follows a truncated one inside its claimed length is still found.
    dev.receive_data(OPEN[:9] + OPEN, 500)
    dev.handle_timer(500 + RX_IDLE_MS)
    assert "CHALLENGE" in [f.opcode.name for f in replies(dev)]


def test_unknown_opcode_is_refused() -> None:
    dev = device()
    frame = bytearray(codec.encode(ReadStatus(), seq=4))
    frame[12] = 0x7E
    body = bytes(frame[:-2])
    dev.receive_data(body + crc16(body[2:]).to_bytes(2, "little"), 1)
    (reply,) = replies(dev)
    assert nak_of(reply).code is RefusalCode.UNKNOWN_OPCODE
    assert reply.ref == 4


def test_replies_are_sealed_inside_a_session_and_unsealed_outside() -> None:
    tp = pair(program=True)
    sent: list[bytes] = []
    real = tp.device.data_to_send

    def spy() -> bytes:
        data = real()
        sent.append(data)
        return data

    tp.device.data_to_send = spy  # type: ignore[method-assign]
    ok(tp, ReadStatus())
    frames = [codec.parse_frame(e.data) for d in sent for e in Framer().feed(d)
              if isinstance(e, FrameBytes)]  # fmt: skip
    assert [(f.opcode.name, f.is_sealed) for f in frames] == [
        ("CHALLENGE", False),
        ("SESSION_OPENED", False),
        ("STATUS", True),
    ]
    dev = tp.device
    dev.receive_data(codec.encode(ReadStatus(), seq=9), tp.clock.now_ms())
    (unsealed,) = replies(dev)  # an unsealed request inside a session: NAK, unsealed
    assert not unsealed.is_sealed
    assert nak_of(unsealed).code is RefusalCode.NOT_AUTHENTICATED
    tp.close()
    dev.receive_data(codec.encode(ReadStatus(), seq=10), tp.clock.now_ms())
    (outside,) = replies(dev)
    assert not outside.is_sealed


def test_close_is_acknowledged_sealed_then_the_session_is_gone() -> None:
    tp = pair()
    ok(tp, ReadStatus())
    result = tp.request(CloseSession())
    assert isinstance(result.reply, Ack)
    assert result.reply.request is CloseSession.OPCODE
    assert tp.device.session.state is SessionState.IDLE


# -- session limits come from the profile -------------------------------------------------------


def test_session_limits_come_from_the_profile() -> None:
    for name in builtin_profile_names():
        profile = load_profile(name)
        assert default_session_limits(profile) == SessionLimits(
            idle_timeout_s=profile.session_idle_timeout_s,
            max_session_s=profile.session_max_s,
            max_failed_openings=profile.session_max_failed_openings,
            lockout_s=profile.session_lockout_s,
        )
    dev = device()
    assert dev.session.limits == default_session_limits(dev.pump.profile)
    custom = SessionLimits(idle_timeout_s=5, max_session_s=10, max_failed_openings=2, lockout_s=9)
    pump = Pump("peristaltic-20")
    assert PumpDevice(pump, KEYS, random.Random(0).randbytes, limits=custom).session.limits == (
        custom
    )


def test_profile_session_values_are_marked_assumed_and_opened_reports_them() -> None:
    for name in builtin_profile_names():
        text = resources.files("emulator").joinpath("profiles", f"{name}.toml").read_text()
        section = text[text.index("[session]") :]
        lines = [line for line in section.splitlines()[1:] if "=" in line]
        assert len(lines) == 4
        assert all("assumed" in line for line in lines)
    tp = pair()
    ok(tp, ReadStatus())
    assert tp.device.session.limits.idle_timeout_s == 120


BASE = tomllib.loads(
    resources.files("emulator").joinpath("profiles", "peristaltic-20.toml").read_text()
)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("idle_timeout_s", 0, "out of range"),
        ("idle_timeout_s", 1.5, "must be an integer"),
        ("max_session_s", 60, "must be >= idle_timeout_s"),
        ("max_failed_openings", 256, "out of range"),
        ("lockout_s", True, "must be an integer"),
        ("lockout_s", None, "is missing"),
        ("grace_s", 5, "not a known key"),
    ],
)
def test_bad_session_section_is_refused(key: str, value: object, message: str) -> None:
    data = {section: dict(table) for section, table in BASE.items()}
    if value is None:
        del data["session"][key]
    else:
        data["session"][key] = value
    with pytest.raises(ProfileError, match=message) as error:
        parse_profile(data, "mine.toml")
    assert "[session]" in str(error.value)


def test_lockout_nak_names_the_field_and_the_seconds_left() -> None:
    """docs/protocol.md section 12: LOCKOUT_ACTIVE, PATIENT_BOLUS_LOCKOUT, whole seconds left
    (never the pump time the lockout ends), and the log entry carries the same number."""
    tp = pair(program=True)
    tp.run_until(tp.clock.now_ms() + 100_250)
    result = tp.request(PatientBolusRequest(command_id=30))
    assert result.outcome is Outcome.REFUSED
    assert result.reply == Nak(
        code=RefusalCode.LOCKOUT_ACTIVE, field=FieldId.PATIENT_BOLUS_LOCKOUT, limit=500
    )
    last = tp.device.pump.log()[-1]
    assert (last.kind, last.value_a, last.value_b) == (EventKind.PATIENT_BOLUS_REFUSED, 500, 30)

"""PumpDevice.snapshot/restore: a restarted emulator resumes its therapy, its exactly-once
memory (C1, even after a restart) and its lockout (C4), and never accepts a corrupt state."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.clock import ManualClock
from emulator.device import DEVICE_STATE_MAGIC, CommandLedger, PumpDevice
from emulator.firmware.nvram import SnapshotError, decode_record, encode_record
from emulator.pump import Pump
from hil.programmer.core import Outcome, ProgrammerCore
from hil.two_peer import PerfectLink, TwoPeer
from protocol import codec
from protocol.codec import Frame
from protocol.device_state import EventKind, Role
from protocol.errors import SessionError
from protocol.framer import FrameBytes, Framer
from protocol.keys import generate_keys
from protocol.messages import (
    Ack,
    Authenticate,
    ClinicianBolus,
    Nak,
    OpenSession,
    ReadStatus,
    StagePrescription,
    Status,
)
from protocol.refusal import FieldId, RefusalCode
from protocol.session import PumpSession, SessionState
from tests.emulator.test_device import KEYS, RX, acked, ok, pair


def restarted(tp: TwoPeer, *, keys_seed: int = 2) -> TwoPeer:
    """The same pump after an emulator restart: a new device from the old one's snapshot,
    a new programmer, a clock that starts at the saved pump time."""
    device = PumpDevice.restore(tp.device.snapshot(), KEYS, random.Random(3).randbytes)
    core = ProgrammerCore(
        KEYS.serial, Role.CLINICIAN, KEYS.clinician, random.Random(keys_seed).randbytes
    )
    return TwoPeer(device, core, ManualClock(device.now_ms), PerfectLink(latency_ms=0))


def bolus_starts(tp: TwoPeer) -> int:
    return sum(e.kind is EventKind.CLINICIAN_BOLUS_STARTED for e in tp.device.pump.log())


@pytest.mark.hazard("C1")
def test_a_repeat_after_a_restart_gets_the_original_ack_and_applies_nothing() -> None:
    tp = pair(program=True)
    first = acked(tp, ClinicianBolus(command_id=40, dose_nl=2_000, duration_s=60))
    tp.run_until(tp.clock.now_ms() + 120_000)
    before = tp.device.pump.status()
    again = restarted(tp)
    assert again.device.now_ms == tp.device.now_ms
    assert again.device.ledger.applied_ids() == tp.device.ledger.applied_ids()
    assert again.device.pump.status() == before
    repeat = again.request(ClinicianBolus(command_id=40, dose_nl=2_000, duration_s=60))
    assert repeat.reply == first  # the original ACK, field for field
    assert bolus_starts(again) == 1
    conflict = again.request(ClinicianBolus(command_id=40, dose_nl=4_000, duration_s=60))
    assert conflict.reply == Nak(
        code=RefusalCode.COMMAND_ID_CONFLICT, field=FieldId.COMMAND_ID, limit=0
    )
    status = ok(again, ReadStatus()).reply
    assert isinstance(status, Status)
    assert status.last_command_id == 40
    # A new command is applied as usual after the restart.
    acked(again, ClinicianBolus(command_id=41, dose_nl=2_000, duration_s=60))
    assert bolus_starts(again) == 2


def test_the_ledger_round_trips_in_order_with_every_ack() -> None:
    ledger = CommandLedger(capacity=4)
    tp = pair(program=True)
    tp.device._ledger = ledger  # a small ledger, so eviction order is visible
    for command_id in range(100, 106):
        acked(tp, ClinicianBolus(command_id=command_id, dose_nl=1_000, duration_s=60))
        tp.run_until(tp.clock.now_ms() + 61_000)
    restored = PumpDevice.restore(tp.device.snapshot(), KEYS, random.Random(3).randbytes)
    assert restored.ledger.capacity == 4
    assert restored.ledger.entries() == ledger.entries()
    assert restored.ledger.applied_ids() == (102, 103, 104, 105)


@pytest.mark.hazard("C4")
def test_a_lockout_survives_a_restart() -> None:
    dev = PumpDevice(Pump("peristaltic-20"), KEYS, random.Random(1).randbytes)
    n = dev.pump.profile.session_max_failed_openings
    now = 0
    for attempt in range(n):
        now += 1
        nonce = bytes([attempt + 1]) * 16  # distinct attempts: a copy would not count
        dev.receive_data(codec.encode(OpenSession(Role.CLINICIAN, nonce), seq=1), now)
        now += 1
        dev.receive_data(codec.encode(Authenticate(proof=nonce * 2), seq=2), now)
        dev.data_to_send()
    assert dev.session.state is SessionState.LOCKED_OUT
    until = dev.session.lockout_until_ms
    assert until is not None
    back = PumpDevice.restore(dev.snapshot(), KEYS, random.Random(3).randbytes, link_ms=now)
    assert (back.session.state, back.session.get_timer()) == (SessionState.LOCKED_OUT, until)
    assert (back.session.failed_openings, back.session.lockout_until_ms) == (n, until)
    # What a lockout refuses (docs/security.md section 6): an AUTHENTICATE with no challenge.
    back.receive_data(codec.encode(Authenticate(proof=bytes(32)), seq=2), now + 1)
    (frame,) = replies(back)
    nak = codec.decode_payload(frame.opcode, frame.body)
    assert isinstance(nak, Nak)
    assert nak.code is RefusalCode.LOCKED_OUT
    # The lockout ends when it would have, and the genuine programmer gets in.
    back.handle_timer(until)
    assert back.session.state is SessionState.IDLE
    core = ProgrammerCore(KEYS.serial, Role.CLINICIAN, KEYS.clinician, random.Random(2).randbytes)
    tp = TwoPeer(back, core, ManualClock(until), PerfectLink(latency_ms=0))
    assert isinstance(ok(tp, ReadStatus()).reply, Status)


def test_failed_openings_below_the_limit_survive_a_restart() -> None:
    dev = PumpDevice(Pump("peristaltic-20"), KEYS, random.Random(1).randbytes)
    dev.receive_data(codec.encode(OpenSession(Role.CLINICIAN, bytes(16)), seq=1), 1)
    dev.receive_data(codec.encode(Authenticate(proof=bytes(32)), seq=2), 2)
    assert dev.session.failed_openings == 1
    back = PumpDevice.restore(dev.snapshot(), KEYS, random.Random(3).randbytes)
    assert (back.session.state, back.session.failed_openings) == (SessionState.IDLE, 1)


@pytest.mark.hazard("C5")
def test_an_open_session_and_its_staged_prescription_do_not_survive() -> None:
    tp = pair(program=True)
    ok(tp, StagePrescription(prescription=RX))
    assert tp.device.session.state is SessionState.OPEN
    assert tp.device.pump.status().staged_digest is not None
    again = restarted(tp)
    assert again.device.session.state is SessionState.IDLE
    assert again.device.pump.status().staged_digest is None


def test_another_pumps_keys_are_refused() -> None:
    tp = pair(program=True)
    other = generate_keys("PE-000999", bytes(range(5, 69)))
    with pytest.raises(SnapshotError, match=r"PE-000123.*PE-000999"):
        PumpDevice.restore(tp.device.snapshot(), other, random.Random(3).randbytes)


def test_a_pump_snapshot_is_not_a_device_state() -> None:
    with pytest.raises(SnapshotError, match="bad magic"):
        PumpDevice.restore(Pump().snapshot(), KEYS, random.Random(3).randbytes)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("version",), 3),
        (("version",), 1),
        (("ledger", "entries"), [[1, "00", "00"]]),
        (("ledger", "capacity"), 0),
        (("session", "failed_openings"), -1),
        (("session", "lockout_left_ms"), "soon"),
        (("session", "lockout_left_ms"), 10**12),
        (("pump",), "zz"),
    ],
)
def test_a_well_checksummed_but_malformed_state_is_refused(
    path: tuple[str, ...], value: object
) -> None:
    record = decode_record(DEVICE_STATE_MAGIC, pair(program=True).device.snapshot())
    target = record
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(SnapshotError):
        PumpDevice.restore(
            encode_record(DEVICE_STATE_MAGIC, record), KEYS, random.Random(3).randbytes
        )


_BLOB = pair(program=True).device.snapshot()


@given(st.integers(0, len(_BLOB) * 8 - 1))
def test_any_bit_flip_in_the_state_is_detected(bit: int) -> None:
    blob = bytearray(_BLOB)
    blob[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SnapshotError):
        PumpDevice.restore(bytes(blob), KEYS, random.Random(3).randbytes)


@given(st.integers(0, len(_BLOB) - 1))
def test_a_truncated_state_is_detected(length: int) -> None:
    with pytest.raises(SnapshotError):
        PumpDevice.restore(_BLOB[:length], KEYS, random.Random(3).randbytes)


def test_restore_openings_only_into_a_fresh_session() -> None:
    session = PumpSession(KEYS, PumpDevice(Pump(), KEYS, random.Random(1).randbytes).session.limits)
    session.restore_openings(2, None, 5_000)
    assert (session.state, session.failed_openings, session.get_timer()) == (
        SessionState.IDLE,
        2,
        None,
    )
    with pytest.raises(SessionError):
        session.restore_openings(0, None, 6_000)
    with pytest.raises(ValueError, match="failed_openings"):
        PumpSession(KEYS, session.limits).restore_openings(-1, None, 0)
    locked = PumpSession(KEYS, session.limits)
    locked.restore_openings(5, 8_000, 1_000)
    assert (locked.state, locked.get_timer()) == (SessionState.LOCKED_OUT, 9_000)
    locked.handle_timer(9_000)
    assert (locked.state, locked.failed_openings, locked.lockout_until_ms) == (
        SessionState.IDLE,
        0,
        None,
    )


def test_the_restored_session_resumes_on_the_link_timeline_given() -> None:
    tp = pair(program=True)
    tp.run_until(50_000)
    back = PumpDevice.restore(tp.device.snapshot(), KEYS, random.Random(3).randbytes, link_ms=7)
    assert back.now_ms == 50_000
    with pytest.raises(ValueError, match="backwards"):
        back.session.handle_timer(6)


def replies(dev: PumpDevice) -> list[Frame]:
    return [
        codec.parse_frame(e.data)
        for e in Framer().feed(dev.data_to_send())
        if isinstance(e, FrameBytes)
    ]


def test_a_restored_device_answers_status_after_a_restart() -> None:
    tp = pair(program=True)
    ack = acked(tp, ClinicianBolus(command_id=7, dose_nl=2_000, duration_s=60))
    assert isinstance(ack, Ack)
    again = restarted(tp)
    result = again.request(ReadStatus())
    assert result.outcome is Outcome.ANSWERED
    assert isinstance(result.reply, Status)
    assert result.reply.last_command_id == 7

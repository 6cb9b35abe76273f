"""Every conformance rule caught, alone, on a deliberately bad programmer (real frames
through PumpDevice), and the same steps done right caught by none.

Each ``bad_*`` function is a test double of one broken programmer; ``good_*`` its
conformant twin. docs/conformance.md lists the rules: a rule without a bad programmer here
fails ``test_every_documented_rule_has_a_bad_programmer``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from emulator.faults import MotorStall
from hil.conformance import RULES, Severity
from protocol import codec
from protocol.checksum import crc16
from protocol.device_state import Role
from protocol.messages import (
    AlarmTest,
    CancelBolus,
    CommitPrescription,
    KeepAlive,
    PrescriptionStaged,
    ReadAlarms,
    ReadDeviceInfo,
    ReadStatus,
    SessionOpened,
    SetClock,
    StagePrescription,
    StartTherapy,
    Status,
    StopTherapy,
)
from tests.hil.conformance.rig import CLOCK_2026_MS, RX, RX_TOO_FAST, Rig, new_pump

DOC = Path(__file__).resolve().parents[3] / "docs" / "conformance.md"


def _stage(rig: Rig) -> bytes:
    reply = rig.request(StagePrescription(prescription=RX))
    assert isinstance(reply, PrescriptionStaged)
    return reply.digest


# -- one bad programmer per rule, and its conformant twin ------------------------------------


def bad_command_id_reuse(rig: Rig) -> None:
    rig.open()
    rig.request(AlarmTest(command_id=10))
    rig.request(CancelBolus(command_id=10))  # the pump refuses COMMAND_ID_CONFLICT
    rig.close()


def good_command_id_reuse(rig: Rig) -> None:
    rig.open()
    rig.request(AlarmTest(command_id=10))
    rig.request(AlarmTest(command_id=10))  # a repeat: the original ACK comes back
    rig.request(CancelBolus(command_id=11))
    rig.close()


def bad_retry_new_id(rig: Rig) -> None:
    rig.open()
    rig.request(AlarmTest(command_id=20), drop_reply=True)
    rig.request(AlarmTest(command_id=21))  # "retry" with a new id: applied twice
    rig.close()


def good_retry_new_id(rig: Rig) -> None:
    rig.open()
    rig.request(AlarmTest(command_id=20), drop_reply=True)
    rig.request(AlarmTest(command_id=20))  # the same id: the pump answers the repeat
    rig.request(AlarmTest(command_id=21))  # a second, intended action
    rig.close()


def bad_lost_reply_no_status(rig: Rig) -> None:
    rig.open()
    rig.request(AlarmTest(command_id=30), drop_reply=True)
    rig.request(StopTherapy(command_id=31))
    rig.close()


def good_lost_reply_no_status(rig: Rig) -> None:
    rig.open()
    rig.request(AlarmTest(command_id=30), drop_reply=True)
    status = rig.request(ReadStatus())
    assert isinstance(status, Status)
    assert status.last_command_id == 30
    rig.request(StopTherapy(command_id=31))
    rig.close()


def bad_commit_without_stage(rig: Rig) -> None:
    rig.open()
    rig.request(CommitPrescription(command_id=40, digest=codec.prescription_digest(RX)))
    rig.close()


def good_commit_without_stage(rig: Rig) -> None:
    rig.open()
    digest = _stage(rig)
    rig.request(CommitPrescription(command_id=40, digest=digest))
    rig.close()


def bad_commit_after_refusal(rig: Rig) -> None:
    rig.open()
    digest = _stage(rig)
    rig.request(StagePrescription(prescription=RX_TOO_FAST))  # refused RATE_ABOVE_MAX
    rig.request(CommitPrescription(command_id=50, digest=digest))
    rig.close()


def good_commit_after_refusal(rig: Rig) -> None:
    rig.open()
    rig.request(StagePrescription(prescription=RX_TOO_FAST))
    digest = _stage(rig)  # fixed and reviewed again
    rig.request(CommitPrescription(command_id=50, digest=digest))
    rig.close()


def bad_refused_loop(rig: Rig) -> None:
    rig.open()
    for _ in range(3):
        rig.request(StagePrescription(prescription=RX_TOO_FAST))
    rig.close()


def good_refused_loop(rig: Rig) -> None:
    rig.open()
    for _ in range(2):
        rig.request(StagePrescription(prescription=RX_TOO_FAST))
    _stage(rig)
    rig.close()


def bad_nak_ignored(rig: Rig) -> None:
    rig.open()
    rig.advance(rig.device.session.limits.idle_timeout_s * 1000)
    rig.request(KeepAlive())  # unsealed SESSION_EXPIRED
    rig.request(KeepAlive())  # and again, in the dead session


def good_nak_ignored(rig: Rig) -> None:
    rig.open()
    rig.advance(rig.device.session.limits.idle_timeout_s * 1000)
    rig.request(KeepAlive())  # unsealed SESSION_EXPIRED
    rig.programmer.session.close()
    rig.open()
    rig.request(KeepAlive())
    rig.close()


def _stalled_pump() -> Rig:
    pump = new_pump()
    assert pump.program(RX, command_id=1)
    pump.start(command_id=2)
    pump.inject(MotorStall())
    pump.advance_to(pump.now_ms + 6 * 3_600_000)
    return Rig(pump)


def bad_alarm_unread(rig: Rig) -> None:
    rig.open()
    status = rig.request(ReadStatus())
    assert isinstance(status, Status)
    assert status.active_alarms
    rig.close()


def good_alarm_unread(rig: Rig) -> None:
    rig.open()
    rig.request(ReadStatus())
    rig.request(ReadAlarms())
    rig.close()


def bad_seq_misuse(rig: Rig) -> None:
    rig.open()
    _seq, frame = rig.programmer.sealed(KeepAlive())
    rig.send(frame)
    rig.send(frame)  # the same bytes again: refused REPLAY_DETECTED
    rig.close()


def good_seq_misuse(rig: Rig) -> None:
    rig.open()
    rig.request(KeepAlive())
    rig.request(KeepAlive())
    rig.close()


def bad_sealing_misuse(rig: Rig) -> None:
    rig.open()
    rig.send(codec.encode(ReadDeviceInfo(), seq=40))  # unsealed in an open session
    rig.close()


def good_sealing_misuse(rig: Rig) -> None:
    rig.open()
    rig.request(ReadDeviceInfo())
    rig.close()


def bad_pump_proof_unchecked(rig: Rig) -> None:
    """The pump's SESSION_OPENED proof is forged on the link; this programmer uses the
    session anyway (it derives its keys from its own nonces and never checks the proof)."""
    real: list[SessionOpened] = []

    def forge(out: bytes) -> bytes:
        frame = codec.decode(out)
        if not isinstance(frame.message, SessionOpened):
            return out
        real.append(frame.message)
        forged = SessionOpened(
            proof=bytes(32),
            idle_timeout_s=frame.message.idle_timeout_s,
            max_session_s=frame.message.max_session_s,
        )
        return codec.encode(forged, seq=frame.frame.seq, ref=frame.frame.ref)

    rig.tamper = forge
    rig.open(check_proof=False)
    rig.tamper = None
    rig.programmer.confirm(real[0])  # what a programmer that skips the check ends up with
    rig.request(ReadDeviceInfo())
    rig.close()


def good_pump_proof_unchecked(rig: Rig) -> None:
    rig.open()
    rig.request(ReadDeviceInfo())
    rig.close()


def bad_session_left_open(rig: Rig) -> None:
    rig.open()
    rig.request(ReadDeviceInfo())


def good_session_left_open(rig: Rig) -> None:
    rig.open()
    rig.request(ReadDeviceInfo())
    rig.close()


def bad_poll_too_fast(rig: Rig) -> None:
    rig.open()
    for _ in range(61):
        rig.request(ReadStatus())
        rig.advance(500)
    rig.close()


def good_poll_too_fast(rig: Rig) -> None:
    rig.open()
    for _ in range(61):
        rig.request(ReadStatus())
        rig.advance(1_000)
    rig.close()


def _unset_clock() -> Rig:
    return Rig(new_pump(clock_set=False))


def bad_clock_unset(rig: Rig) -> None:
    rig.open()
    status = rig.request(ReadStatus())
    assert isinstance(status, Status)
    assert status.pump_time_ms < CLOCK_2026_MS
    rig.close()


def good_clock_unset(rig: Rig) -> None:
    rig.open()
    rig.request(ReadStatus())
    rig.request(SetClock(command_id=70, pump_time_ms=CLOCK_2026_MS))
    rig.close()


Script = Callable[[Rig], None]
CASES: dict[str, tuple[Script, Script, Callable[[], Rig]]] = {
    "CMD-ID-REUSE": (bad_command_id_reuse, good_command_id_reuse, Rig),
    "RETRY-NEW-ID": (bad_retry_new_id, good_retry_new_id, Rig),
    "LOST-REPLY-NO-STATUS": (bad_lost_reply_no_status, good_lost_reply_no_status, Rig),
    "COMMIT-WITHOUT-STAGE": (bad_commit_without_stage, good_commit_without_stage, Rig),
    "COMMIT-AFTER-REFUSAL": (bad_commit_after_refusal, good_commit_after_refusal, Rig),
    "REFUSED-LOOP": (bad_refused_loop, good_refused_loop, Rig),
    "NAK-IGNORED": (bad_nak_ignored, good_nak_ignored, Rig),
    "ALARM-UNREAD": (bad_alarm_unread, good_alarm_unread, _stalled_pump),
    "SEQ-MISUSE": (bad_seq_misuse, good_seq_misuse, Rig),
    "SEALING-MISUSE": (bad_sealing_misuse, good_sealing_misuse, Rig),
    "PUMP-PROOF-UNCHECKED": (bad_pump_proof_unchecked, good_pump_proof_unchecked, Rig),
    "SESSION-LEFT-OPEN": (bad_session_left_open, good_session_left_open, Rig),
    "POLL-TOO-FAST": (bad_poll_too_fast, good_poll_too_fast, Rig),
    "CLOCK-UNSET": (bad_clock_unset, good_clock_unset, _unset_clock),
}


@pytest.mark.parametrize("rule", list(CASES), ids=list(CASES))
def test_a_bad_programmer_breaks_exactly_its_rule(rule: str) -> None:
    bad, _good, make = CASES[rule]
    rig = make()
    bad(rig)
    violations = rig.finish()
    assert {v.rule for v in violations} == {rule}, [v.detail for v in violations]
    info = next(r for r in RULES if r.id == rule)
    for violation in violations:
        assert violation.severity is info.severity
        assert violation.section == info.section
        assert violation.detail


@pytest.mark.parametrize("rule", list(CASES), ids=list(CASES))
def test_its_conformant_twin_breaks_nothing(rule: str) -> None:
    _bad, good, make = CASES[rule]
    rig = make()
    good(rig)
    assert rig.finish() == ()


def test_violations_name_the_frames_involved() -> None:
    rig = Rig()
    bad_retry_new_id(rig)
    [violation] = rig.finish()
    assert [(f.direction, f.opcode) for f in violation.frames] == [
        ("to_pump", "ALARM_TEST"),
        ("to_pump", "ALARM_TEST"),
    ]
    assert violation.frames[0].seq < violation.frames[1].seq
    assert violation.frames[0].session == violation.frames[1].session == 1
    assert violation.severity is Severity.CRITICAL


def test_every_documented_rule_has_a_bad_programmer() -> None:
    documented = re.findall(r"^### `([A-Z-]+)`", DOC.read_text(encoding="utf-8"), re.M)
    assert documented == [rule.id for rule in RULES]
    assert set(CASES) == set(documented)


def test_a_patient_session_is_not_asked_to_read_alarms_or_set_the_clock() -> None:
    rig = Rig(new_pump(clock_set=False), role=Role.PATIENT)
    rig.open()
    rig.request(ReadStatus())
    rig.close()
    assert rig.finish() == ()


def test_pipelined_commands_whose_answers_both_arrive_are_not_blamed() -> None:
    rig = Rig()
    rig.open()
    first = rig.programmer.sealed(StartTherapy(command_id=5))[1]
    second = rig.programmer.sealed(AlarmTest(command_id=6))[1]
    rig.now += 1
    rig.monitor.feed("to_pump", first + second, rig.now)
    rig.device.receive_data(first + second, rig.now)
    rig.monitor.feed("to_programmer", rig.device.data_to_send(), rig.now)
    rig.close()
    assert rig.finish() == ()


def raw_frame(seq: int, ref: int, opcode: int, body: bytes) -> bytes:
    """A frame built byte by byte (the codec refuses to build a bad header)."""
    header = bytes([0xA5, 0x5A, 1, 0]) + struct.pack("<IIBH", seq, ref, opcode, len(body))
    return header + body + struct.pack("<H", crc16(header[2:] + body))


@pytest.mark.parametrize(("seq", "ref"), [(0, 0), (41, 7)], ids=["seq-0", "ref-not-0"])
def test_a_request_header_with_seq_0_or_a_ref_is_seq_misuse(seq: int, ref: int) -> None:
    rig = Rig()
    rig.open()
    rig.send(raw_frame(seq, ref, 0x01, bytes([1]) + bytes(16)))
    rig.close()
    assert rig.broken() == {"SEQ-MISUSE"}

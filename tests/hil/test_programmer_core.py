"""ProgrammerCore: retries, resolution through STATUS, SESSION_BUSY, mutual authentication.

The core runs against the real emulated device (``TwoPeer``) with links that lose what the
test says; where the pump must misbehave (an impostor), the test plays the pump by hand.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.firmware.results import Refused
from emulator.pump import Pump
from hil.programmer.core import Outcome, ProgrammerCore, RetryPolicy
from hil.two_peer import TO_PUMP, Delivery, PerfectLink, ScriptedLink, TwoPeer
from protocol import codec, crypto
from protocol.codec import Frame
from protocol.device_state import EventKind, Role
from protocol.errors import SessionError
from protocol.framer import FrameBytes, Framer
from protocol.keys import generate_keys
from protocol.messages import (
    Challenge,
    ClinicianBolus,
    Message,
    Nak,
    OpenSession,
    ReadStatus,
    SessionOpened,
    Status,
)
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat
from protocol.refusal import FieldId, RefusalCode
from protocol.session import SessionLimits

KEYS = generate_keys("PE-000321", bytes(range(9, 73)))
OTHER = generate_keys("PE-000321", bytes(range(109, 173)))
RX = Prescription(
    drug_name="morphine",
    concentration_ug_per_ml=10_000,
    mode=InfusionMode.CONTINUOUS,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 500_000),),
    patient_bolus=None,
    low_reservoir_threshold_nl=2_000_000,
)
BOLUS = ClinicianBolus(command_id=5, dose_nl=2_000, duration_s=60)
POLICY = RetryPolicy()


@dataclass
class Recorder:
    """A link that records every chunk and drops those the test names."""

    drop_to_pump: set[int] = field(default_factory=set)
    drop_to_programmer: set[int] = field(default_factory=set)
    drop_all_to_programmer_from: int | None = None
    sent: list[tuple[str, bytes]] = field(default_factory=list)

    def fate(self, direction: str, index: int, data: bytes) -> list[Delivery]:
        self.sent.append((direction, data))
        if direction == TO_PUMP:
            lost = index in self.drop_to_pump
        else:
            cut = self.drop_all_to_programmer_from
            lost = index in self.drop_to_programmer or (cut is not None and index >= cut)
        return [] if lost else [Delivery(1, data)]

    def frames(self, direction: str) -> list[Frame]:
        framer = Framer()
        out: list[Frame] = []
        for d, data in self.sent:
            if d == direction:
                out += [codec.parse_frame(e.data) for e in framer.feed(data)
                        if isinstance(e, FrameBytes)]  # fmt: skip
        return out


def build(recorder: Recorder, keys: object = KEYS) -> TwoPeer:
    pump = Pump("peristaltic-20", start_ms=0)
    assert not isinstance(pump.program(RX, command_id=1), Refused)
    device = PumpDevice(pump, keys, random.Random(1).randbytes)  # type: ignore[arg-type]
    core = ProgrammerCore(KEYS.serial, Role.CLINICIAN, KEYS.clinician, random.Random(2).randbytes)
    return TwoPeer(device, core, ManualClock(0), ScriptedLink(recorder.fate))


def bolus_starts(tp: TwoPeer) -> int:
    return sum(e.kind is EventKind.CLINICIAN_BOLUS_STARTED for e in tp.device.pump.log())


def opened_requests(recorder: Recorder) -> list[tuple[int, Message]]:
    """Every sealed request sent, opened as an observer holding the role key would: with
    the keys of one of the recorded handshakes (every pn x dn pair is tried, since every
    OPEN_SESSION carries SEQ 1). Returns (SEQ, message) in sending order."""
    requests = recorder.frames(TO_PUMP)
    unsealed = [codec.decode_payload(f.opcode, f.body) for f in requests if not f.is_sealed]
    replies = recorder.frames("pump->programmer")
    challenges = [codec.decode_payload(f.opcode, f.body) for f in replies if not f.is_sealed]
    dns = [m.pump_nonce for m in challenges if isinstance(m, Challenge)]
    pns = [m.programmer_nonce for m in unsealed if isinstance(m, OpenSession)]
    candidates = [
        crypto.derive_session_keys(
            KEYS.clinician, crypto.Transcript(KEYS.serial, Role.CLINICIAN, pn, dn)
        )
        for pn in pns
        for dn in dns
    ]
    out: list[tuple[int, Message]] = []
    for frame in (f for f in requests if f.is_sealed):
        for keys in candidates:
            try:
                plaintext = crypto.open(keys.to_pump, frame.header, frame.body)
            except SessionError:
                continue
            out.append((frame.seq, codec.decode_payload(frame.opcode, plaintext)))
            break
        else:
            raise AssertionError(f"sealed frame SEQ {frame.seq} opens under no handshake")
    return out


@pytest.mark.hazard("C1")
def test_retries_use_a_new_seq_and_the_same_command_id() -> None:
    # to_pump chunks: 0 OPEN_SESSION, 1 AUTHENTICATE, 2.. the bolus frames.
    recorder = Recorder(drop_to_pump={2, 3})
    tp = build(recorder)
    result = tp.request(BOLUS)
    assert result.outcome is Outcome.APPLIED
    assert result.attempts == 3
    assert not result.resolved_by_status
    sent = opened_requests(recorder)
    assert [seq for seq, _ in sent] == [3, 4, 5]
    assert [m for _, m in sent] == [BOLUS, BOLUS, BOLUS]
    assert bolus_starts(tp) == 1


@pytest.mark.hazard("C1")
def test_lost_replies_resolved_through_status_applied() -> None:
    # to_programmer: 0 CHALLENGE, 1 SESSION_OPENED, 2-5 the ACKs (original, then repeats).
    recorder = Recorder(drop_to_programmer={2, 3, 4, 5})
    tp = build(recorder)
    result = tp.request(BOLUS)
    assert result.outcome is Outcome.APPLIED
    assert result.resolved_by_status
    assert isinstance(result.reply, Status)
    assert result.reply.last_command_id == BOLUS.command_id
    assert bolus_starts(tp) == 1
    # In the same session (its SEQ retires every earlier frame, docs/protocol.md section 8)
    # the programmer sent a STATUS, never the command again, and never reopened.
    later = [m for _, m in opened_requests(recorder)][4:]
    assert later == [ReadStatus()]
    openings = [f for f in recorder.frames(TO_PUMP) if f.opcode.name == "OPEN_SESSION"]
    assert len(openings) == 1


@pytest.mark.hazard("C1")
def test_a_request_refused_for_an_expired_session_is_resent_in_a_new_one() -> None:
    """SESSION_EXPIRED proves the pump refused the frame unread: the core reopens and sends
    the command again with the same id, and it applies once (not ended NOT_APPLIED)."""
    pump = Pump("peristaltic-20", start_ms=0)
    assert not isinstance(pump.program(RX, command_id=1), Refused)
    limits = SessionLimits(idle_timeout_s=2, max_session_s=3_600, max_failed_openings=5,
                           lockout_s=60)  # fmt: skip
    device = PumpDevice(pump, KEYS, random.Random(1).randbytes, limits=limits)
    core = ProgrammerCore(KEYS.serial, Role.CLINICIAN, KEYS.clinician, random.Random(2).randbytes)
    # 400 ms each way: a request sent 1.5 s after the last reply arrives 2.3 s after the
    # pump's last activity, past the 2 s idle timeout, though the programmer, by its own
    # clock, sent it in time.
    tp = TwoPeer(device, core, ManualClock(0), PerfectLink(latency_ms=400))
    assert tp.request(ReadStatus()).outcome is Outcome.ANSWERED
    tp.run_until(tp.clock.now_ms() + 1_500)
    result = tp.request(BOLUS)
    assert result.outcome is Outcome.APPLIED, result
    assert not result.resolved_by_status
    expired = [e for e in pump.log() if e.kind is EventKind.SECURITY_EVENT
               and e.detail == RefusalCode.SESSION_EXPIRED]  # fmt: skip
    assert len(expired) == 1
    assert bolus_starts(tp) == 1


@pytest.mark.hazard("C1")
def test_lost_requests_resolved_through_status_not_applied() -> None:
    recorder = Recorder(drop_to_pump={2, 3, 4, 5})
    tp = build(recorder)
    result = tp.request(BOLUS)
    assert result.outcome is Outcome.NOT_APPLIED
    assert result.resolved_by_status
    assert isinstance(result.reply, Status)
    assert result.reply.last_command_id == 1
    tp.run_until(tp.clock.now_ms() + 600_000)
    assert bolus_starts(tp) == 0  # and it never will be: the command is not resent
    assert BOLUS.command_id not in tp.device.ledger.applied_ids()


def test_session_busy_waits_at_the_reply_timeout_pace() -> None:
    """Regression: after SESSION_BUSY the core reopened at once on every NAK, flooding the
    pump (about 60 000 openings and as many security events in its 2-minute idle timeout).
    """
    # The four frames of the command and the four STATUS reads that try to resolve it in
    # the same session all lose their replies: the core gives the session up and reopens,
    # and the pump is busy with it until its idle timeout.
    recorder = Recorder(drop_to_programmer=set(range(2, 10)))
    tp = build(recorder)
    result = tp.request(BOLUS)
    assert result.outcome is Outcome.APPLIED
    assert result.resolved_by_status
    openings = [f for f in recorder.frames(TO_PUMP) if not f.is_sealed and f.opcode.name ==
                "OPEN_SESSION"]  # fmt: skip
    idle_s = tp.device.pump.profile.session_idle_timeout_s
    busy = [
        e
        for e in tp.device.pump.log()
        if e.kind is EventKind.SECURITY_EVENT and e.detail == RefusalCode.SESSION_BUSY
    ]
    # One opening per reply timeout while the pump is busy, and then the one that succeeds.
    assert len(openings) <= 2 + idle_s * 1000 // POLICY.reply_timeout_ms + 2
    assert len(busy) >= 1
    assert len(busy) <= idle_s * 1000 // POLICY.reply_timeout_ms + 2


def test_the_busy_wait_is_bounded() -> None:
    """A pump that stays busy longer than the wait ends the request, honestly NOT_APPLIED
    for a command never sent. Each refusal announcing an expiry (here "0 s", over and over)
    extends the wait from the latest refusal, but never past twice ``busy_wait_ms``."""
    policy = RetryPolicy(busy_wait_ms=5_000)
    core = ProgrammerCore(KEYS.serial, Role.CLINICIAN, KEYS.clinician, random.Random(3).randbytes,
                          policy)  # fmt: skip
    now = 0
    core.submit(BOLUS, now)
    sent = 0
    while core.idle is False and now < 60_000:
        for event in Framer().feed(core.data_to_send()):
            assert isinstance(event, FrameBytes)
            frame = codec.parse_frame(event.data)
            assert frame.opcode.name == "OPEN_SESSION"
            sent += 1
            nak = Nak(code=RefusalCode.SESSION_BUSY, field=FieldId.NONE, limit=0)
            core.receive_data(codec.encode(nak, seq=1, ref=frame.seq), now)
        timer = core.get_timer()
        if timer is None:
            break
        now = timer
        core.handle_timer(now)
    (result,) = core.results()
    assert result.outcome is Outcome.NOT_APPLIED
    assert result.refusal is RefusalCode.SESSION_BUSY
    assert 3 <= sent <= 2 * 5_000 // POLICY.reply_timeout_ms + 2
    assert now <= 2 * 5_000 + POLICY.reply_timeout_ms


@pytest.mark.hazard("C4")
def test_pump_with_the_wrong_keys_is_never_sent_a_command() -> None:
    recorder = Recorder()
    tp = build(recorder, keys=OTHER)
    result = tp.request(BOLUS)
    assert result.outcome is Outcome.NOT_APPLIED
    assert result.refusal is RefusalCode.AUTHENTICATION_FAILED
    assert not any(f.is_sealed for f in recorder.frames(TO_PUMP))
    assert bolus_starts(tp) == 0


@pytest.mark.hazard("C4")
def test_impostor_pump_fails_mutual_authentication() -> None:
    """A pump that accepts any proof but cannot prove it holds the role key: the core stops
    before deriving keys and never sends the command."""
    core = ProgrammerCore(KEYS.serial, Role.CLINICIAN, KEYS.clinician, random.Random(4).randbytes)
    core.submit(BOLUS, 0)
    (open_frame,) = [codec.parse_frame(e.data) for e in Framer().feed(core.data_to_send())
                     if isinstance(e, FrameBytes)]  # fmt: skip
    challenge = Challenge(pump_nonce=bytes(range(16)), serial=KEYS.serial)
    core.receive_data(codec.encode(challenge, seq=1, ref=open_frame.seq), 1)
    (auth_frame,) = [codec.parse_frame(e.data) for e in Framer().feed(core.data_to_send())
                     if isinstance(e, FrameBytes)]  # fmt: skip
    forged = SessionOpened(proof=bytes(32), idle_timeout_s=120, max_session_s=3_600)
    core.receive_data(codec.encode(forged, seq=2, ref=auth_frame.seq), 2)
    assert core.data_to_send() == b""  # nothing more, sealed or not
    (result,) = core.results()
    assert result.outcome is Outcome.NOT_APPLIED
    assert any("handshake failed" in e for e in core.security_events)
    assert not core.is_open


@pytest.mark.hazard("C1")
def test_uncertain_only_when_the_pump_cannot_be_reached() -> None:
    # The command reaches the pump, then the pump is never heard from again.
    recorder = Recorder(drop_all_to_programmer_from=2)
    tp = build(recorder)
    result = tp.request(BOLUS)
    assert result.outcome is Outcome.UNCERTAIN
    assert "status" in result.detail.lower() or result.detail
    assert bolus_starts(tp) == 1  # it was applied, once; the programmer says it cannot know


def test_unreachable_before_any_command_is_not_applied() -> None:
    recorder = Recorder(drop_all_to_programmer_from=0)
    tp = build(recorder)
    result = tp.request(BOLUS)
    assert result.outcome is Outcome.NOT_APPLIED
    assert not any(f.is_sealed for f in recorder.frames(TO_PUMP))
    assert bolus_starts(tp) == 0

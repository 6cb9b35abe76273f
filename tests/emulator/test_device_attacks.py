"""The attack suite of issue 4: raw frames, crafted byte by byte, against ``PumpDevice``.

Each attack asserts three things:

1. the frame is rejected: the pump answers a NAK with the expected code, or nothing;
2. the refusal is logged: the event-log entries the attack added are exactly SECURITY_EVENT
   entries whose detail is the refusal code (docs/protocol.md section 11);
3. the pump's **therapy state** is byte-for-byte unchanged. Therapy state is defined here as
   the whole ``Pump.snapshot()`` record (firmware non-volatile record, staged prescription,
   refill in progress, delivery engine, plant truth, pump time) with only the event log
   left out, plus the device's command ledger (applied ids, in order). The log is compared
   separately (point 2). The attack frame is delivered at the instant the "before" state is
   taken, so time passing cannot hide or fake a change.

Attacks are built the way an attacker would: ``ProgrammerSession`` and ``protocol.codec``
produce honest frames, and the test edits their bytes, recomputing the CRC where an
attacker would (the CRC is not a security control, docs/domain.md section 4).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.device import RX_IDLE_MS, PumpDevice
from emulator.firmware.nvram import decode_record
from emulator.firmware.results import Refused
from emulator.pump import SNAPSHOT_MAGIC, Pump
from protocol import codec, crypto, wire
from protocol.checksum import crc16
from protocol.codec import Frame
from protocol.device_state import EventKind, LogEntry, Role, TherapyState
from protocol.framer import FrameBytes, Framer
from protocol.keys import PumpKeys, generate_keys
from protocol.messages import (
    MESSAGE_BY_OPCODE,
    Ack,
    Authenticate,
    Challenge,
    ClinicianBolus,
    CloseSession,
    CommitPrescription,
    Message,
    Nak,
    OpenSession,
    PatientBolusRequest,
    ReadStatus,
    RefillBegin,
    RefillComplete,
    SessionOpened,
    StagePrescription,
    Status,
    StopTherapy,
)
from protocol.prescription import (
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)
from protocol.refusal import FieldId, RefusalCode
from protocol.session import ProgrammerSession, SessionState

SERIAL = "PE-000042"
KEYS = generate_keys(SERIAL, bytes(range(1, 65)))
OTHER_PUMP = generate_keys(SERIAL, bytes(range(101, 165)))
"""Another pump's key file that (worst case) even claims the same serial."""

RX = Prescription(
    drug_name="morphine",
    concentration_ug_per_ml=10_000,
    mode=InfusionMode.CONTINUOUS,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 500_000),),
    patient_bolus=PatientBolusLimits(20_000, 600, 600, 4),
    low_reservoir_threshold_nl=2_000_000,
)
BOLUS = ClinicianBolus(command_id=100, dose_nl=50_000, duration_s=600)
HEADER_REGIONS = {
    "sync": range(0, 2),
    "version": range(2, 3),
    "flags": range(3, 4),
    "seq": range(4, 8),
    "ref": range(8, 12),
    "opcode": range(12, 13),
    "length": range(13, 15),
}


def with_crc(frame_without_crc: bytes) -> bytes:
    """What an attacker does after editing a frame: recompute the (non-secret) CRC."""
    return frame_without_crc + crc16(frame_without_crc[2:]).to_bytes(2, "little")


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@dataclass
class Bench:
    """One emulated pump, running a committed prescription, driven with raw bytes."""

    keys: PumpKeys = KEYS
    seed: int = 0
    pump: Pump = field(init=False)
    device: PumpDevice = field(init=False)
    now: int = 0
    programmer: ProgrammerSession | None = None
    """The legitimate programmer's session, to open sealed replies."""

    def __post_init__(self) -> None:
        self.pump = Pump("peristaltic-20", start_ms=0)
        assert not isinstance(self.pump.program(RX, command_id=1), Refused)
        self.device = PumpDevice(self.pump, self.keys, random.Random(self.seed).randbytes)

    def tick(self, ms: int = 1) -> None:
        self.now += ms

    def deliver(self, data: bytes) -> list[Frame]:
        """Give the pump ``data`` at the current time; the frames it answers with."""
        self.device.receive_data(data, self.now)
        return parse_replies(self.device.data_to_send())

    def therapy_state(self) -> dict[str, Any]:
        record = decode_record(SNAPSHOT_MAGIC, self.pump.snapshot())
        del record["log"]
        return {"pump": record, "ledger": self.device.ledger.applied_ids()}

    def attack(
        self, data: bytes, expected: RefusalCode | None, *, security: bool = True
    ) -> list[tuple[Frame, Message]]:
        """Deliver an attack frame; assert it is rejected, logged and changes nothing.

        ``expected`` is the NAK code (None: no answer at all). With ``security`` the log
        gains exactly one SECURITY_EVENT naming that code, or, if a run of that code is open
        (docs/protocol.md section 11.3), nothing, and the run counts one more event; without
        it (a frame refused by the framing rules before any session rule, docs/protocol.md
        sections 2-3) nothing, and no run counts it.
        The link then stays quiet for RX_IDLE_MS, so a partial candidate is given up and
        answered too: every reply the attack provokes is seen.
        """
        self.device.handle_timer(self.now)  # time passes first; the attack lands at now
        before = self.therapy_state()
        next_seq = self.pump.status().log_next_seq
        counted = self.device.uncounted_security_events()
        self.device.receive_data(data, self.now)
        assert self.therapy_state() == before, "the attack changed the therapy state"
        self.now += RX_IDLE_MS
        self.device.handle_timer(self.now)
        replies = parse_replies(self.device.data_to_send())
        added = self.pump.log(next_seq)
        answers = [(r, reply_message(r, self.programmer)) for r in replies]
        if expected is None:
            assert answers == []
        else:
            assert len(answers) == 1, answers
            nak = answers[0][1]
            assert isinstance(nak, Nak), nak
            assert nak.code is expected, nak
        now_counted = self.device.uncounted_security_events()
        if security:
            assert expected is not None
            if int(expected) in counted:
                assert added == (), added  # coalesced into the open run of its code
                assert now_counted[expected] == counted[expected] + 1
            else:
                assert_security_events(added, expected)
                assert now_counted[expected] == 0  # it opened a run
        else:
            assert added == (), added
            assert now_counted == counted
        return answers


def parse_replies(data: bytes) -> list[Frame]:
    framer = Framer()
    events = framer.feed(data) + framer.finish()
    return [codec.parse_frame(e.data) for e in events if isinstance(e, FrameBytes)]


def assert_security_events(added: tuple[LogEntry, ...], code: RefusalCode) -> None:
    assert [(e.kind, e.detail) for e in added] == [(EventKind.SECURITY_EVENT, int(code))], added


def reply_message(frame: Frame, session: ProgrammerSession | None) -> Message:
    """Decode a pump reply; a sealed one needs the programmer's session."""
    assert frame.is_reply
    if frame.is_sealed:
        assert session is not None, "sealed reply outside a session"
        return codec.decode_payload(frame.opcode, session.open(frame.header, frame.body))
    return codec.decode_payload(frame.opcode, frame.body)


@dataclass
class Raw:
    """A programmer (or attacker) that builds every frame by hand."""

    bench: Bench
    role: Role = Role.CLINICIAN
    key: bytes | None = None
    nonce_seed: int = 1
    session: ProgrammerSession = field(init=False)
    programmer_nonce: bytes = b""
    pump_nonce: bytes = b""

    def __post_init__(self) -> None:
        key = self.key if self.key is not None else KEYS.key_for(self.role)
        self.session = ProgrammerSession(SERIAL, self.role, key)
        self._nonces = random.Random(self.nonce_seed)

    def handshake(self) -> Message:
        """OPEN_SESSION then AUTHENTICATE; returns the pump's answer to the second step
        (SESSION_OPENED, confirmed here) or the NAK that ended the attempt."""
        self.programmer_nonce = self._nonces.randbytes(16)
        start = self.session.start(self.programmer_nonce)
        self.bench.tick()
        (frame,) = self.bench.deliver(
            codec.encode(
                OpenSession(role=self.role, programmer_nonce=start.programmer_nonce), seq=1
            )
        )
        challenge = reply_message(frame, None)
        if isinstance(challenge, Nak):
            self.session.refused()
            return challenge
        assert isinstance(challenge, Challenge)
        self.pump_nonce = challenge.pump_nonce
        answer = self.session.answer_challenge(challenge.pump_nonce, challenge.serial)
        self.bench.tick()
        (frame,) = self.bench.deliver(codec.encode(Authenticate(proof=answer.proof), seq=2))
        opened = reply_message(frame, None)
        if isinstance(opened, Nak):
            self.session.refused()
            return opened
        assert isinstance(opened, SessionOpened)
        self.session.confirm_opened(opened.proof, opened.idle_timeout_s, opened.max_session_s)
        self.bench.programmer = self.session
        return opened

    def open(self) -> None:
        assert isinstance(self.handshake(), SessionOpened)

    def sealed(self, message: Message) -> bytes:
        """The sealed request frame for ``message``, with this session's next SEQ."""
        opcode, plaintext = codec.encode_payload(message)
        seq = self.session.next_send_seq
        header = codec.header_bytes(wire.FLAG_SEALED, seq, 0, opcode, len(plaintext) + 16)
        body = self.session.seal(header, plaintext)
        return codec.build_frame(Frame(wire.FLAG_SEALED, seq, 0, opcode, body))

    def request(self, message: Message) -> Message:
        """Send ``message`` sealed and return the pump's (opened) answer."""
        self.bench.tick()
        (frame,) = self.bench.deliver(self.sealed(message))
        return reply_message(frame, self.session)

    def session_keys(self) -> crypto.SessionKeys:
        """The session keys as an insider who holds the role key derives them from the
        public transcript (docs/security.md section 3)."""
        transcript = crypto.Transcript(SERIAL, self.role, self.programmer_nonce, self.pump_nonce)
        return crypto.derive_session_keys(KEYS.key_for(self.role), transcript)


def opened_bench(role: Role = Role.CLINICIAN, seed: int = 0) -> tuple[Bench, Raw]:
    bench = Bench(seed=seed)
    raw = Raw(bench, role)
    raw.open()
    return bench, raw


def bolus_applied(bench: Bench) -> bool:
    return bench.pump.status().state is TherapyState.CLINICIAN_BOLUS


# -- replay (C3) ---------------------------------------------------------------------------


@pytest.mark.hazard("C3")
def test_replay_of_a_captured_bolus_in_the_same_session_is_refused() -> None:
    bench, raw = opened_bench()
    captured = raw.sealed(BOLUS)
    bench.tick()
    (frame,) = bench.deliver(captured)
    ack = reply_message(frame, raw.session)
    assert isinstance(ack, Ack)
    assert ack.command_id == BOLUS.command_id
    assert bolus_applied(bench)
    bench.tick()
    ((nak_frame, nak),) = bench.attack(captured, RefusalCode.REPLAY_DETECTED)
    # Refused by the counter, before the ledger: the NAK is sealed and names the last SEQ.
    assert nak_frame.is_sealed
    assert nak == Nak(code=RefusalCode.REPLAY_DETECTED, field=FieldId.NONE, limit=3)
    started = [e for e in bench.pump.log() if e.kind is EventKind.CLINICIAN_BOLUS_STARTED]
    assert len(started) == 1


@pytest.mark.hazard("C3")
def test_replay_of_a_captured_bolus_in_a_later_session_is_refused() -> None:
    bench, raw = opened_bench()
    captured = raw.sealed(BOLUS)
    bench.tick()
    bench.deliver(captured)
    assert bolus_applied(bench)
    assert isinstance(raw.request(StopTherapy(command_id=101)), Ack)
    bench.tick()
    bench.deliver(raw.sealed(CloseSession()))
    assert bench.device.session.state is SessionState.IDLE
    raw.session.close()
    # A new session, by the same legitimate programmer: new nonces, new keys.
    Raw(bench, nonce_seed=2).open()
    bench.tick()
    bench.attack(captured, RefusalCode.FRAME_NOT_AUTHENTIC)
    assert bench.pump.status().state is TherapyState.STOPPED
    # And with no session open at all, the captured frame only meets NOT_AUTHENTICATED.
    bench2, raw2 = opened_bench(seed=5)
    old = raw2.sealed(BOLUS)
    bench2.tick()
    bench2.deliver(raw2.sealed(CloseSession()))
    bench2.tick()
    bench2.attack(old, RefusalCode.NOT_AUTHENTICATED)


# -- forged frames: bit flips in ciphertext, tag and header (C3, C2) ----------------------


def sealed_bolus() -> tuple[Bench, Raw, bytes]:
    bench, raw = opened_bench()
    return bench, raw, raw.sealed(BOLUS)


@pytest.mark.hazard("C3", "C2")
@given(data=st.data())
def test_bit_flip_in_ciphertext_or_tag_is_refused(data: st.DataObject) -> None:
    bench, raw, frame = sealed_bolus()
    body_len = len(frame) - wire.HEADER_LEN - 2
    region = data.draw(st.sampled_from(["ciphertext", "tag"]), label="region")
    start = wire.HEADER_LEN + (0 if region == "ciphertext" else body_len - wire.TAG_LEN)
    length = body_len - wire.TAG_LEN if region == "ciphertext" else wire.TAG_LEN
    bit = data.draw(st.integers(start * 8, (start + length) * 8 - 1), label="bit")
    forged = with_crc(flip(frame[:-2], bit))
    bench.tick()
    ((nak_frame, _),) = bench.attack(forged, RefusalCode.FRAME_NOT_AUTHENTIC)
    assert nak_frame.is_sealed  # inside a session every reply is sealed, NAKs included
    assert not bolus_applied(bench)
    # The counter did not move and the session is intact: the genuine frame still works.
    bench.tick()
    (frame_reply,) = bench.deliver(frame)
    assert isinstance(reply_message(frame_reply, raw.session), Ack)
    assert bolus_applied(bench)


def header_flip_outcome(frame: bytes, bit: int) -> tuple[str, RefusalCode | None]:
    """What docs/protocol.md and docs/security.md say becomes of a sealed request whose
    header bit ``bit`` was flipped (CRC recomputed, as an attacker would).

    ``("security", code)``: the frame reaches the session layer, which refuses it with
    ``code`` and logs a security event. ``("protocol", code)``: the frame breaks a framing
    or header rule and is discarded before any session rule, answered with ``code`` (None:
    nothing to answer, e.g. no SYNC left). ``("length", None)``: see the test. Never applied.
    """
    forged = flip(frame[: wire.HEADER_LEN], bit)
    offset = bit // 8
    flags, seq, opcode = forged[3], crypto.header_seq(forged), forged[12]
    if offset < 2:
        return "protocol", None  # no SYNC: not a frame, nothing that names a SEQ
    if offset == 2:
        # VERSION is not 1: not a frame of this protocol. With the CRC recomputed, a whole
        # request of another version: the pump names the one it speaks (docs/protocol.md
        # section 3).
        return "protocol", RefusalCode.UNSUPPORTED_VERSION
    if offset == 3:
        if flags & ~wire.FLAGS_DEFINED:
            return "protocol", RefusalCode.FRAME_CORRUPT  # reserved bit: damaged header
        if flags & wire.FLAG_REPLY:
            return "protocol", None  # a "reply" sent to the pump is nobody's request
        return "security", RefusalCode.NOT_AUTHENTICATED  # SEALED cleared: unsealed request
    if offset < 8:
        if seq == 0:
            return "protocol", None  # SEQ 0 is never sent: no SEQ to answer
        return "security", RefusalCode.FRAME_NOT_AUTHENTIC  # SEQ is in the nonce and AAD
    if offset < 12:
        return "protocol", RefusalCode.FRAME_CORRUPT  # a request's REF must be 0
    if offset == 12:
        if opcode not in MESSAGE_BY_OPCODE:
            return "protocol", RefusalCode.UNKNOWN_OPCODE
        if opcode & 0x80:
            return "protocol", RefusalCode.FRAME_CORRUPT  # REPLY flag disagrees with opcode
        if opcode in (0x01, 0x02):
            return "protocol", RefusalCode.MALFORMED_PAYLOAD  # the handshake is never sealed
        return "security", RefusalCode.FRAME_NOT_AUTHENTIC  # the opcode is in the AAD
    return "length", None


@pytest.mark.hazard("C3", "C2")
@given(bit=st.integers(0, wire.HEADER_LEN * 8 - 1))
def test_bit_flip_in_header_is_refused(bit: int) -> None:
    bench, raw, frame = sealed_bolus()
    kind, code = header_flip_outcome(frame, bit)
    bench.tick()
    if kind == "length":
        # LENGTH no longer matches the body. An attacker pads or truncates the body to
        # match and fixes the CRC; the AEAD authenticates LENGTH, so the tag fails. A
        # LENGTH above 1024 is no frame at all: a damaged header, answered FRAME_CORRUPT.
        forged_header = flip(frame[: wire.HEADER_LEN], bit)
        length = crypto.header_length(forged_header)
        if length <= wire.MAX_BODY_LEN:
            body = (frame[wire.HEADER_LEN : -2] + bytes(length))[:length]
            bench.attack(with_crc(forged_header + body), RefusalCode.FRAME_NOT_AUTHENTIC)
        else:
            bench.attack(
                with_crc(forged_header + frame[wire.HEADER_LEN : -2]),
                RefusalCode.FRAME_CORRUPT,
                security=False,
            )
    else:
        bench.attack(with_crc(flip(frame[:-2], bit)), code, security=kind == "security")
    assert not bolus_applied(bench)
    bench.tick()
    (reply,) = bench.deliver(frame)
    assert isinstance(reply_message(reply, raw.session), Ack)


@pytest.mark.parametrize("region", sorted(HEADER_REGIONS))
@pytest.mark.hazard("C3", "C2")
def test_every_header_region_is_covered(region: str) -> None:
    """Each header region has a defined outcome for every bit (the oracle is total), and
    the regions the AEAD covers are refused as security events."""
    _, _, frame = sealed_bolus()
    outcomes = {header_flip_outcome(frame, b)[0] for r in HEADER_REGIONS[region] for b in
                range(r * 8, r * 8 + 8)}  # fmt: skip
    if region in ("seq", "opcode"):
        assert "security" in outcomes
    if region == "length":
        assert outcomes == {"length"}


# -- the wrong key (C4) -------------------------------------------------------------------


@pytest.mark.hazard("C4")
@pytest.mark.parametrize(
    ("role", "key"),
    [
        (Role.CLINICIAN, KEYS.patient),
        (Role.PATIENT, KEYS.clinician),
        (Role.CLINICIAN, OTHER_PUMP.clinician),
        (Role.PATIENT, OTHER_PUMP.patient),
    ],
    ids=[
        "patient-key-claims-clinician",
        "clinician-key-claims-patient",
        "other-pump-clinician",
        "other-pump-patient",
    ],
)
def test_wrong_role_key_cannot_open_a_session(role: Role, key: bytes) -> None:
    bench = Bench()
    raw = Raw(bench, role, key)
    raw.programmer_nonce = bytes(16)
    bench.tick()
    (frame,) = bench.deliver(
        codec.encode(OpenSession(role=role, programmer_nonce=bytes(16)), seq=1)
    )
    challenge = reply_message(frame, None)
    assert isinstance(challenge, Challenge)
    raw.session.start(bytes(16))
    answer = raw.session.answer_challenge(challenge.pump_nonce, challenge.serial)
    bench.tick()
    bench.attack(
        codec.encode(Authenticate(proof=answer.proof), seq=2), RefusalCode.AUTHENTICATION_FAILED
    )
    assert bench.device.session.state is SessionState.IDLE
    # Even with the handshake skipped, a frame sealed with keys derived from the wrong role
    # key meets no session.
    bench.tick()
    bench.attack(
        codec.encode(ClinicianBolus(command_id=9, dose_nl=1_000, duration_s=60), seq=3),
        RefusalCode.NOT_AUTHENTICATED,
    )


# -- roles (C4) ------------------------------------------------------------------------------


def _staged_digest() -> bytes:
    return codec.prescription_digest(RX)


PATIENT_FORBIDDEN: list[Message] = [
    StagePrescription(prescription=RX),
    CommitPrescription(command_id=200, digest=bytes(16)),
    ClinicianBolus(command_id=201, dose_nl=50_000, duration_s=600),
    StopTherapy(command_id=202),
    RefillBegin(command_id=203),
    RefillComplete(
        command_id=204, withdrawn_nl=0, new_volume_nl=20_000_000, new_concentration_ug_per_ml=1
    ),
]


@pytest.mark.hazard("C4")
@pytest.mark.parametrize("message", PATIENT_FORBIDDEN, ids=lambda m: type(m).__name__)
def test_patient_session_may_not_change_dosing(message: Message) -> None:
    bench = Bench()
    bench.tick(600_001)  # past the bolus lockout that the commit at time 0 started
    raw = Raw(bench, Role.PATIENT)
    raw.open()
    if isinstance(message, CommitPrescription):
        # Even a commit of a prescription the clinician really staged is refused.
        bench.pump.stage(RX)
        message = CommitPrescription(command_id=200, digest=_staged_digest())
    bench.tick()
    ((_, nak),) = bench.attack(raw.sealed(message), RefusalCode.NOT_PERMITTED_FOR_ROLE)
    assert nak == Nak(code=RefusalCode.NOT_PERMITTED_FOR_ROLE, field=FieldId.ROLE, limit=0)
    # The patient may still do what the table allows: read status, ask for a bolus.
    assert isinstance(raw.request(ReadStatus()), Status)
    assert isinstance(raw.request(PatientBolusRequest(command_id=300)), Ack)


# -- no session (C4) -------------------------------------------------------------------------


@pytest.mark.hazard("C4")
@pytest.mark.parametrize(
    "message",
    [BOLUS, StopTherapy(command_id=7), ReadStatus(), PatientBolusRequest(command_id=8)],
    ids=lambda m: type(m).__name__,
)
def test_unauthenticated_command_before_opening_is_refused(message: Message) -> None:
    bench = Bench()
    bench.tick()
    ((frame, _),) = bench.attack(codec.encode(message, seq=3), RefusalCode.NOT_AUTHENTICATED)
    assert not frame.is_sealed
    assert frame.ref == 3
    # A sealed-looking frame with no session behind it fares no better.
    opcode, plaintext = codec.encode_payload(message)
    header = codec.header_bytes(wire.FLAG_SEALED, 4, 0, opcode, len(plaintext) + 16)
    fake = crypto.seal(bytes(32), header, plaintext)
    bench.attack(codec.build_frame(Frame(wire.FLAG_SEALED, 4, 0, opcode, fake)),
                 RefusalCode.NOT_AUTHENTICATED)  # fmt: skip


# -- counter rollback (C3) -------------------------------------------------------------------


@pytest.mark.hazard("C3")
@pytest.mark.parametrize("rollback", [0, 1, 2])
def test_counter_rollback_is_refused_even_when_validly_sealed(rollback: int) -> None:
    """An insider with the session keys seals a *new* command (fresh command id, so the
    ledger would apply it) under an old SEQ: only the counter check stands in the way."""
    bench, raw = opened_bench()
    for _ in range(3):
        assert isinstance(raw.request(ReadStatus()), Status)
    last = bench.device.session.last_received_seq
    assert last == 5
    seq = last - rollback
    keys = raw.session_keys()
    message = ClinicianBolus(command_id=777, dose_nl=50_000, duration_s=600)
    opcode, plaintext = codec.encode_payload(message)
    header = codec.header_bytes(wire.FLAG_SEALED, seq, 0, opcode, len(plaintext) + 16)
    body = crypto.seal(keys.to_pump, header, plaintext)
    # The forgery is genuine as far as the AEAD goes: it opens under the session key.
    assert crypto.open(keys.to_pump, header, body) == plaintext
    bench.tick()
    ((_, nak),) = bench.attack(
        codec.build_frame(Frame(wire.FLAG_SEALED, seq, 0, opcode, body)),
        RefusalCode.REPLAY_DETECTED,
    )
    assert nak == Nak(code=RefusalCode.REPLAY_DETECTED, field=FieldId.NONE, limit=last)
    assert 777 not in bench.device.ledger.applied_ids()
    # The same forgery with a fresh SEQ is accepted: the counter alone stopped it.
    header = codec.header_bytes(wire.FLAG_SEALED, last + 1, 0, opcode, len(plaintext) + 16)
    body = crypto.seal(keys.to_pump, header, plaintext)
    bench.tick()
    (frame,) = bench.deliver(codec.build_frame(Frame(wire.FLAG_SEALED, last + 1, 0, opcode, body)))
    assert isinstance(reply_message(frame, raw.session), Ack)
    assert 777 in bench.device.ledger.applied_ids()


# -- brute force and lockout (C4) ------------------------------------------------------------


@pytest.mark.hazard("C4")
def test_brute_force_openings_lock_out_but_never_the_right_key() -> None:
    """docs/security.md section 6: N failed openings start a lockout and each later failure
    restarts it, but a lockout never refuses a proof that verifies."""
    bench = Bench()
    profile = bench.pump.profile
    n, lockout_ms = profile.session_max_failed_openings, profile.session_lockout_s * 1000
    guesses = random.Random(7)
    for attempt in range(1, 2 * n + 1):
        bench.tick()
        nonce = guesses.randbytes(16)
        (frame,) = bench.deliver(
            codec.encode(OpenSession(role=Role.CLINICIAN, programmer_nonce=nonce), seq=1)
        )
        assert isinstance(reply_message(frame, None), Challenge)  # even in the lockout
        bench.tick()
        locked_at = bench.now
        bench.attack(
            codec.encode(Authenticate(proof=guesses.randbytes(32)), seq=2),
            RefusalCode.AUTHENTICATION_FAILED,
        )
        expected = SessionState.LOCKED_OUT if attempt >= n else SessionState.IDLE
        assert bench.device.session.state is expected
        if attempt >= n:  # the lockout runs from the latest failure
            assert bench.device.session.lockout_until_ms == locked_at + lockout_ms
    # What a lockout refuses: an AUTHENTICATE with no challenge pending, told the time left.
    bench.now = locked_at + lockout_ms // 2
    ((_, nak),) = bench.attack(
        codec.encode(Authenticate(proof=bytes(32)), seq=2), RefusalCode.LOCKED_OUT
    )
    assert nak == Nak(
        code=RefusalCode.LOCKED_OUT, field=FieldId.NONE, limit=-(-(lockout_ms // 2) // 1000)
    )
    # The genuine programmer, with the right key, in the middle of the lockout: it opens,
    # and the lockout is over.
    raw = Raw(bench)
    raw.open()
    assert isinstance(raw.request(ReadStatus()), Status)
    assert bench.device.session.lockout_until_ms is None
    assert bench.device.session.failed_openings == 0

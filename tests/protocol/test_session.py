"""PumpSession and ProgrammerSession end to end: the attacks of issue 4, at the session layer.

Each attack asserts three things: the input is refused with its specific code, a security
event is logged, and nothing reaches the firmware (no ``Accepted``, the counter unmoved).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import crypto
from protocol.device_state import Role
from protocol.errors import SessionError
from protocol.keys import PumpKeys, generate_keys
from protocol.permissions import PERMISSIONS, RequestKind
from protocol.refusal import RefusalCode
from protocol.session import (
    Accepted,
    Action,
    Challenge,
    Opened,
    ProgrammerSession,
    ProgrammerState,
    PumpSession,
    Refused,
    ReplayedFrameError,
    SessionEvent,
    SessionEventKind,
    SessionLimits,
    SessionState,
)
from protocol.units import U32_MAX

KEYS = generate_keys("PE-000042", bytes(range(1, 65)))
OTHER_PUMP = generate_keys("PE-000042", bytes(range(101, 165)))  # same serial, other keys
LIMITS = SessionLimits(idle_timeout_s=60, max_session_s=600, max_failed_openings=3, lockout_s=300)
IDLE_MS = 60_000
MAX_MS = 600_000
LOCKOUT_MS = 300_000


def header(flags: int, seq: int, length: int, ref: int = 0, opcode: int = 0x11) -> bytes:
    return struct.pack("<2sBBIIBH", b"\xa5\x5a", 1, flags, seq, ref, opcode, length)


@dataclass
class Link:
    """A pump and a programmer joined by bytes, with a manual clock and fresh nonces."""

    role: Role = Role.CLINICIAN
    pump_keys: PumpKeys = KEYS
    programmer_key: bytes | None = None
    pump: PumpSession = field(init=False)
    prog: ProgrammerSession = field(init=False)
    now: int = 0
    nonces: int = 0

    def __post_init__(self) -> None:
        self.pump = PumpSession(self.pump_keys, LIMITS)
        self.prog = self.new_programmer(self.programmer_key)

    def new_programmer(self, key: bytes | None = None) -> ProgrammerSession:
        return ProgrammerSession(KEYS.serial, self.role, key or KEYS.key_for(self.role))

    def nonce(self) -> bytes:
        self.nonces += 1
        return self.nonces.to_bytes(4, "big") * 4

    def at(self, ms: int) -> int:
        self.now = ms
        return ms

    def tick(self, ms: int = 1) -> int:
        self.now += ms
        return self.now

    def try_open(self, prog: ProgrammerSession | None = None) -> Opened | Refused:
        prog = prog or self.prog
        req = prog.start(self.nonce())
        challenge = self.pump.open_request(
            req.role, req.programmer_nonce, self.nonce(), self.tick()
        )
        if isinstance(challenge, Refused):
            prog.refused()
            return challenge
        auth = prog.answer_challenge(challenge.pump_nonce, challenge.serial)
        opened = self.pump.authenticate(auth.proof, self.tick())
        if isinstance(opened, Refused):
            prog.refused()
            return opened
        prog.confirm_opened(opened.proof, opened.idle_timeout_s, opened.max_session_s)
        return opened

    def open(self) -> Opened:
        opened = self.try_open()
        assert isinstance(opened, Opened), opened
        return opened

    def request(self, plaintext: bytes = b"status?") -> tuple[bytes, bytes]:
        hdr = header(0x02, self.prog.next_send_seq, len(plaintext) + 16)
        return hdr, self.prog.seal(hdr, plaintext)

    def send(
        self, frame: tuple[bytes, bytes], kind: RequestKind = RequestKind.READ_STATUS
    ) -> Accepted | Refused:
        return self.pump.receive_sealed(frame[0], frame[1], kind, self.tick())

    def reply(self, ref: int, plaintext: bytes = b"ok") -> tuple[bytes, bytes]:
        hdr = header(0x03, self.pump.next_send_seq, len(plaintext) + 16, ref=ref)
        return hdr, self.pump.seal(hdr, plaintext)


def kinds(events: list[SessionEvent]) -> list[SessionEventKind]:
    return [e.kind for e in events]


def state_of(pump: PumpSession) -> SessionState:
    """Read the state through a call, so mypy does not carry narrowing across inputs."""
    return pump.state


def lockout_of(pump: PumpSession) -> int | None:
    """Read the lockout through a call, so mypy does not carry narrowing across inputs."""
    return pump.lockout_until_ms


def can_seal(pump: PumpSession) -> bool:
    return pump.can_seal


def assert_refused(result: object, code: RefusalCode, link: Link, event: SessionEventKind) -> None:
    assert isinstance(result, Refused), result
    assert result.code is code
    events = link.pump.pop_events()
    assert kinds(events) == [event]
    assert events[-1].kind.is_security
    assert events[-1].code is code


# -- opening ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role), ids=[r.name for r in Role])
def test_both_sides_open_and_exchange_sealed_frames(role: Role) -> None:
    link = Link(role=role)
    opened = link.open()
    assert (opened.idle_timeout_s, opened.max_session_s, opened.seq) == (60, 600, 2)
    assert link.pump.state is SessionState.OPEN
    assert link.pump.role is role
    assert link.prog.state is ProgrammerState.OPEN
    assert kinds(link.pump.pop_events()) == [SessionEventKind.SESSION_OPENED]
    for i in range(5):
        frame = link.request(f"request {i}".encode())
        result = link.send(frame)
        assert isinstance(result, Accepted)
        assert result.plaintext == f"request {i}".encode()
        assert result.seq == 3 + i == link.pump.last_received_seq
        rh, rb = link.reply(result.seq, f"reply {i}".encode())
        assert crypto.header_seq(rh) == 3 + i
        assert link.prog.open(rh, rb) == f"reply {i}".encode()
    assert link.pump.pop_events() == []


def test_each_session_has_fresh_keys() -> None:
    link = Link()
    link.open()
    first = link.request(b"same plaintext")
    link.send(link.request(b"close"), RequestKind.CLOSE)
    link.pump.seal(header(0x03, link.pump.next_send_seq, 16), b"")
    link.prog.close()
    link.open()
    second = link.request(b"same plaintext")
    assert first[0][4:8] != second[0][4:8] or first[1] != second[1]
    assert first[1] != second[1]


@pytest.mark.hazard("C4")
def test_programmer_detects_an_impostor_pump() -> None:
    # The impostor answers like a pump but holds no key of this pump: mutual auth fails.
    prog = ProgrammerSession(KEYS.serial, Role.CLINICIAN, KEYS.clinician)
    req = prog.start(bytes(range(16)))
    auth = prog.answer_challenge(bytes(range(16, 32)), KEYS.serial)
    t = crypto.Transcript(KEYS.serial, Role.CLINICIAN, req.programmer_nonce, bytes(range(16, 32)))
    for fake in (
        crypto.pump_proof(OTHER_PUMP.clinician, t),  # another pump's key
        crypto.pump_proof(KEYS.patient, t),  # this pump's other role key
        auth.proof,  # reflection of the programmer's own proof
        bytes(32),
    ):
        prog.start(req.programmer_nonce)
        prog.answer_challenge(bytes(range(16, 32)), KEYS.serial)
        with pytest.raises(SessionError, match="did not verify"):
            prog.confirm_opened(fake, 60, 600)
        assert prog.state is ProgrammerState.FAILED
        with pytest.raises(SessionError, match="no open session"):
            prog.seal(header(0x02, 3, 16), b"")
    prog.start(req.programmer_nonce)
    prog.answer_challenge(bytes(range(16, 32)), KEYS.serial)
    prog.confirm_opened(crypto.pump_proof(KEYS.clinician, t), 60, 600)
    assert prog.state is ProgrammerState.OPEN


@pytest.mark.hazard("C4")
def test_a_real_pump_with_other_keys_is_refused_and_refuses() -> None:
    link = Link(pump_keys=OTHER_PUMP)
    result = link.try_open()
    assert isinstance(result, Refused)
    assert result.code is RefusalCode.AUTHENTICATION_FAILED
    assert link.prog.state is ProgrammerState.IDLE


def test_programmer_refuses_a_challenge_from_another_serial() -> None:
    prog = ProgrammerSession(KEYS.serial, Role.PATIENT, KEYS.patient)
    prog.start(bytes(16))
    with pytest.raises(SessionError, match="serial 'PE-000043'"):
        prog.answer_challenge(bytes(range(16)), "PE-000043")
    assert prog.state is ProgrammerState.FAILED


@pytest.mark.hazard("C4")
@pytest.mark.parametrize(
    ("role", "key_from"),
    [
        (Role.CLINICIAN, "patient key"),
        (Role.PATIENT, "clinician key"),
        (Role.CLINICIAN, "other pump"),
    ],
)
def test_wrong_role_key_fails_authentication(role: Role, key_from: str) -> None:
    wrong = {
        "patient key": KEYS.patient,
        "clinician key": KEYS.clinician,
        "other pump": OTHER_PUMP.clinician,
    }[key_from]
    link = Link(role=role, programmer_key=wrong)
    req = link.prog.start(link.nonce())
    challenge = link.pump.open_request(req.role, req.programmer_nonce, link.nonce(), link.tick())
    assert isinstance(challenge, Challenge)
    auth = link.prog.answer_challenge(challenge.pump_nonce, challenge.serial)
    result = link.pump.authenticate(auth.proof, link.tick())
    assert_refused(
        result, RefusalCode.AUTHENTICATION_FAILED, link, SessionEventKind.AUTHENTICATION_FAILED
    )
    assert link.pump.state is SessionState.IDLE
    assert link.pump.failed_openings == 1
    # The challenge is used up: a second proof for it, even the right one, is refused.
    right = crypto.programmer_proof(KEYS.key_for(role), link.prog._transcript())
    result = link.pump.authenticate(right, link.tick())
    assert_refused(
        result, RefusalCode.NOT_AUTHENTICATED, link, SessionEventKind.UNAUTHENTICATED_REQUEST
    )
    assert link.pump.failed_openings == 1


@pytest.mark.hazard("C4")
def test_patient_key_cannot_open_a_clinician_session() -> None:
    link = Link(role=Role.CLINICIAN, programmer_key=KEYS.patient)
    assert isinstance(link.try_open(), Refused)
    assert link.pump.state is SessionState.IDLE


# -- before opening --------------------------------------------------------------------------


@pytest.mark.hazard("C4")
def test_unauthenticated_commands_before_opening_are_refused_and_logged() -> None:
    link = Link()
    forged = (header(0x02, 3, 20), bytes(20))
    for kind in RequestKind:
        result = link.send(forged, kind)
        assert_refused(
            result, RefusalCode.NOT_AUTHENTICATED, link, SessionEventKind.UNAUTHENTICATED_REQUEST
        )
    result = link.pump.receive_unsealed(link.tick())
    assert_refused(
        result, RefusalCode.NOT_AUTHENTICATED, link, SessionEventKind.UNAUTHENTICATED_REQUEST
    )
    assert link.pump.state is SessionState.IDLE


@pytest.mark.hazard("C4")
def test_unsealed_requests_are_refused_inside_a_session_too() -> None:
    link = Link()
    link.open()
    link.pump.pop_events()
    result = link.pump.receive_unsealed(link.tick())
    assert_refused(
        result, RefusalCode.NOT_AUTHENTICATED, link, SessionEventKind.UNAUTHENTICATED_REQUEST
    )
    assert link.pump.state is SessionState.OPEN


def test_one_programmer_at_a_time() -> None:
    link = Link()
    link.open()
    link.pump.pop_events()
    intruder = link.new_programmer()
    result = link.try_open(intruder)
    assert_refused(result, RefusalCode.SESSION_BUSY, link, SessionEventKind.OPENING_REFUSED)
    assert isinstance(link.send(link.request()), Accepted)  # the open session is unaffected


def test_a_new_open_request_replaces_the_challenge() -> None:
    link = Link()
    first = link.new_programmer()
    req = first.start(link.nonce())
    challenge = link.pump.open_request(req.role, req.programmer_nonce, link.nonce(), link.tick())
    assert isinstance(challenge, Challenge)
    auth_first = first.answer_challenge(challenge.pump_nonce, challenge.serial)
    link.open()  # a second OPEN_SESSION and handshake: the first challenge is gone
    link.pump.pop_events()
    assert link.pump.state is SessionState.OPEN
    stale = link.pump.authenticate(auth_first.proof, link.tick())
    assert_refused(stale, RefusalCode.SESSION_BUSY, link, SessionEventKind.OPENING_REFUSED)


def test_the_pump_refuses_a_repeated_nonce_from_its_source() -> None:
    link = Link()
    link.pump.open_request(Role.CLINICIAN, bytes(16), b"\x07" * 16, 0)
    with pytest.raises(ValueError, match="nonce source is broken"):
        link.pump.open_request(Role.CLINICIAN, bytes(16), b"\x07" * 16, 1)


# -- replay, reorder, forgery -------------------------------------------------------------


@pytest.mark.hazard("C3")
def test_replay_in_the_same_session_is_refused_and_logged() -> None:
    link = Link()
    link.open()
    link.pump.pop_events()
    bolus = link.request(b"clinician bolus 100 uL, command id 7")
    assert isinstance(link.send(bolus, RequestKind.CLINICIAN_BOLUS), Accepted)
    for _ in range(3):
        result = link.send(bolus, RequestKind.CLINICIAN_BOLUS)
        assert_refused(result, RefusalCode.REPLAY_DETECTED, link, SessionEventKind.REPLAYED_FRAME)
        assert link.pump.last_received_seq == 3


@pytest.mark.hazard("C3")
def test_replay_in_a_later_session_is_refused_and_logged() -> None:
    link = Link()
    link.open()
    bolus = link.request(b"clinician bolus")
    assert isinstance(link.send(bolus, RequestKind.CLINICIAN_BOLUS), Accepted)
    assert isinstance(link.send(link.request(b"bye"), RequestKind.CLOSE), Accepted)
    link.pump.pop_events()
    # between sessions
    result = link.send(bolus, RequestKind.CLINICIAN_BOLUS)
    assert_refused(
        result, RefusalCode.NOT_AUTHENTICATED, link, SessionEventKind.UNAUTHENTICATED_REQUEST
    )
    # in the next session: new keys, so the old frame does not even open
    link.prog.close()
    link.open()
    link.pump.pop_events()
    result = link.send(bolus, RequestKind.CLINICIAN_BOLUS)
    assert_refused(result, RefusalCode.FRAME_NOT_AUTHENTIC, link, SessionEventKind.FORGED_FRAME)
    assert link.pump.last_received_seq == 0


@pytest.mark.hazard("C3")
def test_reordered_and_stale_frames_are_refused_gaps_are_not() -> None:
    link = Link()
    link.open()
    link.pump.pop_events()
    frames = [link.request(f"#{i}".encode()) for i in range(5)]  # SEQ 3..7
    assert isinstance(link.send(frames[0]), Accepted)
    assert isinstance(link.send(frames[2]), Accepted)  # SEQ 4 lost: a gap is fine
    result = link.send(frames[1])  # SEQ 4 arrives late: reordered
    assert_refused(result, RefusalCode.REPLAY_DETECTED, link, SessionEventKind.REPLAYED_FRAME)
    assert isinstance(link.send(frames[4]), Accepted)
    result = link.send(frames[3])  # stale
    assert_refused(result, RefusalCode.REPLAY_DETECTED, link, SessionEventKind.REPLAYED_FRAME)
    assert link.pump.last_received_seq == 7


@pytest.mark.hazard("C3")
def test_a_counter_rollback_cannot_be_sealed_or_accepted() -> None:
    link = Link()
    link.open()
    for _ in range(3):
        link.send(link.request())
    with pytest.raises(ValueError, match="next SEQ is 6"):
        link.prog.seal(header(0x02, 3, 16), b"")
    # Re-sealing an old SEQ needs the key; a programmer that could would still be refused.
    keys = link.prog._open_keys()
    hdr = header(0x02, 4, 16)
    result = link.send((hdr, crypto.seal(keys.to_pump, hdr, b"")))
    assert isinstance(result, Refused)
    assert result.code is RefusalCode.REPLAY_DETECTED


@pytest.mark.hazard("C3", "C4")
@given(data=st.data())
def test_any_bit_flip_in_a_sealed_request_is_refused_and_burns_nothing(
    data: st.DataObject,
) -> None:
    link = Link()
    link.open()
    link.pump.pop_events()
    hdr, body = link.request(b"stop therapy")
    frame = bytearray(hdr + body)
    bit = data.draw(st.integers(0, len(frame) * 8 - 1), label="bit")
    frame[bit // 8] ^= 1 << (bit % 8)
    result = link.send((bytes(frame[:15]), bytes(frame[15:])), RequestKind.STOP)
    assert_refused(result, RefusalCode.FRAME_NOT_AUTHENTIC, link, SessionEventKind.FORGED_FRAME)
    assert link.pump.last_received_seq == 0
    assert isinstance(link.send((hdr, body), RequestKind.STOP), Accepted)


@pytest.mark.hazard("C3")
@given(order=st.lists(st.integers(0, 7), max_size=30))
def test_any_interleaving_delivers_each_frame_at_most_once_in_order(order: list[int]) -> None:
    # Drops, duplicates and reordering on the link: whatever arrives, the pump accepts
    # exactly the frames whose SEQ is above everything accepted before, each at most once.
    link = Link()
    link.open()
    frames = [link.request(f"#{i}".encode()) for i in range(8)]
    link.pump.pop_events()
    accepted: list[int] = []
    for i in order:
        result = link.send(frames[i])
        seq = 3 + i
        if not accepted or seq > accepted[-1]:
            assert isinstance(result, Accepted)
            assert result.plaintext == f"#{i}".encode()
            accepted.append(seq)
        else:
            assert isinstance(result, Refused)
            assert result.code is RefusalCode.REPLAY_DETECTED
            assert kinds(link.pump.pop_events()) == [SessionEventKind.REPLAYED_FRAME]
    assert accepted == sorted(set(accepted))
    assert link.pump.last_received_seq == (accepted[-1] if accepted else 0)


@pytest.mark.hazard("C3")
def test_programmer_refuses_replayed_reordered_and_forged_replies() -> None:
    link = Link()
    link.open()
    r1 = link.reply(3, b"first")
    r2 = link.reply(4, b"second")
    r3 = link.reply(5, b"third")
    assert link.prog.open(*r1) == b"first"
    with pytest.raises(ReplayedFrameError, match="not above"):
        link.prog.open(*r1)
    assert link.prog.open(*r3) == b"third"
    with pytest.raises(ReplayedFrameError):
        link.prog.open(*r2)  # late: the programmer must never take it as a new answer
    hdr, body = link.reply(6, b"fourth")
    with pytest.raises(SessionError, match="failed authentication"):
        link.prog.open(hdr, body[:-1] + bytes([body[-1] ^ 0x80]))
    assert link.prog.open(hdr, body) == b"fourth"
    # the programmer's own request reflected back does not open as a reply
    req_hdr, req_body = link.request(b"mirror")
    with pytest.raises(SessionError):
        link.prog.open(req_hdr, req_body)


# -- roles ---------------------------------------------------------------------------------

PATIENT_FORBIDDEN = sorted(set(RequestKind) - PERMISSIONS[Role.PATIENT], key=lambda k: k.value)


@pytest.mark.hazard("C4")
@pytest.mark.parametrize("kind", PATIENT_FORBIDDEN, ids=[k.name for k in PATIENT_FORBIDDEN])
def test_a_patient_session_is_denied_everything_else(kind: RequestKind) -> None:
    link = Link(role=Role.PATIENT)
    link.open()
    link.pump.pop_events()
    result = link.send(link.request(b"payload"), kind)
    assert_refused(result, RefusalCode.NOT_PERMITTED_FOR_ROLE, link, SessionEventKind.ROLE_DENIED)
    assert link.pump.state is SessionState.OPEN


@pytest.mark.hazard("C4")
def test_a_patient_session_may_read_status_and_ask_for_a_patient_bolus() -> None:
    link = Link(role=Role.PATIENT)
    link.open()
    for kind in (RequestKind.READ_STATUS, RequestKind.PATIENT_BOLUS):
        result = link.send(link.request(), kind)
        assert isinstance(result, Accepted)
        assert result.action is Action.DELIVER
    result = link.send(link.request(), RequestKind.KEEP_ALIVE)
    assert isinstance(result, Accepted)
    assert result.action is Action.ACK_KEEP_ALIVE


def test_a_clinician_session_may_do_everything() -> None:
    link = Link(role=Role.CLINICIAN)
    link.open()
    for kind in RequestKind:
        if kind is RequestKind.CLOSE:
            continue
        assert isinstance(link.send(link.request(), kind), Accepted), kind


# -- lockout and timers -------------------------------------------------------------------


@pytest.mark.hazard("C4")
def test_brute_force_locks_out_but_never_the_right_key() -> None:
    """docs/security.md section 6: the Nth failed opening starts a lockout, each later one
    restarts it, and a proof that verifies opens a session whatever the lockout."""
    link = Link()
    attacker = link.new_programmer(OTHER_PUMP.clinician)
    for n in range(1, 4):
        result = link.try_open(attacker)
        assert isinstance(result, Refused)
        assert result.code is RefusalCode.AUTHENTICATION_FAILED
        assert link.pump.failed_openings == n
    events = link.pump.pop_events()
    assert kinds(events) == [SessionEventKind.AUTHENTICATION_FAILED] * 2 + [
        SessionEventKind.LOCKOUT_STARTED
    ]
    assert link.pump.state is SessionState.LOCKED_OUT
    locked_at = events[-1].time_ms
    assert link.pump.lockout_until_ms == locked_at + LOCKOUT_MS
    assert link.pump.get_timer() == locked_at + LOCKOUT_MS

    # The attacker again, during the lockout: still a challenge, still refused, and the
    # lockout restarts from this failure.
    link.at(locked_at + LOCKOUT_MS // 2)
    result = link.try_open(attacker)
    assert isinstance(result, Refused)
    assert result.code is RefusalCode.AUTHENTICATION_FAILED
    events = link.pump.pop_events()
    assert kinds(events) == [SessionEventKind.LOCKOUT_STARTED]
    assert link.pump.failed_openings == 4
    assert link.pump.lockout_until_ms == events[-1].time_ms + LOCKOUT_MS
    assert link.pump.state is SessionState.LOCKED_OUT

    # An AUTHENTICATE that answers no challenge is what a lockout refuses.
    stray = link.pump.authenticate(bytes(32), link.tick())
    assert_refused(stray, RefusalCode.LOCKED_OUT, link, SessionEventKind.OPENING_REFUSED)

    # The right key, in the middle of the lockout: opened, and the lockout is over.
    assert isinstance(link.try_open(), Opened)
    assert kinds(link.pump.pop_events()) == [SessionEventKind.SESSION_OPENED]
    assert link.pump.failed_openings == 0
    assert lockout_of(link.pump) is None
    assert state_of(link.pump) is SessionState.OPEN


def test_a_lockout_ends_the_lockout_time_after_the_last_failure() -> None:
    link = Link()
    attacker = link.new_programmer(OTHER_PUMP.clinician)
    for _ in range(3):
        link.try_open(attacker)
    last_failure = link.now
    assert link.pump.handle_timer(last_failure + LOCKOUT_MS - 1) == []
    assert link.pump.handle_timer(last_failure + LOCKOUT_MS) == [Action.END_LOCKOUT]
    assert state_of(link.pump) is SessionState.IDLE
    assert link.pump.failed_openings == 0


def test_a_challenge_outlives_the_lockout_it_was_sent_in() -> None:
    link = Link()
    attacker = link.new_programmer(OTHER_PUMP.clinician)
    for _ in range(3):
        link.try_open(attacker)
    until = link.pump.lockout_until_ms
    assert until is not None
    link.at(until - 10)
    req = link.prog.start(link.nonce())
    challenge = link.pump.open_request(req.role, req.programmer_nonce, link.nonce(), link.now)
    assert isinstance(challenge, Challenge)
    assert link.pump.state is SessionState.LOCKED_CHALLENGED
    assert link.pump.handle_timer(until) == [Action.END_LOCKOUT]
    assert state_of(link.pump) is SessionState.CHALLENGED
    auth = link.prog.answer_challenge(challenge.pump_nonce, challenge.serial)
    assert isinstance(link.pump.authenticate(auth.proof, link.at(until + 5)), Opened)


def test_a_successful_opening_resets_the_failure_count() -> None:
    link = Link()
    attacker = link.new_programmer(OTHER_PUMP.clinician)
    for _ in range(2):
        link.try_open(attacker)
    link.open()
    assert link.pump.failed_openings == 0
    link.send(link.request(), RequestKind.CLOSE)
    for _ in range(2):
        link.try_open(attacker)
    assert link.pump.state is SessionState.IDLE  # 2 + 2 failures, but never 3 in a row


def test_lockout_with_n_equal_one() -> None:
    pump = PumpSession(
        KEYS, SessionLimits(idle_timeout_s=60, max_session_s=60, max_failed_openings=1, lockout_s=1)
    )
    pump.open_request(Role.PATIENT, bytes(16), b"\x01" * 16, 0)
    result = pump.authenticate(bytes(32), 5)
    assert isinstance(result, Refused)
    assert pump.state is SessionState.LOCKED_OUT
    assert pump.handle_timer(1_004) == []
    assert pump.handle_timer(1_005) == [Action.END_LOCKOUT]
    assert state_of(pump) is SessionState.IDLE


def test_idle_timeout_expires_the_session_and_traffic_extends_it() -> None:
    link = Link()
    link.open()
    opened_at = link.now
    assert link.pump.get_timer() == opened_at + IDLE_MS
    link.at(opened_at + IDLE_MS - 2)
    assert isinstance(link.send(link.request()), Accepted)  # at now + 1: just in time
    last = link.now
    assert link.pump.get_timer() == last + IDLE_MS
    assert link.pump.handle_timer(last + IDLE_MS - 1) == []
    link.pump.pop_events()
    assert link.pump.handle_timer(link.at(last + IDLE_MS)) == [Action.EXPIRE_SESSION]
    assert link.pump.state is SessionState.EXPIRED
    assert link.pump.get_timer() is None
    events = link.pump.pop_events()
    assert kinds(events) == [SessionEventKind.SESSION_EXPIRED]
    assert events[0].time_ms == last + IDLE_MS
    result = link.send(link.request())
    assert_refused(
        result, RefusalCode.SESSION_EXPIRED, link, SessionEventKind.UNAUTHENTICATED_REQUEST
    )
    with pytest.raises(SessionError, match="no open session"):
        link.pump.seal(header(0x03, link.pump.next_send_seq, 16), b"")


def test_an_input_after_the_deadline_sees_the_expired_session_without_handle_timer() -> None:
    link = Link()
    link.open()
    frame = link.request()
    link.at(link.now + IDLE_MS)
    result = link.send(frame)  # send() ticks once more: past the deadline
    assert isinstance(result, Refused)
    assert result.code is RefusalCode.SESSION_EXPIRED
    assert kinds(link.pump.pop_events())[-2:] == [
        SessionEventKind.SESSION_EXPIRED,
        SessionEventKind.UNAUTHENTICATED_REQUEST,
    ]


def test_keep_alive_holds_the_session_until_its_maximum_length() -> None:
    link = Link()
    link.open()
    opened_at = link.now
    while link.now + 50_000 < opened_at + MAX_MS:
        link.tick(50_000 - 1)
        result = link.send(link.request(b""), RequestKind.KEEP_ALIVE)
        assert isinstance(result, Accepted), link.now - opened_at
    assert link.pump.get_timer() == opened_at + MAX_MS
    link.pump.pop_events()
    assert link.pump.handle_timer(opened_at + MAX_MS) == [Action.EXPIRE_SESSION]
    events = link.pump.pop_events()
    assert kinds(events) == [SessionEventKind.SESSION_EXPIRED]
    assert "maximum session length" in events[0].detail


def test_an_unanswered_challenge_is_abandoned_and_a_late_answer_is_not_a_failure() -> None:
    link = Link()
    req = link.prog.start(link.nonce())
    challenge = link.pump.open_request(req.role, req.programmer_nonce, link.nonce(), link.tick())
    assert isinstance(challenge, Challenge)
    auth = link.prog.answer_challenge(challenge.pump_nonce, challenge.serial)
    assert link.pump.get_timer() == link.now + IDLE_MS
    link.pump.handle_timer(link.now + IDLE_MS)
    assert link.pump.state is SessionState.IDLE
    assert kinds(link.pump.pop_events()) == [SessionEventKind.HANDSHAKE_TIMED_OUT]
    result = link.pump.authenticate(auth.proof, link.now + IDLE_MS + 1)
    assert isinstance(result, Refused)
    assert result.code is RefusalCode.NOT_AUTHENTICATED
    assert link.pump.failed_openings == 0


# -- closing and sealing discipline --------------------------------------------------------


def test_close_seals_one_acknowledgement_then_forgets_the_keys() -> None:
    link = Link()
    link.open()
    link.pump.pop_events()
    result = link.send(link.request(b""), RequestKind.CLOSE)
    assert isinstance(result, Accepted)
    assert result.action is Action.END_SESSION
    assert link.pump.state is SessionState.IDLE
    assert kinds(link.pump.pop_events()) == [SessionEventKind.SESSION_CLOSED]
    assert can_seal(link.pump)
    ack = link.reply(result.seq, b"closed")
    assert link.prog.open(*ack) == b"closed"
    assert not can_seal(link.pump)
    with pytest.raises(SessionError, match="no open session"):
        link.reply(result.seq)
    link.prog.close()
    assert link.prog.state is ProgrammerState.CLOSED
    with pytest.raises(SessionError):
        link.request()


def test_the_farewell_seal_is_lost_if_anything_else_happens_first() -> None:
    link = Link()
    link.open()
    link.send(link.request(b""), RequestKind.CLOSE)
    link.pump.receive_unsealed(link.tick())
    assert not link.pump.can_seal


def test_seal_enforces_the_counter_and_the_direction() -> None:
    link = Link()
    link.open()
    with pytest.raises(ValueError, match="next SEQ is 3"):
        link.pump.seal(header(0x03, 4, 16), b"")
    with pytest.raises(ValueError, match="REPLY flag"):
        link.pump.seal(header(0x02, 3, 16), b"")
    with pytest.raises(ValueError, match="clear the REPLY flag"):
        link.prog.seal(header(0x03, 3, 16), b"")
    link.reply(0)
    assert link.pump.next_send_seq == 4


def test_sealing_stops_when_the_seq_space_is_exhausted() -> None:
    link = Link()
    link.open()
    link.pump._send_seq = U32_MAX + 1
    with pytest.raises(SessionError, match="exhausted"):
        link.pump.seal(header(0x03, 0, 16), b"")
    link.prog._send_seq = U32_MAX + 1
    with pytest.raises(SessionError, match="exhausted"):
        link.prog.seal(header(0x02, 0, 16), b"")


def test_time_never_goes_backwards() -> None:
    link = Link()
    link.open()
    with pytest.raises(ValueError, match="backwards"):
        link.pump.handle_timer(link.now - 1)
    with pytest.raises(ValueError, match="non-negative"):
        link.pump.receive_unsealed(-1)


def test_programmer_methods_check_their_state() -> None:
    prog = ProgrammerSession(KEYS.serial, Role.CLINICIAN, KEYS.clinician)
    with pytest.raises(SessionError, match="unexpected a CHALLENGE in state idle"):
        prog.answer_challenge(bytes(16), KEYS.serial)
    with pytest.raises(SessionError, match="unexpected SESSION_OPENED"):
        prog.confirm_opened(bytes(32), 1, 1)
    with pytest.raises(SessionError, match="no open session"):
        prog.open(header(0x03, 3, 16), bytes(16))
    prog.start(bytes(16))
    prog.refused()
    assert prog.state is ProgrammerState.IDLE
    with pytest.raises(ValueError, match="role_key"):
        ProgrammerSession(KEYS.serial, Role.CLINICIAN, bytes(16))


@pytest.mark.parametrize(
    "field_name", ["idle_timeout_s", "max_session_s", "max_failed_openings", "lockout_s"]
)
def test_session_limits_must_be_positive(field_name: str) -> None:
    values = {"idle_timeout_s": 1, "max_session_s": 1, "max_failed_openings": 1, "lockout_s": 1}
    values[field_name] = 0
    with pytest.raises(ValueError, match=field_name):
        SessionLimits(**values)

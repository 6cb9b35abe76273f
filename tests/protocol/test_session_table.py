"""The pump's session table: total, consistent, documented, and obeyed pair by pair.

Every (state, input) pair is driven through the public ``PumpSession`` API with real bytes:
a real handshake brings the pump into the state, then the input is produced the way a peer
or the clock would produce it (a proof, a sealed frame, a timer deadline). The outcome, the
next state and the logged event must be what ``SESSION_TABLE`` says.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from protocol import crypto
from protocol.device_state import Role
from protocol.keys import PumpKeys
from protocol.permissions import RequestKind
from protocol.refusal import RefusalCode
from protocol.session import (
    AUTH_INPUTS,
    CHALLENGE_PENDING,
    REFUSING_ACTIONS,
    SEALED_INPUTS,
    SESSION_TABLE,
    TIMER_INPUTS,
    Accepted,
    Action,
    Challenge,
    Opened,
    ProgrammerSession,
    PumpSession,
    Refused,
    SessionInput,
    SessionLimits,
    SessionState,
)

ROOT = Path(__file__).resolve().parents[2]
KEYS = PumpKeys("PE-000042", bytes(range(32)), bytes(range(32, 64)))
LIMITS = SessionLimits(idle_timeout_s=60, max_session_s=300, max_failed_openings=3, lockout_s=600)
PAIRS = [(state, event) for state in SessionState for event in SessionInput]


def header(flags: int, seq: int, length: int, opcode: int = 0x11, ref: int = 0) -> bytes:
    return struct.pack("<2sBBIIBH", b"\xa5\x5a", 1, flags, seq, ref, opcode, length)


# -- the table as a document ----------------------------------------------------------------


def render_cell(state: SessionState, event: SessionInput) -> str:
    t = SESSION_TABLE[(state, event)]
    if t.action is Action.NOTHING:
        return "-"
    text = f"refuse {t.refusal.name}" if t.refusal is not None else t.action.name
    if t.action not in (Action.REFUSE,) and t.refusal is not None:
        text = f"{t.action.name}, {text}"
    if t.next_state is not state:
        text += f" -> {t.next_state.name}"
    return text


def render_table() -> str:
    """The session table as the Markdown table docs/security.md carries."""
    lines = [
        "| input | " + " | ".join(s.name for s in SessionState) + " |",
        "|---" * (len(SessionState) + 1) + "|",
    ]
    for event in SessionInput:
        cells = [render_cell(state, event) for state in SessionState]
        lines.append(f"| {event.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_the_document_carries_this_table() -> None:
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    assert render_table() in text, "regenerate the table in docs/security.md:\n" + render_table()


# -- the table's own consistency ----------------------------------------------------------


def test_table_is_total_and_has_nothing_else() -> None:
    assert set(SESSION_TABLE) == set(PAIRS)
    assert len(SESSION_TABLE) == len(SessionState) * len(SessionInput)


@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{s.name}-{i.name}" for s, i in PAIRS])
def test_every_refusal_has_a_code_and_a_security_event(
    state: SessionState, event: SessionInput
) -> None:
    t = SESSION_TABLE[(state, event)]
    if t.action in REFUSING_ACTIONS:
        assert t.refusal is not None
        assert 0x10 <= t.refusal <= 0x1F, "session refusals use the session code group"
        assert t.event is not None
        assert t.event.is_security
    else:
        assert t.refusal is None
        assert t.event is None or not t.event.is_security


def test_before_a_session_is_open_only_opening_is_accepted() -> None:
    for state in SessionState:
        if state is SessionState.OPEN:
            continue
        for event in SessionInput:
            t = SESSION_TABLE[(state, event)]
            if event in SEALED_INPUTS or event is SessionInput.UNSEALED_REQUEST:
                assert t.refusal in (RefusalCode.NOT_AUTHENTICATED, RefusalCode.SESSION_EXPIRED)
                assert t.next_state is state
            assert t.action not in (Action.DELIVER, Action.ACK_KEEP_ALIVE, Action.END_SESSION)


def test_inputs_the_pump_cannot_tell_apart_are_treated_alike() -> None:
    # Without a pending challenge there is nothing to verify a proof against, and without a
    # session key a sealed frame cannot be opened: those inputs must share one row.
    for state in SessionState:
        if state not in CHALLENGE_PENDING:
            assert len({SESSION_TABLE[(state, e)] for e in AUTH_INPUTS}) == 1, state
        if state is not SessionState.OPEN:
            assert len({SESSION_TABLE[(state, e)] for e in SEALED_INPUTS}) == 1, state


def test_only_armed_timers_do_anything() -> None:
    armed = {
        SessionState.CHALLENGED: {SessionInput.IDLE_TIMEOUT},
        SessionState.OPEN: {SessionInput.IDLE_TIMEOUT, SessionInput.MAX_LENGTH},
        SessionState.LOCKED_OUT: {SessionInput.LOCKOUT_END},
        SessionState.LOCKED_CHALLENGED: {SessionInput.IDLE_TIMEOUT, SessionInput.LOCKOUT_END},
    }
    for state in SessionState:
        for event in TIMER_INPUTS:
            t = SESSION_TABLE[(state, event)]
            assert (t.action is not Action.NOTHING) == (event in armed.get(state, set()))
            assert t.refusal is None


def test_every_state_is_reachable_and_can_be_left() -> None:
    reached = {SessionState.IDLE}
    frontier = [SessionState.IDLE]
    while frontier:
        state = frontier.pop()
        for event in SessionInput:
            nxt = SESSION_TABLE[(state, event)].next_state
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    assert reached == set(SessionState)
    for state in SessionState:
        assert any(SESSION_TABLE[(state, e)].next_state is not state for e in SessionInput)


# -- driving every pair through the real API ------------------------------------------------


@dataclass
class Harness:
    """A pump and a programmer that talk through bytes, and a manual clock."""

    role: Role = Role.CLINICIAN
    pump: PumpSession = field(default_factory=lambda: PumpSession(KEYS, LIMITS))
    prog: ProgrammerSession | None = None
    now: int = 1_000
    counter: int = 0

    def tick(self, ms: int = 1) -> int:
        self.now += ms
        return self.now

    def nonce(self) -> bytes:
        self.counter += 1
        return self.counter.to_bytes(2, "big") * 8

    def challenge(self, role: Role | None = None) -> ProgrammerSession:
        role = role or self.role
        prog = ProgrammerSession(KEYS.serial, role, KEYS.key_for(role))
        req = prog.start(self.nonce())
        result = self.pump.open_request(req.role, req.programmer_nonce, self.nonce(), self.tick())
        assert isinstance(result, Challenge)
        prog.answer_challenge(result.pump_nonce, result.serial)
        self.prog = prog
        return prog

    def fail_opening(self) -> None:
        self.challenge()
        # A distinct wrong proof each time: a copy of an earlier one is HANDSHAKE_STALE.
        result = self.pump.authenticate(self.nonce() * 2, self.tick())
        assert isinstance(result, Refused)

    def open(self) -> ProgrammerSession:
        prog = self.challenge()
        assert prog._pump_nonce  # the AUTHENTICATE below answers this challenge
        auth = crypto.programmer_proof(KEYS.key_for(self.role), prog._transcript())
        result = self.pump.authenticate(auth, self.tick())
        assert isinstance(result, Opened)
        prog.confirm_opened(result.proof, result.idle_timeout_s, result.max_session_s)
        return prog

    def sealed(self, kind: RequestKind, plaintext: bytes = b"req") -> tuple[bytes, bytes]:
        """A request frame sealed by the programmer if it has keys, else plausible bytes."""
        if self.prog is not None and self.prog.state.name == "OPEN":
            h = header(0x02, self.prog.next_send_seq, len(plaintext) + 16)
            return h, self.prog.seal(h, plaintext)
        h = header(0x02, 7, len(plaintext) + 16)
        return h, bytes(len(plaintext) + 16)

    def send(self, kind: RequestKind, frame: tuple[bytes, bytes] | None = None) -> object:
        h, body = frame or self.sealed(kind)
        return self.pump.receive_sealed(h, body, kind, self.tick())


def reach(state: SessionState, event: SessionInput) -> Harness:
    """A harness whose pump is in ``state``, set up so that ``event`` can be produced."""
    h = Harness(role=Role.PATIENT if event is SessionInput.REQUEST_FORBIDDEN else Role.CLINICIAN)
    if state is SessionState.CHALLENGED:
        if event is SessionInput.AUTH_INVALID_LIMIT:
            for _ in range(LIMITS.max_failed_openings - 1):
                h.fail_opening()
        h.challenge()
    elif state is SessionState.OPEN:
        h.open()
    elif state is SessionState.EXPIRED:
        h.open()  # the programmer keeps its keys: it does not know the pump expired it
        deadline = h.pump.get_timer()
        assert deadline is not None
        h.now = deadline
        assert h.pump.handle_timer(h.now) == [Action.EXPIRE_SESSION]
    elif state is SessionState.LOCKED_OUT:
        for _ in range(LIMITS.max_failed_openings):
            h.fail_opening()
    elif state is SessionState.LOCKED_CHALLENGED:
        for _ in range(LIMITS.max_failed_openings):
            h.fail_opening()
        if event is SessionInput.LOCKOUT_END:
            # Challenge late in the lockout, so the lockout ends before the challenge idles.
            until = h.pump.lockout_until_ms
            assert until is not None
            h.now = until - LIMITS.idle_timeout_s * 1000 // 2
        h.challenge()  # a lockout never refuses an opening a proof could complete
    assert h.pump.state is state
    return h


def produce(h: Harness, event: SessionInput) -> Callable[[], object]:
    """Prepare ``event`` in harness ``h``; the returned call makes it happen."""
    pump = h.pump
    if event is SessionInput.OPEN_REQUEST:
        return lambda: pump.open_request(h.role, h.nonce(), h.nonce(), h.tick())
    if event is SessionInput.AUTH_VALID:
        prog = h.prog or ProgrammerSession(KEYS.serial, h.role, KEYS.key_for(h.role))
        if pump.state is SessionState.OPEN:
            # The opening proof again would be a copy (HANDSHAKE_REPEATED): another
            # programmer's genuine proof over a handshake of its own.
            prog = ProgrammerSession(KEYS.serial, h.role, KEYS.key_for(h.role))
        if not prog._pump_nonce:  # no handshake at all yet: a proof for made-up nonces
            prog.start(h.nonce())
            prog.answer_challenge(h.nonce(), KEYS.serial)
        proof = crypto.programmer_proof(KEYS.key_for(h.role), prog._transcript())
        return lambda: pump.authenticate(proof, h.tick())
    if event in (SessionInput.AUTH_INVALID, SessionInput.AUTH_INVALID_LIMIT):
        wrong = KEYS.patient if h.role is Role.CLINICIAN else KEYS.clinician
        if h.prog is not None and h.prog._pump_nonce:
            proof = crypto.programmer_proof(wrong, h.prog._transcript())
        else:
            proof = bytes(32)
        return lambda: pump.authenticate(proof, h.tick())
    if event is SessionInput.HANDSHAKE_REPEATED:
        current = h.prog
        if pump.state is SessionState.OPEN:
            assert current is not None
            proof = crypto.programmer_proof(KEYS.key_for(h.role), current._transcript())
            return lambda: pump.authenticate(proof, h.tick())
        nonce = current._programmer_nonce if current is not None else None
        copy = nonce or h.nonce()
        return lambda: pump.open_request(h.role, copy, h.nonce(), h.tick())
    if event is SessionInput.HANDSHAKE_STALE:
        if pump.state in CHALLENGE_PENDING:
            assert h.prog is not None
            replaced = h.prog._programmer_nonce
            h.challenge()  # a newer handshake replaces it
            return lambda: pump.open_request(h.role, replaced, h.nonce(), h.tick())
        # Elsewhere nothing is pending to be stale against: an AUTHENTICATE of no handshake.
        stray = h.nonce() * 2
        return lambda: pump.authenticate(stray, h.tick())
    if event is SessionInput.SEALED_FORGED:
        hdr, body = h.sealed(RequestKind.READ_STATUS)
        forged = body[:-1] + bytes([body[-1] ^ 0x01])
        return lambda: h.send(RequestKind.READ_STATUS, (hdr, forged))
    if event is SessionInput.SEALED_REPLAYED:
        frame = h.sealed(RequestKind.READ_STATUS)
        first = h.send(RequestKind.READ_STATUS, frame)
        if pump.state is SessionState.OPEN:
            assert isinstance(first, Accepted)
        return lambda: h.send(RequestKind.READ_STATUS, frame)
    if event is SessionInput.REQUEST_PERMITTED:
        return lambda: h.send(RequestKind.READ_STATUS)
    if event is SessionInput.REQUEST_FORBIDDEN:
        return lambda: h.send(RequestKind.STAGE)
    if event is SessionInput.KEEP_ALIVE:
        return lambda: h.send(RequestKind.KEEP_ALIVE)
    if event is SessionInput.CLOSE:
        return lambda: h.send(RequestKind.CLOSE)
    if event is SessionInput.UNSEALED_REQUEST:
        return lambda: pump.receive_unsealed(h.tick())
    if event is SessionInput.IDLE_TIMEOUT:
        if pump.state in CHALLENGE_PENDING or pump.state is SessionState.OPEN:
            deadline = h.now + LIMITS.idle_timeout_s * 1000
            return lambda: pump.handle_timer(deadline)
        return lambda: pump.handle_timer(h.tick())
    if event is SessionInput.MAX_LENGTH:
        if pump.state is SessionState.OPEN:
            # Stay busy (keep-alive every 50 s, inside the 60 s idle timeout) until 300 s.
            opened_at = h.now
            while h.now + 50_000 < opened_at + LIMITS.max_session_s * 1000:
                h.tick(50_000)
                assert isinstance(h.send(RequestKind.KEEP_ALIVE), Accepted)
            deadline = opened_at + LIMITS.max_session_s * 1000
            assert pump.get_timer() == deadline
            return lambda: pump.handle_timer(deadline)
        return lambda: pump.handle_timer(h.tick())
    if event is SessionInput.LOCKOUT_END:
        lockout_until = pump.lockout_until_ms
        if lockout_until is not None:
            return lambda: pump.handle_timer(lockout_until)
        return lambda: pump.handle_timer(h.tick())
    raise AssertionError(f"no producer for {event}")


EXPECTED_RESULT: dict[Action, type | tuple[type, ...]] = {
    Action.SEND_CHALLENGE: Challenge,
    Action.CONFIRM_OPEN: Opened,
    Action.REPEAT_REPLY: (Challenge, Opened),
    Action.DELIVER: Accepted,
    Action.ACK_KEEP_ALIVE: Accepted,
    Action.END_SESSION: Accepted,
}


@pytest.mark.hazard("C3", "C4")
@pytest.mark.parametrize(("state", "event"), PAIRS, ids=[f"{s.name}-{i.name}" for s, i in PAIRS])
def test_every_pair_behaves_as_the_table_says(state: SessionState, event: SessionInput) -> None:
    expected = SESSION_TABLE[(state, event)]
    h = reach(state, event)
    make_it_happen = produce(h, event)
    assert h.pump.state is state, "producing the input must not change the state beforehand"
    h.pump.pop_events()
    last_seq = h.pump.last_received_seq

    result = make_it_happen()

    assert h.pump.state is expected.next_state
    if event in TIMER_INPUTS:
        assert result == ([] if expected.action is Action.NOTHING else [expected.action])
    elif expected.refusal is not None:
        assert isinstance(result, Refused)
        assert result.code is expected.refusal
    else:
        assert isinstance(result, EXPECTED_RESULT[expected.action])
        if isinstance(result, Accepted):
            assert result.action is expected.action
    events = h.pump.pop_events()
    if expected.event is None:
        assert events == []
    else:
        assert [(e.kind, e.code) for e in events] == [(expected.event, expected.refusal)]
    if expected.action in (Action.DELIVER, Action.ACK_KEEP_ALIVE, Action.DENY_FOR_ROLE):
        # An authentic, fresh frame uses up its SEQ, even when its request is refused.
        assert h.pump.last_received_seq > last_seq
    elif expected.refusal is not None:
        # A refused frame never moves the inbound counter.
        assert h.pump.last_received_seq == last_seq

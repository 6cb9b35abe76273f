"""The conformance monitor: judges the programmer on one link from the bytes both ways.

Sans-IO: ``feed(direction, data, link_ms)`` takes the bytes as they passed, in either
direction, with the link time (ms) they passed at; ``finish(link_ms)`` ends the run;
``violations`` holds what was found. It reads no clock, does no I/O and never raises for
anything a link carries.

**Where it listens.** The monitor judges the programmer by what the programmer *sent* and
*received*, so it must listen on the programmer's side of any fault: the serve loop's link
(a pty or a socket carries every byte), or the programmer's side of ``pumpemu proxy``
(docs/conformance.md, "Where the monitor listens").

**Keys.** It opens sealed frames the way the pump does: it follows each handshake in clear
(OPEN_SESSION, CHALLENGE, AUTHENTICATE, SESSION_OPENED, the REFs matched as the reference
programmer matches them), derives the session keys from the pump's role key (HKDF,
docs/security.md section 3), verifies the pump's proof, and opens requests with the key to
the pump and replies with the key to the programmer. It needs the pump's key file and nothing
from the device: the same monitor works in serve, in the proxy and on a capture. Without
keys it can judge only what the headers show (SEQs, sealing flags).

Replies are taken as the reference programmer takes them: a sealed reply must open and have
a SEQ above the last one accepted in the session (a late duplicate is ignored), and it
answers the request of the current session whose SEQ its REF names.
"""

from __future__ import annotations

from dataclasses import dataclass

from hil.conformance.rules import (
    RULES,
    SESSION_GONE_REFUSALS,
    FrameRef,
    ReplyEvent,
    RequestEvent,
    Rule,
    RuleInfo,
    SessionLeftOpen,
    SessionView,
    Violation,
    make_rules,
)
from protocol import codec, crypto, wire
from protocol.errors import ProtocolError, SessionError
from protocol.framer import FrameBytes, Framer
from protocol.keys import PumpKeys
from protocol.messages import (
    Authenticate,
    Challenge,
    CloseSession,
    Message,
    Opcode,
    OpenSession,
    SessionOpened,
)

__all__ = ["GIVE_UP_MS", "TO_PROGRAMMER", "TO_PUMP", "ConformanceMonitor", "MonitorStats"]

TO_PUMP = "to_pump"
"""Bytes the programmer sent."""
TO_PROGRAMMER = "to_programmer"
"""Bytes the programmer received."""

GIVE_UP_MS = 200
"""A partial frame with no new byte for this long is given up (the pump's rule, section 3)."""

_OPCODES = {op.value: op for op in Opcode}


def _opcode_name(value: int) -> str:
    opcode = _OPCODES.get(value)
    return opcode.name if opcode is not None else f"0x{value:02X}"


@dataclass(slots=True)
class MonitorStats:
    requests: int = 0
    replies: int = 0
    sessions: int = 0
    unopened: int = 0
    """Sealed frames the monitor could not open (no keys, or no handshake seen)."""


@dataclass(slots=True)
class _Opening:
    open_seq: int | None = None
    opening: OpenSession | None = None
    transcript: crypto.Transcript | None = None
    auth_seq: int | None = None


@dataclass(slots=True)
class _Keys:
    keys: crypto.SessionKeys | None
    last_reply_seq: int = 0


class ConformanceMonitor:
    """Watches one programmer-pump link; see the module docstring."""

    def __init__(self, keys: PumpKeys | None = None) -> None:
        self._keys = keys
        self._framers = {TO_PUMP: Framer(), TO_PROGRAMMER: Framer()}
        self._last_bytes_ms = {TO_PUMP: 0, TO_PROGRAMMER: 0}
        self._violations: list[Violation] = []
        self._rules: list[Rule] = make_rules(self._report)
        self._info = {info.id: info for info in RULES}
        self._opening = _Opening()
        self._session: SessionView | None = None
        self._session_keys: _Keys | None = None
        self._proofs: set[bytes] = set()
        self._requests: dict[tuple[int, int], RequestEvent] = {}
        self._now = 0
        self._finished = False
        self.stats = MonitorStats()

    # -- results --

    @property
    def violations(self) -> tuple[Violation, ...]:
        return tuple(self._violations)

    @property
    def violation_count(self) -> int:
        """How many violations so far (cheap: no copy)."""
        return len(self._violations)

    @property
    def rules(self) -> tuple[RuleInfo, ...]:
        return RULES

    @property
    def finished(self) -> bool:
        return self._finished

    def broken(self) -> set[str]:
        """The ids of the rules broken so far."""
        return {v.rule for v in self._violations}

    # -- input --

    def feed(self, direction: str, data: bytes, link_ms: int) -> None:
        """Bytes that passed in ``direction`` (TO_PUMP or TO_PROGRAMMER) at ``link_ms``."""
        if direction not in self._framers:
            raise ValueError(f"direction must be {TO_PUMP!r} or {TO_PROGRAMMER!r}")
        self._now = max(self._now, link_ms)
        self._give_up_idle(self._now)
        self._last_bytes_ms[direction] = self._now
        for event in self._framers[direction].feed(data):
            if isinstance(event, FrameBytes):
                self._on_frame(direction, event.data)

    def _give_up_idle(self, now: int) -> None:
        """End a partial frame no byte has come for in ``GIVE_UP_MS`` (docs/protocol.md
        section 3): a peer's framer gives it up by then, and finds any whole frame hidden
        inside a damaged one, so the monitor must see that frame no later than it does."""
        for direction, framer in self._framers.items():
            if framer.buffered and now - self._last_bytes_ms[direction] >= GIVE_UP_MS:
                for event in framer.finish():
                    if isinstance(event, FrameBytes):
                        self._on_frame(direction, event.data)

    def finish(self, link_ms: int | None = None) -> tuple[Violation, ...]:
        """End the run: judge what only the end can show (a session left open). Idempotent."""
        if link_ms is not None:
            self._now = max(self._now, link_ms)
        if not self._finished:
            self._finished = True
            for direction, framer in self._framers.items():
                for event in framer.finish():
                    if isinstance(event, FrameBytes):
                        self._on_frame(direction, event.data)
            for rule in self._rules:
                rule.on_finish(self._session, self._now)
        return self.violations

    def snapshot(self) -> tuple[Violation, ...]:
        """The violations so far, as ``finish`` would add them now, without ending the run."""
        extra: list[Violation] = []

        def collect(rule: str, detail: str, frames: object, link_ms: int) -> None:
            info = self._info[rule]
            extra.append(
                Violation(rule, info.severity, info.section, detail, tuple(frames), link_ms)  # type: ignore[arg-type]
            )

        if not self._finished:
            SessionLeftOpen(collect).on_finish(self._session, self._now)
        return (*self._violations, *extra)

    # -- internals --

    def _report(self, rule: str, detail: str, frames: object, link_ms: int) -> None:
        info = self._info[rule]
        self._violations.append(
            Violation(rule, info.severity, info.section, detail, tuple(frames), link_ms)  # type: ignore[arg-type]
        )

    def _ref(self, direction: str, seq: int, opcode: int) -> FrameRef:
        session = self._session.index if self._session is not None else 0
        return FrameRef(direction, seq, _opcode_name(opcode), self._now, session)

    def _on_frame(self, direction: str, data: bytes) -> None:
        header = data[: wire.HEADER_LEN]
        body = data[wire.HEADER_LEN : -wire.CRC_LEN]
        flags, seq, ref, opcode = header[3], crypto.header_seq(header), 0, header[12]
        ref = int.from_bytes(header[8:12], "little")
        sealed = bool(flags & wire.FLAG_SEALED)
        is_reply = bool(flags & wire.FLAG_REPLY)
        if direction == TO_PUMP and not is_reply:
            self._on_request(data, header, body, seq=seq, opcode=opcode, sealed=sealed)
        elif direction == TO_PROGRAMMER and is_reply:
            self._on_reply(header, body, seq=seq, ref=ref, opcode=opcode, sealed=sealed)

    def _decode(self, opcode: int, payload: bytes) -> Message | None:
        try:
            return codec.decode_payload(opcode, payload)
        except ProtocolError:
            return None

    def _on_request(
        self, raw: bytes, header: bytes, body: bytes, *, seq: int, opcode: int, sealed: bool
    ) -> None:
        self.stats.requests += 1
        session = self._session
        message: Message | None = None
        opened = False
        if sealed:
            keys = self._session_keys.keys if self._session_keys is not None else None
            if keys is not None:
                try:
                    message = self._decode(opcode, crypto.open(keys.to_pump, header, body))
                    opened = True
                except SessionError:
                    pass
            if not opened:
                self.stats.unopened += 1
        else:
            message = self._decode(opcode, body)
        event = RequestEvent(self._ref(TO_PUMP, seq, opcode), message, sealed, session, opened, raw)
        if isinstance(message, OpenSession) and not sealed:
            if self._opening.opening != message:  # a resent copy keeps the attempt
                self._opening = _Opening(open_seq=seq, opening=message)
            if session is not None:
                session.abandoned = True
        elif isinstance(message, Authenticate) and not sealed:
            self._opening.auth_seq = seq
        for rule in self._rules:
            rule.on_request(event)
        if session is not None and sealed and opened:
            session.last_sealed_seq = max(session.last_sealed_seq, seq)
            session.sealed_seqs.add(seq)
            self._requests[(session.index, seq)] = event
            if isinstance(message, CloseSession):
                session.closed = True
        elif session is not None and not sealed and message is not None:
            self._requests[(session.index, -seq)] = event

    def _on_reply(
        self, header: bytes, body: bytes, *, seq: int, ref: int, opcode: int, sealed: bool
    ) -> None:
        session = self._session
        message: Message | None
        if sealed:
            state = self._session_keys
            if state is None or state.keys is None or seq <= state.last_reply_seq:
                self.stats.unopened += state is None or state.keys is None
                return
            try:
                plaintext = crypto.open(state.keys.to_programmer, header, body)
            except SessionError:
                return  # the programmer drops it too
            state.last_reply_seq = seq
            message = self._decode(opcode, plaintext)
        else:
            message = self._decode(opcode, body)
        if message is None:
            return
        if not sealed and self._handshake_reply(message, ref):
            # Rules see handshake replies too: SEQ-MISUSE notes which handshake SEQs were
            # answered; the others look at no handshake message.
            handshake = ReplyEvent(
                self._ref(TO_PROGRAMMER, seq, opcode), message, False, session, None, ref
            )
            for rule in self._rules:
                rule.on_reply(handshake)
            return
        self.stats.replies += 1
        request = None
        if session is not None:
            request = self._requests.get((session.index, ref))
            if request is None and not sealed:
                request = self._requests.get((session.index, -ref))
        event = ReplyEvent(
            self._ref(TO_PROGRAMMER, seq, opcode), message, sealed, session, request, ref
        )
        if (
            session is not None
            and not sealed
            and request is not None
            and request.sealed
            and getattr(message, "code", None) in SESSION_GONE_REFUSALS
        ):
            session.gone = True
        for rule in self._rules:
            rule.on_reply(event)

    def _handshake_reply(self, message: Message, ref: int) -> bool:
        """Follow the handshake; True if ``message`` was a handshake reply."""
        opening = self._opening
        if isinstance(message, Challenge):
            if ref == opening.open_seq and opening.opening is not None:
                try:
                    opening.transcript = crypto.Transcript(
                        message.serial,
                        opening.opening.role,
                        opening.opening.programmer_nonce,
                        message.pump_nonce,
                    )
                except ValueError:
                    opening.transcript = None
            return True
        if isinstance(message, SessionOpened):
            transcript = opening.transcript
            if ref != opening.auth_seq or transcript is None or message.proof in self._proofs:
                return True  # not the latest attempt's, or a copy of the open session's
            self._proofs.add(message.proof)
            keys: crypto.SessionKeys | None = None
            proof_ok: bool | None = None
            if self._keys is not None and transcript.serial == self._keys.serial:
                role_key = self._keys.key_for(transcript.role)
                keys = crypto.derive_session_keys(role_key, transcript)
                proof_ok = crypto.verify_pump_proof(role_key, transcript, message.proof)
            self.stats.sessions += 1
            index = self._session.index + 1 if self._session is not None else 1
            self._session = SessionView(
                index, transcript.role, message.idle_timeout_s, self._now, proof_ok
            )
            self._requests.clear()  # replies only ever answer the current session's frames
            self._session_keys = _Keys(keys)
            self._opening = _Opening()
            return True
        return False

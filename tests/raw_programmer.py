"""A programmer built frame by frame from protocol.codec and protocol.session, for tests that
must see every reply the pump sends (a NAK's code and limit, a CHALLENGE) rather than what
the reference programmer makes of it after its retries and reopenings.

Sans-IO: it makes the bytes to send and reads the bytes received; the test moves them.
"""

from __future__ import annotations

import secrets

from protocol import codec, wire
from protocol.codec import Frame
from protocol.device_state import Role
from protocol.errors import SessionError
from protocol.framer import FrameBytes, Framer
from protocol.keys import PumpKeys
from protocol.messages import Authenticate, Challenge, Message, OpenSession, SessionOpened
from protocol.session import ProgrammerSession


class RawProgrammer:
    """One programmer's end of a session with one pump, frame by frame."""

    def __init__(self, keys: PumpKeys, role: Role = Role.CLINICIAN) -> None:
        self.session = ProgrammerSession(keys.serial, role, keys.key_for(role))
        self._framer = Framer()
        self.dropped: list[Frame] = []
        """Sealed replies this programmer could not open (another session's, late)."""

    def open_session(self, nonce: bytes | None = None) -> bytes:
        """The OPEN_SESSION frame that starts an opening (again), SEQ 1."""
        request = self.session.start(nonce if nonce is not None else secrets.token_bytes(16))
        message = OpenSession(role=request.role, programmer_nonce=request.programmer_nonce)
        return codec.encode(message, seq=request.seq)

    def authenticate(self, challenge: Challenge) -> bytes:
        """The AUTHENTICATE frame that answers ``challenge``, SEQ 2."""
        answer = self.session.answer_challenge(challenge.pump_nonce, challenge.serial)
        return codec.encode(Authenticate(proof=answer.proof), seq=answer.seq)

    def confirm(self, opened: SessionOpened) -> None:
        """SESSION_OPENED arrived: check the pump's proof and derive the session keys."""
        self.session.confirm_opened(opened.proof, opened.idle_timeout_s, opened.max_session_s)

    def sealed(self, message: Message) -> tuple[int, bytes]:
        """``message`` sealed in the session's next frame: (its SEQ, its bytes)."""
        opcode, plaintext = codec.encode_payload(message)
        seq = self.session.next_send_seq
        header = codec.header_bytes(wire.FLAG_SEALED, seq, 0, opcode, len(plaintext) + wire.TAG_LEN)
        body = self.session.seal(header, plaintext)
        return seq, codec.build_frame(Frame(wire.FLAG_SEALED, seq, 0, opcode, body))

    def receive(self, data: bytes) -> list[tuple[Frame, Message]]:
        """Every complete reply in ``data`` (and bytes before it), sealed ones opened; a
        sealed reply that does not open in this session goes to ``dropped``."""
        out = []
        for event in self._framer.feed(data):
            if not isinstance(event, FrameBytes):
                continue
            frame = codec.parse_frame(event.data)
            body = frame.body
            if frame.is_sealed:
                try:
                    body = self.session.open(frame.header, frame.body)
                except SessionError:
                    self.dropped.append(frame)
                    continue
            out.append((frame, codec.decode_payload(frame.opcode, body)))
        return out

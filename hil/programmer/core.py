"""The reference programmer's protocol core, sans-IO: it opens sessions, seals, retries and
resolves uncertain commands. Bytes and ``now`` go in; bytes, timers and results come out.

It is written so that a programmer built on it cannot double-dose a patient or leave the
user guessing (C1, docs/protocol.md "Exactly-once commands"):

- One request is in flight at a time, and each request is answered by the reply whose REF
  names one of the SEQs it was sent with. A late duplicate reply to an earlier request can
  never answer a later one.
- A command (a request that changes therapy) carries a command id. If no reply comes, it
  is sent again with the same id in a new sealed frame. The pump applies an id at most once
  and answers a repeat with the original result.
- If the retries run out, the session is reopened and the command is *resolved* rather than
  resent. STATUS reports the last applied command id, so the result is "applied" when it
  names this command and "not applied" when it does not. A command the user was told had
  failed is never applied later behind the user's back.
- Only when the pump cannot be reached at all does a command end UNCERTAIN, and it says so.

The blocking client over a real link is ``hil.programmer.client``; the two-peer test
helper drives this core and the emulated device in one thread with a manual clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from protocol import codec, wire
from protocol.codec import DecodeError, Frame
from protocol.device_state import Role
from protocol.errors import ProtocolError, SessionError
from protocol.framer import FrameBytes, Framer
from protocol.messages import (
    Ack,
    Authenticate,
    Challenge,
    CloseSession,
    Message,
    Nak,
    OpenSession,
    ReadStatus,
    SessionOpened,
    Status,
)
from protocol.refusal import RefusalCode
from protocol.request_kinds import COMMAND_OPCODES
from protocol.session import ProgrammerSession
from protocol.units import U32_MAX

FRAME_LEVEL_REFUSALS = frozenset(
    {RefusalCode.FRAME_CORRUPT, RefusalCode.REPLAY_DETECTED, RefusalCode.FRAME_NOT_AUTHENTIC}
)
"""NAK codes that judge a frame, not a request: they never tell whether a command applied."""

HANDSHAKE_RESTARTS = frozenset(
    {RefusalCode.NOT_AUTHENTICATED, RefusalCode.HANDSHAKE_STALE, RefusalCode.SESSION_EXPIRED}
)
"""NAKs to a handshake frame that mean the pump no longer holds this handshake (it timed
out, or link damage put a late copy ahead of it): open again with fresh nonces. Nothing
failed a proof, so these never end a request (docs/security.md section 5)."""

SESSION_GONE = frozenset({RefusalCode.SESSION_EXPIRED, RefusalCode.NOT_AUTHENTICATED})
"""Unsealed NAKs to a sealed request that the pump refused before reading it, because it
has no session for us: that frame applied nothing, so the request is sent again, with the
same command id, in a new session (C1 keeps a repeat from applying twice)."""

HANDSHAKE_SEQ_BASE = 0x8000_0000
"""Handshake frames are numbered from here, apart from sealed SEQs (which start at 3), so a
late answer to a handshake frame can never be taken for the answer to a sealed request."""

BUSY_RETRY_MAX_MS = 10_000
"""While the pump answers SESSION_BUSY, ask again at least this often: the session may be
closed before the expiry the pump announced."""

Entropy = Callable[[int], bytes]
"""Returns n fresh random bytes. hil passes ``secrets.token_bytes``; tests pass a seeded source."""


class Outcome(Enum):
    """How a request ended, as the programmer can honestly report it."""

    ANSWERED = "answered"
    """A read (or keep-alive) got its reply."""
    APPLIED = "applied"
    """The pump acknowledged the command: it was applied exactly once."""
    REFUSED = "refused"
    """The pump refused the request with a NAK: nothing was applied."""
    NOT_APPLIED = "not applied"
    """No reply came, and the pump's status shows the command was not applied."""
    UNCERTAIN = "uncertain"
    """The pump could not be reached to find out. Read its status before trying again."""


@dataclass(frozen=True, slots=True)
class Result:
    """The end of one request."""

    request: Message
    outcome: Outcome
    reply: Message | None
    """The pump's reply: a read's reply, an ACK, a NAK, or None."""
    attempts: int
    """How many frames carried the request (1 when the first got through)."""
    resolved_by_status: bool = False
    """True when the outcome was learnt from STATUS after the replies were lost."""
    detail: str = ""

    @property
    def refusal(self) -> RefusalCode | None:
        return self.reply.code if isinstance(self.reply, Nak) else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How patiently the programmer waits. Times are in ms of the injected clock."""

    reply_timeout_ms: int = 1_000
    """How long to wait for a reply before sending the request again."""
    attempts: int = 4
    """Frames per request within one session before the session is given up on."""
    reopen_attempts: int = 3
    """Sessions reopened to resolve one request before it ends UNCERTAIN. A handshake
    frame is sent at most ``attempts x reopen_attempts`` times (a copy is answered alike,
    docs/security.md section 5) before the pump is called unreachable."""
    busy_wait_ms: int = 150_000
    """How long to keep retrying an opening the pump answers SESSION_BUSY. A pump serves one
    session at a time, and a session this programmer gave up on (its replies were lost)
    stays open on the pump until the pump's idle timeout. Each SESSION_BUSY names the
    seconds until the open session expires (docs/protocol.md section 12); the wait is
    extended to that expiry, measured from the latest refusal, up to twice this bound."""

    def __post_init__(self) -> None:
        if self.reply_timeout_ms < 1 or self.attempts < 1 or self.reopen_attempts < 1:
            raise ValueError("timeouts and attempt counts must be at least 1")
        if self.busy_wait_ms < 0:
            raise ValueError("busy_wait_ms must be >= 0")


class _Phase(Enum):
    CLOSED = "closed"
    OPENING = "opening"  # OPEN_SESSION sent, waiting for CHALLENGE
    AUTHENTICATING = "authenticating"  # AUTHENTICATE sent, waiting for SESSION_OPENED
    OPEN = "open"


@dataclass(slots=True)
class _Pending:
    """A request accepted from the user and not yet resolved."""

    request: Message
    attempts: int = 0
    seqs: set[int] = field(default_factory=set)
    last_seq: int = 0
    """The SEQ of the frame sent last: only its NAK is the pump's last word on the request."""
    resolving: bool = False
    """True once the original frames were given up on and a STATUS read decides."""


class ProgrammerCore:
    """One programmer talking to one pump in one role.

    Drive it like the emulated device: ``submit`` requests, send ``data_to_send()``, feed
    what arrives to ``receive_data``, and call ``handle_timer`` at ``get_timer()``. Finished
    requests come out of ``results()`` in submission order.
    """

    def __init__(
        self,
        serial: str,
        role: Role,
        role_key: bytes,
        entropy: Entropy,
        policy: RetryPolicy | None = None,
    ) -> None:
        self._session = ProgrammerSession(serial, role, role_key)
        self._entropy = entropy
        self._policy = policy or RetryPolicy()
        self._framer = Framer()
        self._outbox = bytearray()
        self._queue: deque[_Pending] = deque()
        self._results: deque[Result] = deque()
        self._phase = _Phase.CLOSED
        self._handshake_seq = 0
        self._handshake_frames = 0
        self._handshake_attempts = 0
        self._reopens = 0
        self._deadline: int | None = None
        self._handshake_frame = b""
        """The handshake frame in flight: resent as it is (same nonce, same SEQ) when its
        answer is late, so the pump answers the copy with a copy (docs/security.md 5)."""
        self._handshake_sends = 0
        """Times ``_handshake_frame`` was sent."""
        self._busy_since: int | None = None
        self._busy_until = 0
        self._waiting_busy = False
        """True while waiting to retry an opening the pump answered SESSION_BUSY."""
        self._pump_idle_timeout_ms = 0
        self._last_heard_ms = 0
        """When the pump last accepted a frame of ours, as far as we know (its reply came)."""
        self._now = 0
        self.security_events: list[str] = []
        """Replies that failed to open or were stale: dropped, and noted here."""

    # -- the user's side --

    @property
    def is_open(self) -> bool:
        return self._phase is _Phase.OPEN

    @property
    def idle(self) -> bool:
        """Nothing queued or in flight."""
        return not self._queue

    def submit(self, request: Message, now_ms: int) -> None:
        """Queue a request. It goes out once the session is open and earlier ones are done."""
        if request.OPCODE.is_reply or isinstance(request, OpenSession | Authenticate):
            raise ValueError(f"{type(request).__name__} is not a request a user submits")
        self._tick(now_ms)
        self._queue.append(_Pending(request))
        self._pump()

    def close(self, now_ms: int) -> None:
        """Close the session politely once the queue is empty."""
        self._tick(now_ms)
        if self._phase is _Phase.OPEN:
            self._queue.append(_Pending(CloseSession()))
            self._pump()
        else:
            self._phase = _Phase.CLOSED

    def results(self) -> list[Result]:
        """Requests finished since the last call, in the order they were submitted."""
        done = list(self._results)
        self._results.clear()
        return done

    # -- the link's side --

    def data_to_send(self) -> bytes:
        data = bytes(self._outbox)
        self._outbox.clear()
        return data

    def receive_data(self, data: bytes, now_ms: int) -> None:
        self._tick(now_ms)
        for event in self._framer.feed(data):
            if isinstance(event, FrameBytes):
                self._on_frame(event.data)
        self._pump()

    def get_timer(self) -> int | None:
        return self._deadline

    def handle_timer(self, now_ms: int) -> None:
        self._tick(now_ms)
        if self._deadline is None or now_ms < self._deadline:
            return
        self._deadline = None
        # The link has been quiet for a whole reply timeout: a truncated frame at the end
        # of the buffer will never complete, so let the framer give it up (C2).
        for event in self._framer.finish():
            if isinstance(event, FrameBytes):
                self._on_frame(event.data)
        if self._phase in (_Phase.OPENING, _Phase.AUTHENTICATING):
            self._handshake_timed_out()
        elif self._phase is _Phase.OPEN and self._queue:
            self._request_timed_out()
        elif self._phase is _Phase.CLOSED and self._queue:
            self._begin_handshake()  # the wait after SESSION_BUSY is over
        elif self._phase is _Phase.CLOSED and self._waiting_busy:
            self._waiting_busy = False  # nothing queued any more: stop asking
        self._pump()

    # -- internals: sending --

    def _tick(self, now_ms: int) -> None:
        if now_ms < self._now:
            raise ValueError(f"time went backwards: {now_ms} < {self._now}")
        self._now = now_ms

    def _pump(self) -> None:
        """Make progress: open a session if work is waiting, or send the head request."""
        if not self._queue:
            return
        if self._phase is _Phase.CLOSED:
            if not self._waiting_busy:  # after SESSION_BUSY, only the timer reopens
                self._begin_handshake()
            return
        head = self._queue[0]
        if self._phase is _Phase.OPEN and not head.seqs:
            if self._session_idled_out():
                # The pump has expired this session by now (docs/security.md section 6):
                # open a new one rather than send a frame it can only refuse.
                self._session.close()
                self._phase = _Phase.CLOSED
                self._begin_handshake()
                return
            self._send_request(head)

    def _begin_handshake(self) -> None:
        self._waiting_busy = False
        request = self._session.start(self._entropy(16))
        self._phase = _Phase.OPENING
        message = OpenSession(role=request.role, programmer_nonce=request.programmer_nonce)
        self._send_handshake(message)

    def _send_handshake(self, message: Message) -> None:
        """Send a new handshake frame: a fresh SEQ, one send so far."""
        self._handshake_seq = self._next_handshake_seq()
        self._handshake_frame = codec.encode(message, seq=self._handshake_seq)
        self._handshake_sends = 0
        self._resend_handshake()

    def _resend_handshake(self) -> None:
        self._handshake_attempts += 1
        self._handshake_sends += 1
        self._outbox += self._handshake_frame
        self._arm()

    def _next_handshake_seq(self) -> int:
        """A SEQ no earlier handshake frame of this programmer used.

        The pump does not check an unsealed handshake frame's SEQ (docs/security.md section
        5), but it answers with REF = that SEQ. Numbering every opening attempt's frames
        apart is what lets a late CHALLENGE from an earlier attempt be ignored. Answering it
        would send a proof over the wrong nonces: a failed opening that counts toward the
        pump's lockout.
        """
        self._handshake_frames = self._handshake_frames % (U32_MAX - HANDSHAKE_SEQ_BASE) + 1
        return HANDSHAKE_SEQ_BASE + self._handshake_frames - 1

    def _send_request(self, pending: _Pending) -> None:
        request = ReadStatus() if pending.resolving else pending.request
        opcode, plaintext = codec.encode_payload(request)
        seq = self._session.next_send_seq
        self._outbox += codec.seal_frame(
            wire.FLAG_SEALED, seq, 0, opcode, plaintext, seal=self._session.seal
        )
        pending.seqs.add(seq)
        pending.last_seq = seq
        pending.attempts += 1
        self._arm()

    def _arm(self) -> None:
        self._deadline = self._now + self._policy.reply_timeout_ms

    # -- internals: receiving --

    def _on_frame(self, data: bytes) -> None:
        try:
            frame = codec.parse_framed(data)
        except DecodeError:
            return  # Framer-checked bytes with a bad header: nothing we could act on.
        if not frame.is_reply:
            return  # Our own request echoed (loop://, a miswired rig): not for us.
        try:
            if frame.is_sealed:
                # The header as received is the AEAD associated data: not packed again.
                message = codec.decode_payload(
                    frame.opcode, self._session.open(data[: wire.HEADER_LEN], frame.body)
                )
            else:
                message = codec.decode_payload(frame.opcode, frame.body)
        except SessionError as exc:
            self.security_events.append(f"reply SEQ {frame.seq} dropped: {exc}")
            return
        except ProtocolError as exc:
            self.security_events.append(f"reply SEQ {frame.seq} undecodable: {exc}")
            return
        if self._phase in (_Phase.OPENING, _Phase.AUTHENTICATING):
            self._on_handshake_reply(frame, message)
        elif self._phase is _Phase.OPEN and self._queue and frame.ref in self._queue[0].seqs:
            self._on_reply(frame, message)

    def _on_handshake_reply(self, frame: Frame, message: Message) -> None:
        if frame.ref != self._handshake_seq or frame.is_sealed:
            return
        if isinstance(message, Nak):
            if message.code in FRAME_LEVEL_REFUSALS:
                # Our handshake frame was damaged on the way: send it again, as on a timeout.
                self._deadline = None
                self._handshake_timed_out()
                return
            self._session.refused()
            self._phase = _Phase.CLOSED
            self._deadline = None
            if message.code in HANDSHAKE_RESTARTS:
                self._handshake_timed_out(restart=True)
                return
            if message.code is RefusalCode.SESSION_BUSY and self._wait_while_busy(message):
                return
            self._busy_since = None
            self._fail_all(message, f"the pump refused the session: {message.code.name}")
            return
        try:
            if self._phase is _Phase.OPENING and isinstance(message, Challenge):
                answer = self._session.answer_challenge(message.pump_nonce, message.serial)
                self._busy_since = None  # the pump is free: any busy wait is over
                self._phase = _Phase.AUTHENTICATING
                self._send_handshake(Authenticate(proof=answer.proof))
            elif self._phase is _Phase.AUTHENTICATING and isinstance(message, SessionOpened):
                self._session.confirm_opened(
                    message.proof, message.idle_timeout_s, message.max_session_s
                )
                self._phase = _Phase.OPEN
                self._handshake_attempts = 0
                self._busy_since = None
                self._pump_idle_timeout_ms = message.idle_timeout_s * 1000
                self._last_heard_ms = self._now
                self._deadline = None
        except SessionError as exc:
            # The peer failed mutual authentication or is another pump: never send it a
            # command. Everything queued ends; the user is told why.
            self.security_events.append(f"handshake failed: {exc}")
            self._phase = _Phase.CLOSED
            self._deadline = None
            self._fail_all(None, f"the pump failed authentication: {exc}")

    def _on_reply(self, frame: Frame, message: Message) -> None:
        pending = self._queue[0]
        if not frame.is_sealed:
            self._on_unsealed_reply(pending, message)
            return
        self._last_heard_ms = self._now
        if isinstance(message, Nak) and message.code in FRAME_LEVEL_REFUSALS:
            # The pump speaks of this *frame* (a duplicate of one it already took, or one
            # damaged in flight), not of the request: the request's outcome is still open.
            # Send it again in a new frame; a command keeps its id, so it applies at most
            # once whatever happened to the first frame (C1).
            if pending.attempts < self._policy.attempts:
                self._send_request(pending)
            else:
                self._session_lost(pending)
            return
        is_command = pending.request.OPCODE in COMMAND_OPCODES
        if is_command and isinstance(message, Ack):
            # Any frame's ACK: the id was applied, and only once (C1), even if it answers a
            # frame sent before the STATUS read that is resolving it.
            self._deadline = None
            detail = "applied (the ACK came while resolving)" if pending.resolving else ""
            self._finish(pending, Outcome.APPLIED, message, detail)
            return
        if pending.resolving:
            if isinstance(message, Status):
                self._deadline = None
                self._resolved_by_status(pending, message)
            return  # a late answer to an earlier frame: the STATUS read decides
        if isinstance(message, Nak) and frame.ref != pending.last_seq:
            # A refusal of an earlier frame while a later one is unanswered: the later one
            # is judged afresh (a refused id is not recorded), so it may still apply. Wait
            # for its answer or for the STATUS read.
            return
        self._deadline = None
        if isinstance(message, Nak):
            self._finish(pending, Outcome.REFUSED, message)
        elif is_command and isinstance(message, Ack):
            self._finish(pending, Outcome.APPLIED, message)
        else:
            self._finish(pending, Outcome.ANSWERED, message)
        if isinstance(pending.request, CloseSession):
            self._session.close()
            self._phase = _Phase.CLOSED

    def _on_unsealed_reply(self, pending: _Pending, message: Message) -> None:
        """An unsealed NAK to a sealed request: unauthenticated, so only a hint.

        A forged one could only make us retry or reopen, never report a command applied or
        refused. FRAME_CORRUPT means our frame was damaged on the way: send it again now.
        Anything else means the pump has no session for us (expired, reset): reopen.
        """
        if not isinstance(message, Nak):
            return
        if message.code is RefusalCode.FRAME_CORRUPT:
            if pending.attempts < self._policy.attempts:
                self._send_request(pending)
            return
        self._session_lost(pending, resend=message.code in SESSION_GONE)

    # -- internals: timeouts and resolution --

    def _session_idled_out(self) -> bool:
        idle = self._pump_idle_timeout_ms
        return idle > 0 and self._now - self._last_heard_ms >= idle

    def _wait_while_busy(self, nak: Nak) -> bool:
        """After SESSION_BUSY: arm a retry of the opening unless the wait is used up.

        The wait lasts ``busy_wait_ms`` from the first refusal, and at least until the
        expiry the *latest* refusal announced (its limit, in seconds) plus two reply
        timeouts, capped at twice ``busy_wait_ms``: a session this programmer orphaned is
        waited out even when the link delayed the first retries.
        """
        policy = self._policy
        now = self._now
        if self._busy_since is None:
            self._busy_since = now
            self._busy_until = now + policy.busy_wait_ms
        expires_ms = min(nak.limit, U32_MAX) * 1000
        announced = now + expires_ms + 2 * policy.reply_timeout_ms
        cap = self._busy_since + 2 * max(policy.busy_wait_ms, self._pump_idle_timeout_ms)
        self._busy_until = max(self._busy_until, min(announced, cap))
        if now >= self._busy_until:
            return False
        self._handshake_attempts = 0
        self._waiting_busy = True
        retry_in = min(max(expires_ms, policy.reply_timeout_ms), BUSY_RETRY_MAX_MS)
        self._deadline = now + min(retry_in, self._busy_until - now)
        return True

    def _handshake_timed_out(self, *, restart: bool = False) -> None:
        """No (usable) answer to the handshake frame in flight: send it again as it is, or,
        when the pump has dropped the handshake (``restart``), open again with fresh nonces.

        A copy gets the same answer as the original (docs/security.md section 5), so
        resending loses nothing that fresh nonces would gain. The budget: each frame is
        sent at most ``attempts x reopen_attempts`` times, and a whole opening at most
        twice that many frames.
        """
        budget = self._policy.attempts * self._policy.reopen_attempts
        if self._handshake_sends >= budget or self._handshake_attempts >= 2 * budget:
            self._session.refused()
            self._phase = _Phase.CLOSED
            self._handshake_attempts = 0
            self._fail_all(None, "no answer to the session handshake: the pump is unreachable")
            return
        if restart:
            self._session.refused()
            self._begin_handshake()
            return
        self._resend_handshake()

    def _request_timed_out(self) -> None:
        pending = self._queue[0]
        if pending.attempts < self._policy.attempts:
            self._send_request(pending)
            return
        if pending.request.OPCODE in COMMAND_OPCODES and pending.seqs and not pending.resolving:
            # Resolve in this session first (docs/protocol.md section 8): once the pump
            # accepts the STATUS read's SEQ, it refuses every earlier frame of this session
            # as a replay, so no copy of the command still on the link can apply after the
            # answer. Reopening costs the pump's idle timeout if our session is still open.
            pending.resolving = True
            pending.attempts = 0
            self._send_request(pending)
            return
        self._session_lost(pending)

    def _session_lost(self, pending: _Pending, *, resend: bool = False) -> None:
        """Give up on this session; reopen and resolve the head request (C1).

        ``resend``: the pump said it has no session for us (SESSION_GONE), so the frame it
        refused applied nothing: the request is sent again in the new session, with the same
        command id, rather than resolved. If an earlier frame of it did apply, the pump
        answers the repeat with the original ACK and applies nothing (C1).
        """
        self._reopens += 1
        self._session.close()
        self._phase = _Phase.CLOSED
        self._deadline = None
        if isinstance(pending.request, CloseSession):
            # The pump's idle timeout ends the session anyway; nothing was at stake.
            self._finish(pending, Outcome.ANSWERED, None, "session closed without a reply")
            return
        if pending.request.OPCODE in COMMAND_OPCODES and pending.seqs and not resend:
            pending.resolving = True
        pending.seqs = set()
        pending.last_seq = 0
        pending.attempts = 0
        if self._reopens > self._policy.reopen_attempts:
            self._reopens = 0
            self._fail_all(None, "the pump stopped answering")
            return
        self._begin_handshake()

    def _resolved_by_status(self, pending: _Pending, message: Message) -> None:
        if not isinstance(message, Status):
            return
        command_id = getattr(pending.request, "command_id", None)
        applied = message.last_command_id == command_id
        outcome = Outcome.APPLIED if applied else Outcome.NOT_APPLIED
        detail = f"no reply; STATUS shows command {command_id} " + (
            "was applied" if applied else f"was not applied (last {message.last_command_id})"
        )
        self._reopens = 0
        self._finish(pending, outcome, message, detail, resolved_by_status=True)

    def _finish(
        self,
        pending: _Pending,
        outcome: Outcome,
        reply: Message | None,
        detail: str = "",
        *,
        resolved_by_status: bool = False,
    ) -> None:
        self._queue.popleft()
        self._reopens = 0
        self._results.append(
            Result(pending.request, outcome, reply, pending.attempts, resolved_by_status, detail)
        )

    def _fail_all(self, nak: Nak | None, detail: str = "") -> None:
        """End every queued request when no session can be had: UNCERTAIN if a frame of it
        may have reached the pump, NOT_APPLIED otherwise. ``nak`` is the session refusal."""
        self._waiting_busy = False
        while self._queue:
            pending = self._queue.popleft()
            # A refused *session* says nothing about a command sent in an earlier session:
            # only the pump refusing the request itself is REFUSED (see _on_reply).
            if pending.request.OPCODE in COMMAND_OPCODES and (pending.seqs or pending.resolving):
                outcome = Outcome.UNCERTAIN  # Some frame may have reached the pump.
            else:
                outcome = Outcome.NOT_APPLIED
            self._results.append(
                Result(pending.request, outcome, nak, pending.attempts, False, detail)
            )

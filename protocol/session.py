"""Secure sessions, sans-IO: the pump's session state table and both ends of a session.

docs/security.md is the specification; this module is its executable form.

The pump side is a state machine *as data* (docs/architecture.md principle 6): ``SESSION_TABLE``
maps every (``SessionState``, ``SessionInput``) pair to a ``Transition``: the action to take, the
next state, and for an input that is not allowed, the ``RefusalCode`` and the security event
to log. ``PumpSession`` only classifies what arrived (a proof that verifies or not, a frame
that opens or not, a counter that is fresh or not, a request the role may make or not), looks
the pair up, and performs the action. Nothing is silently ignored: every refusal is logged.

Time is an argument (principle 2). Every input method takes ``now_ms`` and first fires any
timer that is due, so an input that arrives after a deadline sees the expired session;
``get_timer()``/``handle_timer(now_ms)`` let the device fire timers between inputs too. A
deadline is inclusive: at ``now_ms == deadline`` the timer has fired.

The programmer side, ``ProgrammerSession``, opens a session with one role key, verifies the
pump's proof (mutual authentication), and seals and opens frames with the opposite
directional keys. The two sides meet only through bytes and small values (nonces, proofs,
header bytes, bodies), so the wire integration is a thin layer.

Frame counters (SEQ, header bytes 4-7): each side counts the frames it sends in a session,
starting at 1, handshake included, so OPEN_SESSION/CHALLENGE carry 1,
AUTHENTICATE/SESSION_OPENED carry 2 and the first sealed frame in each direction carries 3. A
receiver accepts a sealed frame only if its SEQ is strictly above the last sealed SEQ it
accepted in this session (0 at opening): a replayed, reordered or stale frame is refused. The
SEQ of an unsealed handshake frame is not authenticated and is never checked.
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum, IntEnum
from types import MappingProxyType

from protocol import crypto
from protocol.device_state import Role
from protocol.errors import SessionError
from protocol.keys import PumpKeys
from protocol.permissions import RequestKind, permitted
from protocol.refusal import RefusalCode
from protocol.units import MS_PER_S, U32_MAX

HANDSHAKE_FRAMES = 2
"""Frames each side sends unsealed while opening; the first sealed frame has SEQ 3."""
FIRST_SEALED_SEQ = HANDSHAKE_FRAMES + 1


class ReplayedFrameError(SessionError):
    """A sealed frame opened, but its SEQ is not above the last accepted one (C3)."""


# -- the table's vocabulary -------------------------------------------------------------------


class SessionState(Enum):
    """The pump's session state."""

    IDLE = "idle"
    """No session and no handshake: only OPEN_SESSION is accepted."""
    CHALLENGED = "challenged"
    """A CHALLENGE was sent; one AUTHENTICATE may answer it before the idle timeout."""
    OPEN = "open"
    """Authenticated: sealed requests are accepted, subject to counter and role."""
    EXPIRED = "expired"
    """The last session idled out or reached its maximum length. As IDLE, but a sealed frame
    is told SESSION_EXPIRED, so its programmer knows to open a new session."""
    LOCKED_OUT = "locked_out"
    """Too many failed openings in a row, the last less than the lockout time ago. Opening
    is still possible: an OPEN_SESSION is answered with a CHALLENGE, and a proof that
    verifies opens a session and ends the lockout (docs/security.md section 6)."""
    LOCKED_CHALLENGED = "locked_challenged"
    """A CHALLENGE was sent during a lockout. As CHALLENGED, but a proof that fails restarts
    the lockout, and the lockout's end leaves the challenge pending (CHALLENGED)."""


class SessionInput(Enum):
    """What can happen to a pump session, as classified by ``PumpSession``."""

    OPEN_REQUEST = "open_request"
    """An unsealed OPEN_SESSION (role, programmer nonce)."""
    AUTH_VALID = "auth_valid"
    """An unsealed AUTHENTICATE whose proof verifies against the pending challenge."""
    AUTH_INVALID = "auth_invalid"
    """An AUTHENTICATE whose proof does not verify, or that answers no pending challenge."""
    AUTH_INVALID_LIMIT = "auth_invalid_limit"
    """As AUTH_INVALID with a challenge pending, and it is the Nth or a later failed opening
    in a row (in LOCKED_CHALLENGED every failed proof is)."""
    SEALED_FORGED = "sealed_forged"
    """A sealed frame that does not open: tampered, truncated, wrong key or no session key."""
    SEALED_REPLAYED = "sealed_replayed"
    """A sealed frame that opens but whose SEQ is not above the last accepted one."""
    REQUEST_PERMITTED = "request_permitted"
    """An authentic, fresh sealed request that the session's role may make."""
    REQUEST_FORBIDDEN = "request_forbidden"
    """An authentic, fresh sealed request that the session's role may not make."""
    KEEP_ALIVE = "keep_alive"
    """An authentic, fresh sealed KEEP_ALIVE."""
    CLOSE = "close"
    """An authentic, fresh sealed CLOSE_SESSION."""
    UNSEALED_REQUEST = "unsealed_request"
    """Any unsealed frame other than OPEN_SESSION and AUTHENTICATE."""
    IDLE_TIMEOUT = "idle_timeout"
    """Timer: no accepted frame for the idle timeout (also ends an unanswered challenge)."""
    MAX_LENGTH = "max_length"
    """Timer: the session reached its maximum length."""
    LOCKOUT_END = "lockout_end"
    """Timer: the lockout time has passed."""
    HANDSHAKE_REPEATED = "handshake_repeated"
    """A copy of the OPEN_SESSION (same role and programmer nonce) or the AUTHENTICATE (same
    proof) that began the pending challenge or the open session: link duplication, or a
    programmer resending a handshake frame whose answer was lost."""
    HANDSHAKE_STALE = "handshake_stale"
    """An OPEN_SESSION or AUTHENTICATE of a handshake the pump has since replaced, abandoned,
    refused or ended (a late copy), arriving while a challenge is pending."""


TIMER_INPUTS = frozenset(
    {SessionInput.IDLE_TIMEOUT, SessionInput.MAX_LENGTH, SessionInput.LOCKOUT_END}
)
AUTH_INPUTS = frozenset(
    {SessionInput.AUTH_VALID, SessionInput.AUTH_INVALID, SessionInput.AUTH_INVALID_LIMIT}
)
CHALLENGE_PENDING = frozenset({SessionState.CHALLENGED, SessionState.LOCKED_CHALLENGED})
"""States in which a challenge is out and one AUTHENTICATE may answer it."""
HANDSHAKE_COPY_INPUTS = frozenset({SessionInput.HANDSHAKE_REPEATED, SessionInput.HANDSHAKE_STALE})
"""Copies of handshake frames: link damage never fails a proof or counts toward lockout."""
STALE_HANDSHAKES_REMEMBERED = 8
"""Nonces and proofs of ended handshakes the pump recognises a late copy of."""
SEALED_INPUTS = frozenset(
    {
        SessionInput.SEALED_FORGED,
        SessionInput.SEALED_REPLAYED,
        SessionInput.REQUEST_PERMITTED,
        SessionInput.REQUEST_FORBIDDEN,
        SessionInput.KEEP_ALIVE,
        SessionInput.CLOSE,
    }
)
"""Inputs that are sealed frames. Without a session key the pump cannot tell them apart."""


class Action(Enum):
    """What the pump does for a transition. ``PumpSession`` performs each in one place."""

    SEND_CHALLENGE = "send_challenge"
    """Keep role and nonces; reply CHALLENGE (a repeated OPEN_SESSION replaces the challenge)."""
    CONFIRM_OPEN = "confirm_open"
    """Derive the session keys, reset the failure count and end any lockout; reply
    SESSION_OPENED with the proof."""
    DELIVER = "deliver"
    """Accept the SEQ, restart the idle timer, hand the plaintext to the firmware."""
    ACK_KEEP_ALIVE = "ack_keep_alive"
    """Accept the SEQ, restart the idle timer; reply with a sealed acknowledgement."""
    END_SESSION = "end_session"
    """Accept the SEQ; seal one last acknowledgement, then forget the keys."""
    DENY_FOR_ROLE = "deny_for_role"
    """Accept the SEQ (the frame is authentic), restart the idle timer, refuse the request."""
    FAIL_AUTHENTICATION = "fail_authentication"
    """Count a failed opening and discard the challenge; refuse."""
    START_LOCKOUT = "start_lockout"
    """Count the failed opening that reaches the limit, discard the challenge, and (re)start
    the lockout: it ends the lockout time after this failure; refuse."""
    REFUSE = "refuse"
    """Refuse and log; nothing else changes."""
    EXPIRE_SESSION = "expire_session"
    """Forget the session keys."""
    ABANDON_HANDSHAKE = "abandon_handshake"
    """Forget the unanswered challenge."""
    END_LOCKOUT = "end_lockout"
    """Reset the failure count; opening is allowed again."""
    REPEAT_REPLY = "repeat_reply"
    """Answer a copy of a handshake frame with a copy of the original answer; nothing else
    changes and nothing is counted."""
    NOTHING = "nothing"
    """A timer that is not armed in this state; it cannot fire (the table is total)."""


REFUSING_ACTIONS = frozenset(
    {Action.DENY_FOR_ROLE, Action.FAIL_AUTHENTICATION, Action.START_LOCKOUT, Action.REFUSE}
)
"""Actions whose transition carries a refusal code and a security event."""


class SessionEventKind(IntEnum):
    """What a ``SessionEvent`` records. Values 16 and above are security events."""

    SESSION_OPENED = 1
    SESSION_CLOSED = 2
    SESSION_EXPIRED = 3
    HANDSHAKE_TIMED_OUT = 4
    LOCKOUT_ENDED = 5
    AUTHENTICATION_FAILED = 16
    LOCKOUT_STARTED = 17
    OPENING_REFUSED = 18
    UNAUTHENTICATED_REQUEST = 19
    FORGED_FRAME = 20
    REPLAYED_FRAME = 21
    ROLE_DENIED = 22
    STALE_HANDSHAKE = 23

    @property
    def is_security(self) -> bool:
        return self >= SessionEventKind.AUTHENTICATION_FAILED


@dataclass(frozen=True, slots=True)
class Transition:
    """One cell of the session table."""

    action: Action
    next_state: SessionState
    refusal: RefusalCode | None = None
    event: SessionEventKind | None = None


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """A session or security event for the firmware's log."""

    kind: SessionEventKind
    time_ms: int
    role: Role | None
    """The session's role, or for an opening attempt the role asked for."""
    code: RefusalCode | None
    """The refusal sent, if the event is a refusal."""
    detail: str


# -- the table ---------------------------------------------------------------------------------

_S = SessionState
_I = SessionInput
_A = Action
_R = RefusalCode
_E = SessionEventKind


def _refuse(state: SessionState, code: RefusalCode, event: SessionEventKind) -> Transition:
    return Transition(Action.REFUSE, state, code, event)


def _stay(state: SessionState) -> Transition:
    return Transition(Action.NOTHING, state)


def _not_authenticated(state: SessionState) -> Transition:
    return _refuse(state, _R.NOT_AUTHENTICATED, _E.UNAUTHENTICATED_REQUEST)


_IDLE_NA = _not_authenticated(_S.IDLE)
_CHAL_NA = _not_authenticated(_S.CHALLENGED)
_OPEN_BUSY = _refuse(_S.OPEN, _R.SESSION_BUSY, _E.OPENING_REFUSED)
_EXP_NA = _not_authenticated(_S.EXPIRED)
_EXP_GONE = _refuse(_S.EXPIRED, _R.SESSION_EXPIRED, _E.UNAUTHENTICATED_REQUEST)
_LOCK_OPEN = _refuse(_S.LOCKED_OUT, _R.LOCKED_OUT, _E.OPENING_REFUSED)
_LOCK_NA = _not_authenticated(_S.LOCKED_OUT)
_LCHAL_NA = _not_authenticated(_S.LOCKED_CHALLENGED)
_RELOCK = Transition(_A.START_LOCKOUT, _S.LOCKED_OUT, _R.AUTHENTICATION_FAILED, _E.LOCKOUT_STARTED)
_STALE = _refuse(_S.CHALLENGED, _R.HANDSHAKE_STALE, _E.STALE_HANDSHAKE)

SESSION_TABLE: Mapping[tuple[SessionState, SessionInput], Transition] = MappingProxyType(
    {
        # IDLE: only OPEN_SESSION is accepted.
        (_S.IDLE, _I.OPEN_REQUEST): Transition(_A.SEND_CHALLENGE, _S.CHALLENGED),
        (_S.IDLE, _I.AUTH_VALID): _IDLE_NA,
        (_S.IDLE, _I.AUTH_INVALID): _IDLE_NA,
        (_S.IDLE, _I.AUTH_INVALID_LIMIT): _IDLE_NA,
        (_S.IDLE, _I.SEALED_FORGED): _IDLE_NA,
        (_S.IDLE, _I.SEALED_REPLAYED): _IDLE_NA,
        (_S.IDLE, _I.REQUEST_PERMITTED): _IDLE_NA,
        (_S.IDLE, _I.REQUEST_FORBIDDEN): _IDLE_NA,
        (_S.IDLE, _I.KEEP_ALIVE): _IDLE_NA,
        (_S.IDLE, _I.CLOSE): _IDLE_NA,
        (_S.IDLE, _I.UNSEALED_REQUEST): _IDLE_NA,
        (_S.IDLE, _I.IDLE_TIMEOUT): _stay(_S.IDLE),
        (_S.IDLE, _I.MAX_LENGTH): _stay(_S.IDLE),
        (_S.IDLE, _I.LOCKOUT_END): _stay(_S.IDLE),
        # Nothing pending to compare with: a copy is taken for what it looks like.
        (_S.IDLE, _I.HANDSHAKE_REPEATED): Transition(_A.SEND_CHALLENGE, _S.CHALLENGED),
        (_S.IDLE, _I.HANDSHAKE_STALE): _IDLE_NA,
        # CHALLENGED: one AUTHENTICATE answers the challenge; a new OPEN_SESSION replaces it.
        (_S.CHALLENGED, _I.OPEN_REQUEST): Transition(_A.SEND_CHALLENGE, _S.CHALLENGED),
        (_S.CHALLENGED, _I.AUTH_VALID): Transition(
            _A.CONFIRM_OPEN, _S.OPEN, None, _E.SESSION_OPENED
        ),
        (_S.CHALLENGED, _I.AUTH_INVALID): Transition(
            _A.FAIL_AUTHENTICATION, _S.IDLE, _R.AUTHENTICATION_FAILED, _E.AUTHENTICATION_FAILED
        ),
        (_S.CHALLENGED, _I.AUTH_INVALID_LIMIT): _RELOCK,
        (_S.CHALLENGED, _I.SEALED_FORGED): _CHAL_NA,
        (_S.CHALLENGED, _I.SEALED_REPLAYED): _CHAL_NA,
        (_S.CHALLENGED, _I.REQUEST_PERMITTED): _CHAL_NA,
        (_S.CHALLENGED, _I.REQUEST_FORBIDDEN): _CHAL_NA,
        (_S.CHALLENGED, _I.KEEP_ALIVE): _CHAL_NA,
        (_S.CHALLENGED, _I.CLOSE): _CHAL_NA,
        (_S.CHALLENGED, _I.UNSEALED_REQUEST): _CHAL_NA,
        (_S.CHALLENGED, _I.IDLE_TIMEOUT): Transition(
            _A.ABANDON_HANDSHAKE, _S.IDLE, None, _E.HANDSHAKE_TIMED_OUT
        ),
        (_S.CHALLENGED, _I.MAX_LENGTH): _stay(_S.CHALLENGED),
        (_S.CHALLENGED, _I.LOCKOUT_END): _stay(_S.CHALLENGED),
        (_S.CHALLENGED, _I.HANDSHAKE_REPEATED): Transition(_A.REPEAT_REPLY, _S.CHALLENGED),
        (_S.CHALLENGED, _I.HANDSHAKE_STALE): _STALE,
        # OPEN: sealed, fresh, permitted requests only; one programmer at a time.
        (_S.OPEN, _I.OPEN_REQUEST): _OPEN_BUSY,
        (_S.OPEN, _I.AUTH_VALID): _OPEN_BUSY,
        (_S.OPEN, _I.AUTH_INVALID): _OPEN_BUSY,
        (_S.OPEN, _I.AUTH_INVALID_LIMIT): _OPEN_BUSY,
        (_S.OPEN, _I.SEALED_FORGED): _refuse(_S.OPEN, _R.FRAME_NOT_AUTHENTIC, _E.FORGED_FRAME),
        (_S.OPEN, _I.SEALED_REPLAYED): _refuse(_S.OPEN, _R.REPLAY_DETECTED, _E.REPLAYED_FRAME),
        (_S.OPEN, _I.REQUEST_PERMITTED): Transition(_A.DELIVER, _S.OPEN),
        (_S.OPEN, _I.REQUEST_FORBIDDEN): Transition(
            _A.DENY_FOR_ROLE, _S.OPEN, _R.NOT_PERMITTED_FOR_ROLE, _E.ROLE_DENIED
        ),
        (_S.OPEN, _I.KEEP_ALIVE): Transition(_A.ACK_KEEP_ALIVE, _S.OPEN),
        (_S.OPEN, _I.CLOSE): Transition(_A.END_SESSION, _S.IDLE, None, _E.SESSION_CLOSED),
        (_S.OPEN, _I.UNSEALED_REQUEST): _not_authenticated(_S.OPEN),
        (_S.OPEN, _I.IDLE_TIMEOUT): Transition(
            _A.EXPIRE_SESSION, _S.EXPIRED, None, _E.SESSION_EXPIRED
        ),
        (_S.OPEN, _I.MAX_LENGTH): Transition(
            _A.EXPIRE_SESSION, _S.EXPIRED, None, _E.SESSION_EXPIRED
        ),
        (_S.OPEN, _I.LOCKOUT_END): _stay(_S.OPEN),
        (_S.OPEN, _I.HANDSHAKE_REPEATED): Transition(_A.REPEAT_REPLY, _S.OPEN),
        (_S.OPEN, _I.HANDSHAKE_STALE): _OPEN_BUSY,
        # EXPIRED: as IDLE, but a sealed frame learns its session expired.
        (_S.EXPIRED, _I.OPEN_REQUEST): Transition(_A.SEND_CHALLENGE, _S.CHALLENGED),
        (_S.EXPIRED, _I.AUTH_VALID): _EXP_NA,
        (_S.EXPIRED, _I.AUTH_INVALID): _EXP_NA,
        (_S.EXPIRED, _I.AUTH_INVALID_LIMIT): _EXP_NA,
        (_S.EXPIRED, _I.SEALED_FORGED): _EXP_GONE,
        (_S.EXPIRED, _I.SEALED_REPLAYED): _EXP_GONE,
        (_S.EXPIRED, _I.REQUEST_PERMITTED): _EXP_GONE,
        (_S.EXPIRED, _I.REQUEST_FORBIDDEN): _EXP_GONE,
        (_S.EXPIRED, _I.KEEP_ALIVE): _EXP_GONE,
        (_S.EXPIRED, _I.CLOSE): _EXP_GONE,
        (_S.EXPIRED, _I.UNSEALED_REQUEST): _EXP_NA,
        (_S.EXPIRED, _I.IDLE_TIMEOUT): _stay(_S.EXPIRED),
        (_S.EXPIRED, _I.MAX_LENGTH): _stay(_S.EXPIRED),
        (_S.EXPIRED, _I.LOCKOUT_END): _stay(_S.EXPIRED),
        (_S.EXPIRED, _I.HANDSHAKE_REPEATED): Transition(_A.SEND_CHALLENGE, _S.CHALLENGED),
        (_S.EXPIRED, _I.HANDSHAKE_STALE): _EXP_NA,
        # LOCKED_OUT: a lockout is running. It never refuses a proof that verifies, so an
        # opening gets a challenge; only an AUTHENTICATE that answers none is refused.
        (_S.LOCKED_OUT, _I.OPEN_REQUEST): Transition(_A.SEND_CHALLENGE, _S.LOCKED_CHALLENGED),
        (_S.LOCKED_OUT, _I.AUTH_VALID): _LOCK_OPEN,
        (_S.LOCKED_OUT, _I.AUTH_INVALID): _LOCK_OPEN,
        (_S.LOCKED_OUT, _I.AUTH_INVALID_LIMIT): _LOCK_OPEN,
        (_S.LOCKED_OUT, _I.SEALED_FORGED): _LOCK_NA,
        (_S.LOCKED_OUT, _I.SEALED_REPLAYED): _LOCK_NA,
        (_S.LOCKED_OUT, _I.REQUEST_PERMITTED): _LOCK_NA,
        (_S.LOCKED_OUT, _I.REQUEST_FORBIDDEN): _LOCK_NA,
        (_S.LOCKED_OUT, _I.KEEP_ALIVE): _LOCK_NA,
        (_S.LOCKED_OUT, _I.CLOSE): _LOCK_NA,
        (_S.LOCKED_OUT, _I.UNSEALED_REQUEST): _LOCK_NA,
        (_S.LOCKED_OUT, _I.IDLE_TIMEOUT): _stay(_S.LOCKED_OUT),
        (_S.LOCKED_OUT, _I.MAX_LENGTH): _stay(_S.LOCKED_OUT),
        (_S.LOCKED_OUT, _I.LOCKOUT_END): Transition(
            _A.END_LOCKOUT, _S.IDLE, None, _E.LOCKOUT_ENDED
        ),
        # Nothing pending to compare with: a copy is taken for what it looks like.
        (_S.LOCKED_OUT, _I.HANDSHAKE_REPEATED): Transition(_A.SEND_CHALLENGE, _S.LOCKED_CHALLENGED),
        (_S.LOCKED_OUT, _I.HANDSHAKE_STALE): _LOCK_OPEN,
        # LOCKED_CHALLENGED: as CHALLENGED, but a proof that fails restarts the lockout.
        (_S.LOCKED_CHALLENGED, _I.OPEN_REQUEST): Transition(
            _A.SEND_CHALLENGE, _S.LOCKED_CHALLENGED
        ),
        (_S.LOCKED_CHALLENGED, _I.AUTH_VALID): Transition(
            _A.CONFIRM_OPEN, _S.OPEN, None, _E.SESSION_OPENED
        ),
        (_S.LOCKED_CHALLENGED, _I.AUTH_INVALID): _RELOCK,
        (_S.LOCKED_CHALLENGED, _I.AUTH_INVALID_LIMIT): _RELOCK,
        (_S.LOCKED_CHALLENGED, _I.SEALED_FORGED): _LCHAL_NA,
        (_S.LOCKED_CHALLENGED, _I.SEALED_REPLAYED): _LCHAL_NA,
        (_S.LOCKED_CHALLENGED, _I.REQUEST_PERMITTED): _LCHAL_NA,
        (_S.LOCKED_CHALLENGED, _I.REQUEST_FORBIDDEN): _LCHAL_NA,
        (_S.LOCKED_CHALLENGED, _I.KEEP_ALIVE): _LCHAL_NA,
        (_S.LOCKED_CHALLENGED, _I.CLOSE): _LCHAL_NA,
        (_S.LOCKED_CHALLENGED, _I.UNSEALED_REQUEST): _LCHAL_NA,
        (_S.LOCKED_CHALLENGED, _I.IDLE_TIMEOUT): Transition(
            _A.ABANDON_HANDSHAKE, _S.LOCKED_OUT, None, _E.HANDSHAKE_TIMED_OUT
        ),
        (_S.LOCKED_CHALLENGED, _I.MAX_LENGTH): _stay(_S.LOCKED_CHALLENGED),
        (_S.LOCKED_CHALLENGED, _I.LOCKOUT_END): Transition(
            _A.END_LOCKOUT, _S.CHALLENGED, None, _E.LOCKOUT_ENDED
        ),
        (_S.LOCKED_CHALLENGED, _I.HANDSHAKE_REPEATED): Transition(
            _A.REPEAT_REPLY, _S.LOCKED_CHALLENGED
        ),
        (_S.LOCKED_CHALLENGED, _I.HANDSHAKE_STALE): _refuse(
            _S.LOCKED_CHALLENGED, _R.HANDSHAKE_STALE, _E.STALE_HANDSHAKE
        ),
    }
)
"""The pump's session state machine: every (state, input) pair, exactly once."""


def transition(state: SessionState, event: SessionInput) -> Transition:
    """The table cell for ``(state, event)``."""
    return SESSION_TABLE[(state, event)]


# -- results of the pump's input methods ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refused:
    """The pump refuses: reply with a NAK carrying ``code``. Already logged."""

    code: RefusalCode
    detail: str


@dataclass(frozen=True, slots=True)
class Challenge:
    """Reply CHALLENGE(pump_nonce, serial), unsealed, with SEQ ``seq``."""

    pump_nonce: bytes
    serial: str
    seq: int
    repeat: bool = False
    """A copy of the answer already sent to this handshake (HANDSHAKE_REPEATED)."""


@dataclass(frozen=True, slots=True)
class Opened:
    """Reply SESSION_OPENED(proof, idle_timeout_s, max_session_s), unsealed, SEQ ``seq``."""

    proof: bytes
    idle_timeout_s: int
    max_session_s: int
    seq: int
    repeat: bool = False
    """A copy of the answer already sent to this handshake (HANDSHAKE_REPEATED)."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """An authentic, fresh, permitted sealed request.

    ``action`` is DELIVER (hand ``plaintext`` to the firmware and seal its reply),
    ACK_KEEP_ALIVE (seal an acknowledgement) or END_SESSION (seal one last acknowledgement:
    ``seal`` works exactly once more, then the keys are gone).
    """

    action: Action
    kind: RequestKind
    plaintext: bytes
    seq: int
    """The request's SEQ: the REF of the reply."""


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """The session parameters from the pump profile."""

    idle_timeout_s: int
    """An open session with no accepted frame for this long expires; so does a challenge."""
    max_session_s: int
    """An open session expires this long after it opened, however busy."""
    max_failed_openings: int
    """This many failed openings in a row (N) start a lockout."""
    lockout_s: int
    """How long opening stays locked out (T)."""

    def __post_init__(self) -> None:
        for name in ("idle_timeout_s", "max_session_s", "max_failed_openings", "lockout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer")
            if not 1 <= value <= U32_MAX:
                raise ValueError(f"{name} must be 1..{U32_MAX}, got {value}")


@dataclass(slots=True)
class _Input:
    """One classified input and what it carried."""

    event: SessionInput
    detail: str
    role: Role | None = None
    programmer_nonce: bytes = b""
    pump_nonce: bytes = b""
    seq: int = 0
    plaintext: bytes = b""
    proof: bytes = b""


def _check_nonce(name: str, nonce: bytes) -> bytes:
    if not isinstance(nonce, bytes) or len(nonce) != crypto.NONCE_LEN:
        raise ValueError(f"{name} must be {crypto.NONCE_LEN} bytes")
    return nonce


# -- the pump side ------------------------------------------------------------------------------


class PumpSession:
    """The pump's end of a secure session (sans-IO).

    Feed it what arrived, with ``now_ms``; it answers with a result to send and logs events
    (``pop_events``). The integration decodes frames and maps each request opcode to a
    ``RequestKind``; this object decides whether the frame is authentic, fresh and permitted.
    """

    def __init__(self, keys: PumpKeys, limits: SessionLimits) -> None:
        self._keys = keys
        self._limits = limits
        self._idle_ms = limits.idle_timeout_s * MS_PER_S
        self._max_ms = limits.max_session_s * MS_PER_S
        self._lockout_ms = limits.lockout_s * MS_PER_S
        self._state = SessionState.IDLE
        self._now = 0
        self._events: list[SessionEvent] = []
        self._failed_openings = 0
        self._lockout_until: int | None = None
        self._last_pump_nonce: bytes | None = None
        self._farewell: bytes | None = None
        self._role: Role | None = None
        self._session_keys: crypto.SessionKeys | None = None
        self._opened: Opened | None = None
        self._opening_proof = b""
        self._stale: deque[frozenset[bytes]] = deque(maxlen=STALE_HANDSHAKES_REMEMBERED)
        """Per ended handshake: its programmer nonce (16 bytes), the proof that answers its
        challenge and, if it was refused, the proof that failed (32 bytes each)."""
        self._clear_session()

    # -- inspection --

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def role(self) -> Role | None:
        """The role of the open session or of the pending challenge."""
        return self._role

    @property
    def limits(self) -> SessionLimits:
        return self._limits

    @property
    def serial(self) -> str:
        return self._keys.serial

    @property
    def failed_openings(self) -> int:
        """Failed openings in a row since the last success or the last lockout's end."""
        return self._failed_openings

    @property
    def lockout_until_ms(self) -> int | None:
        """When the lockout ends, on the link timeline (None: no lockout)."""
        return self._lockout_until

    @property
    def lockout_left_ms(self) -> int | None:
        """How long the lockout has left at the last time this session was given."""
        if self._lockout_until is None:
            return None
        return max(self._lockout_until - self._now, 0)

    @property
    def last_received_seq(self) -> int:
        """The SEQ of the last sealed request accepted in this session (0: none yet)."""
        return self._last_received_seq

    @property
    def next_send_seq(self) -> int:
        """The SEQ the next sealed reply must carry."""
        return self._send_seq

    @property
    def can_seal(self) -> bool:
        return self._state is SessionState.OPEN or self._farewell is not None

    def pop_events(self) -> list[SessionEvent]:
        """The events logged since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    # -- persistence --

    def restore_openings(
        self, failed_openings: int, lockout_left_ms: int | None, now_ms: int
    ) -> None:
        """Resume the failed-opening count and the lockout a restarted pump remembers.

        Only for a fresh session object (IDLE, nothing sent yet): an open session is never
        restored, a restart drops it. ``now_ms`` is where this session's time (the *link*
        timeline, docs/security.md section 6) resumes; with ``lockout_left_ms`` the session
        is LOCKED_OUT for that much longer, counted from ``now_ms``. The link timeline of a
        new process starts afresh, so a lockout is saved as the time it had left, never as
        an instant.
        """
        if self._state is not SessionState.IDLE or self._now != 0 or self._events:
            raise SessionError("openings can only be restored into a fresh session")
        for name, value in (("failed_openings", failed_openings), ("now_ms", now_ms)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if failed_openings >= self._limits.max_failed_openings and lockout_left_ms is None:
            raise ValueError(
                f"failed_openings {failed_openings} reaches the lockout limit "
                f"{self._limits.max_failed_openings} without a lockout"
            )
        if lockout_left_ms is not None and (
            isinstance(lockout_left_ms, bool)
            or not isinstance(lockout_left_ms, int)
            or not 0 <= lockout_left_ms <= self._lockout_ms
        ):
            raise ValueError(
                f"lockout_left_ms must be None or an integer 0..{self._lockout_ms}, "
                f"got {lockout_left_ms!r}"
            )
        self._now = now_ms
        self._failed_openings = failed_openings
        if lockout_left_ms is not None:
            self._lockout_until = now_ms + lockout_left_ms
            self._state = SessionState.LOCKED_OUT

    # -- timers --

    def get_timer(self) -> int | None:
        """The next instant (ms) at which ``handle_timer`` has something to do, or None."""
        if self._state is SessionState.CHALLENGED:
            return self._challenged_at + self._idle_ms
        if self._state is SessionState.OPEN:
            return min(self._last_activity + self._idle_ms, self._opened_at + self._max_ms)
        if self._state is SessionState.LOCKED_OUT:
            assert self._lockout_until is not None
            return self._lockout_until
        if self._state is SessionState.LOCKED_CHALLENGED:
            assert self._lockout_until is not None
            return min(self._challenged_at + self._idle_ms, self._lockout_until)
        return None

    def handle_timer(self, now_ms: int) -> list[Action]:
        """Fire every timer due at ``now_ms``; returns the actions taken, oldest first."""
        self._tick(now_ms)
        return self._fire_timers(now_ms)

    # -- inputs --

    def open_request(
        self, role: Role, programmer_nonce: bytes, pump_nonce: bytes, now_ms: int
    ) -> Challenge | Refused:
        """An OPEN_SESSION arrived. ``pump_nonce`` is 16 fresh random bytes from the caller."""
        role = Role(role)
        _check_nonce("programmer_nonce", programmer_nonce)
        _check_nonce("pump_nonce", pump_nonce)
        if pump_nonce == self._last_pump_nonce:
            raise ValueError("pump_nonce repeats the previous one: the nonce source is broken")
        self._tick(now_ms)
        self._fire_timers(now_ms)
        challenged = self._state in CHALLENGE_PENDING
        pending = challenged or self._state is SessionState.OPEN
        if pending and role is self._role and programmer_nonce == self._programmer_nonce:
            event, detail = SessionInput.HANDSHAKE_REPEATED, "a copy of the OPEN_SESSION"
        elif challenged and self._is_stale(programmer_nonce):
            event, detail = (
                SessionInput.HANDSHAKE_STALE,
                "a late OPEN_SESSION of an ended handshake",
            )
        else:
            event, detail = (
                SessionInput.OPEN_REQUEST,
                f"OPEN_SESSION for the {role.name.lower()} role",
            )
        inp = _Input(
            event, detail, role=role, programmer_nonce=programmer_nonce, pump_nonce=pump_nonce
        )
        t = self._step(inp, now_ms)
        if t.refusal is not None:
            return Refused(t.refusal, inp.detail)
        if t.action is Action.REPEAT_REPLY:
            return Challenge(self._pump_nonce, self._keys.serial, seq=1, repeat=True)
        return Challenge(pump_nonce=pump_nonce, serial=self._keys.serial, seq=1)

    def authenticate(self, proof: bytes, now_ms: int) -> Opened | Refused:
        """An AUTHENTICATE arrived with ``proof``."""
        self._tick(now_ms)
        self._fire_timers(now_ms)
        if self._state is SessionState.OPEN and hmac.compare_digest(proof, self._opening_proof):
            inp = _Input(SessionInput.HANDSHAKE_REPEATED, "a copy of the AUTHENTICATE")
        elif self._state in CHALLENGE_PENDING and self._is_stale(proof):
            inp = _Input(SessionInput.HANDSHAKE_STALE, "a late AUTHENTICATE of an ended handshake")
        elif self._state in CHALLENGE_PENDING:
            assert self._role is not None
            if crypto.verify_programmer_proof(
                self._keys.key_for(self._role), self._transcript(), proof
            ):
                inp = _Input(
                    SessionInput.AUTH_VALID, "proof verified", role=self._role, proof=proof
                )
            elif (
                self._failed_openings + 1 >= self._limits.max_failed_openings
                or self._state is SessionState.LOCKED_CHALLENGED
            ):
                inp = _Input(
                    SessionInput.AUTH_INVALID_LIMIT,
                    f"proof did not verify ({self._failed_openings + 1} failed openings in a "
                    f"row); lockout (re)started for {self._limits.lockout_s} s",
                    role=self._role,
                    proof=proof,
                )
            else:
                inp = _Input(
                    SessionInput.AUTH_INVALID,
                    f"proof did not verify ({self._failed_openings + 1} failed openings in a "
                    f"row, lockout at {self._limits.max_failed_openings})",
                    role=self._role,
                    proof=proof,
                )
        else:
            inp = _Input(SessionInput.AUTH_INVALID, "AUTHENTICATE without a pending challenge")
        t = self._step(inp, now_ms)
        if t.refusal is not None:
            return Refused(t.refusal, inp.detail)
        assert self._role is not None
        if t.action is Action.REPEAT_REPLY:
            assert self._opened is not None
            return replace(self._opened, repeat=True)
        self._opened = Opened(
            proof=crypto.pump_proof(self._keys.key_for(self._role), self._transcript()),
            idle_timeout_s=self._limits.idle_timeout_s,
            max_session_s=self._limits.max_session_s,
            seq=HANDSHAKE_FRAMES,
        )
        return self._opened

    def receive_sealed(
        self, header: bytes, body: bytes, kind: RequestKind, now_ms: int
    ) -> Accepted | Refused:
        """A sealed request arrived: 15 header bytes, the body, and what its opcode asks.

        The frame must open under the programmer-to-pump key, carry a SEQ above the last
        accepted one, and ask for something the role may do, or it is refused and logged.
        """
        self._tick(now_ms)
        self._fire_timers(now_ms)
        inp = self._classify_sealed(header, body, kind)
        t = self._step(inp, now_ms)
        if t.refusal is not None:
            return Refused(t.refusal, inp.detail)
        return Accepted(action=t.action, kind=kind, plaintext=inp.plaintext, seq=inp.seq)

    def receive_unsealed(self, now_ms: int) -> Refused:
        """An unsealed frame other than OPEN_SESSION or AUTHENTICATE arrived: always refused."""
        self._tick(now_ms)
        self._fire_timers(now_ms)
        inp = _Input(SessionInput.UNSEALED_REQUEST, "unsealed request")
        t = self._step(inp, now_ms)
        assert t.refusal is not None, "the table refuses every unsealed request"
        return Refused(t.refusal, inp.detail)

    def seal(self, header: bytes, plaintext: bytes) -> bytes:
        """Seal a reply: ``header`` has REPLY and SEALED set and SEQ ``next_send_seq``.

        Works while the session is open, and once more after END_SESSION for the close
        acknowledgement. Raises ``SessionError`` when there is no key, ``ValueError`` when
        the header is wrong for this session.
        """
        if self._state is SessionState.OPEN:
            assert self._session_keys is not None
            aead = self._session_keys.to_programmer_aead
            farewell = None
        elif self._farewell is not None:
            farewell = self._farewell
        else:
            raise SessionError("no open session: nothing to seal with")
        if not crypto.header_is_reply(header):
            raise ValueError("a pump frame is a reply: set the REPLY flag")
        self._check_send_seq(header)
        if farewell is None:
            body = crypto.seal_under(aead, header, plaintext)
        else:
            body = crypto.seal(farewell, header, plaintext)
        self._send_seq += 1
        if self._state is not SessionState.OPEN:
            self._farewell = None
        return body

    # -- internals --

    def _check_send_seq(self, header: bytes) -> None:
        if self._send_seq > U32_MAX:
            raise SessionError("SEQ space exhausted: close this session and open a new one")
        seq = crypto.header_seq(header)
        if seq != self._send_seq:
            raise ValueError(f"header SEQ is {seq}; this session's next SEQ is {self._send_seq}")

    def _classify_sealed(self, header: bytes, body: bytes, kind: RequestKind) -> _Input:
        if self._state is not SessionState.OPEN or self._session_keys is None:
            return _Input(SessionInput.SEALED_FORGED, "sealed frame without an open session")
        try:
            plaintext = crypto.open_under(self._session_keys.to_pump_aead, header, body)
        except SessionError as exc:
            return _Input(SessionInput.SEALED_FORGED, f"sealed frame rejected: {exc}")
        seq = crypto.header_seq(header)
        if seq <= self._last_received_seq:
            return _Input(
                SessionInput.SEALED_REPLAYED,
                f"SEQ {seq} is not above the last accepted SEQ {self._last_received_seq}",
                seq=seq,
            )
        assert self._role is not None
        if not permitted(self._role, kind):
            return _Input(
                SessionInput.REQUEST_FORBIDDEN,
                f"{kind.name} is not permitted for the {self._role.name.lower()} role",
                seq=seq,
            )
        if kind is RequestKind.CLOSE:
            event, detail = SessionInput.CLOSE, "session closed by the programmer"
        elif kind is RequestKind.KEEP_ALIVE:
            event, detail = SessionInput.KEEP_ALIVE, "keep-alive"
        else:
            event, detail = SessionInput.REQUEST_PERMITTED, kind.name
        return _Input(event, detail, seq=seq, plaintext=plaintext)

    def _tick(self, now_ms: int) -> None:
        if isinstance(now_ms, bool) or not isinstance(now_ms, int) or now_ms < 0:
            raise ValueError(f"now_ms must be a non-negative integer, got {now_ms!r}")
        if now_ms < self._now:
            raise ValueError(f"time went backwards: now_ms {now_ms} < {self._now}")
        self._now = now_ms

    def _fire_timers(self, now_ms: int) -> list[Action]:
        fired: list[Action] = []
        while (deadline := self.get_timer()) is not None and now_ms >= deadline:
            if self._state is SessionState.OPEN:
                if deadline == self._opened_at + self._max_ms:
                    inp = _Input(
                        SessionInput.MAX_LENGTH,
                        f"maximum session length {self._limits.max_session_s} s reached",
                    )
                else:
                    inp = _Input(
                        SessionInput.IDLE_TIMEOUT,
                        f"idle for {self._limits.idle_timeout_s} s",
                    )
            elif self._state is SessionState.CHALLENGED or (
                self._state is SessionState.LOCKED_CHALLENGED and deadline != self._lockout_until
            ):
                inp = _Input(
                    SessionInput.IDLE_TIMEOUT,
                    f"challenge unanswered for {self._limits.idle_timeout_s} s",
                )
            else:
                inp = _Input(SessionInput.LOCKOUT_END, "lockout over")
            fired.append(self._step(inp, deadline).action)
        return fired

    def _step(self, inp: _Input, now_ms: int) -> Transition:
        t = SESSION_TABLE[(self._state, inp.event)]
        role = inp.role if inp.role is not None else self._role
        self._farewell = None
        self._perform(t.action, inp, now_ms)
        self._state = t.next_state
        if t.event is not None:
            self._events.append(SessionEvent(t.event, now_ms, role, t.refusal, inp.detail))
        return t

    def _perform(self, action: Action, inp: _Input, now_ms: int) -> None:
        match action:
            case Action.SEND_CHALLENGE:
                if self._state in CHALLENGE_PENDING:
                    self._forget_handshake()  # replaced: a late copy must not undo the new one
                self._clear_session()
                self._role = inp.role
                self._programmer_nonce = inp.programmer_nonce
                self._pump_nonce = inp.pump_nonce
                self._last_pump_nonce = inp.pump_nonce
                self._challenged_at = now_ms
                self._send_seq = 2
            case Action.CONFIRM_OPEN:
                assert self._role is not None
                self._session_keys = crypto.derive_session_keys(
                    self._keys.key_for(self._role), self._transcript()
                )
                self._failed_openings = 0
                self._lockout_until = None  # a proof that verifies ends a lockout
                self._opening_proof = inp.proof
                self._opened_at = now_ms
                self._last_activity = now_ms
                self._last_received_seq = 0
                self._send_seq = FIRST_SEALED_SEQ
            case Action.DELIVER | Action.ACK_KEEP_ALIVE | Action.DENY_FOR_ROLE:
                self._last_received_seq = inp.seq
                self._last_activity = now_ms
            case Action.END_SESSION:
                assert self._session_keys is not None
                farewell = self._session_keys.to_programmer
                send_seq = self._send_seq
                self._forget_handshake()
                self._clear_session()
                self._farewell = farewell
                self._send_seq = send_seq
            case Action.FAIL_AUTHENTICATION:
                self._failed_openings += 1
                self._forget_handshake(inp.proof)  # a copy of this proof must not count again
                self._clear_session()
            case Action.START_LOCKOUT:
                self._failed_openings += 1
                self._lockout_until = now_ms + self._lockout_ms
                self._forget_handshake(inp.proof)
                self._clear_session()
            case Action.EXPIRE_SESSION | Action.ABANDON_HANDSHAKE:
                self._forget_handshake()
                self._clear_session()
            case Action.END_LOCKOUT:
                self._failed_openings = 0
                self._lockout_until = None
            case Action.REFUSE | Action.REPEAT_REPLY | Action.NOTHING:
                pass

    def _transcript(self) -> crypto.Transcript:
        assert self._role is not None
        return crypto.Transcript(
            self._keys.serial, self._role, self._programmer_nonce, self._pump_nonce
        )

    def _forget_handshake(self, failed_proof: bytes = b"") -> None:
        """Remember the ending handshake's nonce, its genuine proof and any proof that
        failed it, so a late copy of any is told HANDSHAKE_STALE instead of replacing or
        failing a newer handshake (docs/security.md section 5.1)."""
        if not self._programmer_nonce or self._role is None:
            return
        genuine = self._opening_proof or crypto.programmer_proof(
            self._keys.key_for(self._role), self._transcript()
        )
        values = {self._programmer_nonce, genuine}
        if failed_proof:
            values.add(failed_proof)
        self._stale.append(frozenset(values))

    def _is_stale(self, value: bytes) -> bool:
        return any(value in ended for ended in self._stale)

    def _clear_session(self) -> None:
        self._role = None
        self._opening_proof = b""
        self._opened = None
        self._programmer_nonce = b""
        self._pump_nonce = b""
        self._session_keys = None
        self._challenged_at = 0
        self._opened_at = 0
        self._last_activity = 0
        self._last_received_seq = 0
        self._send_seq = 1


# -- the programmer side -----------------------------------------------------------------------


class ProgrammerState(Enum):
    IDLE = "idle"
    """Nothing sent yet, or the last attempt was refused: ``start`` may be called."""
    AWAITING_CHALLENGE = "awaiting_challenge"
    AWAITING_OPENED = "awaiting_opened"
    OPEN = "open"
    CLOSED = "closed"
    FAILED = "failed"
    """The pump failed mutual authentication, or answered with another serial."""


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """Send OPEN_SESSION(role, programmer_nonce), unsealed, with SEQ ``seq``."""

    role: Role
    programmer_nonce: bytes
    seq: int


@dataclass(frozen=True, slots=True)
class AuthenticateRequest:
    """Send AUTHENTICATE(proof), unsealed, with SEQ ``seq``."""

    proof: bytes
    seq: int


class ProgrammerSession:
    """The programmer's end of a secure session with one pump, in one role (sans-IO).

    ``serial`` is the pump the key belongs to (from the key file); a CHALLENGE from another
    serial is refused before any proof is computed. Misuse (a method called in the wrong
    state) and a pump that fails mutual authentication raise ``SessionError``.
    """

    def __init__(self, serial: str, role: Role, role_key: bytes) -> None:
        crypto.serial_bytes(serial)
        if not isinstance(role_key, bytes) or len(role_key) != crypto.KEY_LEN:
            raise ValueError(f"role_key must be {crypto.KEY_LEN} bytes")
        self._serial = serial
        self._role = Role(role)
        self._role_key = role_key
        self._state = ProgrammerState.IDLE
        self._session_keys: crypto.SessionKeys | None = None
        self._idle_timeout_s: int | None = None
        self._max_session_s: int | None = None
        self._reset()

    @property
    def state(self) -> ProgrammerState:
        return self._state

    @property
    def role(self) -> Role:
        return self._role

    @property
    def serial(self) -> str:
        return self._serial

    @property
    def next_send_seq(self) -> int:
        """The SEQ the next sealed request must carry."""
        return self._send_seq

    @property
    def last_received_seq(self) -> int:
        """The SEQ of the last sealed reply accepted in this session (0: none yet)."""
        return self._last_received_seq

    @property
    def idle_timeout_s(self) -> int | None:
        """The pump's idle timeout, from SESSION_OPENED."""
        return self._idle_timeout_s

    @property
    def max_session_s(self) -> int | None:
        """The pump's maximum session length, from SESSION_OPENED."""
        return self._max_session_s

    def start(self, programmer_nonce: bytes) -> OpenRequest:
        """Begin opening (again) with 16 fresh random bytes; any earlier session is dropped."""
        _check_nonce("programmer_nonce", programmer_nonce)
        self._reset()
        self._programmer_nonce = programmer_nonce
        self._state = ProgrammerState.AWAITING_CHALLENGE
        return OpenRequest(role=self._role, programmer_nonce=programmer_nonce, seq=1)

    def answer_challenge(self, pump_nonce: bytes, serial: str) -> AuthenticateRequest:
        """The pump's CHALLENGE arrived; returns the AUTHENTICATE to send."""
        self._expect(ProgrammerState.AWAITING_CHALLENGE, "a CHALLENGE")
        if not isinstance(pump_nonce, bytes) or len(pump_nonce) != crypto.NONCE_LEN:
            self._state = ProgrammerState.FAILED
            raise SessionError(f"pump nonce must be {crypto.NONCE_LEN} bytes", "pump_nonce")
        if serial != self._serial:
            self._state = ProgrammerState.FAILED
            raise SessionError(
                f"the pump answered as serial {serial!r}, but this key is for {self._serial!r}",
                "serial",
            )
        self._pump_nonce = pump_nonce
        self._state = ProgrammerState.AWAITING_OPENED
        proof = crypto.programmer_proof(self._role_key, self._transcript())
        return AuthenticateRequest(proof=proof, seq=HANDSHAKE_FRAMES)

    def confirm_opened(self, proof: bytes, idle_timeout_s: int, max_session_s: int) -> None:
        """SESSION_OPENED arrived: verify the pump's proof (mutual authentication).

        Raises ``SessionError`` and moves to FAILED if the proof does not verify: the peer
        does not hold this pump's role key. Only then are the session keys derived.
        """
        self._expect(ProgrammerState.AWAITING_OPENED, "SESSION_OPENED")
        if not crypto.verify_pump_proof(self._role_key, self._transcript(), proof):
            self._state = ProgrammerState.FAILED
            raise SessionError(
                "the pump's proof did not verify: it does not hold this pump's "
                f"{self._role.name.lower()} key",
                "proof",
            )
        self._session_keys = crypto.derive_session_keys(self._role_key, self._transcript())
        self._idle_timeout_s = idle_timeout_s
        self._max_session_s = max_session_s
        self._send_seq = FIRST_SEALED_SEQ
        self._last_received_seq = 0
        self._state = ProgrammerState.OPEN

    def refused(self) -> None:
        """The pump refused the opening (NAK): back to IDLE, ready to ``start`` again."""
        self._reset()
        self._state = ProgrammerState.IDLE

    def seal(self, header: bytes, plaintext: bytes) -> bytes:
        """Seal a request: ``header`` has SEALED set, REPLY clear, SEQ ``next_send_seq``."""
        keys = self._open_keys()
        if crypto.header_is_reply(header):
            raise ValueError("a programmer frame is a request: clear the REPLY flag")
        if self._send_seq > U32_MAX:
            raise SessionError("SEQ space exhausted: close this session and open a new one")
        seq = crypto.header_seq(header)
        if seq != self._send_seq:
            raise ValueError(f"header SEQ is {seq}; this session's next SEQ is {self._send_seq}")
        body = crypto.seal_under(keys.to_pump_aead, header, plaintext)
        self._send_seq += 1
        return body

    def open(self, header: bytes, body: bytes) -> bytes:
        """Open a sealed reply; its SEQ must be above the last accepted reply's.

        Raises ``SessionError`` if it does not open (forged, truncated, wrong direction), and
        ``ReplayedFrameError`` if it is a replayed, reordered or stale reply.
        """
        keys = self._open_keys()
        plaintext = crypto.open_under(keys.to_programmer_aead, header, body)
        seq = crypto.header_seq(header)
        if seq <= self._last_received_seq:
            raise ReplayedFrameError(
                f"reply SEQ {seq} is not above the last accepted SEQ {self._last_received_seq}",
                "header.seq",
            )
        self._last_received_seq = seq
        return plaintext

    def close(self) -> None:
        """Forget the session keys (after the pump acknowledged CLOSE_SESSION, or gave up)."""
        self._reset()
        self._state = ProgrammerState.CLOSED

    def _open_keys(self) -> crypto.SessionKeys:
        if self._state is not ProgrammerState.OPEN or self._session_keys is None:
            raise SessionError(f"no open session (state {self._state.value})")
        return self._session_keys

    def _expect(self, state: ProgrammerState, what: str) -> None:
        if self._state is not state:
            raise SessionError(f"unexpected {what} in state {self._state.value}")

    def _transcript(self) -> crypto.Transcript:
        return crypto.Transcript(self._serial, self._role, self._programmer_nonce, self._pump_nonce)

    def _reset(self) -> None:
        self._programmer_nonce = b""
        self._pump_nonce = b""
        self._session_keys = None
        self._idle_timeout_s = None
        self._max_session_s = None
        self._send_seq = 1
        self._last_received_seq = 0

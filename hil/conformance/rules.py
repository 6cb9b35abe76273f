"""The conformance rules: one small class per rule of docs/conformance.md.

Each rule watches the events the monitor (hil/conformance/monitor.py) derives from the
programmer's side of one link, keeps what it needs, and reports ``Violation`` values. Rules
are table-driven over opcodes and message classes, never over a list of today's messages:

- a *command* is any request in ``protocol.request_kinds.COMMAND_OPCODES`` (it carries a
  ``command_id``);
- a *stage* is any request whose opcode name starts with ``STAGE_`` and a *commit* any
  whose name starts with ``COMMIT_``;
- a *critical alarm* is any ``AlarmKind`` whose ``severity`` is CRITICAL.

So a new opcode (STAGE_PRESCRIPTION_OVERRIDE, BRIDGE_BOLUS) is judged by the rules that
fit its class as soon as protocol/ lists it.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

from protocol.device_state import AlarmKind, AlarmSeverity, Role
from protocol.messages import (
    Ack,
    AcknowledgeAlarm,
    AlarmList,
    Clock,
    Message,
    Nak,
    Opcode,
    ReadStatus,
    SetClock,
    Status,
)
from protocol.refusal import RefusalCode
from protocol.request_kinds import COMMAND_OPCODES

__all__ = [
    "CLOCK_UNSET_BEFORE_MS",
    "FRAME_LEVEL_REFUSALS",
    "LOOP_THRESHOLD",
    "RULES",
    "SESSION_GONE_REFUSALS",
    "STATUS_POLLS_PER_MINUTE",
    "FrameRef",
    "ReplyEvent",
    "RequestEvent",
    "Rule",
    "RuleInfo",
    "SessionView",
    "Severity",
    "Violation",
    "make_rules",
]


class Severity(Enum):
    """How bad a violation is for the patient (docs/conformance.md, "Severities")."""

    CRITICAL = "critical"
    """Can apply a therapy change twice or apply one the clinician did not review."""
    ERROR = "error"
    """Breaks a normative rule of docs/protocol.md or docs/security.md."""
    WARNING = "warning"
    """Wastes the link or the battery, or leaves the pump in a worse state than needed."""


FRAME_LEVEL_REFUSALS = frozenset(
    {RefusalCode.FRAME_CORRUPT, RefusalCode.REPLAY_DETECTED, RefusalCode.FRAME_NOT_AUTHENTIC}
)
"""NAKs that judge a frame, not a request (docs/protocol.md section 8, rule 6)."""

SESSION_GONE_REFUSALS = frozenset({RefusalCode.SESSION_EXPIRED, RefusalCode.NOT_AUTHENTICATED})
"""Unsealed NAKs to a sealed request: the pump has no session for it (section 8, rule 9)."""

LOOP_THRESHOLD = 3
"""The same request refused with the same code this many times in a row is a loop."""

STATUS_POLLS_PER_MINUTE = 60
"""The most READ_STATUS polls a programmer may send in any 60 s of link time. Assumed (no
labeling gives one, and the pump does not enforce it): one poll a second is already far more
than any display refreshes; every frame costs the implant radio and battery time."""

REMEMBERED = 65_536
"""The most command ids and handshake SEQs a rule remembers (the oldest are forgotten), so
a monitor on a serve that runs for months holds bounded memory; the pump's own ledger holds
256 ids (emulator/device.py)."""

CLOCK_UNSET_BEFORE_MS = 946_684_800_000
"""2000-01-01 00:00. The pump clock counts from 0 at power-on until the first SET_CLOCK
(docs/protocol.md section 10.1): a pump clock before this instant was never set."""


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What docs/conformance.md says about a rule."""

    id: str
    title: str
    section: str
    """Where the rule comes from: docs/protocol.md or docs/security.md, section."""
    severity: Severity


@dataclass(frozen=True, slots=True)
class FrameRef:
    """One frame a violation involves."""

    direction: str
    """``to_pump`` (sent by the programmer) or ``to_programmer`` (received by it)."""
    seq: int
    opcode: str
    """The opcode's name, or its hex value if unknown."""
    link_ms: int
    session: int
    """The programmer's session the frame belongs to (1, 2, ...), 0 for none."""


@dataclass(frozen=True, slots=True)
class Violation:
    rule: str
    severity: Severity
    section: str
    detail: str
    frames: tuple[FrameRef, ...]
    link_ms: int


@dataclass(slots=True)
class SessionView:
    """One session as the programmer holds it (numbered from 1 in the monitored run)."""

    index: int
    role: Role
    idle_timeout_s: int
    opened_ms: int
    proof_ok: bool | None = None
    """The pump's SESSION_OPENED proof verified (None: the monitor has no keys)."""
    closed: bool = False
    """The programmer sent CLOSE_SESSION."""
    gone: bool = False
    """The pump said it has no session for the programmer's frames (rule 9 NAKs)."""
    abandoned: bool = False
    """The programmer began a new opening after it: it gave this session up (a lost
    session is reopened, docs/protocol.md section 8 rule 7), and cannot close it any more."""
    last_sealed_seq: int = 0
    sealed_seqs: set[int] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """A request frame the programmer sent."""

    frame: FrameRef
    message: Message | None
    """Its payload, None if it could not be opened or decoded."""
    sealed: bool
    session: SessionView | None
    """The session it was sent in (the latest opened), None before any."""
    opened: bool
    """A sealed frame opened with the session's key to the pump (False: unsealed, or it did
    not open, or the monitor has no keys)."""
    raw: bytes


@dataclass(frozen=True, slots=True)
class ReplyEvent:
    """A reply frame the programmer received and would accept (it opened, and a sealed
    one's SEQ was above the last accepted one)."""

    frame: FrameRef
    message: Message
    sealed: bool
    session: SessionView | None
    request: RequestEvent | None
    """The request of the current session whose SEQ the reply's REF names, if any."""
    ref: int = 0
    """The reply's REF: the SEQ of the request frame it answers."""


Report = Callable[[str, str, Sequence[FrameRef], int], None]
"""(rule id, detail, frames, link_ms) -> None: how a rule reports a violation."""


def _fields(message: Message) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(cast(Any, message))


def _fingerprint(message: Message) -> tuple[type, tuple[object, ...]]:
    return type(message), tuple(getattr(message, f.name) for f in _fields(message))


def _without_id(message: Message) -> tuple[type, tuple[object, ...]]:
    """The request with its command id left out: a retry with a new id looks the same."""
    return type(message), tuple(
        getattr(message, f.name) for f in _fields(message) if f.name != "command_id"
    )


def _is_command(event: RequestEvent) -> bool:
    return (
        event.message is not None
        and event.message.OPCODE in COMMAND_OPCODES
        and hasattr(event.message, "command_id")
    )


def _name_starts(opcode: Opcode, prefix: str) -> bool:
    return opcode.name.startswith(prefix)


class Rule:
    """Base class: a rule sees every request and reply and the end of monitoring."""

    info: RuleInfo

    def __init__(self, report: Report) -> None:
        self._report = report

    def violate(self, detail: str, frames: Sequence[FrameRef], link_ms: int) -> None:
        self._report(self.info.id, detail, frames, link_ms)

    def on_request(self, event: RequestEvent) -> None:
        """A request the programmer sent."""

    def on_reply(self, event: ReplyEvent) -> None:
        """A reply the programmer received and accepted."""

    def on_finish(self, session: SessionView | None, link_ms: int) -> None:
        """Monitoring ends; ``session`` is the programmer's latest session."""


# -- exactly once (docs/protocol.md section 8) ---------------------------------------------


class CommandIdReuse(Rule):
    info = RuleInfo(
        "CMD-ID-REUSE",
        "a command id reused for a different request",
        "docs/protocol.md section 8, rule 3 (C1)",
        Severity.CRITICAL,
    )

    def __init__(self, report: Report) -> None:
        super().__init__(report)
        self._seen: dict[int, tuple[tuple[type, tuple[object, ...]], FrameRef]] = {}

    def on_request(self, event: RequestEvent) -> None:
        if not _is_command(event) or event.message is None:
            return
        command_id: int = getattr(event.message, "command_id")  # noqa: B009
        print_ = _fingerprint(event.message)
        earlier = self._seen.get(command_id)
        if earlier is None:
            self._seen[command_id] = (print_, event.frame)
            if len(self._seen) > REMEMBERED:
                del self._seen[next(iter(self._seen))]  # the oldest id
        elif earlier[0] != print_:
            self.violate(
                f"command id {command_id} was first sent on {earlier[1].opcode} "
                f"(SEQ {earlier[1].seq}) and is now sent on a different "
                f"{event.frame.opcode}; a command id names one intended action",
                (earlier[1], event.frame),
                event.frame.link_ms,
            )

    def on_reply(self, event: ReplyEvent) -> None:
        message = event.message
        if (
            isinstance(message, Nak)
            and message.code is RefusalCode.COMMAND_ID_CONFLICT
            and event.request is not None
            and event.request.message is not None
        ):
            command_id = getattr(event.request.message, "command_id", None)
            if command_id is not None and command_id in self._seen:
                first = self._seen[command_id]
                if first[0] != _fingerprint(event.request.message):
                    return  # already reported when the request was sent
            self.violate(
                f"the pump refused COMMAND_ID_CONFLICT: command id {command_id} was applied "
                "earlier (before this monitor started) to a different request",
                (event.request.frame, event.frame),
                event.frame.link_ms,
            )


@dataclass(slots=True)
class _Command:
    """A command as the programmer sent it, until its outcome reached the programmer."""

    event: RequestEvent
    command_id: int
    fingerprint: tuple[type, tuple[object, ...]]
    frames: list[FrameRef]
    last: tuple[int, int]
    """(session, SEQ) of the frame sent last: only its NAK is the final word (rule 8)."""
    seqs: set[tuple[int, int]]
    answered: bool = False
    """The programmer received the command's own answer (an ACK, or the final NAK)."""
    status_read: bool = False
    """The programmer received a STATUS after the command was sent."""

    @property
    def resolved(self) -> bool:
        return self.answered or self.status_read


@dataclass(slots=True)
class _Suspect:
    """A command sent while an earlier one's outcome was unknown to the programmer."""

    lost: _Command
    next_: _Command
    same_request: bool


class _LostReplies:
    """Shared tracking for the two lost-reply rules: which command's outcome the programmer
    does not know yet, and what it sends next (docs/protocol.md section 8, rules 5-8).

    A command is *resolved* for the programmer when it received an ACK naming any frame of
    the command, a sealed NAK (not a frame-level one) naming the frame sent last, or any
    STATUS after the command's first frame. A command sent while the previous one is
    unresolved is a *suspect*. It becomes a violation when the programmer receives the
    answer to the new command, or a STATUS, or monitoring ends, while the old one's own
    answer has still not arrived; a programmer that pipelines and receives the first
    answer before the second is not blamed.
    """

    def __init__(self) -> None:
        self.current: _Command | None = None
        self.suspects: list[_Suspect] = []
        self.confirmed: list[_Suspect] = []

    def on_request(self, event: RequestEvent) -> None:
        message = event.message
        if not _is_command(event) or message is None or event.session is None:
            return
        command_id: int = getattr(message, "command_id")  # noqa: B009
        key = (event.session.index, event.frame.seq)
        current = self.current
        print_ = _fingerprint(message)
        if (
            current is not None
            and current.command_id == command_id
            and current.fingerprint == print_
        ):
            current.frames.append(event.frame)
            current.last = key
            current.seqs.add(key)
            return
        command = _Command(event, command_id, print_, [event.frame], key, {key})
        if current is not None and not current.resolved and current.event.message is not None:
            same = _without_id(current.event.message) == _without_id(message)
            self.suspects.append(_Suspect(current, command, same))
        self.current = command

    def on_reply(self, event: ReplyEvent) -> None:
        message = event.message
        ref_key = (
            (event.session.index, event.request.frame.seq)
            if event.session is not None and event.request is not None
            else None
        )
        commands = [s.lost for s in self.suspects]
        if self.current is not None:
            commands.append(self.current)
        for command in commands:
            if isinstance(message, Status):
                command.status_read = True
            elif (isinstance(message, Ack) and ref_key in command.seqs) or (
                isinstance(message, Nak)
                and event.sealed
                and message.code not in FRAME_LEVEL_REFUSALS
                and ref_key == command.last
            ):
                command.answered = True
        still: list[_Suspect] = []
        for suspect in self.suspects:
            if suspect.lost.answered:
                continue  # pipelined: its own answer came
            if isinstance(message, Status) or ref_key in suspect.next_.seqs:
                self.confirmed.append(suspect)
            else:
                still.append(suspect)
        self.suspects = still

    def on_finish(self) -> None:
        self.confirmed.extend(s for s in self.suspects if not s.lost.answered)
        self.suspects = []

    def take(self, *, same_request: bool) -> list[_Suspect]:
        taken = [s for s in self.confirmed if s.same_request is same_request]
        self.confirmed = [s for s in self.confirmed if s.same_request is not same_request]
        return taken


class _LostReplyRule(Rule, ABC):
    """Base of the two rules fed by one ``_LostReplies`` tracker."""

    same_request: bool

    def __init__(self, report: Report, tracker: _LostReplies, *, drives: bool) -> None:
        super().__init__(report)
        self._tracker = tracker
        self._drives = drives
        """Only one of the two rules feeds the shared tracker."""

    def on_request(self, event: RequestEvent) -> None:
        if self._drives:
            self._tracker.on_request(event)

    def on_reply(self, event: ReplyEvent) -> None:
        if self._drives:
            self._tracker.on_reply(event)
        self._emit(event.frame.link_ms)

    def on_finish(self, session: SessionView | None, link_ms: int) -> None:
        if self._drives:
            self._tracker.on_finish()
        self._emit(link_ms)

    def _emit(self, link_ms: int) -> None:
        for suspect in self._tracker.take(same_request=self.same_request):
            self.violate(
                self._detail(suspect), (*suspect.lost.frames, *suspect.next_.frames), link_ms
            )

    @abstractmethod
    def _detail(self, suspect: _Suspect) -> str:
        """What this rule says about a suspect pair (lost request, what came next)."""


class RetryWithNewId(_LostReplyRule):
    info = RuleInfo(
        "RETRY-NEW-ID",
        "a retry after a lost reply sent with a new command id (the double-dose pattern)",
        "docs/protocol.md section 8, rules 5 and 7 (C1)",
        Severity.CRITICAL,
    )
    same_request = True

    def _detail(self, suspect: _Suspect) -> str:
        return (
            f"{suspect.lost.frames[0].opcode} with command id {suspect.lost.command_id} got no "
            f"answer the programmer received, and the same request was sent again with a new "
            f"command id {suspect.next_.command_id}: if the first was applied, the pump "
            "applies it twice. A retry keeps the command id; a lost reply is resolved by "
            "READ_STATUS"
        )


class LostReplyWithoutStatus(_LostReplyRule):
    info = RuleInfo(
        "LOST-REPLY-NO-STATUS",
        'a lost reply "resolved" without reading status',
        "docs/protocol.md section 8, rule 7 (C1)",
        Severity.ERROR,
    )
    same_request = False

    def _detail(self, suspect: _Suspect) -> str:
        return (
            f"{suspect.lost.frames[0].opcode} with command id {suspect.lost.command_id} got no "
            f"answer the programmer received, and the next command "
            f"({suspect.next_.frames[0].opcode}, id {suspect.next_.command_id}) was sent "
            "before a STATUS read showed whether it was applied"
        )


# -- two-phase programming (docs/protocol.md section 10.2) ---------------------------------


class _Staging:
    """Per session: did the programmer receive a review (PRESCRIPTION_STAGED), and was the
    latest STAGE refused?"""

    def __init__(self) -> None:
        self.session = -1
        self.reviewed = False
        self.last_refused: RequestEvent | None = None
        self.commit_ids: set[int] = set()
        self.digests: set[bytes] = set()
        """Every digest a review (PRESCRIPTION_STAGED) showed in the run."""

    def for_session(self, session: SessionView) -> _Staging:
        if session.index != self.session:
            self.session = session.index
            self.reviewed = False
            self.last_refused = None
            self.commit_ids = set()
        return self

    def on_reply(self, event: ReplyEvent) -> None:
        if event.session is None or event.request is None or event.request.message is None:
            return
        self.for_session(event.session)
        opcode = event.request.message.OPCODE
        message = event.message
        if _name_starts(opcode, "STAGE_"):
            if isinstance(message, Nak) and message.code not in FRAME_LEVEL_REFUSALS:
                self.last_refused = event.request
                self.reviewed = False
            elif not isinstance(message, Nak):
                self.reviewed = True
                self.last_refused = None
                digest = getattr(message, "digest", None)
                if isinstance(digest, bytes):
                    self.digests.add(digest)
        elif _name_starts(opcode, "COMMIT_") and isinstance(message, Ack):
            self.reviewed = False  # the stage is used up


class _CommitRule(Rule, ABC):
    def __init__(self, report: Report, staging: _Staging, *, drives: bool) -> None:
        super().__init__(report)
        self._staging = staging
        self._drives = drives
        """The rule that feeds the shared staging view (replies) and remembers commit ids
        (requests, after both rules judged)."""

    def on_reply(self, event: ReplyEvent) -> None:
        if self._drives:
            self._staging.on_reply(event)

    def on_request(self, event: RequestEvent) -> None:
        message = event.message
        if message is None or event.session is None or not _name_starts(message.OPCODE, "COMMIT_"):
            return
        staging = self._staging.for_session(event.session)
        command_id = getattr(message, "command_id", None)
        if isinstance(command_id, int) and command_id in staging.commit_ids:
            return  # a retry of a commit already judged
        self._judge(event, staging)
        if self._drives and isinstance(command_id, int):
            staging.commit_ids.add(command_id)

    @abstractmethod
    def _judge(self, event: RequestEvent, staging: _Staging) -> None:
        """Judge a first COMMIT (not a retry of one) against the session's staging."""


class CommitWithoutStage(_CommitRule):
    info = RuleInfo(
        "COMMIT-WITHOUT-STAGE",
        "COMMIT without a reviewed STAGE in the same session",
        "docs/protocol.md section 10.2 (C5)",
        Severity.CRITICAL,
    )

    def _judge(self, event: RequestEvent, staging: _Staging) -> None:
        # A digest reviewed in an earlier session the programmer lost (and reopened under
        # the hood) is refused NOTHING_STAGED by the pump (C5): harmless, not blamed.
        if getattr(event.message, "digest", None) in staging.digests:
            return
        if staging.last_refused is None and not staging.reviewed:
            self.violate(
                f"{event.frame.opcode} was sent in session {event.frame.session} before the "
                "programmer received a PRESCRIPTION_STAGED in that session: nothing was "
                "reviewed, so the digest cannot be the one the clinician saw",
                (event.frame,),
                event.frame.link_ms,
            )


class CommitAfterRefusal(_CommitRule):
    info = RuleInfo(
        "COMMIT-AFTER-REFUSAL",
        "COMMIT after the review showed a refusal",
        "docs/protocol.md sections 7 (STAGE_PRESCRIPTION) and 10.2 (C5)",
        Severity.CRITICAL,
    )

    def _judge(self, event: RequestEvent, staging: _Staging) -> None:
        refused = staging.last_refused
        if refused is not None:
            self.violate(
                f"{event.frame.opcode} was sent after the latest {refused.frame.opcode} "
                f"(SEQ {refused.frame.seq}) was refused: it can only commit an older stage "
                "or nothing, never the prescription the clinician just reviewed",
                (refused.frame, event.frame),
                event.frame.link_ms,
            )


# -- refusals --------------------------------------------------------------------------------


class RefusedLoop(Rule):
    info = RuleInfo(
        "REFUSED-LOOP",
        "a refused request resent unchanged in a loop",
        "docs/protocol.md section 12 (a NAK always means nothing was applied)",
        Severity.WARNING,
    )

    def __init__(self, report: Report) -> None:
        super().__init__(report)
        self._key: tuple[type, tuple[object, ...]] | None = None
        self._code: RefusalCode | None = None
        self._frames: list[FrameRef] = []
        self._reported = False
        self._pending: RequestEvent | None = None

    def on_request(self, event: RequestEvent) -> None:
        if event.message is None:
            return
        key = _without_id(event.message)
        if key != self._key:
            self._key, self._code, self._frames, self._reported = key, None, [], False
        self._pending = event

    def on_reply(self, event: ReplyEvent) -> None:
        message = event.message
        if event.request is None or event.request is not self._pending:
            return
        if not isinstance(message, Nak) or not event.sealed or message.code in FRAME_LEVEL_REFUSALS:
            if not isinstance(message, Nak):
                self._code, self._frames = None, []
            return
        if message.code is not self._code:
            self._code, self._frames, self._reported = message.code, [], False
        self._frames.append(event.request.frame)
        if len(self._frames) >= LOOP_THRESHOLD and not self._reported:
            self._reported = True
            self.violate(
                f"{event.request.frame.opcode} was refused {message.code.name} "
                f"{len(self._frames)} times in a row and sent again unchanged each time: the "
                "refusal names what to change",
                tuple(self._frames),
                event.frame.link_ms,
            )


class NakIgnored(Rule):
    info = RuleInfo(
        "NAK-IGNORED",
        "a NAK ignored: sealed frames sent on in a session the pump said is gone",
        "docs/protocol.md section 8, rule 9; docs/security.md section 6",
        Severity.ERROR,
    )

    def __init__(self, report: Report) -> None:
        super().__init__(report)
        self._nak: dict[int, FrameRef] = {}
        self._reported: set[int] = set()

    def on_reply(self, event: ReplyEvent) -> None:
        message = event.message
        if (
            isinstance(message, Nak)
            and not event.sealed
            and message.code in SESSION_GONE_REFUSALS
            and event.session is not None
            and event.request is not None
            and event.request.sealed
            and event.request.frame.seq == event.session.last_sealed_seq
        ):
            # Only a NAK to the frame in flight: one naming an older frame may be a late
            # copy, which the reference programmer rightly ignores.
            self._nak.setdefault(event.session.index, event.frame)

    def on_request(self, event: RequestEvent) -> None:
        session = event.session
        if session is None or not event.sealed or not event.opened:
            return
        nak = self._nak.get(session.index)
        if nak is not None and session.index not in self._reported:
            self._reported.add(session.index)
            self.violate(
                f"the pump answered {nak.opcode} SESSION_EXPIRED/NOT_AUTHENTICATED (SEQ "
                f"{nak.seq}): it has no session for these frames; the programmer kept sending "
                f"sealed frames in session {session.index} instead of opening a new one",
                (nak, event.frame),
                event.frame.link_ms,
            )


# -- alarms and clock --------------------------------------------------------------------------


class _PerSession:
    def __init__(self) -> None:
        self.index = -1

    def fresh(self, session: SessionView) -> bool:
        if session.index != self.index:
            self.index = session.index
            return True
        return False


class CriticalAlarmUnread(Rule):
    info = RuleInfo(
        "ALARM-UNREAD",
        "a session closed with an unacknowledged critical alarm never read",
        "docs/protocol.md sections 7 (STATUS, ALARM_LIST, ACKNOWLEDGE_ALARM) and 9",
        Severity.ERROR,
    )

    def __init__(self, report: Report) -> None:
        super().__init__(report)
        self._session = _PerSession()
        self._active: dict[AlarmKind, FrameRef] = {}
        self._read = False

    def _track(self, session: SessionView) -> None:
        if self._session.fresh(session):
            self._active, self._read = {}, False

    def on_reply(self, event: ReplyEvent) -> None:
        if event.session is None:
            return
        self._track(event.session)
        message = event.message
        if isinstance(message, Status):
            for kind in message.active_alarms:
                if kind.severity is AlarmSeverity.CRITICAL:
                    self._active.setdefault(kind, event.frame)
            for kind in list(self._active):
                if kind not in message.active_alarms:
                    del self._active[kind]
        elif isinstance(message, AlarmList):
            self._read = True
        elif (
            isinstance(message, Ack)
            and event.request is not None
            and isinstance(event.request.message, AcknowledgeAlarm)
        ):
            self._active.pop(event.request.message.alarm, None)

    def on_request(self, event: RequestEvent) -> None:
        session = event.session
        if session is None or event.message is None or event.message.OPCODE != Opcode.CLOSE_SESSION:
            return
        self._track(session)
        if session.role is not Role.CLINICIAN or self._read or not self._active:
            return
        kinds = ", ".join(kind.name for kind in sorted(self._active))
        self.violate(
            f"STATUS showed the critical alarm(s) {kinds} active, and the clinician session "
            f"{session.index} was closed without reading ALARM_LIST",
            (*self._active.values(), event.frame),
            event.frame.link_ms,
        )


class ClockUnsetAfterReset(Rule):
    info = RuleInfo(
        "CLOCK-UNSET",
        "the pump clock left unset after a reset",
        "docs/protocol.md section 10.1 (the clock counts from 0 at power-on until SET_CLOCK)",
        Severity.ERROR,
    )

    def __init__(self, report: Report) -> None:
        super().__init__(report)
        self._unset: FrameRef | None = None
        """The first reply of a clinician session that showed the clock unset, while no
        SET_CLOCK was sent after it."""

    def on_reply(self, event: ReplyEvent) -> None:
        session = event.session
        message = event.message
        if session is None or session.role is not Role.CLINICIAN:
            return
        if isinstance(message, Status | Clock):
            if message.pump_time_ms < CLOCK_UNSET_BEFORE_MS:
                self._unset = self._unset or event.frame
            else:
                self._unset = None

    def on_request(self, event: RequestEvent) -> None:
        if isinstance(event.message, SetClock):
            self._unset = None  # whether it applied is the lost-reply rules' business

    def on_finish(self, session: SessionView | None, link_ms: int) -> None:
        if self._unset is not None:
            self.violate(
                f"a clinician session read the pump clock unset (before 2000-01-01, reply "
                f"SEQ {self._unset.seq} in session {self._unset.session}: it counts from 0 "
                "since power-on or a reset) and no SET_CLOCK followed before monitoring "
                "ended; the pump stamps its log and runs FLEX schedules on that clock",
                (self._unset,),
                link_ms,
            )


# -- session layer (docs/security.md) ----------------------------------------------------------


class SeqMisuse(Rule):
    info = RuleInfo(
        "SEQ-MISUSE",
        "SEQ misuse: SEQ 0 or REF not 0 in a request, a sealed SEQ not above the last or "
        "below 3, or a handshake SEQ reused",
        "docs/protocol.md sections 2 and 4.1; docs/security.md section 5",
        Severity.ERROR,
    )

    def __init__(self, report: Report) -> None:
        super().__init__(report)
        self._handshake: dict[int, tuple[bytes, FrameRef]] = {}
        self._answered: set[int] = set()
        """Handshake SEQs some reply named: their attempt cannot be answered late any more
        in a way the programmer would mistake (a new programmer instance, a new ctl run,
        starts its numbering again, and that is harmless once the earlier frame was
        answered)."""

    def on_reply(self, event: ReplyEvent) -> None:
        if not event.sealed and event.ref in self._handshake:
            self._answered.add(event.ref)

    def on_request(self, event: RequestEvent) -> None:
        frame = event.frame
        if frame.seq == 0:
            self.violate("a request with SEQ 0, which is never sent", (frame,), frame.link_ms)
            return
        ref = int.from_bytes(event.raw[8:12], "little")
        if ref != 0:
            self.violate(
                f"a request with REF {ref}; a request's REF is 0 (the pump discards the frame "
                "as FRAME_CORRUPT)",
                (frame,),
                frame.link_ms,
            )
            return
        if not event.sealed:
            if frame.opcode in ("OPEN_SESSION", "AUTHENTICATE"):
                earlier = self._handshake.get(frame.seq)
                if (
                    earlier is not None
                    and earlier[0] != event.raw
                    and frame.seq not in self._answered
                ):
                    self.violate(
                        f"handshake SEQ {frame.seq} was used before by another handshake "
                        f"frame ({earlier[1].opcode}); every handshake frame gets a SEQ no "
                        "earlier one used, or a late answer is taken for the new attempt's",
                        (earlier[1], frame),
                        frame.link_ms,
                    )
                if earlier is None or earlier[0] != event.raw:
                    self._answered.discard(frame.seq)
                self._handshake[frame.seq] = (event.raw, frame)
                if len(self._handshake) > REMEMBERED:
                    oldest = next(iter(self._handshake))
                    del self._handshake[oldest]
                    self._answered.discard(oldest)
            return
        session = event.session
        if session is None or not event.opened:
            return
        if frame.seq < 3:
            self.violate(
                f"sealed frame in session {session.index} has SEQ {frame.seq}; "
                "sealed frames are numbered from 3",
                (frame,),
                frame.link_ms,
            )
        elif frame.seq <= session.last_sealed_seq:
            self.violate(
                f"sealed SEQ {frame.seq} is not above the last one sent in session "
                f"{session.index} ({session.last_sealed_seq}); a retry is a new frame with the "
                "next SEQ (the pump refuses this one REPLAY_DETECTED)",
                (frame,),
                frame.link_ms,
            )


class SealingMisuse(Rule):
    info = RuleInfo(
        "SEALING-MISUSE",
        "sealing misuse: a request unsealed that must be sealed, a handshake frame sealed, "
        "or a sealed frame that does not open with the session key",
        "docs/protocol.md section 4; docs/security.md section 4",
        Severity.ERROR,
    )

    def on_request(self, event: RequestEvent) -> None:
        frame = event.frame
        handshake = frame.opcode in ("OPEN_SESSION", "AUTHENTICATE")
        if handshake and event.sealed:
            self.violate(
                f"{frame.opcode} was sent sealed; the handshake is never sealed",
                (frame,),
                frame.link_ms,
            )
        elif not handshake and not event.sealed:
            self.violate(
                f"{frame.opcode} was sent unsealed; only OPEN_SESSION and AUTHENTICATE travel "
                "unsealed (the pump refuses it NOT_AUTHENTICATED)",
                (frame,),
                frame.link_ms,
            )
        elif (
            event.sealed
            and not handshake
            and event.session is not None
            and event.session.proof_ok is not None
            and not event.opened
        ):
            self.violate(
                f"sealed {frame.opcode} SEQ {frame.seq} does not open with session "
                f"{event.session.index}'s key to the pump (wrong key, nonce or associated data)",
                (frame,),
                frame.link_ms,
            )


class PumpProofUnchecked(Rule):
    info = RuleInfo(
        "PUMP-PROOF-UNCHECKED",
        "a session used although the pump's proof did not verify",
        "docs/security.md section 2, step 4; docs/protocol.md section 4.1, step 4",
        Severity.CRITICAL,
    )

    def __init__(self, report: Report) -> None:
        super().__init__(report)
        self._reported: set[int] = set()

    def on_request(self, event: RequestEvent) -> None:
        session = event.session
        if (
            session is None
            or session.proof_ok is not False
            or not event.sealed
            or session.index in self._reported
        ):
            return
        self._reported.add(session.index)
        self.violate(
            f"the SESSION_OPENED of session {session.index} carried a pump proof that does not "
            "verify (an impostor or a forged reply), and the programmer sent it a sealed "
            f"{event.frame.opcode}",
            (event.frame,),
            event.frame.link_ms,
        )


class SessionLeftOpen(Rule):
    info = RuleInfo(
        "SESSION-LEFT-OPEN",
        "a session left open: the programmer's last session was never closed",
        "docs/protocol.md section 7 (CLOSE_SESSION); docs/security.md section 6",
        Severity.WARNING,
    )

    def on_finish(self, session: SessionView | None, link_ms: int) -> None:
        if session is None or session.closed or session.gone or session.abandoned:
            return
        if session.proof_ok is None:
            return  # no keys: a sealed CLOSE_SESSION cannot be told from any other frame
        self.violate(
            f"session {session.index} (opened at link time {session.opened_ms} ms) was still "
            "open when monitoring ended, and the programmer never sent CLOSE_SESSION: the pump "
            "stays busy for every other programmer until its idle timeout",
            (),
            link_ms,
        )


class PollingTooFast(Rule):
    info = RuleInfo(
        "POLL-TOO-FAST",
        f"polling faster than {STATUS_POLLS_PER_MINUTE} READ_STATUS a minute",
        'docs/conformance.md, "Polling" (an assumed limit)',
        Severity.WARNING,
    )

    def __init__(self, report: Report, per_minute: int = STATUS_POLLS_PER_MINUTE) -> None:
        super().__init__(report)
        self._per_minute = per_minute
        self._polls: deque[FrameRef] = deque()
        self._answered = True
        self._reported = False

    def on_request(self, event: RequestEvent) -> None:
        if not isinstance(event.message, ReadStatus):
            return
        if not self._answered:
            return  # a retry of an unanswered read is not a new poll
        self._answered = False
        polls = self._polls
        polls.append(event.frame)
        while polls and event.frame.link_ms - polls[0].link_ms >= 60_000:
            polls.popleft()
        if len(polls) > self._per_minute and not self._reported:
            self._reported = True
            self.violate(
                f"{len(polls)} READ_STATUS polls within 60 s of link time (the most allowed is "
                f"{self._per_minute})",
                (polls[0], event.frame),
                event.frame.link_ms,
            )

    def on_reply(self, event: ReplyEvent) -> None:
        if isinstance(event.message, Status):
            self._answered = True


def make_rules(report: Report) -> list[Rule]:
    """One instance of every rule, in the order of docs/conformance.md."""
    lost = _LostReplies()
    staging = _Staging()
    return [
        CommandIdReuse(report),
        RetryWithNewId(report, lost, drives=True),
        LostReplyWithoutStatus(report, lost, drives=False),
        CommitWithoutStage(report, staging, drives=False),
        CommitAfterRefusal(report, staging, drives=True),
        RefusedLoop(report),
        NakIgnored(report),
        CriticalAlarmUnread(report),
        SeqMisuse(report),
        SealingMisuse(report),
        PumpProofUnchecked(report),
        SessionLeftOpen(report),
        PollingTooFast(report),
        ClockUnsetAfterReset(report),
    ]


RULES: tuple[RuleInfo, ...] = tuple(rule.info for rule in make_rules(lambda *_: None))
"""Every rule, in the order of docs/conformance.md."""

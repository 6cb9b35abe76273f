"""Replay: play the programmer side of a capture against a pump and compare its answers with
the recording (docs/capture.md, "Replaying a capture against a pump").

Three parts, the first and last pure:

- ``recorded_script(records, keys)`` reads a capture (sealed frames opened with the pump's
  key file, as ``pumpemu decode --keys`` does) into a script: the sessions the programmer
  opened (role), each request it sent in them with the recorded answer (the reply whose REF
  is the request's SEQ), and the bench's doings between them that a control API can redo
  (pump time advanced, plant faults injected: serve's capture notes);
- ``play(script, target)`` runs the script against a pump: a fresh session per recorded
  session, new nonces and counters, the same requests with the same command ids; with a
  control API, pump time and faults follow the recording first;
- ``compare(recorded, replayed)`` lists the differences between two answers after the
  documented normalisations (``INSTANT_FIELDS``, ``normalise``).
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from emulator import faults as fault_types
from hil.capture import CaptureRecord, fields_of
from hil.fault_builders import FAULTS, build_fault
from hil.programmer.core import Result
from protocol import crypto, wire
from protocol.codec import Frame, decode_payload, parse_frame
from protocol.device_state import Role
from protocol.errors import ProtocolError, SessionError
from protocol.keys import PumpKeys
from protocol.messages import (
    Challenge,
    CloseSession,
    Message,
    Nak,
    OpenSession,
    SessionOpened,
)
from protocol.refusal import RefusalCode

__all__ = [
    "INSTANT_FIELDS",
    "SESSION_DEPENDENT_LIMITS",
    "Difference",
    "Exchange",
    "FaultStep",
    "Outcome",
    "ReplayTarget",
    "Script",
    "Session",
    "TimeStep",
    "compare",
    "normalise",
    "parse_fault_note",
    "play",
    "recorded_script",
]

INSTANT_FIELDS = frozenset(
    {"pump_time_ms", "since_ms", "time_ms", "low_reservoir_at_ms", "empty_at_ms"}
)
"""Fields that are instants on the pump clock (docs/protocol.md section 1), compared only
with ``exact_times``: a pump started at another time answers them differently."""

INSTANT_ACK_REQUESTS = frozenset(
    {"SET_CLOCK", "CLINICIAN_BOLUS", "PATIENT_BOLUS_REQUEST", "PRIMING_BOLUS"}
)
"""Requests whose ACK ``value`` is an instant (docs/protocol.md section 8.1)."""

SESSION_DEPENDENT_LIMITS = frozenset(
    {RefusalCode.SESSION_BUSY.name, RefusalCode.LOCKED_OUT.name, RefusalCode.REPLAY_DETECTED.name}
)
"""NAK codes whose ``limit`` counts link-time seconds or SEQs of one session, never compared."""

NORMALISED = "<normalised>"

_FAULT_NOTE = re.compile(r"^fault injected: (?P<fault>[A-Za-z]+\(.*\))$")


@dataclasses.dataclass(frozen=True, slots=True)
class Exchange:
    """One request the programmer sent, and the answer the recording holds for it."""

    line: int
    """The request's capture line."""
    sim_ms: int | None
    request: Message
    recorded: Message | None
    """The recorded answer (None when the recording holds none: lost, or cut short)."""
    recorded_line: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class TimeStep:
    """The bench moved pump time (a serve note); replayed through the control API."""

    line: int
    sim_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class FaultStep:
    """The bench injected a plant fault (serve's ``fault injected: ...`` note)."""

    line: int
    sim_ms: int | None
    name: str
    """The control API's fault name (``pumpemu fault --help``)."""
    params: Mapping[str, Any]


@dataclasses.dataclass(slots=True)
class Session:
    """One session the programmer opened, in order."""

    line: int
    role: Role
    steps: list[Exchange | TimeStep | FaultStep] = dataclasses.field(default_factory=list)
    bench_only: bool = False
    """Bench steps between sessions (or before the first): no session is opened for them."""

    @property
    def exchanges(self) -> list[Exchange]:
        return [step for step in self.steps if isinstance(step, Exchange)]


@dataclasses.dataclass(slots=True)
class Script:
    sessions: list[Session] = dataclasses.field(default_factory=list)
    unopened: int = 0
    """Sealed requests that could not be opened (no handshake before them, wrong keys)."""
    first_sim_ms: int | None = None


def parse_fault_note(text: str) -> tuple[str, dict[str, Any]] | None:
    """(control fault name, params) for serve's ``fault injected: MotorStall(...)`` note,
    or None if the note is something else or names a fault the control API cannot inject."""
    match = _FAULT_NOTE.match(text.strip())
    if match is None:
        return None
    try:
        tree = ast.parse(match["fault"], mode="eval")
    except SyntaxError:
        return None
    call = tree.body
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.args:
        return None
    cls = getattr(fault_types, call.func.id, None)
    if not isinstance(cls, type) or not dataclasses.is_dataclass(cls):
        return None
    try:
        params = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
        fault = cls(**params)
    except (ValueError, TypeError):
        return None
    given = {key: value for key, value in params.items() if value is not None}
    for name in FAULTS:
        try:
            if build_fault(name, given) == fault:
                return name, given
        except (ValueError, TypeError, KeyError):
            continue
    return None


def recorded_script(records: Iterable[CaptureRecord], keys: PumpKeys) -> Script:
    """The programmer's side of a capture, session by session, with the recorded answers.

    Sealed frames are opened as ``pumpemu decode --keys`` opens them (docs/capture.md,
    "Opening sealed frames"): each writer's handshakes in clear give the session keys."""
    reader = _ScriptReader(keys)
    for record in records:
        reader.add(record)
    reader.script.sessions = [s for s in reader.script.sessions if s.steps]
    return reader.script


@dataclasses.dataclass(slots=True)
class _Handshake:
    """One writer's view of the handshake in progress and its current session's keys."""

    opening: OpenSession | None = None
    transcript: crypto.Transcript | None = None
    keys: crypto.SessionKeys | None = None


class _ScriptReader:
    """Builds a Script record by record: sessions start at SESSION_OPENED (in the role of
    the OPEN_SESSION before it) and end at the programmer's CLOSE_SESSION; answers are
    matched to requests by REF."""

    def __init__(self, keys: PumpKeys) -> None:
        self.script = Script()
        self._keys = keys
        self._handshakes: dict[str, _Handshake] = {}
        self._session: Session | None = None
        self._pending: dict[int, int] = {}
        """Request SEQ -> its index in the session's steps, while its answer is awaited."""

    def add(self, record: CaptureRecord) -> None:
        if record.kind == "capture":
            self._handshakes.pop(record.source, None)  # a new run: its own handshakes
            return
        if self.script.first_sim_ms is None:
            self.script.first_sim_ms = record.sim_ms
        if record.kind == "note":
            self._bench(_bench_step(record))
        elif record.kind == "frame":
            self._frame(record)

    def _bench(self, step: TimeStep | FaultStep | None) -> None:
        if step is None:
            return
        if self._session is None:
            self._session = Session(step.line, Role.CLINICIAN, bench_only=True)
            self.script.sessions.append(self._session)
        self._session.steps.append(step)

    def _frame(self, record: CaptureRecord) -> None:
        try:
            frame = parse_frame(record.data)
        except ProtocolError:
            return
        handshake = self._handshakes.setdefault(record.source, _Handshake())
        if frame.is_sealed:
            message = self._open(handshake, record.data)
            if message is None:
                if not frame.is_reply:
                    self.script.unopened += 1
                return
            if self._session is not None and not self._session.bench_only:
                self._sealed(self._session, message, frame, record)
            return
        try:
            message = decode_payload(frame.opcode, frame.body)
        except ProtocolError:
            return
        if isinstance(message, OpenSession):
            handshake.opening = message
            handshake.transcript = None
        elif isinstance(message, Challenge) and handshake.opening is not None:
            opening = handshake.opening
            handshake.transcript = crypto.Transcript(
                message.serial, opening.role, opening.programmer_nonce, message.pump_nonce
            )
        elif isinstance(message, SessionOpened) and handshake.transcript is not None:
            transcript = handshake.transcript
            handshake.keys = crypto.derive_session_keys(
                self._keys.key_for(transcript.role), transcript
            )
            handshake.opening = handshake.transcript = None
            self._session = Session(record.line, transcript.role)
            self.script.sessions.append(self._session)
            self._pending = {}

    @staticmethod
    def _open(handshake: _Handshake, data: bytes) -> Message | None:
        if handshake.keys is None:
            return None
        header, body = data[: wire.HEADER_LEN], data[wire.HEADER_LEN : -wire.CRC_LEN]
        reply = bool(header[3] & wire.FLAG_REPLY)
        key = handshake.keys.to_programmer if reply else handshake.keys.to_pump
        try:
            return decode_payload(header[12], crypto.open(key, header, body))
        except (SessionError, ProtocolError):
            return None

    def _sealed(
        self, session: Session, message: Message, frame: Frame, record: CaptureRecord
    ) -> None:
        if not frame.is_reply:
            if isinstance(message, CloseSession):
                self._session = None  # the replaying programmer closes its own sessions
                return
            self._pending[frame.seq] = len(session.steps)
            session.steps.append(Exchange(record.line, record.sim_ms, message, None))
            return
        index = self._pending.pop(frame.ref, None)
        if index is None:
            return
        step = session.steps[index]
        assert isinstance(step, Exchange)
        session.steps[index] = dataclasses.replace(
            step, recorded=message, recorded_line=record.line
        )


def _bench_step(record: CaptureRecord) -> TimeStep | FaultStep | None:
    text = record.text or ""
    if text.startswith("time advanced ") and record.sim_ms is not None:
        return TimeStep(record.line, record.sim_ms)
    fault = parse_fault_note(text)
    if fault is not None:
        return FaultStep(record.line, record.sim_ms, fault[0], fault[1])
    return None


# -- comparing ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Difference:
    """One field that differs: its dotted path, the recorded value and the replayed one."""

    path: str
    recorded: Any
    replayed: Any


def normalise(message: Message | None, *, exact_times: bool = False) -> Any:
    """The message's fields (``fields_of``) with the values a replay cannot reproduce
    replaced by a marker: instants (unless ``exact_times``) and session-dependent NAK
    limits."""
    if message is None:
        return None
    fields = fields_of(message)
    if isinstance(message, Nak) and fields["code"] in SESSION_DEPENDENT_LIMITS:
        fields["limit"] = NORMALISED
    if exact_times:
        return fields
    if fields["type"] == "Ack" and fields["request"] in INSTANT_ACK_REQUESTS:
        fields["value"] = NORMALISED
    return _without_instants(fields)


def _without_instants(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: NORMALISED if key in INSTANT_FIELDS else _without_instants(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_without_instants(item) for item in value]
    return value


def compare(
    recorded: Message | None, replayed: Message | None, *, exact_times: bool = False
) -> list[Difference]:
    """The differences between a recorded answer and the replayed one (empty: the same)."""
    return list(
        _diff(
            "",
            normalise(recorded, exact_times=exact_times),
            normalise(replayed, exact_times=exact_times),
        )
    )


def _diff(path: str, a: Any, b: Any) -> Iterator[Difference]:
    if isinstance(a, dict) and isinstance(b, dict) and a.get("type") == b.get("type"):
        for key in dict.fromkeys([*a, *b]):
            yield from _diff(f"{path}.{key}" if path else key, a.get(key), b.get(key))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _diff(f"{path}[{n}]", x, y)
    elif a != b:
        if isinstance(a, dict) and isinstance(b, dict):
            yield Difference(f"{path}.type" if path else "type", a.get("type"), b.get("type"))
        else:
            yield Difference(path or "answer", a, b)


# -- playing --------------------------------------------------------------------------------


class ReplayTarget(Protocol):
    """The pump being replayed against: sessions through a programmer, and optionally the
    bench (a control API)."""

    def open_session(self, role: Role) -> Callable[[Message], Result]:
        """Start a fresh session in ``role``; returns the function that sends one request."""
        ...

    def close_session(self) -> None: ...

    def advance(self, ms: int) -> None:
        """Move pump time forward (only called when ``has_bench``)."""
        ...

    def inject(self, name: str, params: Mapping[str, Any]) -> None: ...

    @property
    def has_bench(self) -> bool: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """One replayed exchange."""

    exchange: Exchange
    session: int
    role: Role
    replayed: Message | None
    differences: tuple[Difference, ...]
    detail: str = ""

    @property
    def status(self) -> str:
        """``same``, ``differs`` or ``unrecorded`` (the recording holds no answer)."""
        if self.exchange.recorded is None:
            return "unrecorded"
        return "differs" if self.differences else "same"


def play(
    script: Script,
    target: ReplayTarget,
    *,
    exact_times: bool = False,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Replay every session of ``script`` against ``target``, in order."""
    outcomes: list[Outcome] = []
    cursor = script.first_sim_ms

    def follow(sim_ms: int | None) -> None:
        nonlocal cursor
        if not target.has_bench or sim_ms is None:
            return
        if cursor is not None and sim_ms > cursor:
            target.advance(sim_ms - cursor)
        cursor = sim_ms if cursor is None else max(cursor, sim_ms)

    for number, session in enumerate(script.sessions, 1):
        send: Callable[[Message], Result] | None = None
        try:
            for step in session.steps:
                if isinstance(step, TimeStep):
                    follow(step.sim_ms)
                    continue
                if isinstance(step, FaultStep):
                    follow(step.sim_ms)
                    if target.has_bench:
                        target.inject(step.name, step.params)
                    continue
                follow(step.sim_ms)
                if send is None:
                    send = target.open_session(session.role)
                result = send(step.request)
                differences = compare(step.recorded, result.reply, exact_times=exact_times)
                detail = "" if result.reply is not None else result.outcome.value
                outcome = Outcome(
                    step,
                    number,
                    session.role,
                    result.reply,
                    tuple(differences) if step.recorded is not None else (),
                    detail,
                )
                outcomes.append(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
        finally:
            if send is not None:
                target.close_session()
    return outcomes

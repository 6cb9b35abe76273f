"""The command catalogue: every request and reply as a frozen, slotted dataclass.

Messages are immutable values checked when they are built (docs/architecture.md principle 7): a
value outside its field's range raises ``FieldValueError`` naming the field and the allowed range,
so a bad dose never reaches the encoder. docs/protocol.md ("Messages") is the normative layout of
each one; protocol/wire.py holds the byte layouts and protocol/codec.py maps between the two.

Each field's wire range is declared once, in its annotation (``Annotated[int, U32]``). The
same declaration drives construction-time validation here, the codec's conversions, and the
test suite's generated values, so they cannot disagree.

Opcodes are grouped (docs/protocol.md, "Opcodes"): 0x01-0x0F session, 0x10-0x1F read,
0x20-0x2F program, 0x30-0x3F therapy. A reply has the high bit set: the specific reply to a
request is ``request | 0x80``, and the generic ACK (0xF0) and NAK (0xFF) answer the rest.
"""

from __future__ import annotations

import dataclasses
import itertools
import types
import typing
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Any, ClassVar

from protocol.device_state import AlarmKind, AlarmRecord, LogEntry, Role, TherapyState
from protocol.errors import FieldValueError
from protocol.prescription import Prescription, check_range
from protocol.refusal import FieldId, RefusalCode
from protocol.units import PUMP_CLOCK_MAX_MS, U8_MAX, U16_MAX, U32_MAX, U64_MAX

NONCE_LEN = 16
PROOF_LEN = 32
DIGEST_LEN = 16
TEXT_MAX_LEN = 16
"""Model, serial and firmware strings: 1-16 printable ASCII characters."""
MAX_LOG_PAGE = 32
"""Entries per event-log page: 32 x 31 B + 9 B fits a sealed body (1024 B - 16 B tag)."""
MAX_ALARMS = 16
NEVER_MS = U64_MAX
"""Sentinel instant in PRESCRIPTION_STAGED, STATUS_DETAIL and PATIENT_VIEW: the event is never
predicted to happen (docs/protocol.md section 1)."""
REPLY_BIT = 0x80


class Opcode(IntEnum):
    """Message types on the wire (docs/protocol.md, "Opcodes"). Never renumber."""

    # session (unsealed before the session opens; architecture.md, handshake)
    OPEN_SESSION = 0x01
    AUTHENTICATE = 0x02
    CLOSE_SESSION = 0x03
    KEEP_ALIVE = 0x04
    # read
    READ_DEVICE_INFO = 0x10
    READ_STATUS = 0x11
    READ_PRESCRIPTION = 0x12
    READ_EVENT_LOG = 0x13
    READ_ALARMS = 0x14
    READ_CLOCK = 0x15
    READ_STATUS_DETAIL = 0x16
    READ_CATHETER = 0x17
    READ_PATIENT_VIEW = 0x18
    # program
    STAGE_PRESCRIPTION = 0x20
    COMMIT_PRESCRIPTION = 0x21
    SET_CLOCK = 0x22
    STAGE_PRESCRIPTION_OVERRIDE = 0x23
    # therapy
    START_THERAPY = 0x30
    STOP_THERAPY = 0x31
    CLINICIAN_BOLUS = 0x32
    CANCEL_BOLUS = 0x33
    PATIENT_BOLUS_REQUEST = 0x34
    PRIMING_BOLUS = 0x35
    REFILL_BEGIN = 0x36
    REFILL_COMPLETE = 0x37
    ACKNOWLEDGE_ALARM = 0x38
    ALARM_TEST = 0x39
    BRIDGE_BOLUS = 0x3A
    CLEAR_MEMORY_ERROR = 0x3B
    RESET_FLOW_VALVE = 0x3C
    SET_CATHETER = 0x3D
    # replies (high bit set): specific replies are request | 0x80
    CHALLENGE = 0x81
    SESSION_OPENED = 0x82
    DEVICE_INFO = 0x90
    STATUS = 0x91
    CURRENT_PRESCRIPTION = 0x92
    EVENT_LOG_PAGE = 0x93
    ALARM_LIST = 0x94
    CLOCK = 0x95
    STATUS_DETAIL = 0x96
    CATHETER_INFO = 0x97
    PATIENT_VIEW = 0x98
    PRESCRIPTION_STAGED = 0xA0
    STAGED_WITH_OVERRIDE = 0xA3
    ACK = 0xF0
    NAK = 0xFF

    @property
    def is_reply(self) -> bool:
        return bool(self & REPLY_BIT)


# -- field declarations ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntRange:
    """An integer field's allowed range, inclusive."""

    low: int
    high: int


@dataclass(frozen=True, slots=True)
class ByteLength:
    """A fixed-length byte string (nonce, proof, digest)."""

    size: int


@dataclass(frozen=True, slots=True)
class Text:
    """A 1..max_len printable-ASCII string, u8-length-prefixed on the wire."""

    max_len: int


@dataclass(frozen=True, slots=True)
class MaxItems:
    """A bounded list, u8-count-prefixed on the wire."""

    count: int


U8 = IntRange(0, U8_MAX)
U16 = IntRange(0, U16_MAX)
U32 = IntRange(0, U32_MAX)
U64 = IntRange(0, U64_MAX)
POSITIVE_U16 = IntRange(1, U16_MAX)
POSITIVE_U32 = IntRange(1, U32_MAX)
COMMAND_ID = IntRange(1, U32_MAX)
"""A programmer-chosen id on every therapy-changing request; 0 is reserved for 'none' (C1)."""
PERCENT = IntRange(0, 100)
CATHETER_LENGTH_CM = IntRange(1, U16_MAX)
"""A catheter length in whole cm; 0 is no catheter. The pump's profile bounds it further
(CATHETER_INFO ``max_length_cm``)."""

Nonce = Annotated[bytes, ByteLength(NONCE_LEN)]
Proof = Annotated[bytes, ByteLength(PROOF_LEN)]
Digest = Annotated[bytes, ByteLength(DIGEST_LEN)]
ShortText = Annotated[str, Text(TEXT_MAX_LEN)]
CommandId = Annotated[int, COMMAND_ID]


class FieldKind(IntEnum):
    """How a field is checked, carried on the wire and generated in tests."""

    INT = 1
    BOOL = 2
    BYTES = 3
    TEXT = 4
    ENUM = 5
    ENUM_SET = 6
    """A set of enum members; a u32 bitmap on the wire, bit n for the member of value n."""
    RECORD = 7
    """A nested dataclass (Prescription, LogEntry, ProfileLimits ...)."""
    OPTIONAL_RECORD = 8
    """A nested dataclass or None; a u8 presence flag (0 or 1) then the record."""
    RECORDS = 9
    """A bounded tuple of nested dataclasses; a u8 count then the records."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a message or record, resolved from its annotation."""

    name: str
    kind: FieldKind
    range: IntRange | None = None
    """INT: the allowed range; None for a shared record type that checks itself."""
    size: int = 0
    """BYTES: exact length. TEXT: maximum length. RECORDS: maximum count. 0 where a shared
    record type bounds the field itself (Prescription.drug_name, Prescription.steps)."""
    type: Any = None
    """ENUM/ENUM_SET: the IntEnum class. RECORD/OPTIONAL_RECORD/RECORDS: the dataclass."""


_SPECS: dict[type, tuple[FieldSpec, ...]] = {}


def field_specs(cls: type) -> tuple[FieldSpec, ...]:
    """The resolved field declarations of a message or record dataclass (cached)."""
    specs = _SPECS.get(cls)
    if specs is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        specs = tuple(_resolve(f.name, hints[f.name]) for f in dataclasses.fields(cls))
        _SPECS[cls] = specs
    return specs


def _resolve(name: str, hint: Any) -> FieldSpec:
    meta: tuple[Any, ...] = ()
    if typing.get_origin(hint) is Annotated:
        hint, *extra = typing.get_args(hint)
        meta = tuple(extra)
    declared = meta[0] if meta else None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is bool:
        return FieldSpec(name, FieldKind.BOOL)
    if hint is int:
        if declared is not None and not isinstance(declared, IntRange):
            raise TypeError(f"{name}: an int field takes an IntRange")
        return FieldSpec(name, FieldKind.INT, range=declared)
    if hint is bytes and isinstance(declared, ByteLength):
        return FieldSpec(name, FieldKind.BYTES, size=declared.size)
    if hint is str:
        # A shared record's string (Prescription.drug_name) is checked by the record itself.
        return FieldSpec(name, FieldKind.TEXT, size=declared.max_len if declared else 0)
    if isinstance(hint, type) and issubclass(hint, IntEnum):
        return FieldSpec(name, FieldKind.ENUM, type=hint)
    if origin is frozenset and issubclass(args[0], IntEnum):
        return FieldSpec(name, FieldKind.ENUM_SET, type=args[0])
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        bound = declared.count if isinstance(declared, MaxItems) else 0
        return FieldSpec(name, FieldKind.RECORDS, size=bound, type=args[0])
    if origin is types.UnionType and len(args) == 2 and args[1] is type(None):
        return FieldSpec(name, FieldKind.OPTIONAL_RECORD, type=args[0])
    if dataclasses.is_dataclass(hint):
        return FieldSpec(name, FieldKind.RECORD, type=hint)
    raise TypeError(f"{name}: no wire representation for {hint!r}")


def _check_field(spec: FieldSpec, value: Any) -> None:
    name = spec.name
    kind = spec.kind
    if kind is FieldKind.INT:
        if spec.range is not None:
            check_range(name, value, spec.range.low, spec.range.high)
    elif kind is FieldKind.ENUM:
        if type(value) is not spec.type:
            allowed = ", ".join(m.name for m in spec.type)
            raise FieldValueError(name, f"must be a {spec.type.__name__} ({allowed})")
    elif kind is FieldKind.BYTES:
        if not isinstance(value, bytes) or len(value) != spec.size:
            raise FieldValueError(name, f"must be exactly {spec.size} bytes", spec.size)
    elif kind is FieldKind.TEXT:
        _check_text(name, value, spec.size)
    elif kind is FieldKind.BOOL:
        if not isinstance(value, bool):
            raise FieldValueError(name, "must be a bool")
    elif kind is FieldKind.ENUM_SET:
        if not isinstance(value, frozenset) or not all(isinstance(v, spec.type) for v in value):
            raise FieldValueError(name, f"must be a frozenset of {spec.type.__name__}")
    elif kind is FieldKind.RECORD:
        if not isinstance(value, spec.type):
            raise FieldValueError(name, f"must be a {spec.type.__name__}")
    elif kind is FieldKind.OPTIONAL_RECORD:
        if value is not None and not isinstance(value, spec.type):
            raise FieldValueError(name, f"must be a {spec.type.__name__} or None")
    elif kind is FieldKind.RECORDS:
        if not isinstance(value, tuple) or not all(isinstance(v, spec.type) for v in value):
            raise FieldValueError(name, f"must be a tuple of {spec.type.__name__}")
        if len(value) > spec.size:
            raise FieldValueError(
                name, f"holds {len(value)} items (allowed 0..{spec.size})", spec.size
            )


def _check_text(name: str, value: object, max_len: int) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= max_len:
        short = isinstance(value, str) and not value
        raise FieldValueError(name, f"must be 1..{max_len} characters", 1 if short else max_len)
    if not (value.isascii() and value.isprintable()):  # 0x20..0x7E, in C
        raise FieldValueError(name, "must be printable ASCII (0x20..0x7E)")


_INT_CHECKS: dict[type, tuple[tuple[str, int, int], ...]] = {}
_OTHER_CHECKS: dict[type, tuple[FieldSpec, ...]] = {}


def _checks(cls: type) -> tuple[tuple[tuple[str, int, int], ...], tuple[FieldSpec, ...]]:
    ints = _INT_CHECKS.get(cls)
    if ints is None:
        specs = field_specs(cls)
        ints = tuple(
            (s.name, s.range.low, s.range.high)
            for s in specs
            if s.kind is FieldKind.INT and s.range is not None
        )
        _OTHER_CHECKS[cls] = tuple(s for s in specs if s.kind is not FieldKind.INT)
        _INT_CHECKS[cls] = ints
    return ints, _OTHER_CHECKS[cls]


class Validated:
    """Checks every declared field when a dataclass subclass is built."""

    __slots__ = ()

    def __post_init__(self) -> None:
        ints, others = _checks(type(self))
        # Integer ranges are most fields; test them inline and build a message only on
        # failure (every frame decoded pays for this, benchmarks/codec.py).
        for name, low, high in ints:
            value = getattr(self, name)
            if type(value) is not int or not low <= value <= high:
                check_range(name, value, low, high)
        for spec in others:
            _check_field(spec, getattr(self, spec.name))
        self._check()

    def _check(self) -> None:
        """Cross-field rules of one message; runs after the field checks."""


class Message(Validated):
    """A request or reply. ``OPCODE`` is the opcode it travels under."""

    __slots__ = ()
    OPCODE: ClassVar[Opcode]


# -- session ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenSession(Message):
    """Programmer opens a session for a role with a fresh nonce (handshake step 1)."""

    OPCODE: ClassVar[Opcode] = Opcode.OPEN_SESSION
    role: Role
    programmer_nonce: Nonce


@dataclass(frozen=True, slots=True)
class Challenge(Message):
    """Pump answers OPEN_SESSION with its own fresh nonce and serial (handshake step 2)."""

    OPCODE: ClassVar[Opcode] = Opcode.CHALLENGE
    pump_nonce: Nonce
    serial: ShortText


@dataclass(frozen=True, slots=True)
class Authenticate(Message):
    """Programmer proves it holds the role key (handshake step 3)."""

    OPCODE: ClassVar[Opcode] = Opcode.AUTHENTICATE
    proof: Proof


@dataclass(frozen=True, slots=True)
class SessionOpened(Message):
    """Pump proves it holds the role key too, and states the session limits (step 4)."""

    OPCODE: ClassVar[Opcode] = Opcode.SESSION_OPENED
    proof: Proof
    idle_timeout_s: Annotated[int, POSITIVE_U32]
    max_session_s: Annotated[int, POSITIVE_U32]


@dataclass(frozen=True, slots=True)
class CloseSession(Message):
    """End the session; the pump answers ACK and forgets the session keys."""

    OPCODE: ClassVar[Opcode] = Opcode.CLOSE_SESSION


@dataclass(frozen=True, slots=True)
class KeepAlive(Message):
    """Reset the idle timer; the pump answers ACK."""

    OPCODE: ClassVar[Opcode] = Opcode.KEEP_ALIVE


# -- read ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadDeviceInfo(Message):
    OPCODE: ClassVar[Opcode] = Opcode.READ_DEVICE_INFO


@dataclass(frozen=True, slots=True)
class ReadStatus(Message):
    OPCODE: ClassVar[Opcode] = Opcode.READ_STATUS


@dataclass(frozen=True, slots=True)
class ReadPrescription(Message):
    OPCODE: ClassVar[Opcode] = Opcode.READ_PRESCRIPTION


@dataclass(frozen=True, slots=True)
class ReadEventLog(Message):
    """Read up to ``count`` log entries whose seq is at least ``from_seq``, oldest first."""

    OPCODE: ClassVar[Opcode] = Opcode.READ_EVENT_LOG
    from_seq: Annotated[int, U32]
    count: Annotated[int, IntRange(1, MAX_LOG_PAGE)]


@dataclass(frozen=True, slots=True)
class ReadAlarms(Message):
    OPCODE: ClassVar[Opcode] = Opcode.READ_ALARMS


@dataclass(frozen=True, slots=True)
class ReadClock(Message):
    OPCODE: ClassVar[Opcode] = Opcode.READ_CLOCK


@dataclass(frozen=True, slots=True)
class ProfileLimits(Validated):
    """The pump model's limits, as its profile sets them (docs/domain.md section 2)."""

    reservoir_capacity_nl: Annotated[int, POSITIVE_U32]
    stroke_volume_nl: Annotated[int, POSITIVE_U32]
    rate_min_nl_per_day: Annotated[int, U32]
    rate_max_nl_per_day: Annotated[int, U32]
    max_clinician_bolus_nl: Annotated[int, U32]
    max_daily_dose_pg: Annotated[int, U64]
    max_flex_steps: Annotated[int, U8]
    patient_bolus_dose_max_nl: Annotated[int, U32]
    patient_bolus_duration_min_s: Annotated[int, U32]
    patient_bolus_duration_max_s: Annotated[int, U32]
    patient_bolus_lockout_min_s: Annotated[int, U32]
    patient_bolus_lockout_max_s: Annotated[int, U32]
    patient_bolus_max_per_24h: Annotated[int, U8]
    low_reservoir_threshold_min_nl: Annotated[int, U32]
    low_reservoir_threshold_max_nl: Annotated[int, U32]
    max_priming_volume_nl: Annotated[int, U32]

    def _check(self) -> None:
        pairs = (
            ("rate_max_nl_per_day", self.rate_min_nl_per_day, self.rate_max_nl_per_day),
            (
                "patient_bolus_duration_max_s",
                self.patient_bolus_duration_min_s,
                self.patient_bolus_duration_max_s,
            ),
            (
                "patient_bolus_lockout_max_s",
                self.patient_bolus_lockout_min_s,
                self.patient_bolus_lockout_max_s,
            ),
            (
                "low_reservoir_threshold_max_nl",
                self.low_reservoir_threshold_min_nl,
                self.low_reservoir_threshold_max_nl,
            ),
        )
        for name, low, high in pairs:
            if high < low:
                raise FieldValueError(name, f"{high} is below its minimum counterpart {low}", low)


@dataclass(frozen=True, slots=True)
class DeviceInfo(Message):
    OPCODE: ClassVar[Opcode] = Opcode.DEVICE_INFO
    model: ShortText
    serial: ShortText
    firmware_version: ShortText
    limits: ProfileLimits


@dataclass(frozen=True, slots=True)
class Status(Message):
    """What the pump believes right now. ``last_command_id`` lets a programmer that lost a
    reply find out whether its command was applied (C1); 0 means none yet."""

    OPCODE: ClassVar[Opcode] = Opcode.STATUS
    state: TherapyState
    rate_nl_per_day: Annotated[int, U32]
    reservoir_nl: Annotated[int, U32]
    battery_percent: Annotated[int, PERCENT]
    active_alarms: frozenset[AlarmKind]
    last_command_id: Annotated[int, U32]
    pump_time_ms: Annotated[int, U64]


@dataclass(frozen=True, slots=True)
class CurrentPrescription(Message):
    """The committed prescription, or None if none was ever committed."""

    OPCODE: ClassVar[Opcode] = Opcode.CURRENT_PRESCRIPTION
    prescription: Prescription | None


@dataclass(frozen=True, slots=True)
class EventLogPage(Message):
    """Entries oldest first. ``oldest_seq`` is the oldest entry still held (the log is a
    ring), ``next_seq`` the seq the next event will get; read on from the last entry + 1."""

    OPCODE: ClassVar[Opcode] = Opcode.EVENT_LOG_PAGE
    oldest_seq: Annotated[int, U32]
    next_seq: Annotated[int, U32]
    entries: Annotated[tuple[LogEntry, ...], MaxItems(MAX_LOG_PAGE)]

    def _check(self) -> None:
        seqs = [entry.seq for entry in self.entries]
        if any(after <= before for before, after in itertools.pairwise(seqs)):
            raise FieldValueError("entries", "entry seqs must strictly increase")


@dataclass(frozen=True, slots=True)
class AlarmList(Message):
    OPCODE: ClassVar[Opcode] = Opcode.ALARM_LIST
    alarms: Annotated[tuple[AlarmRecord, ...], MaxItems(MAX_ALARMS)]


@dataclass(frozen=True, slots=True)
class Clock(Message):
    OPCODE: ClassVar[Opcode] = Opcode.CLOCK
    pump_time_ms: Annotated[int, U64]


@dataclass(frozen=True, slots=True)
class ReadStatusDetail(Message):
    """Clinician only: the firmware's forecasts and totals (docs/protocol.md section 7)."""

    OPCODE: ClassVar[Opcode] = Opcode.READ_STATUS_DETAIL


@dataclass(frozen=True, slots=True)
class ReadCatheter(Message):
    """Clinician only: the catheter as the pump believes it (length, dead volume, primed)."""

    OPCODE: ClassVar[Opcode] = Opcode.READ_CATHETER


@dataclass(frozen=True, slots=True)
class ReadPatientView(Message):
    """What a patient device shows: the next bolus and the boluses left (patient allowed)."""

    OPCODE: ClassVar[Opcode] = Opcode.READ_PATIENT_VIEW


@dataclass(frozen=True, slots=True)
class StatusDetail(Message):
    """Firmware belief, projected: every instant on the pump clock (``NEVER_MS`` if never),
    every total an exact integer (docs/protocol.md section 7, STATUS_DETAIL; H7)."""

    OPCODE: ClassVar[Opcode] = Opcode.STATUS_DETAIL
    pump_time_ms: Annotated[int, U64]
    eri_reached: bool
    eri_at_ms: Annotated[int, U64]
    end_of_service_at_ms: Annotated[int, U64]
    low_reservoir_at_ms: Annotated[int, U64]
    empty_at_ms: Annotated[int, U64]
    lockout_ends_ms: Annotated[int, U64]
    patient_boluses_24h: Annotated[int, U8]
    mass_today_pg: Annotated[int, U64]
    mass_since_refill_pg: Annotated[int, U64]
    delivered_nl: Annotated[int, U64]
    delivered_pg: Annotated[int, U64]


@dataclass(frozen=True, slots=True)
class CatheterInfo(Message):
    """The catheter the pump was told about: what the clinician entered, never measured."""

    OPCODE: ClassVar[Opcode] = Opcode.CATHETER_INFO
    length_cm: Annotated[int, U16]
    dead_volume_nl: Annotated[int, U32]
    primed: bool
    max_length_cm: Annotated[int, U16]


@dataclass(frozen=True, slots=True)
class PatientView(Message):
    """The patient device's screen: when the next patient bolus can be asked for and how
    many are left in the rolling 24 h (docs/protocol.md section 7, PATIENT_VIEW)."""

    OPCODE: ClassVar[Opcode] = Opcode.PATIENT_VIEW
    pump_time_ms: Annotated[int, U64]
    patient_bolus_allowed: bool
    next_bolus_at_ms: Annotated[int, U64]
    boluses_left_24h: Annotated[int, U8]


# -- program ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StagePrescription(Message):
    """Phase one of programming (C5): the pump checks and computes, but applies nothing."""

    OPCODE: ClassVar[Opcode] = Opcode.STAGE_PRESCRIPTION
    prescription: Prescription


@dataclass(frozen=True, slots=True)
class PrescriptionStaged(Message):
    """What the pump computed for the staged prescription, for the clinician to review.

    ``daily_volume_nl`` and ``daily_mass_pg`` are the most any 24 h window delivers (basal
    plus every allowed patient bolus). The two instants are pump times, or ``NEVER_MS``.
    ``stage_lifetime_s`` is how long, in seconds of link time, a COMMIT of this stage stays
    in time (docs/protocol.md section 7): the only link timer besides the session's, which
    SESSION_OPENED reports, that a programmer must plan around."""

    OPCODE: ClassVar[Opcode] = Opcode.PRESCRIPTION_STAGED
    digest: Digest
    daily_volume_nl: Annotated[int, U32]
    daily_mass_pg: Annotated[int, U64]
    low_reservoir_at_ms: Annotated[int, U64]
    empty_at_ms: Annotated[int, U64]
    stage_lifetime_s: Annotated[int, POSITIVE_U32]


OVERRIDE_SOFT_LIMIT = 0x01
"""STAGE_PRESCRIPTION_OVERRIDE flag: the clinician accepts a daily mass above the drug's soft
limit (never above its hard limit: DAILY_DOSE_ABOVE_MAX has no override)."""
OVERRIDE_DOSE_CHANGE = 0x02
"""STAGE_PRESCRIPTION_OVERRIDE flag: the clinician accepts a daily mass further from the
running prescription's than the drug's relative limit."""
OVERRIDE_FLAGS = IntRange(OVERRIDE_SOFT_LIMIT, OVERRIDE_SOFT_LIMIT | OVERRIDE_DOSE_CHANGE)


@dataclass(frozen=True, slots=True)
class StagePrescriptionOverride(Message):
    """STAGE_PRESCRIPTION with the clinician's explicit overrides of the drug library's soft
    and dose-change limits (docs/protocol.md section 7); the layout of STAGE_PRESCRIPTION
    is unchanged, so version 1 programmers keep working."""

    OPCODE: ClassVar[Opcode] = Opcode.STAGE_PRESCRIPTION_OVERRIDE
    overrides: Annotated[int, OVERRIDE_FLAGS]
    prescription: Prescription


@dataclass(frozen=True, slots=True)
class StagedWithOverride(Message):
    """PRESCRIPTION_STAGED's figures, plus what was overridden: ``overrides_used`` the flags
    the prescription needed (0 if none: it would have staged without them),
    ``soft_limit_pg`` the drug's soft limit and ``reference_daily_mass_pg`` the running
    prescription's daily mass the change was measured against (0 if none)."""

    OPCODE: ClassVar[Opcode] = Opcode.STAGED_WITH_OVERRIDE
    digest: Digest
    daily_volume_nl: Annotated[int, U32]
    daily_mass_pg: Annotated[int, U64]
    low_reservoir_at_ms: Annotated[int, U64]
    empty_at_ms: Annotated[int, U64]
    stage_lifetime_s: Annotated[int, POSITIVE_U32]
    overrides_used: Annotated[int, IntRange(0, 3)]
    soft_limit_pg: Annotated[int, U64]
    reference_daily_mass_pg: Annotated[int, U64]


@dataclass(frozen=True, slots=True)
class CommitPrescription(Message):
    """Phase two: apply the staged prescription whose digest this is, atomically."""

    OPCODE: ClassVar[Opcode] = Opcode.COMMIT_PRESCRIPTION
    command_id: CommandId
    digest: Digest


@dataclass(frozen=True, slots=True)
class SetClock(Message):
    OPCODE: ClassVar[Opcode] = Opcode.SET_CLOCK
    command_id: CommandId
    pump_time_ms: Annotated[int, IntRange(0, PUMP_CLOCK_MAX_MS)]


# -- therapy ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartTherapy(Message):
    OPCODE: ClassVar[Opcode] = Opcode.START_THERAPY
    command_id: CommandId


@dataclass(frozen=True, slots=True)
class StopTherapy(Message):
    OPCODE: ClassVar[Opcode] = Opcode.STOP_THERAPY
    command_id: CommandId


@dataclass(frozen=True, slots=True)
class ClinicianBolus(Message):
    """Deliver ``dose_nl`` evenly over ``duration_s``, then return to the previous mode."""

    OPCODE: ClassVar[Opcode] = Opcode.CLINICIAN_BOLUS
    command_id: CommandId
    dose_nl: Annotated[int, POSITIVE_U32]
    duration_s: Annotated[int, POSITIVE_U32]


@dataclass(frozen=True, slots=True)
class CancelBolus(Message):
    OPCODE: ClassVar[Opcode] = Opcode.CANCEL_BOLUS
    command_id: CommandId


@dataclass(frozen=True, slots=True)
class PatientBolusRequest(Message):
    """The patient asks for one bolus of the prescription's patient-bolus dose."""

    OPCODE: ClassVar[Opcode] = Opcode.PATIENT_BOLUS_REQUEST
    command_id: CommandId


@dataclass(frozen=True, slots=True)
class PrimingBolus(Message):
    """Fill the catheter's dead volume at the maximum rate (H3)."""

    OPCODE: ClassVar[Opcode] = Opcode.PRIMING_BOLUS
    command_id: CommandId
    catheter_volume_nl: Annotated[int, POSITIVE_U32]


@dataclass(frozen=True, slots=True)
class RefillBegin(Message):
    """Begins a refill: delivery does NOT stop (docs/protocol.md, REFILL_BEGIN); the ACK
    carries the predicted residual (H1, H10)."""

    OPCODE: ClassVar[Opcode] = Opcode.REFILL_BEGIN
    command_id: CommandId


@dataclass(frozen=True, slots=True)
class RefillComplete(Message):
    """What was withdrawn, what is now in the reservoir, and at what concentration."""

    OPCODE: ClassVar[Opcode] = Opcode.REFILL_COMPLETE
    command_id: CommandId
    withdrawn_nl: Annotated[int, U32]
    new_volume_nl: Annotated[int, U32]
    new_concentration_ug_per_ml: Annotated[int, POSITIVE_U32]


@dataclass(frozen=True, slots=True)
class AcknowledgeAlarm(Message):
    OPCODE: ClassVar[Opcode] = Opcode.ACKNOWLEDGE_ALARM
    command_id: CommandId
    alarm: AlarmKind


@dataclass(frozen=True, slots=True)
class AlarmTest(Message):
    """Sound both alarm tones once, so the patient knows them."""

    OPCODE: ClassVar[Opcode] = Opcode.ALARM_TEST
    command_id: CommandId


@dataclass(frozen=True, slots=True)
class BridgeBolus(Message):
    """Deliver the old drug still in the path at the old rates before the prescription
    committed next takes effect (docs/pump-model.md, "Concentration changes")."""

    OPCODE: ClassVar[Opcode] = Opcode.BRIDGE_BOLUS
    command_id: CommandId


@dataclass(frozen=True, slots=True)
class ClearMemoryError(Message):
    """Rewrite the non-volatile record after a memory error; therapy stays stopped (H8)."""

    OPCODE: ClassVar[Opcode] = Opcode.CLEAR_MEMORY_ERROR
    command_id: CommandId


@dataclass(frozen=True, slots=True)
class ResetFlowValve(Message):
    """Reopen a valve-gated pump's flow-activated valve after an MRI (H15)."""

    OPCODE: ClassVar[Opcode] = Opcode.RESET_FLOW_VALVE
    command_id: CommandId


@dataclass(frozen=True, slots=True)
class SetCatheter(Message):
    """Record the catheter after implant or a revision: its length and whether it is
    primed. The pump cannot measure either (H3)."""

    OPCODE: ClassVar[Opcode] = Opcode.SET_CATHETER
    command_id: CommandId
    length_cm: Annotated[int, CATHETER_LENGTH_CM]
    primed: bool


# -- generic replies ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ack(Message):
    """The request was applied (or had been: a repeated command id returns the original
    ACK, C1). ``value``'s meaning depends on ``request`` (docs/protocol.md, "ACK")."""

    OPCODE: ClassVar[Opcode] = Opcode.ACK
    command_id: Annotated[int, U32]
    request: Opcode
    state: TherapyState
    reservoir_nl: Annotated[int, U32]
    value: Annotated[int, U64]

    def _check(self) -> None:
        if self.request.is_reply:
            raise FieldValueError("request", f"must be a request opcode, got {self.request.name}")


@dataclass(frozen=True, slots=True)
class Nak(Message):
    """The request was refused and nothing was applied. ``field`` and ``limit`` say which
    field broke which bound, where one applies (FieldId.NONE and 0 otherwise)."""

    OPCODE: ClassVar[Opcode] = Opcode.NAK
    code: RefusalCode
    field: FieldId
    limit: Annotated[int, U64]


MESSAGE_TYPES: tuple[type[Message], ...] = (
    OpenSession,
    Challenge,
    Authenticate,
    SessionOpened,
    CloseSession,
    KeepAlive,
    ReadDeviceInfo,
    ReadStatus,
    ReadPrescription,
    ReadEventLog,
    ReadAlarms,
    ReadClock,
    ReadStatusDetail,
    ReadCatheter,
    ReadPatientView,
    DeviceInfo,
    Status,
    CurrentPrescription,
    EventLogPage,
    AlarmList,
    Clock,
    StatusDetail,
    CatheterInfo,
    PatientView,
    StagePrescription,
    PrescriptionStaged,
    CommitPrescription,
    SetClock,
    StagePrescriptionOverride,
    StagedWithOverride,
    StartTherapy,
    StopTherapy,
    ClinicianBolus,
    CancelBolus,
    PatientBolusRequest,
    PrimingBolus,
    RefillBegin,
    RefillComplete,
    AcknowledgeAlarm,
    AlarmTest,
    BridgeBolus,
    ClearMemoryError,
    ResetFlowValve,
    SetCatheter,
    Ack,
    Nak,
)
"""Every message class, in opcode-table order; exactly one per Opcode."""

MESSAGE_BY_OPCODE: dict[int, type[Message]] = {cls.OPCODE: cls for cls in MESSAGE_TYPES}

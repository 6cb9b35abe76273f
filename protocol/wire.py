"""Byte layouts of the frame and of every payload: the only module that imports construct.

docs/protocol.md is the normative copy of every layout here; its test vectors are checked
against the codec, which uses these declarations. All integers are little-endian.

How construct is used, and why (docs/field-notes.md "construct 2.10.70"):
- Payload field names are the message dataclass field names, so protocol/codec.py maps
  containers to messages generically. Enums travel as plain integers (u8) and the codec
  turns them into the project's IntEnums, refusing unknown values: construct's ``Enum``
  would pass an unknown value through as a raw int.
- Payloads are dispatched on the opcode with plain-int keys (``PAYLOAD``), never IntEnum
  members, which ``compile()`` mishandles.
- Compiled parsers do no bounds checking (a short read returns fewer bytes silently), so the
  compiled parser is used only for fixed-size payloads and the header, and only after the
  caller has checked the exact length and the CRC in Python. Variable-size payloads (text,
  lists, optional records) are parsed by the interpreted parser, which raises on any short
  read, and end with ``Terminated`` so trailing bytes are refused.
- The CRC and the length checks live in protocol/codec.py and protocol/framer.py: the
  checksum constructs (``Checksum``, ``RawCopy``) cannot be compiled and cost 4x.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from construct import (
    Array,
    Bytes,
    Const,
    Construct,
    ConstructError,
    Container,
    Error,
    ExprValidator,
    FocusedSeq,
    FormatField,
    If,
    IfThenElse,
    Int8ul,
    Int16ul,
    Int32ul,
    Int64ul,
    OneOf,
    PascalString,
    Pass,
    Prefixed,
    PrefixedArray,
    Renamed,
    SizeofError,
    Struct,
    Switch,
    Terminated,
    this,
)

from protocol.errors import ProtocolError
from protocol.messages import DIGEST_LEN, NONCE_LEN, PROOF_LEN, Opcode

SYNC = b"\xa5\x5a"
VERSION = 1
FLAG_REPLY = 0x01
FLAG_SEALED = 0x02
FLAGS_DEFINED = FLAG_REPLY | FLAG_SEALED
HEADER_LEN = 15
"""SYNC(2) VERSION(1) FLAGS(1) SEQ(4) REF(4) OPCODE(1) LENGTH(2): the AEAD associated data."""
LENGTH_OFFSET = 13
MAX_BODY_LEN = 1024
CRC_LEN = 2
MIN_FRAME_LEN = HEADER_LEN + CRC_LEN
MAX_FRAME_LEN = HEADER_LEN + MAX_BODY_LEN + CRC_LEN
TAG_LEN = 16
"""A sealed body is the ciphertext followed by a 16-byte AEAD tag (session layer)."""
MAX_PLAIN_PAYLOAD_LEN = MAX_BODY_LEN - TAG_LEN
"""Every payload fits a sealed body, so sealing never pushes a frame past MAX_BODY_LEN."""

HEADER = Struct(
    "sync" / Const(SYNC),
    "version" / Int8ul,
    "flags" / Int8ul,
    "seq" / Int32ul,
    "ref" / Int32ul,
    "opcode" / Int8ul,
    "length" / Int16ul,
)

# -- shared records -----------------------------------------------------------------------

TEXT = PascalString(Int8ul, "ascii")
"""u8 byte count, then that many ASCII bytes (no terminator)."""

FLEX_STEP = Struct("start_s" / Int32ul, "rate_nl_per_day" / Int32ul)

PATIENT_BOLUS_LIMITS = Struct(
    "dose_nl" / Int32ul,
    "duration_s" / Int32ul,
    "lockout_s" / Int32ul,
    "max_per_24h" / Int8ul,
)

PRESCRIPTION = Struct(
    "drug_name" / TEXT,
    "concentration_ug_per_ml" / Int32ul,
    "mode" / Int8ul,
    "repeat" / Int8ul,
    "steps" / PrefixedArray(Int8ul, FLEX_STEP),
    "patient_bolus_present" / OneOf(Int8ul, [0, 1]),
    "patient_bolus" / If(this.patient_bolus_present == 1, PATIENT_BOLUS_LIMITS),
    "low_reservoir_threshold_nl" / Int32ul,
)

LOG_ENTRY = Struct(
    "seq" / Int32ul,
    "time_ms" / Int64ul,
    "kind" / Int8ul,
    "detail" / Int16ul,
    "value_a" / Int64ul,
    "value_b" / Int64ul,
)

ALARM_RECORD = Struct("kind" / Int8ul, "since_ms" / Int64ul, "acknowledged" / Int8ul)

PROFILE_LIMITS = Struct(
    "reservoir_capacity_nl" / Int32ul,
    "stroke_volume_nl" / Int32ul,
    "rate_min_nl_per_day" / Int32ul,
    "rate_max_nl_per_day" / Int32ul,
    "max_clinician_bolus_nl" / Int32ul,
    "max_daily_dose_pg" / Int64ul,
    "max_flex_steps" / Int8ul,
    "patient_bolus_dose_max_nl" / Int32ul,
    "patient_bolus_duration_min_s" / Int32ul,
    "patient_bolus_duration_max_s" / Int32ul,
    "patient_bolus_lockout_min_s" / Int32ul,
    "patient_bolus_lockout_max_s" / Int32ul,
    "patient_bolus_max_per_24h" / Int8ul,
    "low_reservoir_threshold_min_nl" / Int32ul,
    "low_reservoir_threshold_max_nl" / Int32ul,
    "max_priming_volume_nl" / Int32ul,
)

EMPTY = Struct()
COMMAND_ONLY = Struct("command_id" / Int32ul)

# -- payloads by opcode -------------------------------------------------------------------

PAYLOADS: dict[int, Construct[Any, Any]] = {
    Opcode.OPEN_SESSION.value: Struct("role" / Int8ul, "programmer_nonce" / Bytes(NONCE_LEN)),
    Opcode.AUTHENTICATE.value: Struct("proof" / Bytes(PROOF_LEN)),
    Opcode.CLOSE_SESSION.value: EMPTY,
    Opcode.KEEP_ALIVE.value: EMPTY,
    Opcode.READ_DEVICE_INFO.value: EMPTY,
    Opcode.READ_STATUS.value: EMPTY,
    Opcode.READ_PRESCRIPTION.value: EMPTY,
    Opcode.READ_EVENT_LOG.value: Struct("from_seq" / Int32ul, "count" / Int8ul),
    Opcode.READ_ALARMS.value: EMPTY,
    Opcode.READ_CLOCK.value: EMPTY,
    Opcode.READ_STATUS_DETAIL.value: EMPTY,
    Opcode.READ_CATHETER.value: EMPTY,
    Opcode.READ_PATIENT_VIEW.value: EMPTY,
    Opcode.STAGE_PRESCRIPTION.value: Struct("prescription" / PRESCRIPTION, Terminated),
    Opcode.COMMIT_PRESCRIPTION.value: Struct("command_id" / Int32ul, "digest" / Bytes(DIGEST_LEN)),
    Opcode.SET_CLOCK.value: Struct("command_id" / Int32ul, "pump_time_ms" / Int64ul),
    Opcode.STAGE_PRESCRIPTION_OVERRIDE.value: Struct(
        "overrides" / Int8ul, "prescription" / PRESCRIPTION, Terminated
    ),
    Opcode.START_THERAPY.value: COMMAND_ONLY,
    Opcode.STOP_THERAPY.value: COMMAND_ONLY,
    Opcode.CLINICIAN_BOLUS.value: Struct(
        "command_id" / Int32ul, "dose_nl" / Int32ul, "duration_s" / Int32ul
    ),
    Opcode.CANCEL_BOLUS.value: COMMAND_ONLY,
    Opcode.PATIENT_BOLUS_REQUEST.value: COMMAND_ONLY,
    Opcode.PRIMING_BOLUS.value: Struct("command_id" / Int32ul, "catheter_volume_nl" / Int32ul),
    Opcode.REFILL_BEGIN.value: COMMAND_ONLY,
    Opcode.REFILL_COMPLETE.value: Struct(
        "command_id" / Int32ul,
        "withdrawn_nl" / Int32ul,
        "new_volume_nl" / Int32ul,
        "new_concentration_ug_per_ml" / Int32ul,
    ),
    Opcode.ACKNOWLEDGE_ALARM.value: Struct("command_id" / Int32ul, "alarm" / Int8ul),
    Opcode.ALARM_TEST.value: COMMAND_ONLY,
    Opcode.BRIDGE_BOLUS.value: COMMAND_ONLY,
    Opcode.CLEAR_MEMORY_ERROR.value: COMMAND_ONLY,
    Opcode.RESET_FLOW_VALVE.value: COMMAND_ONLY,
    Opcode.SET_CATHETER.value: Struct(
        "command_id" / Int32ul, "length_cm" / Int16ul, "primed" / Int8ul
    ),
    Opcode.CHALLENGE.value: Struct("pump_nonce" / Bytes(NONCE_LEN), "serial" / TEXT, Terminated),
    Opcode.SESSION_OPENED.value: Struct(
        "proof" / Bytes(PROOF_LEN), "idle_timeout_s" / Int32ul, "max_session_s" / Int32ul
    ),
    Opcode.DEVICE_INFO.value: Struct(
        "model" / TEXT,
        "serial" / TEXT,
        "firmware_version" / TEXT,
        "limits" / PROFILE_LIMITS,
        Terminated,
    ),
    Opcode.STATUS.value: Struct(
        "state" / Int8ul,
        "rate_nl_per_day" / Int32ul,
        "reservoir_nl" / Int32ul,
        "battery_percent" / Int8ul,
        "active_alarms" / Int32ul,
        "last_command_id" / Int32ul,
        "pump_time_ms" / Int64ul,
    ),
    Opcode.CURRENT_PRESCRIPTION.value: Struct(
        "prescription_present" / OneOf(Int8ul, [0, 1]),
        "prescription" / If(this.prescription_present == 1, PRESCRIPTION),
        Terminated,
    ),
    Opcode.EVENT_LOG_PAGE.value: Struct(
        "oldest_seq" / Int32ul,
        "next_seq" / Int32ul,
        "entries" / PrefixedArray(Int8ul, LOG_ENTRY),
        Terminated,
    ),
    Opcode.ALARM_LIST.value: Struct("alarms" / PrefixedArray(Int8ul, ALARM_RECORD), Terminated),
    Opcode.CLOCK.value: Struct("pump_time_ms" / Int64ul),
    Opcode.STATUS_DETAIL.value: Struct(
        "pump_time_ms" / Int64ul,
        "eri_reached" / Int8ul,
        "eri_at_ms" / Int64ul,
        "end_of_service_at_ms" / Int64ul,
        "low_reservoir_at_ms" / Int64ul,
        "empty_at_ms" / Int64ul,
        "lockout_ends_ms" / Int64ul,
        "patient_boluses_24h" / Int8ul,
        "mass_today_pg" / Int64ul,
        "mass_since_refill_pg" / Int64ul,
        "delivered_nl" / Int64ul,
        "delivered_pg" / Int64ul,
    ),
    Opcode.CATHETER_INFO.value: Struct(
        "length_cm" / Int16ul,
        "dead_volume_nl" / Int32ul,
        "primed" / Int8ul,
        "max_length_cm" / Int16ul,
    ),
    Opcode.PATIENT_VIEW.value: Struct(
        "pump_time_ms" / Int64ul,
        "patient_bolus_allowed" / Int8ul,
        "next_bolus_at_ms" / Int64ul,
        "boluses_left_24h" / Int8ul,
    ),
    Opcode.PRESCRIPTION_STAGED.value: Struct(
        "digest" / Bytes(DIGEST_LEN),
        "daily_volume_nl" / Int32ul,
        "daily_mass_pg" / Int64ul,
        "low_reservoir_at_ms" / Int64ul,
        "empty_at_ms" / Int64ul,
        "stage_lifetime_s" / Int32ul,
    ),
    Opcode.STAGED_WITH_OVERRIDE.value: Struct(
        "digest" / Bytes(DIGEST_LEN),
        "daily_volume_nl" / Int32ul,
        "daily_mass_pg" / Int64ul,
        "low_reservoir_at_ms" / Int64ul,
        "empty_at_ms" / Int64ul,
        "stage_lifetime_s" / Int32ul,
        "overrides_used" / Int8ul,
        "soft_limit_pg" / Int64ul,
        "reference_daily_mass_pg" / Int64ul,
    ),
    Opcode.ACK.value: Struct(
        "command_id" / Int32ul,
        "request" / Int8ul,
        "state" / Int8ul,
        "reservoir_nl" / Int32ul,
        "value" / Int64ul,
    ),
    Opcode.NAK.value: Struct("code" / Int8ul, "field" / Int8ul, "limit" / Int64ul),
}
"""Every opcode's payload layout, keyed by the plain int opcode."""

PAYLOAD = Switch(this.opcode, PAYLOADS, default=Error)
"""The payload dispatched on the header's opcode; an unknown opcode is an error."""

FRAME = Struct(
    "sync" / Const(SYNC),
    "version" / Int8ul,
    "flags" / Int8ul,
    "seq" / Int32ul,
    "ref" / Int32ul,
    "opcode" / Int8ul,
    "payload" / Prefixed(Int16ul, PAYLOAD),
    "crc" / Int16ul,
    Terminated,
)
"""A whole unsealed frame in one declaration: the reference the fast paths are tested
against (tests/protocol/test_wire.py). The codec checks the CRC itself."""


def fixed_size(opcode: int) -> int | None:
    """The payload's byte size if every payload of this opcode has the same size, else None."""
    try:
        return int(PAYLOADS[opcode].sizeof())
    except SizeofError:
        return None


def flat_layout(opcode: int) -> list[tuple[str, str]] | None:
    """[(field name, ``struct`` code)] of a payload made only of named little-endian
    integers and fixed byte strings, in order; None for any other payload. What
    protocol/fast_codec.py derives its ``struct`` plans from, so this module stays the one
    definition of every layout."""
    layout = PAYLOADS.get(opcode)
    if not isinstance(layout, Struct):
        return None
    fields: list[tuple[str, str]] = []
    for sub in layout.subcons:
        if not isinstance(sub, Renamed) or sub.name is None:
            return None
        inner = sub.subcon
        if isinstance(inner, FormatField) and inner.fmtstr in ("<B", "<H", "<L", "<Q"):
            fields.append((sub.name, inner.fmtstr[1]))
        elif isinstance(inner, Bytes) and isinstance(inner.length, int):
            fields.append((sub.name, f"{inner.length}s"))
        else:
            return None
    return fields


LayoutKind = Literal["int", "bytes", "text", "record", "array", "flag", "optional", "end"]


@dataclass(frozen=True, slots=True)
class LayoutItem:
    """One element of a payload layout, described without construct (``payload_layout``).

    - ``int``: a little-endian integer, ``code`` its ``struct`` code (B, H, L or Q);
    - ``bytes``: a fixed byte string, ``code`` its ``struct`` code (``"16s"``);
    - ``text``: ``TEXT``, a u8 byte count then that many ASCII bytes;
    - ``record``: a nested struct, ``items`` its elements;
    - ``array``: a u8 count then that many records, ``items`` the record's elements (each
      an ``int`` or ``bytes``, so the record has one fixed size);
    - ``flag``: a u8 that must be one of ``values`` (``OneOf``);
    - ``optional``: a record present when the earlier field ``flag`` is one of ``values``;
    - ``end``: ``Terminated``, no byte may follow.
    """

    kind: LayoutKind
    name: str = ""
    code: str = ""
    items: tuple[LayoutItem, ...] = ()
    values: frozenset[int] = frozenset()
    flag: str = ""


_STRUCT_CODES = {"<B": "B", "<H": "H", "<L": "L", "<Q": "Q"}


def payload_layout(opcode: int) -> tuple[LayoutItem, ...] | None:
    """The payload of ``opcode`` as ``LayoutItem``s, in wire order, read off the construct
    declaration above; None if it uses anything else. What protocol/fast_codec.py derives
    its bounds-checked plans for variable-size payloads from (docs/architecture.md, "The
    codec's two paths"), so this module stays the one definition of every layout."""
    layout = PAYLOADS.get(opcode)
    return _describe(layout) if isinstance(layout, Struct) else None


def _describe(layout: Any) -> tuple[LayoutItem, ...] | None:
    items: list[LayoutItem] = []
    for sub in layout.subcons:
        if sub is Terminated:
            items.append(LayoutItem("end"))
            continue
        if not isinstance(sub, Renamed) or sub.name is None:
            return None
        item = _describe_field(sub.name, sub.subcon, items)
        if item is None:
            return None
        items.append(item)
    return tuple(items)


def _fixed_field(name: str, inner: Any) -> LayoutItem | None:
    if isinstance(inner, FormatField) and inner.fmtstr in _STRUCT_CODES:
        return LayoutItem("int", name, _STRUCT_CODES[inner.fmtstr])
    if isinstance(inner, Bytes) and isinstance(inner.length, int):
        return LayoutItem("bytes", name, f"{inner.length}s")
    return None


def _describe_field(name: str, inner: Any, before: list[LayoutItem]) -> LayoutItem | None:
    fixed = _fixed_field(name, inner)
    if fixed is not None:
        return fixed
    if inner is TEXT:
        return LayoutItem("text", name)
    if isinstance(inner, Struct):
        nested = _describe(inner)
        return None if nested is None else LayoutItem("record", name, items=nested)
    if isinstance(inner, ExprValidator) and _is_u8(inner.subcon):
        # OneOf: ask its validator which u8 values it accepts.
        context: Any = Container()  # OneOf looks at the value only
        accepted = frozenset(v for v in range(256) if inner._validate(v, context, ""))
        return LayoutItem("flag", name, values=accepted)
    if isinstance(inner, IfThenElse) and inner.elsesubcon is Pass:
        return _describe_optional(name, inner, before)
    if isinstance(inner, FocusedSeq):
        return _describe_array(name, inner)
    return None


def _is_u8(inner: Any) -> bool:
    return isinstance(inner, FormatField) and inner.fmtstr == "<B"


def _describe_optional(name: str, inner: Any, before: list[LayoutItem]) -> LayoutItem | None:
    """``If(this.<name>_present == 1, record)`` after its ``flag``: evaluate the condition
    for every value the flag accepts, so the plan reads the record exactly when construct does."""
    flag = f"{name}_present"
    if not before or before[-1].kind != "flag" or before[-1].name != flag:
        return None
    if not isinstance(inner.thensubcon, Struct):
        return None
    nested = _describe(inner.thensubcon)
    if nested is None:
        return None
    try:
        present = frozenset(v for v in before[-1].values if inner.condfunc({flag: v}) is True)
    except Exception:  # a condition on anything but the flag: no plan
        return None
    return LayoutItem("optional", name, items=nested, values=present, flag=flag)


def _describe_array(name: str, inner: Any) -> LayoutItem | None:
    """``PrefixedArray(Int8ul, record)`` of a record of fixed fields only."""
    subs = inner.subcons
    if inner.parsebuildfrom != "items" or len(subs) != 2:
        return None
    count, array = subs
    if count.name != "count" or not _is_u8(getattr(count.subcon, "subcon", None)):
        return None
    if array.name != "items" or not isinstance(array.subcon, Array):
        return None
    record = array.subcon.subcon
    if not isinstance(record, Struct):
        return None
    fields: list[LayoutItem] = []
    for sub in record.subcons:
        if not isinstance(sub, Renamed) or not sub.name:
            return None
        fixed = _fixed_field(sub.name, sub.subcon)
        if fixed is None:
            return None
        fields.append(fixed)
    return LayoutItem("array", name, items=tuple(fields))


Parser = Callable[[bytes], Any]
Builder = Callable[[dict[str, Any]], bytes]
_Code = TypeVar("_Code", Parser, Builder)


class _CodeTable(dict[int, _Code]):
    """Opcode -> its payload parser or builder, made on first use.

    A fixed-size payload gets construct's compiled code (safe once the caller has checked
    the exact length), the rest the interpreted declaration (bounds-checked). Compiling
    all 39 fixed layouts at import cost every process about 25 ms, most of it in processes
    that never use this reference path (a campaign worker, whose codec works through the
    fast plans: protocol/fast_codec.py); each is compiled once, when first needed. An
    opcode with no declared payload raises KeyError, as a plain dict would.
    """

    def __init__(self, pick: Callable[[Any], _Code]) -> None:
        super().__init__()
        self._pick: Callable[[Any], _Code] = pick

    def __missing__(self, opcode: int) -> _Code:
        layout = PAYLOADS[opcode]
        made: _Code = self._pick(layout.compile() if fixed_size(opcode) is not None else layout)
        self[opcode] = made
        return made


def _parser(code: Any) -> Parser:
    parse: Parser = code.parse
    return parse


def _builder(code: Any) -> Builder:
    build: Builder = code.build
    return build


PAYLOAD_PARSERS: dict[int, Parser] = _CodeTable(_parser)
PAYLOAD_BUILDERS: dict[int, Builder] = _CodeTable(_builder)
"""Per opcode: compiled for fixed-size payloads (safe once the caller has checked the exact
length), interpreted for the rest (bounds-checked), each made on first use. Parse results
are dict-like containers keyed by the message field names."""


def construct_path(error: ConstructError) -> str:
    """construct's "(parsing) -> a -> b" error path as a dotted field path "a.b"."""
    raw = getattr(error, "path", None) or ""
    parts = [p.strip() for p in str(raw).split("->")]
    return ".".join(p for p in parts if p and not p.startswith("("))


def parse_payload(opcode: int, body: bytes) -> Any:
    """Parse a payload into a container keyed by field name.

    The caller has checked that ``opcode`` is known and, for a fixed-size payload, that
    ``body`` has exactly its size (so the compiled parser cannot read short). Every failure
    is a ProtocolError with the field path, never a construct or struct error.
    """
    try:
        return PAYLOAD_PARSERS[opcode](body)
    except ConstructError as error:
        raise ProtocolError(_reason(error), construct_path(error)) from error
    except (struct.error, UnicodeDecodeError, ValueError) as error:
        raise ProtocolError(f"does not parse: {error}") from error


def build_payload(opcode: int, fields: dict[str, Any]) -> bytes:
    """Build a payload from a dict keyed by field name (values already range-checked)."""
    try:
        return bytes(PAYLOAD_BUILDERS[opcode](fields))
    except ConstructError as error:
        raise ProtocolError(_reason(error), construct_path(error)) from error
    except (struct.error, UnicodeEncodeError, ValueError) as error:
        raise ProtocolError(f"does not build: {error}") from error


def _reason(error: ConstructError) -> str:
    # str(error) is "Error in path <path>\n<reason>"; the path is reported separately.
    text = str(error).rsplit("\n", 1)[-1]
    return text or type(error).__name__


HEADER_STRUCT = struct.Struct("<2sBBIIBH")
"""``HEADER`` as a ``struct`` format. Every frame's header is read on the hot path and a
construct parse costs 3 us against 0.2 us for this; tests/protocol/test_wire.py checks
that the two agree on every header."""


def parse_header(header: bytes) -> tuple[int, int, int, int, int, int]:
    """(version, flags, seq, ref, opcode, length) of exactly HEADER_LEN bytes with SYNC."""
    _sync, version, flags, seq, ref, opcode, length = HEADER_STRUCT.unpack(header)
    return version, flags, seq, ref, opcode, length


def build_header(flags: int, seq: int, ref: int, opcode: int, length: int) -> bytes:
    """The 15 header bytes (values already range-checked by the caller)."""
    return HEADER_STRUCT.pack(SYNC, VERSION, flags, seq, ref, opcode, length)


__all__ = [
    "CRC_LEN",
    "FLAGS_DEFINED",
    "FLAG_REPLY",
    "FLAG_SEALED",
    "FRAME",
    "HEADER",
    "HEADER_LEN",
    "HEADER_STRUCT",
    "LENGTH_OFFSET",
    "MAX_BODY_LEN",
    "MAX_FRAME_LEN",
    "MAX_PLAIN_PAYLOAD_LEN",
    "MIN_FRAME_LEN",
    "PAYLOAD",
    "PAYLOADS",
    "PAYLOAD_BUILDERS",
    "PAYLOAD_PARSERS",
    "SYNC",
    "TAG_LEN",
    "VERSION",
    "LayoutItem",
    "build_header",
    "build_payload",
    "construct_path",
    "fixed_size",
    "flat_layout",
    "parse_header",
    "parse_payload",
    "payload_layout",
]

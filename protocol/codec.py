"""Messages to bytes and back (docs/protocol.md, "Frame" and "Messages").

Two levels, so the session layer can seal between them (architecture.md, handshake):

- the *frame*: ``Frame`` (header fields plus an opaque body), ``build_frame``,
  ``parse_frame`` (length and CRC checked, body not interpreted), ``parse_framed`` (the
  same for a frame the ``Framer`` emitted, whose length and CRC it checked already),
  ``header_bytes`` (the 15 header bytes: the AEAD associated data of a sealed frame) and
  ``seal_frame`` (header, seal and CRC of a sealed frame in one pass);
- the *payload*: ``encode_payload(msg) -> (opcode, plaintext)`` and
  ``decode_payload(opcode, plaintext) -> msg``.

``encode`` and ``decode`` join the two for unsealed frames. Every failure to decode is a
``DecodeError`` (a ProtocolError) carrying the RefusalCode a pump answers it with and the
field path; anything else escaping ``decode`` is a bug (docs/architecture.md principle 8).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from protocol import wire
from protocol.checksum import crc16
from protocol.errors import FieldValueError, ProtocolError, ScheduleError
from protocol.fast_codec import PLANS
from protocol.messages import (
    MESSAGE_BY_OPCODE,
    FieldKind,
    FieldSpec,
    Message,
    Opcode,
    StagePrescription,
    field_specs,
)
from protocol.prescription import Prescription
from protocol.refusal import FieldId, RefusalCode
from protocol.units import U32_MAX

DIGEST_ALGORITHM = "SHA-256, first 16 bytes"

Sealer = Callable[[bytes, bytes], bytes]
"""(header, plaintext) -> sealed body: a session's ``seal``."""


class DecodeError(ProtocolError):
    """Bytes that are not a valid frame or message. ``refusal`` is the NAK code a pump
    answers with (FRAME_CORRUPT, UNSUPPORTED_VERSION, UNKNOWN_OPCODE, MALFORMED_PAYLOAD or
    INVALID_FIELD); ``limit`` is the violated bound of an INVALID_FIELD, if any."""

    def __init__(
        self,
        refusal: RefusalCode,
        message: str,
        path: str = "",
        limit: int | None = None,
        field: FieldId = FieldId.NONE,
    ) -> None:
        self.refusal = refusal
        self.limit = limit
        self.field = field
        """The FieldId an INVALID_FIELD or BAD_SCHEDULE names (docs/protocol.md 12.1)."""
        super().__init__(message, path)


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame's header fields and its body: the payload, or ciphertext + tag if sealed."""

    flags: int
    seq: int
    ref: int
    opcode: Opcode
    body: bytes

    def __post_init__(self) -> None:
        problem = _frame_problem(self.flags, self.seq, self.ref, self.opcode, self.body)
        if problem is not None:
            raise FieldValueError(*problem)

    @property
    def is_reply(self) -> bool:
        return bool(self.flags & wire.FLAG_REPLY)

    @property
    def is_sealed(self) -> bool:
        return bool(self.flags & wire.FLAG_SEALED)

    @property
    def header(self) -> bytes:
        """The 15 header bytes as sent: a sealed frame's AEAD associated data."""
        # Fields were checked when the frame was built. The Opcode packs as the int it is.
        return _pack_header(
            wire.SYNC, wire.VERSION, self.flags, self.seq, self.ref, self.opcode, len(self.body)
        )


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """A decoded unsealed frame: its header fields and its message."""

    frame: Frame
    message: Message


def _frame_problem(
    flags: int, seq: int, ref: int, opcode: Opcode | int, body: bytes
) -> tuple[str, str] | None:
    """The first header rule (docs/protocol.md, "Frame") a frame breaks, as (path, why)."""
    if flags < 0 or flags & ~wire.FLAGS_DEFINED:
        return "header.flags", f"reserved bits set in {flags:#04x} (allowed bits 0x03)"
    if opcode.__class__ is not Opcode:
        return "header.opcode", "must be an Opcode"
    # A set lookup, not ``opcode.is_reply``: an enum property costs more than the rest of
    # these checks, and every frame both ways passes here (docs/serve.md, "The serve
    # loop's cost").
    is_reply = opcode in _REPLY_OPCODES
    if is_reply != bool(flags & wire.FLAG_REPLY):
        return "header.flags", f"REPLY flag disagrees with opcode {opcode.name}"
    if not 1 <= seq <= U32_MAX:
        return "header.seq", f"{seq} outside 1..{U32_MAX}"
    if not 0 <= ref <= U32_MAX:
        return "header.ref", f"{ref} outside 0..{U32_MAX}"
    if not is_reply and ref != 0:
        return "header.ref", "a request's REF must be 0"
    if len(body) > wire.MAX_BODY_LEN:
        return "body", f"{len(body)} bytes (allowed 0..{wire.MAX_BODY_LEN})"
    return None


_REPLY_OPCODES = frozenset(op for op in Opcode if op.is_reply)

_new_frame = object.__new__
_set_flags = Frame.__dict__["flags"].__set__
_set_seq = Frame.__dict__["seq"].__set__
_set_ref = Frame.__dict__["ref"].__set__
_set_opcode = Frame.__dict__["opcode"].__set__
_set_body = Frame.__dict__["body"].__set__


def _checked_frame(flags: int, seq: int, ref: int, opcode: Opcode, body: bytes) -> Frame:
    """A ``Frame`` whose fields the caller has just checked against every rule of
    ``_frame_problem``: built without checking them a second time."""
    frame: Frame = _new_frame(Frame)
    _set_flags(frame, flags)
    _set_seq(frame, seq)
    _set_ref(frame, ref)
    _set_opcode(frame, opcode)
    _set_body(frame, body)
    return frame


def header_bytes(flags: int, seq: int, ref: int, opcode: Opcode, body_length: int) -> bytes:
    """The 15 header bytes for a body of ``body_length`` bytes.

    The session layer computes the associated data with ``body_length`` = plaintext length
    + ``wire.TAG_LEN`` before it encrypts, since the tag is part of the sealed body.
    """
    problem = _frame_problem(flags, seq, ref, opcode, b"")
    if problem is not None:
        raise FieldValueError(*problem)
    if not 0 <= body_length <= wire.MAX_BODY_LEN:
        raise FieldValueError(
            "header.length", f"{body_length} outside 0..{wire.MAX_BODY_LEN}", wire.MAX_BODY_LEN
        )
    return _pack_header(wire.SYNC, wire.VERSION, flags, seq, ref, opcode, body_length)


_pack_header = wire.HEADER_STRUCT.pack
_unpack_header = wire.HEADER_STRUCT.unpack_from
_crc = crc16


def seal_frame(
    flags: int, seq: int, ref: int, opcode: Opcode, plaintext: bytes, *, seal: Sealer
) -> bytes:
    """One sealed frame's bytes, in one pass: the header for a body of ``plaintext`` + tag
    (checked as ``header_bytes`` checks it), ``seal(header, plaintext)`` (a session's
    ``seal``, which checks SEQ and key), then the CRC. The same bytes as ``build_frame`` of
    a ``Frame`` of that body, without building one and checking its header twice."""
    header = header_bytes(flags, seq, ref, opcode, len(plaintext) + wire.TAG_LEN)
    body = seal(header, plaintext)
    if len(body) != len(plaintext) + wire.TAG_LEN:
        raise ValueError(
            f"the sealer returned {len(body)} bytes for a {len(plaintext)}-byte plaintext"
        )
    head_and_body = header + body
    return head_and_body + _crc(head_and_body[2:]).to_bytes(2, "little")


def build_frame(frame: Frame) -> bytes:
    """The frame's bytes: header, body, then CRC-16 over everything after SYNC."""
    head_and_body = frame.header + frame.body
    return head_and_body + crc16(head_and_body[2:]).to_bytes(2, "little")


def parse_frame(data: bytes | bytearray | memoryview) -> Frame:
    """Check one whole frame's length, CRC and header; the body is not interpreted.

    Length and CRC are checked here, in Python, before any parser sees the bytes
    (docs/field-notes.md "construct 2.10.70": compiled construct parsing is unsafe on unchecked
    input).
    """
    data = bytes(data)
    size = len(data)
    if size >= wire.MIN_FRAME_LEN and _crc(data[2:-2]) == data[-2] | data[-1] << 8:
        sync, version, flags, seq, ref, raw_opcode, length = _unpack_header(data)
        if (
            sync == wire.SYNC
            and version == wire.VERSION
            and length <= wire.MAX_BODY_LEN
            and size == wire.MIN_FRAME_LEN + length
        ):
            frame = _header_frame(flags, seq, ref, raw_opcode, data)
            if frame is not None:
                return frame
    return _parse_frame_reference(data)


def parse_framed(data: bytes) -> Frame:
    """``parse_frame`` of a frame the ``Framer`` emitted (``FrameBytes.data``).

    The framer has checked the SYNC, the VERSION, the reserved FLAGS bits, the LENGTH
    bound, the size and the CRC (docs/protocol.md section 3), so only the header rules the
    framer does not know (the opcode, REPLY against it, SEQ, a request's REF) are checked
    here. Equal to ``parse_frame`` on every frame the framer emits, value for value and
    error for error (tests/protocol/test_codec_frames.py).
    """
    _sync, _version, flags, seq, ref, raw_opcode, _length = _unpack_header(data)
    frame = _header_frame(flags, seq, ref, raw_opcode, data)
    if frame is None:
        return _parse_frame_reference(bytes(data))
    return frame


def _header_frame(flags: int, seq: int, ref: int, raw_opcode: int, data: bytes) -> Frame | None:
    """The ``Frame`` of a frame whose size, SYNC, VERSION and CRC are good, if its header
    keeps every rule of ``_frame_problem``; None otherwise (the reference says why)."""
    opcode = _OPCODES.get(raw_opcode)
    if opcode is None or flags & ~wire.FLAGS_DEFINED or not seq:
        return None
    if opcode in _REPLY_OPCODES:
        if not flags & wire.FLAG_REPLY:
            return None
    elif flags & wire.FLAG_REPLY or ref:
        return None
    return _checked_frame(flags, seq, ref, opcode, data[wire.HEADER_LEN : -2])


def _parse_frame_reference(data: bytes) -> Frame:
    """``parse_frame`` check by check, in the order docs/protocol.md gives the errors."""
    size = len(data)
    if size < wire.MIN_FRAME_LEN:
        raise DecodeError(
            RefusalCode.FRAME_CORRUPT,
            f"{size} bytes is shorter than a frame ({wire.MIN_FRAME_LEN})",
        )
    if data[:2] != wire.SYNC:
        raise DecodeError(RefusalCode.FRAME_CORRUPT, "does not start with A5 5A", "header.sync")
    length = int.from_bytes(data[wire.LENGTH_OFFSET : wire.HEADER_LEN], "little")
    if length > wire.MAX_BODY_LEN:
        raise DecodeError(
            RefusalCode.FRAME_CORRUPT,
            f"{length} is above the maximum {wire.MAX_BODY_LEN}",
            "header.length",
            wire.MAX_BODY_LEN,
        )
    if size != wire.MIN_FRAME_LEN + length:
        raise DecodeError(
            RefusalCode.FRAME_CORRUPT,
            f"says a {length}-byte body, so {wire.MIN_FRAME_LEN + length} bytes, got {size}",
            "header.length",
        )
    if crc16(data[2:-2]) != int.from_bytes(data[-2:], "little"):
        raise DecodeError(RefusalCode.FRAME_CORRUPT, "CRC-16 does not match", "crc")
    version, flags, seq, ref, raw_opcode, _ = wire.parse_header(data[: wire.HEADER_LEN])
    if version != wire.VERSION:
        raise DecodeError(
            RefusalCode.UNSUPPORTED_VERSION, f"{version} is not {wire.VERSION}", "header.version"
        )
    opcode = _OPCODES.get(raw_opcode)
    if opcode is None:
        raise DecodeError(
            RefusalCode.UNKNOWN_OPCODE, f"{raw_opcode:#04x} is not an opcode", "header.opcode"
        )
    try:
        return Frame(flags, seq, ref, opcode, data[wire.HEADER_LEN : -2])
    except FieldValueError as error:
        raise DecodeError(RefusalCode.FRAME_CORRUPT, error.message, error.path) from error


_OPCODES: dict[int, Opcode] = {op.value: op for op in Opcode}

# -- payloads -----------------------------------------------------------------------------


def encode_payload(message: Message) -> tuple[Opcode, bytes]:
    """The message's opcode and plaintext payload bytes (docs/protocol.md, "Messages")."""
    opcode = type(message).OPCODE
    plan = PLANS[opcode.value]
    if plan is not None:  # a constructed message is valid: the plan only packs it
        packed = plan.encode_payload(message)
        if packed is not None:
            return opcode, packed
    body = wire.build_payload(opcode.value, _to_fields(message))
    return opcode, body


def decode_payload(opcode: int, body: bytes) -> Message:
    """The message an opcode's plaintext payload holds; DecodeError if it holds none."""
    plan = PLANS[opcode]
    if plan is not None:
        message = plan.decode_payload(bytes(body))
        if message is not None:
            return message
    return decode_payload_reference(opcode, body)


def decode_payload_reference(opcode: int, body: bytes) -> Message:
    """``decode_payload`` by the construct declarations alone: the reference the fast
    plans are tested against (protocol/fast_codec.py), and what decides every error."""
    op = _OPCODES.get(opcode)
    if op is None:
        raise DecodeError(
            RefusalCode.UNKNOWN_OPCODE, f"{opcode:#04x} is not an opcode", "header.opcode"
        )
    body = bytes(body)
    expected = _FIXED_SIZES[op.value]
    if expected is not None and len(body) != expected:
        raise DecodeError(
            RefusalCode.MALFORMED_PAYLOAD,
            f"{len(body)} bytes, but a {op.name} payload is {expected} bytes",
            "payload",
        )
    try:
        fields = wire.parse_payload(op.value, body)
    except ProtocolError as error:
        raise DecodeError(
            RefusalCode.MALFORMED_PAYLOAD, error.message, _join("payload", error.path)
        ) from error
    message: Message = _from_fields(MESSAGE_BY_OPCODE[op.value], fields, "payload")
    return message


_FIXED_SIZES: dict[int, int | None] = {op: wire.fixed_size(op) for op in wire.PAYLOADS}


def encode(message: Message, *, seq: int, ref: int = 0) -> bytes:
    """One unsealed frame carrying ``message``. The REPLY flag follows the opcode."""
    plan = PLANS[type(message).OPCODE.value]
    if plan is not None:
        data = plan.encode(message, seq, ref)
        if data is not None:
            return data
    return encode_reference(message, seq=seq, ref=ref)


def encode_reference(message: Message, *, seq: int, ref: int = 0) -> bytes:
    """``encode`` by the construct declarations alone (the fast plans' reference)."""
    opcode, body = encode_payload_reference(message)
    flags = wire.FLAG_REPLY if opcode.is_reply else 0
    return build_frame(Frame(flags, seq, ref, opcode, body))


def encode_payload_reference(message: Message) -> tuple[Opcode, bytes]:
    """``encode_payload`` by the construct declarations alone."""
    opcode = type(message).OPCODE
    return opcode, wire.build_payload(opcode.value, _to_fields(message))


def decode(data: bytes | bytearray | memoryview) -> DecodedFrame:
    """Decode one whole unsealed frame. Raises DecodeError (a ProtocolError), nothing else.

    A frame whose opcode has a fast plan (protocol/fast_codec.py) is decoded by it when it
    accepts the frame in full; anything else, every error included, is decided by
    ``decode_reference``."""
    if len(data) > wire.HEADER_LEN:
        plan = PLANS[data[12]]
        if plan is not None:
            found = plan.decode(bytes(data))
            if found is not None:
                flags, seq, ref, body, message = found
                decoded = _new(DecodedFrame)
                _DECODED_FRAME(decoded, _checked_frame(flags, seq, ref, plan.opcode, body))
                _DECODED_MESSAGE(decoded, message)
                return decoded
    return decode_reference(data)


def decode_reference(data: bytes | bytearray | memoryview) -> DecodedFrame:
    """``decode`` by the construct declarations alone: the reference of the fast plans."""
    frame = parse_frame(data)
    if frame.is_sealed:
        raise DecodeError(
            RefusalCode.MALFORMED_PAYLOAD,
            "the body is sealed; the session layer opens it before decode_payload",
            "header.flags",
        )
    return DecodedFrame(frame, decode_payload(frame.opcode, frame.body))


# The fast path builds these already-checked values without running their checks again.
_new = object.__new__
_DECODED_FRAME = DecodedFrame.__dict__["frame"].__set__
_DECODED_MESSAGE = DecodedFrame.__dict__["message"].__set__


def prescription_digest(prescription: Prescription) -> bytes:
    """The 16-byte digest that COMMIT_PRESCRIPTION quotes (docs/protocol.md, "Digest").

    SHA-256 over the canonical STAGE_PRESCRIPTION payload, truncated to 16 bytes. The
    encoding is canonical (one byte string per prescription: decode refuses any other),
    so the programmer and the pump compute the same digest independently (C5).
    """
    _, payload = encode_payload(StagePrescription(prescription))
    return hashlib.sha256(payload).digest()[:16]


# -- field conversions, driven by the messages' field declarations -------------------------


def _join(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if path else prefix


def _to_fields(value: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for spec in field_specs(type(value)):
        item = getattr(value, spec.name)
        kind = spec.kind
        if kind is FieldKind.ENUM or kind is FieldKind.BOOL:
            fields[spec.name] = int(item)
        elif kind is FieldKind.ENUM_SET:
            fields[spec.name] = sum(1 << member.value for member in item)
        elif kind is FieldKind.RECORD:
            fields[spec.name] = _to_fields(item)
        elif kind is FieldKind.OPTIONAL_RECORD:
            fields[f"{spec.name}_present"] = 0 if item is None else 1
            fields[spec.name] = None if item is None else _to_fields(item)
        elif kind is FieldKind.RECORDS:
            fields[spec.name] = [_to_fields(record) for record in item]
        else:
            fields[spec.name] = item
    return fields


_PASS_THROUGH = (FieldKind.INT, FieldKind.TEXT, FieldKind.BYTES)
_PLANS: dict[type, tuple[tuple[str, FieldSpec | None], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, FieldSpec | None], ...]:
    """Per field: its name, and its spec if the parsed value needs converting."""
    plan = _PLANS.get(cls)
    if plan is None:
        plan = tuple(
            (spec.name, None if spec.kind in _PASS_THROUGH else spec) for spec in field_specs(cls)
        )
        _PLANS[cls] = plan
    return plan


def _from_fields(cls: type[Any], fields: Any, path: str) -> Any:
    values = [
        fields[name] if spec is None else _field_value(spec, fields, path)
        for name, spec in _plan(cls)
    ]
    try:
        return cls(*values)
    except FieldValueError as error:
        where = _join(path, error.path)
        refusal = (
            RefusalCode.BAD_SCHEDULE
            if isinstance(error, ScheduleError)
            else RefusalCode.INVALID_FIELD
        )
        raise DecodeError(
            refusal, error.message, where, error.limit, field_for_path(where)
        ) from error


_FIELD_RULES: tuple[tuple[re.Pattern[str], FieldId], ...] = tuple(
    (re.compile(pattern), field)
    for pattern, field in (
        (r"patient_bolus\.dose_nl$", FieldId.PATIENT_BOLUS_DOSE),
        (r"patient_bolus\.duration_s$", FieldId.PATIENT_BOLUS_DURATION),
        (r"patient_bolus\.lockout_s$", FieldId.PATIENT_BOLUS_LOCKOUT),
        (r"patient_bolus\.max_per_24h$", FieldId.PATIENT_BOLUS_MAX_PER_24H),
        (r"steps\[\d+\]\.start_s$", FieldId.STEP_START),
        (r"steps\[\d+\]\.rate_nl_per_day$", FieldId.STEP_RATE),
        (r"(^|\.)steps$", FieldId.STEP_COUNT),
        (r"(^|\.)drug_name$", FieldId.DRUG_NAME),
        (r"(^|\.)concentration_ug_per_ml$", FieldId.CONCENTRATION),
        (r"(^|\.)low_reservoir_threshold_nl$", FieldId.LOW_RESERVOIR_THRESHOLD),
        (r"(^|\.)mode$", FieldId.MODE),
        (r"(^|\.)repeat$", FieldId.REPEAT),
        (r"(^|\.)command_id$", FieldId.COMMAND_ID),
        (r"(^|\.)dose_nl$", FieldId.BOLUS_DOSE),
        (r"(^|\.)duration_s$", FieldId.BOLUS_DURATION),
        (r"(^|\.)catheter_volume_nl$", FieldId.CATHETER_VOLUME),
        (r"(^|\.)length_cm$", FieldId.CATHETER_LENGTH),
        (r"(^|\.)withdrawn_nl$", FieldId.WITHDRAWN_VOLUME),
        (r"(^|\.)new_volume_nl$", FieldId.NEW_VOLUME),
        (r"(^|\.)new_concentration_ug_per_ml$", FieldId.NEW_CONCENTRATION),
        (r"(^|\.)pump_time_ms$", FieldId.CLOCK),
        (r"(^|\.)digest$", FieldId.DIGEST),
        (r"(^|\.)from_seq$", FieldId.LOG_INDEX),
        (r"(^|\.)count$", FieldId.LOG_COUNT),
        (r"(^|\.)alarm$", FieldId.ALARM),
        (r"(^|\.)role$", FieldId.ROLE),
        (r"(^|\.)overrides$", FieldId.OVERRIDE_FLAGS),
    )
)


def field_for_path(path: str) -> FieldId:
    """The FieldId (docs/protocol.md section 12.1) a refusal names for the field at
    ``path`` (``"payload.prescription.steps[2].start_s"``); NONE for a field no FieldId
    names (a programmer cannot point at it on screen: the reply still names the code)."""
    for pattern, field in _FIELD_RULES:
        if pattern.search(path):
            return field
    return FieldId.NONE


def _field_value(spec: FieldSpec, fields: Any, path: str) -> Any:
    raw = fields[spec.name]
    kind = spec.kind
    if kind in _PASS_THROUGH:
        return raw
    where = _join(path, spec.name)
    if kind is FieldKind.ENUM:
        return _enum_member(spec.type, raw, where)
    if kind is FieldKind.BOOL:
        if raw not in (0, 1):
            raise DecodeError(RefusalCode.MALFORMED_PAYLOAD, f"{raw} is not 0 or 1", where)
        return raw == 1
    if kind is FieldKind.ENUM_SET:
        return _enum_set(spec.type, raw, where)
    if kind is FieldKind.RECORD:
        return _from_fields(spec.type, raw, where)
    if kind is FieldKind.OPTIONAL_RECORD:
        present = fields[f"{spec.name}_present"]
        if present not in (0, 1):
            raise DecodeError(
                RefusalCode.MALFORMED_PAYLOAD,
                f"presence flag {present} is not 0 or 1",
                f"{where}_present",
            )
        return None if present == 0 else _from_fields(spec.type, raw, where)
    # RECORDS
    return tuple(_from_fields(spec.type, item, f"{where}[{i}]") for i, item in enumerate(raw))


_MEMBERS: dict[type[IntEnum], dict[int, IntEnum]] = {}


def _enum_member(enum: type[IntEnum], raw: int, where: str) -> IntEnum:
    members = _MEMBERS.get(enum)
    if members is None:
        members = _MEMBERS[enum] = {member.value: member for member in enum}
    member = members.get(raw)
    if member is None:
        # Strict enums (issue 2): an unknown value is refused, never passed through.
        allowed = ", ".join(f"{m.value}={m.name}" for m in enum)
        raise DecodeError(
            RefusalCode.MALFORMED_PAYLOAD,
            f"{raw} is not a {enum.__name__} ({allowed})",
            where,
        )
    return member


def _enum_set(enum: type[IntEnum], bitmap: int, where: str) -> frozenset[IntEnum]:
    members = []
    bit = 0
    remaining = bitmap
    while remaining:
        if remaining & 1:
            members.append(_enum_member(enum, bit, f"{where}.bit{bit}"))
        remaining >>= 1
        bit += 1
    return frozenset(members)

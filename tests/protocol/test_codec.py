"""The codec: every message round-trips, every bad input is a ProtocolError with a path."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from protocol import wire
from protocol.checksum import crc16
from protocol.codec import (
    DecodeError,
    Frame,
    build_frame,
    decode,
    decode_payload,
    encode,
    encode_payload,
    field_for_path,
    header_bytes,
    parse_frame,
    prescription_digest,
)
from protocol.device_state import AlarmKind, TherapyState
from protocol.errors import FieldValueError, ProtocolError
from protocol.messages import (
    MESSAGE_TYPES,
    ClinicianBolus,
    Message,
    Opcode,
    SetClock,
    StagePrescription,
    Status,
)
from protocol.prescription import (
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)
from protocol.refusal import FieldId, RefusalCode
from protocol.units import PUMP_CLOCK_MAX_MS, U32_MAX

MORPHINE = Prescription(
    drug_name="Morphine",
    concentration_ug_per_ml=25_000,
    mode=InfusionMode.FLEX,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 500_000), FlexStep(28_800, 800_000)),
    patient_bolus=PatientBolusLimits(50_000, 600, 3_600, 4),
    low_reservoir_threshold_nl=2_000_000,
)
STATUS = Status(
    state=TherapyState.FLEX,
    rate_nl_per_day=500_000,
    reservoir_nl=18_000_000,
    battery_percent=87,
    active_alarms=frozenset({AlarmKind.LOW_RESERVOIR}),
    last_command_id=41,
    pump_time_ms=1_700_000_000_000,
)


def frame_for(message: Message, seq: int = 1) -> bytes:
    ref = 1 if type(message).OPCODE.is_reply else 0
    return encode(message, seq=seq, ref=ref)


def with_crc(head_and_body: bytes) -> bytes:
    return head_and_body + crc16(head_and_body[2:]).to_bytes(2, "little")


# -- round trips ----------------------------------------------------------------------


@pytest.mark.parametrize("cls", MESSAGE_TYPES, ids=lambda cls: cls.__name__)
@given(data=st.data())
def test_every_message_type_round_trips(cls: type[Message], data: st.DataObject) -> None:
    message = data.draw(st.from_type(cls))
    seq = data.draw(st.integers(1, U32_MAX))
    ref = data.draw(st.integers(0, U32_MAX)) if cls.OPCODE.is_reply else 0
    frame = encode(message, seq=seq, ref=ref)
    decoded = decode(frame)
    assert decoded.message == message
    assert (decoded.frame.seq, decoded.frame.ref, decoded.frame.opcode) == (seq, ref, cls.OPCODE)
    assert decoded.frame.is_reply == cls.OPCODE.is_reply
    # Canonical: one byte string per message, so digests and vectors are well defined.
    assert encode(decoded.message, seq=seq, ref=ref) == frame


@given(st.from_type(Message))
def test_every_payload_fits_a_sealed_body(message: Message) -> None:
    _, payload = encode_payload(message)
    assert len(payload) <= wire.MAX_PLAIN_PAYLOAD_LEN


def test_status_frame_layout_by_hand() -> None:
    frame = encode(STATUS, seq=7, ref=6)
    assert frame[:2] == b"\xa5\x5a"
    assert frame[2] == 1  # VERSION
    assert frame[3] == wire.FLAG_REPLY
    assert int.from_bytes(frame[4:8], "little") == 7
    assert int.from_bytes(frame[8:12], "little") == 6
    assert frame[12] == Opcode.STATUS.value == 0x91
    assert int.from_bytes(frame[13:15], "little") == len(frame) - 17 == 26
    body = frame[15:-2]
    assert body[0] == TherapyState.FLEX
    assert int.from_bytes(body[10:14], "little") == 1 << AlarmKind.LOW_RESERVOIR
    assert int.from_bytes(frame[-2:], "little") == crc16(frame[2:-2])


# -- the frame API the session layer seals with ----------------------------------------


def test_frame_level_api_carries_an_opaque_sealed_body() -> None:
    opcode, payload = encode_payload(ClinicianBolus(command_id=9, dose_nl=100_000, duration_s=60))
    sealed_length = len(payload) + wire.TAG_LEN
    flags = wire.FLAG_SEALED
    aad = header_bytes(flags, 5, 0, opcode, sealed_length)
    assert len(aad) == wire.HEADER_LEN == 15
    opaque = bytes(range(sealed_length))  # stands in for ciphertext + tag
    frame = Frame(flags, 5, 0, opcode, opaque)
    assert frame.header == aad
    data = build_frame(frame)
    assert data[: wire.HEADER_LEN] == aad
    assert parse_frame(data) == frame
    with pytest.raises(DecodeError, match="sealed"):
        decode(data)


@given(st.from_type(Message))
def test_payload_level_api_round_trips(message: Message) -> None:
    opcode, payload = encode_payload(message)
    assert decode_payload(opcode, payload) == message


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"flags": 0x04}, "header.flags"),
        ({"flags": wire.FLAG_REPLY}, "header.flags"),
        ({"seq": 0}, "header.seq"),
        ({"seq": U32_MAX + 1}, "header.seq"),
        ({"ref": 3}, "header.ref"),
        ({"body": bytes(wire.MAX_BODY_LEN + 1)}, "body"),
    ],
    ids=["reserved-flag", "reply-flag-on-request", "seq-zero", "seq-too-big", "ref-in-request",
         "body-too-long"],
)  # fmt: skip
def test_frame_refuses_header_rule_breaks(kwargs: dict[str, object], path: str) -> None:
    fields: dict[str, object] = {
        "flags": 0, "seq": 1, "ref": 0, "opcode": Opcode.READ_STATUS, "body": b"",
    }  # fmt: skip
    fields.update(kwargs)
    with pytest.raises(FieldValueError) as raised:
        Frame(**fields)  # type: ignore[arg-type]
    assert raised.value.path == path


# -- bad input: a ProtocolError with a refusal code and a path, nothing else --------------


@pytest.mark.hazard("C2")
@given(st.binary(max_size=wire.MAX_FRAME_LEN + 4))
@example(b"")
@example(b"\xa5\x5a")
@example(bytes.fromhex("a55a01000100000000000000110000"))
def test_decode_of_arbitrary_bytes_returns_or_raises_protocol_error(data: bytes) -> None:
    try:
        decoded = decode(data)
    except ProtocolError:
        return
    assert encode(decoded.message, seq=decoded.frame.seq, ref=decoded.frame.ref) == data


@pytest.mark.hazard("C2")
@given(
    opcode=st.sampled_from(Opcode),
    body=st.binary(max_size=200),
    seq=st.integers(1, U32_MAX),
)
def test_decode_of_arbitrary_payloads_behind_a_good_crc(
    opcode: Opcode, body: bytes, seq: int
) -> None:
    # The CRC check stops almost every random input, so this goes past it on purpose:
    # a valid header and CRC around arbitrary payload bytes reach the payload parsers.
    flags = wire.FLAG_REPLY if opcode.is_reply else 0
    data = build_frame(Frame(flags, seq, 1 if opcode.is_reply else 0, opcode, body))
    try:
        decoded = decode(data)
    except DecodeError as error:
        refusal, path = error.refusal, error.path
    else:
        # Whatever decodes must be canonical: it re-encodes to the same bytes.
        assert encode_payload(decoded.message) == (opcode, body)
        return
    assert refusal in {RefusalCode.MALFORMED_PAYLOAD, RefusalCode.INVALID_FIELD}
    assert path.startswith("payload")


@pytest.mark.hazard("C2")
@given(frame=st.from_type(Message).map(frame_for), data=st.data())
def test_a_single_flipped_bit_anywhere_is_detected(frame: bytes, data: st.DataObject) -> None:
    bit = data.draw(st.integers(0, len(frame) * 8 - 1))
    corrupted = bytearray(frame)
    corrupted[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(DecodeError) as raised:
        decode(bytes(corrupted))
    assert raised.value.refusal is RefusalCode.FRAME_CORRUPT


@pytest.mark.hazard("C2")
@given(frame=st.from_type(Message).map(frame_for), data=st.data())
def test_a_truncated_or_extended_frame_is_refused(frame: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(frame) - 1))
    with pytest.raises(DecodeError):
        decode(frame[:cut])
    with pytest.raises(DecodeError):
        decode(frame + data.draw(st.binary(min_size=1, max_size=4)))


@pytest.mark.parametrize(
    ("head_and_body", "refusal", "path"),
    [
        ("a55a02000100000000000000110000", RefusalCode.UNSUPPORTED_VERSION, "header.version"),
        ("a55a01000100000000000000700000", RefusalCode.UNKNOWN_OPCODE, "header.opcode"),
        ("a55a01010100000000000000110000", RefusalCode.FRAME_CORRUPT, "header.flags"),
        ("a55a01000000000000000000110000", RefusalCode.FRAME_CORRUPT, "header.seq"),
        ("a55a01000100000005000000110000", RefusalCode.FRAME_CORRUPT, "header.ref"),
        ("a55a0100010000000000000011010000", RefusalCode.MALFORMED_PAYLOAD, "payload"),
        ("a55a010001000000000000003805000100000000", RefusalCode.MALFORMED_PAYLOAD,
         "payload.alarm"),
        ("a55a010001000000000000003005000000000000", RefusalCode.MALFORMED_PAYLOAD,
         "payload"),
        ("a55a0100010000000000000030040000000000", RefusalCode.INVALID_FIELD,
         "payload.command_id"),
    ],
    ids=["version-2", "unknown-opcode", "reply-flag-on-request", "seq-zero", "ref-in-request",
         "trailing-byte", "unknown-alarm-kind", "payload-too-long", "command-id-zero"],
)  # fmt: skip
def test_bad_frames_name_the_refusal_and_the_field(
    head_and_body: str, refusal: RefusalCode, path: str
) -> None:
    with pytest.raises(DecodeError) as raised:
        decode(with_crc(bytes.fromhex(head_and_body)))
    assert raised.value.refusal is refusal
    assert raised.value.path == path


def test_a_bad_value_inside_a_prescription_names_the_nested_field() -> None:
    _, payload = encode_payload(StagePrescription(MORPHINE))
    # Swap the two steps' offsets: the second step no longer starts after the first.
    steps_at = payload.index(bytes.fromhex("0200000000"))  # count 2, first start 0
    second = steps_at + 1 + 8
    bad = bytearray(payload)
    bad[second : second + 4] = (0).to_bytes(4, "little")
    with pytest.raises(DecodeError) as raised:
        decode_payload(Opcode.STAGE_PRESCRIPTION, bytes(bad))
    # Each offset is in range; their order is not: BAD_SCHEDULE / STEP_START / 0 (section 12).
    assert raised.value.refusal is RefusalCode.BAD_SCHEDULE
    assert (raised.value.field, raised.value.limit) == (FieldId.STEP_START, 0)
    assert raised.value.path == "payload.prescription.steps[1].start_s"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("payload.prescription.steps[3].start_s", FieldId.STEP_START),
        ("payload.prescription.steps[0].rate_nl_per_day", FieldId.STEP_RATE),
        ("payload.prescription.steps", FieldId.STEP_COUNT),
        ("payload.prescription.patient_bolus.patient_bolus.dose_nl", FieldId.PATIENT_BOLUS_DOSE),
        ("payload.dose_nl", FieldId.BOLUS_DOSE),
        ("payload.prescription.concentration_ug_per_ml", FieldId.CONCENTRATION),
        ("payload.new_concentration_ug_per_ml", FieldId.NEW_CONCENTRATION),
        ("payload.count", FieldId.LOG_COUNT),
        ("payload.pump_time_ms", FieldId.CLOCK),
        ("payload.command_id", FieldId.COMMAND_ID),
        ("payload.idle_timeout_s", FieldId.NONE),
    ],
    ids=lambda v: v if isinstance(v, str) else v.name,
)
def test_a_field_path_names_its_field_id(path: str, field: FieldId) -> None:
    assert field_for_path(path) is field


def test_a_non_ascii_drug_name_is_malformed() -> None:
    _, payload = encode_payload(StagePrescription(MORPHINE))
    bad = bytearray(payload)
    bad[1] = 0xE9  # first letter of the drug name
    with pytest.raises(DecodeError) as raised:
        decode_payload(Opcode.STAGE_PRESCRIPTION, bytes(bad))
    assert raised.value.refusal is RefusalCode.MALFORMED_PAYLOAD


@pytest.mark.parametrize("flag", [2, 255], ids=["two", "ff"])
def test_a_presence_flag_other_than_0_or_1_is_refused(flag: int) -> None:
    _, payload = encode_payload(StagePrescription(MORPHINE))
    flag_at = len(payload) - 4 - 13 - 1  # before the limits and the threshold
    assert payload[flag_at] == 1
    bad = bytearray(payload)
    bad[flag_at] = flag
    with pytest.raises(DecodeError) as raised:
        decode_payload(Opcode.STAGE_PRESCRIPTION, bytes(bad))
    assert raised.value.path.startswith("payload.prescription.patient_bolus")


def test_an_unknown_alarm_bit_in_status_is_refused() -> None:
    _, payload = encode_payload(STATUS)
    bad = bytearray(payload)
    bad[10:14] = (1 << 20).to_bytes(4, "little")
    with pytest.raises(DecodeError) as raised:
        decode_payload(Opcode.STATUS, bytes(bad))
    assert raised.value.path == "payload.active_alarms.bit20"


# -- digest -----------------------------------------------------------------------------


def test_prescription_digest_is_truncated_sha256_of_the_stage_payload() -> None:
    _, payload = encode_payload(StagePrescription(MORPHINE))
    assert prescription_digest(MORPHINE) == hashlib.sha256(payload).digest()[:16]
    assert len(prescription_digest(MORPHINE)) == 16


@given(st.from_type(Prescription), st.from_type(Prescription))
def test_different_prescriptions_have_different_digests(a: Prescription, b: Prescription) -> None:
    assert (prescription_digest(a) == prescription_digest(b)) == (a == b)


# -- the repeat byte of a prescription that does not repeat (docs/protocol.md 10.1, 10.2) ---


@pytest.mark.parametrize(
    ("mode", "steps"),
    [(InfusionMode.CONTINUOUS, (FlexStep(0, 500_000),)), (InfusionMode.STOPPED, ())],
    ids=["continuous", "stopped"],
)
def test_only_a_flex_prescription_may_repeat_weekly(
    mode: InfusionMode, steps: tuple[FlexStep, ...]
) -> None:
    daily = Prescription("morphine", 1_000, mode, Repeat.DAILY, steps, None, 2_000_000)
    _, payload = encode_payload(StagePrescription(daily))
    weekly = bytearray(payload)
    repeat_at = 1 + len("morphine") + 4 + 1  # text, concentration, mode (section 6)
    assert weekly[repeat_at] == Repeat.DAILY
    weekly[repeat_at] = Repeat.WEEKLY
    with pytest.raises(DecodeError) as refused:
        decode_payload(Opcode.STAGE_PRESCRIPTION, bytes(weekly))
    error = refused.value
    assert (error.refusal, error.field, error.limit) == (
        RefusalCode.INVALID_FIELD,
        FieldId.REPEAT,
        Repeat.DAILY,
    )
    # So the prescription has one payload the pump accepts, and one digest.
    assert decode_payload(Opcode.STAGE_PRESCRIPTION, payload) == StagePrescription(daily)
    with pytest.raises(FieldValueError):
        Prescription("morphine", 1_000, mode, Repeat.WEEKLY, steps, None, 2_000_000)


def test_a_clock_past_year_9999_is_refused_naming_the_bound() -> None:
    """A later clock would let log stamps overflow the u64 on the wire (section 7)."""
    _, payload = encode_payload(SetClock(command_id=1, pump_time_ms=PUMP_CLOCK_MAX_MS))
    bad = payload[:4] + (PUMP_CLOCK_MAX_MS + 1).to_bytes(8, "little")
    with pytest.raises(DecodeError) as raised:
        decode_payload(Opcode.SET_CLOCK, bad)
    error = raised.value
    assert (error.refusal, error.field, error.limit) == (
        RefusalCode.INVALID_FIELD,
        FieldId.CLOCK,
        PUMP_CLOCK_MAX_MS,
    )

"""protocol/fast_codec.py against the reference codec: identical messages, identical errors.

Every opcode has a plan (fixed-size payloads in protocol/fast_codec.py, variable-size ones
in protocol/variable_plans.py) and is exercised with valid messages and with frames mutated
the ways a link and an attacker mutate them (a byte changed with the CRC fixed, a bit flipped, cut,
extended, a header field rewritten), and the public functions (fast first) must answer
exactly as the reference functions (construct alone) do: the same value, or the same
DecodeError with the same code, path, field, limit and text.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import codec, wire
from protocol.checksum import crc16
from protocol.fast_codec import _PlanTable, all_plans
from protocol.messages import (
    MESSAGE_BY_OPCODE,
    Challenge,
    Message,
    Nak,
    Opcode,
    ReadStatus,
    StagePrescription,
)
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat
from protocol.refusal import FieldId, RefusalCode
from tests.protocol.conftest import message_strategy

PLANS = all_plans()
PLANNED = sorted(PLANS)


def outcome(call: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """What a codec function did: ("ok", value) or ("error", every detail of the error)."""
    try:
        return "ok", call(*args, **kwargs)
    except codec.DecodeError as error:
        return "error", (
            type(error),
            error.refusal,
            error.path,
            error.field,
            error.limit,
            str(error),
        )
    except Exception as error:
        return "error", (type(error), str(error))


def refix_crc(frame: bytearray) -> bytes:
    frame[-2:] = crc16(bytes(frame[2:-2])).to_bytes(2, "little")
    return bytes(frame)


def mutate(data: bytes, draw: st.DrawFn) -> bytes:
    frame = bytearray(data)
    how = draw(st.sampled_from(["byte", "byte-crc-kept", "bit", "cut", "extend", "header"]))
    if how in ("byte", "byte-crc-kept"):
        at = draw(st.integers(0, len(frame) - 1))
        frame[at] = draw(st.integers(0, 255))
        return bytes(frame) if how == "byte-crc-kept" else refix_crc(frame)
    if how == "bit":
        bit = draw(st.integers(0, len(frame) * 8 - 1))
        frame[bit // 8] ^= 1 << (bit % 8)
        return bytes(frame)
    if how == "cut":
        return bytes(frame[: draw(st.integers(0, len(frame) - 1))])
    if how == "extend":
        extra = draw(st.binary(min_size=1, max_size=8))
        frame[-2:-2] = extra
        if draw(st.booleans()):  # with LENGTH told, so only the payload is wrong
            length = len(frame) - wire.MIN_FRAME_LEN
            frame[wire.LENGTH_OFFSET : wire.HEADER_LEN] = length.to_bytes(2, "little")
        return refix_crc(frame)
    # A header field rewritten, CRC fixed: version, flags, seq, ref or opcode.
    offset, size = draw(st.sampled_from([(2, 1), (3, 1), (4, 4), (8, 4), (12, 1)]))
    frame[offset : offset + size] = draw(st.binary(min_size=size, max_size=size))
    return refix_crc(frame)


@st.composite
def planned_frames(draw: st.DrawFn) -> tuple[Message, bytes, bytes]:
    opcode = draw(st.sampled_from(PLANNED))
    message = draw(message_strategy(MESSAGE_BY_OPCODE[opcode]))
    reply = Opcode(opcode).is_reply
    seq = draw(st.integers(1, 0xFFFF_FFFF))
    ref = draw(st.integers(0, 0xFFFF_FFFF)) if reply else 0
    data = codec.encode_reference(message, seq=seq, ref=ref)
    return message, data, mutate(data, draw)


def test_every_message_has_a_plan() -> None:
    """Fixed-size payloads have a ``struct`` plan of their size; variable-size ones (size
    None) a bounds-checked plan; no opcode is left to the reference alone."""
    assert set(PLANS) == {op.value for op in Opcode}
    for opcode in PLANNED:
        assert wire.fixed_size(opcode) == PLANS[opcode].size
    variable = {Opcode(op) for op in PLANNED if PLANS[op].size is None}
    assert variable == {
        Opcode.STAGE_PRESCRIPTION,
        Opcode.STAGE_PRESCRIPTION_OVERRIDE,
        Opcode.CHALLENGE,
        Opcode.DEVICE_INFO,
        Opcode.CURRENT_PRESCRIPTION,
        Opcode.EVENT_LOG_PAGE,
        Opcode.ALARM_LIST,
    }


@given(planned_frames())
def test_fast_and_reference_agree_on_valid_and_mutated_frames(
    case: tuple[Message, bytes, bytes],
) -> None:
    message, data, mutated = case
    opcode, seq_ref = type(message).OPCODE, codec.decode_reference(data).frame
    # Encoding: the same bytes.
    assert codec.encode(message, seq=seq_ref.seq, ref=seq_ref.ref) == data
    assert codec.encode_payload(message) == codec.encode_payload_reference(message)
    # Decoding a valid frame and its payload: the same message.
    assert codec.decode(data) == codec.decode_reference(data)
    body = data[wire.HEADER_LEN : -wire.CRC_LEN]
    assert codec.decode_payload(opcode.value, body) == message
    # Decoding a mutated frame: the same message, or the same error in every detail.
    assert outcome(codec.decode, mutated) == outcome(codec.decode_reference, mutated)
    cut = mutated[wire.HEADER_LEN : -wire.CRC_LEN]
    assert outcome(codec.decode_payload, opcode.value, cut) == outcome(
        codec.decode_payload_reference, opcode.value, cut
    )


@given(
    opcode=st.sampled_from(PLANNED),
    body=st.binary(max_size=96),
)
def test_fast_and_reference_agree_on_arbitrary_payloads(opcode: int, body: bytes) -> None:
    assert outcome(codec.decode_payload, opcode, body) == outcome(
        codec.decode_payload_reference, opcode, body
    )


@pytest.mark.parametrize(
    ("seq", "ref"),
    [(0, 0), (2**32, 0), (1, -1), (1, 2**32)],
    ids=["seq-0", "seq-beyond-u32", "ref-negative", "ref-beyond-u32"],
)
def test_an_encode_the_reference_refuses_is_refused_alike(seq: int, ref: int) -> None:
    message = Nak(code=RefusalCode.BAD_STATE, field=FieldId.NONE, limit=0)
    assert outcome(codec.encode, message, seq=seq, ref=ref) == outcome(
        codec.encode_reference, message, seq=seq, ref=ref
    )
    assert outcome(codec.encode, message, seq=seq, ref=ref)[0] == "error"


def test_a_request_with_a_reference_is_refused_alike() -> None:
    message = ReadStatus()
    assert outcome(codec.encode, message, seq=1, ref=5) == outcome(
        codec.encode_reference, message, seq=1, ref=5
    )


VARIABLE = [op for op in PLANNED if PLANS[op].size is None]


@pytest.mark.parametrize("opcode", VARIABLE, ids=[Opcode(op).name for op in VARIABLE])
@given(data=st.data())
def test_every_cut_of_a_variable_payload_is_refused_alike(opcode: int, data: st.DataObject) -> None:
    """Each prefix of a valid payload (a count or a text length that runs past the end, a
    record cut in half) and the payload with bytes appended: the plan reads nothing short
    (construct's compile() would), so the reference decides, with the same error."""
    message = data.draw(message_strategy(MESSAGE_BY_OPCODE[opcode]))
    _, body = codec.encode_payload_reference(message)
    assert codec.decode_payload(opcode, body) == message
    for cut in range(len(body)):
        assert outcome(codec.decode_payload, opcode, body[:cut]) == outcome(
            codec.decode_payload_reference, opcode, body[:cut]
        )
    extended = body + data.draw(st.binary(min_size=1, max_size=4))
    assert outcome(codec.decode_payload, opcode, extended) == outcome(
        codec.decode_payload_reference, opcode, extended
    )


EDGE_BYTES = (0x00, 0x01, 0x1F, 0x20, 0x7E, 0x7F, 0x80, 0xFF)
"""Byte values at the edges the plans check: printable ASCII, ASCII, a 0/1 flag, a count."""


@pytest.mark.parametrize("opcode", VARIABLE, ids=[Opcode(op).name for op in VARIABLE])
@settings(max_examples=15)  # each example decodes every position x every edge byte, twice
@given(data=st.data())
def test_every_byte_of_a_variable_payload_set_to_an_edge_value_decodes_alike(
    opcode: int, data: st.DataObject
) -> None:
    """A text character, a presence flag, a count, an enum or a range-checked integer set
    to each edge value: the same message or the same error from both decoders."""
    message = data.draw(message_strategy(MESSAGE_BY_OPCODE[opcode]))
    _, body = codec.encode_payload_reference(message)
    if len(body) <= 160:
        positions: list[int] = list(range(len(body)))
    else:  # a long log page: a drawn sample of positions
        positions = data.draw(st.lists(st.integers(0, len(body) - 1), min_size=40, max_size=40))
    for at in positions:
        for value in EDGE_BYTES:
            changed = body[:at] + bytes((value,)) + body[at + 1 :]
            assert outcome(codec.decode_payload, opcode, changed) == outcome(
                codec.decode_payload_reference, opcode, changed
            )


def _forged(message: Message, path: tuple[str, ...], value: object) -> Message:
    """``message`` with one field replaced behind its constructor's back (a caller that
    bypassed the checks): what the encoders must still refuse alike."""
    holder: object = message
    for name in path[:-1]:
        holder = getattr(holder, name)
    object.__setattr__(holder, path[-1], value)
    return message


def _stage() -> StagePrescription:
    return StagePrescription(
        Prescription(
            "Baclofen", 500, InfusionMode.CONTINUOUS, Repeat.DAILY, (FlexStep(0, 1),), None, 0
        )
    )


@pytest.mark.parametrize(
    "forged",
    [
        _forged(_stage(), ("prescription", "drug_name"), "B\u00e9"),
        _forged(_stage(), ("prescription", "drug_name"), "x" * 300),
        _forged(_stage(), ("prescription", "steps"), (FlexStep(0, 1),) * 300),
        _forged(_stage(), ("prescription", "concentration_ug_per_ml"), 2**32),
        _forged(Challenge(b"\x00" * 16, "SN1"), ("serial",), "\u00ff"),
    ],
    ids=["non-ascii-text", "text-over-255", "steps-over-255", "int-over-width", "challenge-text"],
)
def test_an_unencodable_variable_message_is_refused_alike(forged: Message) -> None:
    assert outcome(codec.encode, forged, seq=1) == outcome(codec.encode_reference, forged, seq=1)
    assert outcome(codec.encode, forged, seq=1)[0] == "error"
    assert outcome(codec.encode_payload, forged) == outcome(codec.encode_payload_reference, forged)


def test_plans_are_built_on_first_use_and_kept() -> None:
    """A process builds only the plans it uses (a campaign worker: one), each once."""
    table = _PlanTable()
    assert len(table) == 0
    plan = table[Opcode.STATUS.value]
    assert plan is not None
    assert plan.opcode is Opcode.STATUS
    assert table[Opcode.STATUS.value] is plan  # kept, not rebuilt
    assert list(table) == [Opcode.STATUS.value]


@pytest.mark.parametrize("byte", [0x00, 0x7F, 0xFE], ids=["0x00", "0x7F", "0xFE"])
def test_a_byte_that_is_no_opcode_has_no_plan(byte: int) -> None:
    # The decoder looks up the header's opcode byte before any check: an unknown one must
    # give None (the reference then refuses it with UNKNOWN_OPCODE), never raise.
    assert byte not in {op.value for op in Opcode}
    assert _PlanTable()[byte] is None

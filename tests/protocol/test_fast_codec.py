"""protocol/fast_codec.py against the reference codec: identical messages, identical errors.

Every planned opcode is exercised with valid messages and with frames mutated the ways a
link and an attacker mutate them (a byte changed with the CRC fixed, a bit flipped, cut,
extended, a header field rewritten), and the public functions (fast first) must answer
exactly as the reference functions (construct alone) do: the same value, or the same
DecodeError with the same code, path, field, limit and text.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import codec, wire
from protocol.checksum import crc16
from protocol.fast_codec import PLANS
from protocol.messages import MESSAGE_BY_OPCODE, Message, Nak, Opcode, ReadStatus
from protocol.refusal import FieldId, RefusalCode
from tests.protocol.conftest import message_strategy

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


def test_every_fixed_size_message_of_integers_and_bytes_has_a_plan() -> None:
    """The plans cover what they can; a planned opcode's layout is flat and fixed."""
    assert Opcode.STATUS.value in PLANS
    assert Opcode.ACK.value in PLANS
    assert Opcode.NAK.value in PLANS
    for opcode in PLANNED:
        assert wire.fixed_size(opcode) == PLANS[opcode].size
    assert Opcode.STAGE_PRESCRIPTION.value not in PLANS  # variable: the reference path


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
    body=st.binary(max_size=64),
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

"""The frame level's one-pass paths against their references (protocol/codec.py).

- ``parse_frame`` accepts a good frame in one pass and hands anything else to
  ``_parse_frame_reference``, which checks rule by rule: the same Frame or the same error.
- ``parse_framed`` skips what the framer has checked: on every frame the framer emits it
  answers as ``parse_frame`` does, value for value and error for error.
- ``seal_frame`` builds a sealed frame in one pass: the bytes (or the error) of the three
  steps it replaces, ``header_bytes``, the seal and ``build_frame`` of a ``Frame``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import codec, crypto, wire
from protocol.checksum import crc16
from protocol.framer import FrameBytes, Framer
from protocol.messages import MESSAGE_BY_OPCODE, Opcode
from tests.protocol.conftest import message_strategy
from tests.protocol.test_fast_codec import mutate, outcome

KEY = bytes(range(32))


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """A valid frame of any opcode, or one mutated as a link or an attacker mutates it."""
    opcode = draw(st.sampled_from(sorted(MESSAGE_BY_OPCODE)))
    message = draw(message_strategy(MESSAGE_BY_OPCODE[opcode]))
    seq = draw(st.integers(1, 0xFFFF_FFFF))
    ref = draw(st.integers(0, 0xFFFF_FFFF)) if Opcode(opcode).is_reply else 0
    data = codec.encode_reference(message, seq=seq, ref=ref)
    return mutate(data, draw) if draw(st.booleans()) else data


@given(frames())
def test_parse_frame_answers_as_its_reference(data: bytes) -> None:
    reference = outcome(codec._parse_frame_reference, data)
    assert outcome(codec.parse_frame, data) == reference
    assert outcome(codec.parse_frame, bytearray(data)) == reference


@pytest.mark.hazard("C2")
@given(frames(), st.binary(max_size=8))
def test_parse_framed_answers_as_parse_frame_on_what_the_framer_emits(
    data: bytes, noise: bytes
) -> None:
    emitted = [e for e in Framer().feed(noise + data) if isinstance(e, FrameBytes)]
    for event in emitted:
        parsed = outcome(codec.parse_framed, event.data)
        assert parsed == outcome(codec.parse_frame, event.data)
        if parsed[0] == "ok":
            # The device and the programmer open a sealed frame with the header as received:
            # the very bytes ``Frame.header`` packs from the parsed fields.
            assert parsed[1].header == event.data[: wire.HEADER_LEN]


def test_parse_framed_refuses_header_rules_as_parse_frame_does() -> None:
    """The rules the framer does not know, one by one: same code, path and text."""
    good = codec.encode_reference(MESSAGE_BY_OPCODE[Opcode.READ_STATUS](), seq=5)
    cases = {
        "unknown opcode": (12, b"\x7e"),
        "reply flag on a request": (3, b"\x01"),
        "seq 0": (4, bytes(4)),
        "request with a ref": (8, b"\x01\x00\x00\x00"),
    }
    for name, (offset, value) in cases.items():
        frame = bytearray(good)
        frame[offset : offset + len(value)] = value
        frame[-2:] = crc16(bytes(frame[2:-2])).to_bytes(2, "little")
        (event,) = Framer().feed(bytes(frame))
        assert isinstance(event, FrameBytes), name
        fast, reference = (
            outcome(codec.parse_framed, event.data),
            outcome(codec.parse_frame, event.data),
        )
        assert fast[0] == "error", name
        assert fast == reference, name


def _three_steps(flags: int, seq: int, ref: int, opcode: Opcode, plaintext: bytes) -> bytes:
    """What ``seal_frame`` replaces: header, seal, ``build_frame`` of a checked Frame."""
    header = codec.header_bytes(flags, seq, ref, opcode, len(plaintext) + wire.TAG_LEN)
    body = crypto.seal(KEY, header, plaintext)
    return codec.build_frame(codec.Frame(flags, seq, ref, opcode, body))


@given(
    flags=st.integers(0, 7),
    seq=st.integers(0, 0x1_0000_0001),
    ref=st.integers(0, 0x1_0000_0001),
    opcode=st.sampled_from(list(Opcode)),
    plaintext=st.binary(max_size=40) | st.binary(min_size=1005, max_size=1012),
)
def test_seal_frame_gives_the_bytes_or_the_error_of_the_three_steps(
    flags: int, seq: int, ref: int, opcode: Opcode, plaintext: bytes
) -> None:
    def seal(header: bytes, plain: bytes) -> bytes:
        return crypto.seal(KEY, header, plain)

    fast = outcome(codec.seal_frame, flags, seq, ref, opcode, plaintext, seal=seal)
    assert fast == outcome(_three_steps, flags, seq, ref, opcode, plaintext)
    if fast[0] == "ok":
        frame = codec.parse_frame(fast[1])
        assert frame.is_sealed
        assert crypto.open(KEY, frame.header, frame.body) == plaintext


def test_seal_frame_refuses_a_sealer_that_changes_the_length() -> None:
    with pytest.raises(ValueError, match="sealer returned 3 bytes"):
        codec.seal_frame(2, 3, 0, Opcode.READ_STATUS, b"", seal=lambda _h, _p: b"abc")

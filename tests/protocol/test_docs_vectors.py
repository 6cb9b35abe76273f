"""docs/protocol.md is normative: its vectors must match the codec both ways, and it must
document every opcode, refusal code, field id and event kind, so the two cannot drift."""

from __future__ import annotations

import re
from enum import IntEnum

import pytest

from protocol import device_state, prescription
from protocol.codec import decode, encode, prescription_digest
from protocol.device_state import EventKind
from protocol.messages import MESSAGE_TYPES, Message, Opcode, StagePrescription
from protocol.refusal import FieldId, RefusalCode
from tests.protocol_doc import TEXT, blocks, evaluate

VECTORS = blocks("vector")


def test_vectors_were_found_and_names_are_unique() -> None:
    names = [vector["name"] for vector in VECTORS]
    assert len(names) >= len(MESSAGE_TYPES)
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_matches_the_codec_both_ways(vector: dict[str, str]) -> None:
    message = evaluate(vector["message"])
    assert isinstance(message, Message)
    frame = bytes.fromhex(vector["hex"].replace(" ", ""))
    seq, ref = int(vector["seq"]), int(vector["ref"])
    assert encode(message, seq=seq, ref=ref).hex() == frame.hex()
    decoded = decode(frame)
    assert decoded.message == message
    assert (decoded.frame.seq, decoded.frame.ref) == (seq, ref)
    header, _body, crc = vector["hex"].split(" ")
    assert len(bytes.fromhex(header)) == 15
    assert len(bytes.fromhex(crc)) == 2


def test_every_message_type_has_a_vector() -> None:
    covered = {type(evaluate(vector["message"])) for vector in VECTORS}
    assert covered == set(MESSAGE_TYPES)


def test_digest_vector() -> None:
    (digest,) = blocks("digest")
    (vector,) = [v for v in VECTORS if v["name"] == digest["vector"]]
    message = evaluate(vector["message"])
    assert isinstance(message, StagePrescription)
    assert prescription_digest(message.prescription).hex() == digest["digest"]


def test_every_opcode_has_a_section_and_a_table_row() -> None:
    for opcode in Opcode:
        assert f"### {opcode.name} (0x{opcode.value:02X})" in TEXT, opcode.name
        assert f"| 0x{opcode.value:02X} | {opcode.name} |" in TEXT, opcode.name


@pytest.mark.parametrize("code", RefusalCode, ids=lambda code: code.name)
def test_every_refusal_code_is_documented(code: RefusalCode) -> None:
    assert f"| 0x{code.value:02X} | `{code.name}` |" in TEXT


@pytest.mark.parametrize("field", FieldId, ids=lambda field: field.name)
def test_every_field_id_is_documented(field: FieldId) -> None:
    assert f"| 0x{field.value:02X} | `{field.name}` |" in TEXT


@pytest.mark.parametrize("kind", EventKind, ids=lambda kind: kind.name)
def test_every_event_kind_has_its_value_meanings(kind: EventKind) -> None:
    assert re.search(rf"^\| {kind.name} \| {kind.value} \|( [^|]+ \|){{3}}$", TEXT, re.MULTILINE)


@pytest.mark.parametrize(
    "enum",
    [device_state.Role, device_state.TherapyState, device_state.AlarmKind,
     prescription.InfusionMode, prescription.Repeat],
    ids=lambda enum: enum.__name__,
)  # fmt: skip
def test_every_enumeration_value_is_documented(enum: type[IntEnum]) -> None:
    for member in enum:
        assert re.search(rf"^\| {member.name} \| {member.value} \|", TEXT, re.MULTILINE), member


def test_the_spec_leaves_no_placeholder() -> None:
    assert "TODO" not in TEXT
    assert "TBD" not in TEXT

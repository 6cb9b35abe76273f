"""wire.py's fast paths agree with its declarative layouts, and it alone imports construct."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import wire
from protocol.codec import encode, encode_payload
from protocol.errors import ProtocolError
from protocol.messages import MESSAGE_TYPES, Message, Opcode, ReadEventLog
from protocol.units import U32_MAX

ROOT = Path(__file__).resolve().parents[2]


@given(
    flags=st.integers(0, 255),
    seq=st.integers(0, U32_MAX),
    ref=st.integers(0, U32_MAX),
    opcode=st.integers(0, 255),
    length=st.integers(0, 0xFFFF),
)
def test_struct_header_agrees_with_the_construct_declaration(
    flags: int, seq: int, ref: int, opcode: int, length: int
) -> None:
    raw = wire.build_header(flags, seq, ref, opcode, length)
    fields = {"version": wire.VERSION, "flags": flags, "seq": seq, "ref": ref}
    fields |= {"opcode": opcode, "length": length}
    assert wire.HEADER.build(fields) == raw
    parsed = wire.HEADER.parse(raw)
    assert (parsed.version, parsed.flags, parsed.seq, parsed.ref, parsed.opcode, parsed.length) == (
        wire.parse_header(raw)
    )


@given(st.from_type(Message))
def test_whole_frame_declaration_parses_what_the_codec_encodes(message: Message) -> None:
    opcode = type(message).OPCODE
    frame = encode(message, seq=3, ref=2 if opcode.is_reply else 0)
    parsed = wire.FRAME.parse(frame)
    assert parsed.opcode == opcode
    assert parsed.seq == 3
    _, payload = encode_payload(message)
    assert wire.PAYLOADS[opcode.value].build(parsed.payload) == payload


@pytest.mark.parametrize(
    "opcode",
    [op for op in Opcode if wire.fixed_size(op.value) is not None],
    ids=lambda op: op.name,
)
@given(data=st.data())
def test_compiled_parser_agrees_with_the_interpreted_one(
    opcode: Opcode, data: st.DataObject
) -> None:
    size = wire.fixed_size(opcode.value)
    assert size is not None
    body = data.draw(st.binary(min_size=size, max_size=size))
    interpreted = dict(wire.PAYLOADS[opcode.value].parse(body))
    compiled = dict(wire.parse_payload(opcode.value, body))
    strip = {"_io", "_"}
    assert {k: v for k, v in compiled.items() if k not in strip} == {
        k: v for k, v in interpreted.items() if k not in strip
    }


def test_every_opcode_has_exactly_one_payload_and_message() -> None:
    assert set(wire.PAYLOADS) == {op.value for op in Opcode}
    assert {cls.OPCODE for cls in MESSAGE_TYPES} == set(Opcode)
    assert len(MESSAGE_TYPES) == len(Opcode)


def test_payload_errors_are_protocol_errors_with_a_path() -> None:
    with pytest.raises(ProtocolError) as raised:
        wire.parse_payload(Opcode.STAGE_PRESCRIPTION.value, b"\x05AB")
    assert raised.value.path == "prescription.drug_name"


def test_only_wire_imports_construct() -> None:
    importers = []
    for path in sorted((ROOT / "protocol").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "construct" for name in names):
                importers.append(path.name)
    assert importers == ["wire.py"]


def test_every_payload_is_described_without_construct() -> None:
    """``payload_layout`` reads every declaration back, and reads a prescription's presence
    flag and optional record off ``OneOf`` and ``If`` themselves."""
    for opcode in Opcode:
        assert wire.payload_layout(opcode.value) is not None, opcode.name
    stage = wire.payload_layout(Opcode.STAGE_PRESCRIPTION.value)
    assert stage is not None
    assert [item.kind for item in stage] == ["record", "end"]
    prescription = {item.name: item for item in stage[0].items}
    assert prescription["drug_name"].kind == "text"
    assert prescription["steps"].kind == "array"
    assert [field.code for field in prescription["steps"].items] == ["L", "L"]
    assert prescription["patient_bolus_present"].values == frozenset({0, 1})
    optional = prescription["patient_bolus"]
    assert (optional.kind, optional.flag, optional.values) == (
        "optional",
        "patient_bolus_present",
        frozenset({1}),
    )
    status = wire.payload_layout(Opcode.STATUS.value)
    assert status is not None
    assert [item.code for item in status] == ["B", "L", "L", "B", "L", "L", "Q"]


def test_payload_code_is_made_on_first_use_and_kept() -> None:
    # Compiled per opcode when first needed (a process that never takes the reference
    # path compiles nothing), then the same code serves every later call.
    opcode, body = encode_payload(ReadEventLog(from_seq=7, count=32))
    parsers = wire._CodeTable(wire._parser)
    builders = wire._CodeTable(wire._builder)
    assert len(parsers) == len(builders) == 0
    parse = parsers[opcode.value]
    assert parsers[opcode.value] is parse
    assert list(parsers) == [opcode.value]
    fields = parse(body)
    assert (fields.from_seq, fields.count) == (7, 32)
    assert builders[opcode.value](dict(fields)) == body


@pytest.mark.parametrize("side", ["parse", "build"], ids=["parsers", "builders"])
def test_an_opcode_without_a_payload_has_no_code(side: str) -> None:
    table = wire.PAYLOAD_PARSERS if side == "parse" else wire.PAYLOAD_BUILDERS
    assert 0xFE not in wire.PAYLOADS
    with pytest.raises(KeyError):
        table[0xFE]

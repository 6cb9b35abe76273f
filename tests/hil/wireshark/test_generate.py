"""hil/wireshark/generate.py: the shipped dissector is the generator's output, and the
generator reads every layout of protocol/wire.py."""

from __future__ import annotations

import binascii
import dataclasses
from typing import Annotated

import pytest
from construct import Float32l, Int8ul, Int16ub, Struct

from hil.wireshark.generate import (
    GeneratorError,
    LuaField,
    assign_abbrevs,
    crc_table,
    generate,
    layout_fields,
    main,
    message_layouts,
    shipped_path,
)
from protocol import wire
from protocol.messages import MESSAGE_BY_OPCODE, U8, FieldKind, field_specs


def test_the_shipped_dissector_is_the_generators_output() -> None:
    assert shipped_path().read_text("utf-8") == generate(), (
        "hil/wireshark/pumpemu.lua is stale: run python -m hil.wireshark.generate"
    )


def test_check_mode_says_the_shipped_file_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["--bogus"]) == 2


def test_every_opcode_has_a_layout_with_every_message_field() -> None:
    layouts = message_layouts()
    assert set(layouts) == set(wire.PAYLOADS)
    for opcode, fields in layouts.items():
        cls = MESSAGE_BY_OPCODE[opcode]
        assert [f.name for f in fields] == [s.name for s in field_specs(cls)], cls.__name__


def walk(fields: tuple[LuaField, ...]) -> list[LuaField]:
    return [g for f in fields for g in (f, *walk(f.fields))]


def test_field_kinds_follow_the_message_declarations() -> None:
    kinds = {
        (MESSAGE_BY_OPCODE[op].__name__, f.path): (f.wire, f.kind, f.enum, f.abbrev)
        for op, fields in message_layouts().items()
        for f in walk(fields)
    }
    assert kinds["Status", "state"] == ("u8", "enum", "TherapyState", "pumpemu.msg.state")
    assert kinds["Status", "active_alarms"][:3] == ("u32", "enum_set", "AlarmKind")
    assert kinds["Status", "pump_time_ms"][:2] == ("u64", "int")
    assert kinds["AlarmList", "alarms.acknowledged"][:2] == ("u8", "bool")
    assert kinds["Challenge", "serial"][:2] == ("text", "text")
    assert kinds["OpenSession", "programmer_nonce"][:2] == ("bytes", "bytes")
    assert kinds["CurrentPrescription", "prescription"][:2] == ("optional", "optional")
    assert kinds["StagePrescription", "prescription"][:2] == ("record", "record")
    assert kinds["EventLogPage", "entries"][:2] == ("list", "list")
    assert kinds["StagePrescription", "prescription.steps.start_s"][3] == (
        "pumpemu.msg.prescription.steps.start_s"
    )


def test_the_crc_table_is_ccitt_false() -> None:
    table = crc_table()
    crc = 0xFFFF
    for byte in b"123456789":
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    assert crc == 0x29B1 == binascii.crc_hqx(b"123456789", 0xFFFF)


@dataclasses.dataclass(frozen=True)
class _Small:
    a: Annotated[int, U8]


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        pytest.param(Struct("a" / Float32l), "not a little-endian uint", id="float"),
        pytest.param(Struct("a" / Int16ub), "not a little-endian uint", id="big-endian"),
        pytest.param(Struct("a" / Int8ul, "b" / Int8ul), "not in the dataclass", id="extra"),
        pytest.param(Struct(), "not on the wire", id="missing"),
    ],
)
def test_a_layout_the_generator_cannot_express_is_an_error(layout: Struct, message: str) -> None:
    assert field_specs(_Small)[0].kind is FieldKind.INT
    with pytest.raises(GeneratorError, match=message):
        layout_fields(layout, _Small)


def test_the_lua_file_carries_each_enum_and_opcode_by_name() -> None:
    text = generate()
    assert '[0x91] = { "STATUS", "Status" },' in text
    assert '[2] = "PATIENT"' in text
    assert "GENERATED from protocol/wire.py" in text
    assert 'DissectorTable.get("wtap_encap")' in text


def test_a_path_with_two_meanings_is_qualified_by_message_type_everywhere() -> None:
    status, ack, nak = 0x91, 0xF0, 0xFF
    layouts = {
        status: (LuaField("x", "x", "u8", "enum", enum="TherapyState"),),
        ack: (LuaField("x", "x", "u32", "int"), LuaField("y", "y", "u8", "int")),
        nak: (LuaField("y", "y", "u8", "int"),),
    }
    named = assign_abbrevs(layouts)
    assert named[status][0].abbrev == "pumpemu.msg.status.x"
    assert named[ack][0].abbrev == "pumpemu.msg.ack.x"
    assert named[ack][1].abbrev == named[nak][0].abbrev == "pumpemu.msg.y"

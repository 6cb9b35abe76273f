"""Generates the Wireshark dissector (hil/wireshark/pumpemu.lua) from protocol/wire.py.

The byte layout of every payload is read from construct's declarations (``wire.PAYLOADS``)
and paired with the message dataclass's field declarations (``field_specs``), which say what
an integer means: an enum (named by its IntEnum), a set of enum members (a bitmap), a bool.
So the dissector's field tables cannot drift from the codec: a test checks that the shipped
file equals ``generate()``, and after a new opcode is added, regenerating is one command:

    python -m hil.wireshark.generate            # rewrites hil/wireshark/pumpemu.lua
    python -m hil.wireshark.generate --check    # exit 1 if the shipped file is stale

The output is the generated tables (opcodes, enums, the CRC table, one field list per
opcode and per record) followed by the hand-written interpreter in
hil/wireshark/dissector.lua, which walks those tables. Pure: ``generate()`` returns text.

Field names mirror ``pumpemu decode --json`` (docs/wireshark.md): a payload field at path
``prescription.steps[0].start_s`` is the Wireshark field ``pumpemu.msg.prescription.steps.
start_s``. A path used with two different meanings in two messages is qualified by the
message type (``pumpemu.msg.<type>.<path>``, lower case) for every use.
"""

from __future__ import annotations

import binascii
import dataclasses
import sys
from collections.abc import Iterator, Sequence
from enum import IntEnum
from importlib import resources
from pathlib import Path
from typing import Any

from construct import (
    Array,
    Bytes,
    Construct,
    ExprValidator,
    FocusedSeq,
    FormatField,
    IfThenElse,
    Renamed,
    StringEncoded,
    Struct,
    Terminated,
)

from protocol import wire
from protocol.messages import MESSAGE_BY_OPCODE, FieldKind, FieldSpec, Opcode, field_specs

__all__ = [
    "LUA_NAME",
    "GeneratorError",
    "LuaField",
    "assign_abbrevs",
    "crc_table",
    "generate",
    "layout_fields",
    "main",
    "message_layouts",
    "shipped_path",
]

LUA_NAME = "pumpemu.lua"
TEMPLATE_NAME = "dissector.lua"
WIRE_SIZES = {"<B": "u8", "<H": "u16", "<I": "u32", "<L": "u32", "<Q": "u64"}


class GeneratorError(Exception):
    """A layout the generator cannot express (a construct it does not know, a field the
    message dataclass does not declare)."""


@dataclasses.dataclass(frozen=True, slots=True)
class LuaField:
    """One payload field as the dissector walks it."""

    name: str
    path: str
    """Dotted path without list indices: ``prescription.steps.start_s``."""
    wire: str
    """u8, u16, u32, u64, bytes, text, record, optional, list."""
    kind: str
    """int, bool, enum, enum_set, bytes, text, record, optional, list."""
    size: int = 0
    """bytes: the exact length."""
    enum: str = ""
    """enum, enum_set: the IntEnum's name."""
    record_type: str = ""
    """record, optional, list: the record dataclass's name (decode's ``type``)."""
    fields: tuple[LuaField, ...] = ()
    """record, optional, list: the record's fields."""
    abbrev: str = ""
    """The Wireshark field name, filled in by ``assign_abbrevs``."""


def _unwrap(construct: Construct[Any, Any]) -> Construct[Any, Any]:
    while isinstance(construct, Renamed | ExprValidator):
        construct = construct.subcon
    return construct


def _record_struct(construct: Construct[Any, Any], where: str) -> Struct:
    inner = _unwrap(construct)
    if not isinstance(inner, Struct):
        raise GeneratorError(f"{where}: expected a Struct, found {type(inner).__name__}")
    return inner


def layout_fields(layout: Construct[Any, Any], cls: type, prefix: str = "") -> tuple[LuaField, ...]:
    """The fields of a construct Struct paired with the dataclass ``cls``'s declarations."""
    struct = _record_struct(layout, cls.__name__)
    specs = {spec.name: spec for spec in field_specs(cls)}
    optional = {name for name, spec in specs.items() if spec.kind is FieldKind.OPTIONAL_RECORD}
    found: list[LuaField] = []
    for sub in struct.subcons:
        name = sub.name
        inner = _unwrap(sub)
        if name is None:
            if inner is Terminated:
                continue
            raise GeneratorError(f"{cls.__name__}: unnamed {type(inner).__name__}")
        if name.endswith("_present") and name[: -len("_present")] in optional:
            continue  # the optional record's presence flag: read with the record
        spec = specs.get(name)
        if spec is None:
            raise GeneratorError(f"{cls.__name__}.{name}: on the wire, not in the dataclass")
        found.append(_field(spec, inner, f"{prefix}{name}"))
    missing = set(specs) - {field.name for field in found}
    if missing:
        raise GeneratorError(f"{cls.__name__}: {sorted(missing)} not on the wire")
    return tuple(found)


def _field(spec: FieldSpec, inner: Construct[Any, Any], path: str) -> LuaField:
    kind = spec.kind
    name = spec.name
    if kind is FieldKind.RECORD:
        fields = layout_fields(inner, spec.type, f"{path}.")
        return LuaField(
            name, path, "record", "record", record_type=spec.type.__name__, fields=fields
        )
    if kind is FieldKind.OPTIONAL_RECORD:
        if not isinstance(inner, IfThenElse):
            raise GeneratorError(f"{path}: an optional record is If(present == 1, record)")
        fields = layout_fields(inner.thensubcon, spec.type, f"{path}.")
        return LuaField(
            name, path, "optional", "optional", record_type=spec.type.__name__, fields=fields
        )
    if kind is FieldKind.RECORDS:
        if not isinstance(inner, FocusedSeq):
            raise GeneratorError(f"{path}: a list is PrefixedArray(Int8ul, record)")
        array = _unwrap(inner.subcons[1])
        if not isinstance(array, Array):
            raise GeneratorError(f"{path}: a list is PrefixedArray(Int8ul, record)")
        fields = layout_fields(array.subcon, spec.type, f"{path}.")
        return LuaField(name, path, "list", "list", record_type=spec.type.__name__, fields=fields)
    if kind is FieldKind.TEXT:
        if not isinstance(inner, StringEncoded):
            raise GeneratorError(f"{path}: text is PascalString(Int8ul, 'ascii')")
        return LuaField(name, path, "text", "text")
    if kind is FieldKind.BYTES:
        if not isinstance(inner, Bytes) or not isinstance(inner.length, int):
            raise GeneratorError(f"{path}: bytes must have a fixed length")
        return LuaField(name, path, "bytes", "bytes", size=inner.length)
    if not isinstance(inner, FormatField) or inner.fmtstr not in WIRE_SIZES:
        raise GeneratorError(f"{path}: {type(inner).__name__} is not a little-endian uint")
    size = WIRE_SIZES[inner.fmtstr]
    if kind is FieldKind.ENUM:
        return LuaField(name, path, size, "enum", enum=spec.type.__name__)
    if kind is FieldKind.ENUM_SET:
        return LuaField(name, path, size, "enum_set", enum=spec.type.__name__)
    if kind is FieldKind.BOOL:
        return LuaField(name, path, size, "bool")
    return LuaField(name, path, size, "int")


def _walk(fields: Sequence[LuaField]) -> Iterator[LuaField]:
    for field in fields:
        yield field
        yield from _walk(field.fields)


def _signature(field: LuaField) -> tuple[str, str, str, str]:
    # A record and an optional record of the same type show the same way (the optional one
    # adds its ``_present`` flag beside it), so they may share a name.
    wire = "record" if field.wire == "optional" else field.wire
    return (wire, wire, field.enum, field.record_type)


def assign_abbrevs(layouts: dict[int, tuple[LuaField, ...]]) -> dict[int, tuple[LuaField, ...]]:
    """The layouts with Wireshark names: ``pumpemu.msg.<path>``, or, for a path that has
    two meanings across messages, ``pumpemu.msg.<type>.<path>`` for every use."""
    meanings: dict[str, set[tuple[str, str, str, str]]] = {}
    for fields in layouts.values():
        for field in _walk(fields):
            meanings.setdefault(field.path, set()).add(_signature(field))
    clashing = {path for path, seen in meanings.items() if len(seen) > 1}

    def named(fields: tuple[LuaField, ...], owner: str) -> tuple[LuaField, ...]:
        return tuple(
            dataclasses.replace(
                field,
                abbrev=(
                    f"pumpemu.msg.{owner.lower()}.{field.path}"
                    if field.path in clashing
                    else f"pumpemu.msg.{field.path}"
                ),
                fields=named(field.fields, owner),
            )
            for field in fields
        )

    return {
        opcode: named(fields, MESSAGE_BY_OPCODE[opcode].__name__)
        for opcode, fields in layouts.items()
    }


def message_layouts() -> dict[int, tuple[LuaField, ...]]:
    """Every opcode's payload fields, with their Wireshark names."""
    layouts = {
        opcode: layout_fields(layout, MESSAGE_BY_OPCODE[opcode])
        for opcode, layout in sorted(wire.PAYLOADS.items())
    }
    return assign_abbrevs(layouts)


# -- Lua text -----------------------------------------------------------------------------


def _lua_string(text: str) -> str:
    if not all(" " <= ch <= "~" for ch in text):
        raise GeneratorError(f"{text!r}: only printable ASCII goes into the Lua file")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lua_field(field: LuaField, indent: str) -> str:
    parts = [
        f"name = {_lua_string(field.name)}",
        f"path = {_lua_string(field.path)}",
        f"abbrev = {_lua_string(field.abbrev)}",
        f"wire = {_lua_string(field.wire)}",
        f"kind = {_lua_string(field.kind)}",
    ]
    if field.size:
        parts.append(f"size = {field.size}")
    if field.enum:
        parts.append(f"enum = {_lua_string(field.enum)}")
    if field.record_type:
        parts.append(f"record_type = {_lua_string(field.record_type)}")
    if field.fields:
        inner = _lua_fields(field.fields, indent + "  ")
        parts.append(f"fields = {inner}")
    return "{ " + ", ".join(parts) + " }"


def _lua_fields(fields: Sequence[LuaField], indent: str) -> str:
    if not fields:
        return "{}"
    lines = [f"{indent}  {_lua_field(field, indent + '  ')}," for field in fields]
    return "{\n" + "\n".join(lines) + f"\n{indent}}}"


def _enums(layouts: dict[int, tuple[LuaField, ...]]) -> dict[str, type[IntEnum]]:
    found: dict[str, type[IntEnum]] = {}
    for opcode, fields in layouts.items():
        cls = MESSAGE_BY_OPCODE[opcode]
        for field in _walk(fields):
            if field.enum:
                found[field.enum] = _enum_class(cls, field)
    return dict(sorted(found.items()))


def _enum_class(cls: type, field: LuaField) -> type[IntEnum]:
    owner: Any = cls
    for name in field.path.split(".")[:-1]:
        spec = {s.name: s for s in field_specs(owner)}[name]
        owner = spec.type
    spec = {s.name: s for s in field_specs(owner)}[field.name]
    enum: type[IntEnum] = spec.type
    return enum


def crc_table() -> list[int]:
    """CRC-16/CCITT-FALSE's byte table (poly 0x1021), from the same C routine the codec uses:
    entry n is the CRC of the single byte n with init 0."""
    return [binascii.crc_hqx(bytes([n]), 0) for n in range(256)]


def generate() -> str:
    """The whole dissector: generated tables, then the interpreter (dissector.lua)."""
    layouts = message_layouts()
    out = [
        "-- pumpemu.lua: a Wireshark dissector for the pumpemu pump protocol (docs/wireshark.md).",
        "-- GENERATED from protocol/wire.py by hil/wireshark/generate.py: do not edit.",
        "-- Regenerate with: python -m hil.wireshark.generate",
        "",
        "local GEN = {}",
        "",
        f"GEN.sync = {{ {wire.SYNC[0]}, {wire.SYNC[1]} }}",
        f"GEN.version = {wire.VERSION}",
        f"GEN.header_len = {wire.HEADER_LEN}",
        f"GEN.crc_len = {wire.CRC_LEN}",
        f"GEN.tag_len = {wire.TAG_LEN}",
        f"GEN.max_body_len = {wire.MAX_BODY_LEN}",
        f"GEN.flag_reply = {wire.FLAG_REPLY}",
        f"GEN.flag_sealed = {wire.FLAG_SEALED}",
        "",
        "-- opcode -> { name, message type }",
        "GEN.opcodes = {",
    ]
    for opcode in sorted(wire.PAYLOADS):
        name = Opcode(opcode).name
        cls = MESSAGE_BY_OPCODE[opcode].__name__
        out.append(f"  [0x{opcode:02x}] = {{ {_lua_string(name)}, {_lua_string(cls)} }},")
    out += ["}", "", "-- enum name -> { value -> member name }", "GEN.enums = {"]
    for enum_name, enum in _enums(layouts).items():
        members = ", ".join(f"[{m.value}] = {_lua_string(m.name)}" for m in enum)
        out.append(f"  {enum_name} = {{ {members} }},")
    out += ["}", "", "-- CRC-16/CCITT-FALSE byte table (index 0..255)", "GEN.crc_table = {"]
    table = crc_table()
    for row in range(0, 256, 8):
        out.append("  " + ", ".join(f"0x{v:04x}" for v in table[row : row + 8]) + ",")
    out += ["}", "", "-- opcode -> the payload's fields, in wire order", "GEN.layouts = {"]
    for opcode, fields in layouts.items():
        out.append(f"  [0x{opcode:02x}] = {_lua_fields(fields, '  ')},")
    out += ["}", ""]
    template = resources.files("hil.wireshark").joinpath(TEMPLATE_NAME).read_text("utf-8")
    return "\n".join(out) + "\n" + template


def shipped_path() -> Path:
    """Where the shipped dissector is (package data of hil.wireshark)."""
    return Path(str(resources.files("hil.wireshark").joinpath(LUA_NAME)))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hil.wireshark.generate [--check]``: rewrite (or check) the shipped file."""
    args = list(sys.argv[1:] if argv is None else argv)
    target = shipped_path()
    text = generate()
    if args == ["--check"]:
        current = target.read_text("utf-8") if target.exists() else ""
        if current != text:
            print(f"{target} is stale: run python -m hil.wireshark.generate", file=sys.stderr)
            return 1
        print(f"{target} is up to date")
        return 0
    if args:
        print("usage: python -m hil.wireshark.generate [--check]", file=sys.stderr)
        return 2
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

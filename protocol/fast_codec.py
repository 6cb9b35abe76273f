"""The codec's fast path: ``struct`` plans derived from protocol/wire.py.

protocol/wire.py stays the one definition of every layout. From each fixed-size payload
made only of little-endian integers and fixed byte strings, this module derives, once per
process, the first time a frame of that opcode is decoded or encoded (``PLANS``):

- one ``struct.Struct`` for the whole frame (header, payload, CRC) and one for the payload;
- a decoder and an encoder generated as plain Python functions, which convert each field
  (an enum by dictionary lookup, a set of enum members from its bitmap, a flag from 0/1)
  and check only what the wire width does not already guarantee (a range narrower than
  the integer, a non-zero command id), then build the message without running its
  constructor's checks again.

A fast decoder never raises and never decides an error: on anything it does not fully
accept (a short frame, a bad CRC, an unknown enum value, a reserved flag, a cross-field rule
of the message) it returns ``None``, and protocol/codec.py runs the reference decoder on the
same bytes, so every error (code, field path, limit) stays exactly the reference's.
tests/protocol/test_fast_codec.py checks, over every planned message, valid frames and
mutated ones, that the two paths give identical messages and identical errors.

Variable-size payloads (prescriptions, text, event-log pages, alarm lists) get their
bounds-checked plans from protocol/variable_plans.py, derived from the same declarations and
held in the same ``PLANS`` table, under the same rule: a plan never decides an error.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol import wire
from protocol.enum_values import enum_set_converter as _enum_set_converter
from protocol.enum_values import enum_table as _enum_table
from protocol.enum_values import member_bits as _bits
from protocol.messages import (
    MESSAGE_BY_OPCODE,
    FieldKind,
    FieldSpec,
    Message,
    Opcode,
    field_specs,
)
from protocol.variable_plans import variable_plan

__all__ = ["PLANS", "FastPlan", "all_plans", "plan_for"]

_WIDTH_MAX = {"B": 0xFF, "H": 0xFFFF, "L": 0xFFFF_FFFF, "Q": 0xFFFF_FFFF_FFFF_FFFF}


@dataclass(frozen=True, slots=True, kw_only=True)
class FastPlan:
    """The derived fast paths of one opcode."""

    opcode: Opcode
    size: int | None
    """The payload's byte size; None for a variable-size payload."""
    decode: Callable[[bytes], Any]
    """Whole frame bytes -> (flags, seq, ref, body, message), or None: use the reference."""
    decode_payload: Callable[[bytes], Message | None]
    encode: Callable[[Message, int, int], bytes | None]
    """(message, seq, ref) -> frame bytes, or None: use the reference."""
    encode_payload: Callable[[Message], bytes | None]
    """message -> payload bytes, or None: use the reference."""


def _field_lines(
    index: int, spec: FieldSpec, code: str, env: dict[str, Any]
) -> tuple[list[str], str] | None:
    """For field ``index``: the lines that convert and check its wire value ``v{index}``
    (each ``return None`` on a value the plan does not accept), and the expression of its
    wire value in a message ``m``. None if the field has no plan."""
    v = f"v{index}"
    kind = spec.kind
    if kind is FieldKind.INT and spec.range is not None:
        low, high = spec.range.low, spec.range.high
        # Only a range narrower than the wire width needs a check: the width is guaranteed.
        lines = [f"    if not {low} <= {v} <= {high}: return None"]
        narrower = low > 0 or high < _WIDTH_MAX[code]
        return (lines if narrower else []), f"m.{spec.name}"
    if kind is FieldKind.ENUM:
        env[f"_enum{index}"] = _enum_table(spec.type)
        return [f"    {v} = _enum{index}.get({v})", f"    if {v} is None: return None"], (
            f"m.{spec.name}"
        )
    if kind is FieldKind.ENUM_SET:
        env[f"_set_of{index}"] = _enum_set_converter(spec.type)
        return [f"    {v} = _set_of{index}({v})", f"    if {v} is None: return None"], (
            f"_bits(m.{spec.name})"
        )
    if kind is FieldKind.BOOL:
        lines = [f"    if {v} == 0: {v} = False", f"    elif {v} == 1: {v} = True"]
        return [*lines, "    else: return None"], f"int(m.{spec.name})"
    if kind is FieldKind.BYTES and code == f"{spec.size}s":
        return [], f"m.{spec.name}"
    return None


_TEMPLATE = """
def message_of({names}):
{convert}
    m = _new(_cls)
{build}
    try:
        m._check()
    except Exception:
        return None
    return m

def decode(data):
    if len(data) != {total}:
        return None
    if _crc(data[2:{total_less_crc}], 0xFFFF) != data[{crc_at}] | data[{crc_at} + 1] << 8:
        return None
    sync, version, flags, seq, ref, opcode, length, {names_comma} crc = _frame.unpack(data)
    if sync != _SYNC or version != {version} or flags != {flags} or length != {size}:
        return None
    if opcode != {opcode} or not seq:
        return None
{ref_rule}
    m = message_of({names})
    if m is None:
        return None
    return (flags, seq, ref, data[{header_len}:{total_less_crc}], m)

def decode_payload(body):
    if len(body) != {size}:
        return None
    {unpack_target}_payload.unpack(body)
    return message_of({names})

def encode_payload(m):
    return _payload.pack({to_wire})

def encode(m, seq, ref):
    if not 1 <= seq <= 0xFFFFFFFF or not 0 <= ref <= 0xFFFFFFFF{request_ref}:
        return None
    fields = ({to_wire_comma})
    head = _frame.pack(_SYNC, {version}, {flags}, seq, ref, {opcode}, {size}, *fields, 0)
    return head[:-2] + _crc(head[2:-2], 0xFFFF).to_bytes(2, "little")
"""


def plan_for(opcode: Opcode) -> FastPlan | None:
    """The fast plan of ``opcode``, or None if its layout or its message has none."""
    flat = wire.flat_layout(opcode.value)
    cls = MESSAGE_BY_OPCODE.get(opcode.value)
    if cls is None:
        return None
    if flat is None:
        variable = variable_plan(opcode, cls)
        if variable is None:
            return None
        return FastPlan(
            opcode=opcode,
            size=None,
            decode=variable.decode,
            decode_payload=variable.decode_payload,
            encode=variable.encode,
            encode_payload=variable.encode_payload,
        )
    specs = {spec.name: spec for spec in field_specs(cls)}
    if [name for name, _ in flat] != list(specs):
        return None  # the wire and the message disagree on fields: no shortcut
    env: dict[str, Any] = {
        "_crc": binascii.crc_hqx,
        "_new": object.__new__,
        "_cls": cls,
        "_SYNC": wire.SYNC,
        "_bits": _bits,
    }
    convert: list[str] = []
    to_wire: list[str] = []
    for index, (name, code) in enumerate(flat):
        lines = _field_lines(index, specs[name], code, env)
        if lines is None:
            return None
        convert += lines[0]
        to_wire.append(lines[1])
        env[f"_set{index}"] = cls.__dict__[name].__set__
    payload_format = "<" + "".join(code for _, code in flat)
    env["_payload"] = payload = struct.Struct(payload_format)
    env["_frame"] = struct.Struct("<2sBBIIBH" + payload_format[1:] + "H")
    size = payload.size
    total = wire.MIN_FRAME_LEN + size
    names = ", ".join(f"v{i}" for i in range(len(flat)))
    reply = opcode.is_reply
    source = _TEMPLATE.format(
        names=names,
        names_comma=names + "," if flat else "",
        convert="\n".join(convert) or "    pass",
        build="\n".join(f"    _set{i}(m, v{i})" for i in range(len(flat))) or "    pass",
        total=total,
        total_less_crc=total - wire.CRC_LEN,
        crc_at=total - wire.CRC_LEN,
        version=wire.VERSION,
        flags=wire.FLAG_REPLY if reply else 0,
        size=size,
        opcode=opcode.value,
        # A request's REF must be 0 (docs/protocol.md section 2); a reply's is any u32.
        ref_rule="" if reply else "    if ref: return None",
        request_ref="" if reply else " or ref",
        header_len=wire.HEADER_LEN,
        unpack_target=(names + ("," if len(flat) == 1 else "") + " = ") if flat else "",
        to_wire=", ".join(to_wire),
        to_wire_comma=", ".join(to_wire) + ("," if len(to_wire) == 1 else ""),
    )
    exec(compile(source, f"<fast plan {opcode.name}>", "exec"), env)  # noqa: S102
    return FastPlan(
        opcode=opcode,
        size=size,
        decode=env["decode"],
        decode_payload=env["decode_payload"],
        encode=env["encode"],
        encode_payload=env["encode_payload"],
    )


class _PlanTable(dict[int, "FastPlan | None"]):
    """Opcode byte -> its fast plan (None: no plan, or not an opcode), built on first use.

    Built lazily because a process uses few opcodes: a campaign or scenario worker on the
    api backend encodes only STAGE_PRESCRIPTION (for the digest), and deriving and compiling
    all the plans at import cost every spawned worker about 25 ms before its first run. A
    lookup of a built entry is a plain dict lookup (``__missing__`` runs only once per
    opcode byte, at most 256 entries).
    """

    def __missing__(self, value: int) -> FastPlan | None:
        try:
            opcode = Opcode(value)
        except ValueError:
            plan = None
        else:
            plan = plan_for(opcode)
        self[value] = plan
        return plan


PLANS: dict[int, FastPlan | None] = _PlanTable()
"""Opcode byte -> its fast plan, or None if it has none: index it (``PLANS[byte]``), since
``dict.get`` would not build a missing entry."""


def all_plans() -> dict[int, FastPlan]:
    """Every opcode's fast plan, built now if not yet (the tests and docs walk them all)."""
    return {op.value: plan for op in Opcode if (plan := PLANS[op.value]) is not None}

"""tshark's ``-T json --no-duplicate-keys`` output of the pumpemu dissector, read back into
the shape ``pumpemu decode --json`` prints, so the two compare field for field.

Pure: takes the parsed JSON, returns dicts. The conversions are the documented differences
of presentation only (docs/wireshark.md, "Comparing with pumpemu decode"): tshark prints
every value as a string, bytes as ``aa:bb``, an enum as its number (its name is the child
``.name``), a set of enum members as a bitmap with one ``.name`` child per member, a bool as
0/1, a record as its type name with its fields in ``_tree``, a list as its count with one
``.record`` child per element, an optional record beside its ``_present`` flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hil.wireshark.generate import LuaField, message_layouts

__all__ = ["DecodedPacket", "packets_from_tshark"]

DecodedPacket = dict[str, Any]
"""``kind`` and, for a frame, ``header``, ``sealed`` and ``message`` or ``error``; for a
frame, noise, note or run start: what decode --json's item holds for it."""


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _merge(layer: Any) -> dict[str, Any]:
    """The pumpemu layer: one object, or a list of them (one per top-level tree)."""
    merged: dict[str, Any] = {}
    for part in _as_list(layer):
        merged.update(part)
    return merged


def _flag(value: Any) -> bool:
    return str(value).lower() in ("1", "true")


def _bytes(value: str) -> str:
    return value.replace(":", "")


def _leaf(field: LuaField, tree: dict[str, Any], value: Any) -> Any:
    if field.kind == "enum":
        return tree.get(f"{field.abbrev}_tree", {}).get(f"{field.abbrev}.name")
    if field.kind == "enum_set":
        return _as_list(tree.get(f"{field.abbrev}_tree", {}).get(f"{field.abbrev}.name"))
    if field.kind == "bool":
        return _flag(value)
    if field.kind == "bytes":
        return _bytes(str(value))
    if field.kind == "text":
        return value
    return int(str(value), 0)


def _record(type_name: str, fields: Sequence[LuaField], tree: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type_name}
    out.update(_fields(fields, tree))
    return out


def _fields(fields: Sequence[LuaField], tree: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in fields:
        value = tree.get(field.abbrev)
        if field.wire in ("record", "optional"):
            if value is None:
                out[field.name] = None  # an absent optional record
            else:
                out[field.name] = _record(value, field.fields, tree.get(f"{field.abbrev}_tree", {}))
        elif field.wire == "list":
            subtree = tree.get(f"{field.abbrev}_tree", {})
            names = _as_list(subtree.get(f"{field.abbrev}.record"))
            trees = _as_list(subtree.get(f"{field.abbrev}.record_tree"))
            out[field.name] = [
                _record(name, field.fields, element)
                for name, element in zip(names, trees, strict=False)
            ]
        elif value is not None:
            out[field.name] = _leaf(field, tree, value)
    return out


def _frame(layer: dict[str, Any], layouts: dict[int, tuple[LuaField, ...]]) -> DecodedPacket:
    flags_tree = layer.get("pumpemu.flags_tree", {})
    flags = []
    if _flag(flags_tree.get("pumpemu.flags.reply")):
        flags.append("REPLY")
    if _flag(flags_tree.get("pumpemu.flags.sealed")):
        flags.append("SEALED")
    opcode = int(str(layer["pumpemu.opcode"]), 0)
    header = {
        "flags": flags,
        "seq": int(layer["pumpemu.seq"]),
        "ref": int(layer["pumpemu.ref"]),
        "opcode": layer.get("pumpemu.opcode_tree", {}).get("pumpemu.opcode.name"),
        "length": int(layer["pumpemu.length"]),
    }
    out: DecodedPacket = {
        "kind": "frame",
        "header": header,
        "sealed": _flag(layer.get("pumpemu.sealed")),
        "crc_status": layer.get("pumpemu.crc_tree", {}).get("pumpemu.crc.status"),
    }
    if out["sealed"]:
        out["ciphertext_len"] = int(layer.get("pumpemu.ciphertext_len", -1))
        out["tag_len"] = int(layer.get("pumpemu.tag_len", -1))
    if "pumpemu.error" in layer:
        out["error"] = layer["pumpemu.error"]
    elif "pumpemu.message" in layer and opcode in layouts:
        tree = layer.get("pumpemu.message_tree", {})
        out["message"] = _record(layer["pumpemu.message"], layouts[opcode], tree)
    return out


def packets_from_tshark(document: list[dict[str, Any]]) -> list[DecodedPacket]:
    """One dict per packet of ``tshark -T json --no-duplicate-keys`` output."""
    layouts = message_layouts()
    packets: list[DecodedPacket] = []
    for packet in document:
        layers = packet["_source"]["layers"]
        layer = _merge(layers.get("pumpemu"))
        kind = layer.get("pumpemu.record")
        base: DecodedPacket = {
            "kind": kind,
            "direction": layer.get("pumpemu.direction"),
            "source": layer.get("pumpemu.source"),
            "sim_ms": int(layer["pumpemu.sim_ms"]) if "pumpemu.sim_ms" in layer else None,
        }
        if kind == "frame":
            base.update(_frame(layer, layouts))
        elif kind == "noise":
            base["hex"] = _bytes(str(layer.get("pumpemu.noise", "")))
        elif kind == "note":
            base["text"] = layer.get("pumpemu.note", "")
        elif kind == "capture":
            base["format"] = layer.get("pumpemu.capture_format", "")
        packets.append(base)
    return packets

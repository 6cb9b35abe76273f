"""Bounds-checked fast plans for variable-size payloads, derived from protocol/wire.py.

protocol/fast_codec.py plans the fixed-size payloads with one ``struct`` format each. The
rest (prescriptions, text, event-log pages, alarm lists) have lengths only their bytes
tell, so this module generates, once at import, from ``wire.payload_layout`` (the
construct declaration read as plain ``LayoutItem``s) and the message's field
declarations:

- a parser that walks the payload with an offset and checks, before every read, that the
  bytes are there: a count, a text length or a record that runs past the end is refused,
  never read short (construct's own ``compile()`` silently accepts a short trailing
  ``PascalString`` or ``Bytes``, docs/field-notes.md, so it is not used here);
- conversions that check only what the layout does not already guarantee, and build a
  message (or a record that checks itself, like ``Prescription``) exactly as the reference
  would;
- an encoder that packs the same layout.

Like the fixed plans, these never decide an error: on anything they do not fully accept
they return None and protocol/codec.py runs the reference on the same bytes, so every
error (code, field path, limit) stays the reference's (docs/architecture.md, "The codec's
two paths"; tests/protocol/test_fast_codec.py).
"""

from __future__ import annotations

import binascii
import itertools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol import wire
from protocol.enum_values import enum_set_converter as _enum_set_converter
from protocol.enum_values import enum_table as _enum_table
from protocol.enum_values import member_bits as _bits
from protocol.errors import ProtocolError
from protocol.messages import FieldKind, FieldSpec, Message, Opcode, Validated, field_specs

__all__ = ["VariablePlan", "variable_plan"]

_WIDTH_MAX = {"B": 0xFF, "H": 0xFFFF, "L": 0xFFFF_FFFF, "Q": 0xFFFF_FFFF_FFFF_FFFF}
_U32_MAX = 0xFFFF_FFFF

_ENCODE_ERRORS = (struct.error, ValueError, OverflowError, TypeError, AttributeError)
"""What packing a message the reference would refuse to build can raise: the plan then
hands it to the reference, which raises its own error."""


@dataclass(frozen=True, slots=True)
class VariablePlan:
    """The generated functions of one variable-size payload."""

    decode: Callable[[bytes], Any]
    """Whole frame bytes -> (flags, seq, ref, body, message), or None: use the reference."""
    decode_payload: Callable[[bytes], Message | None]
    encode: Callable[[Message, int, int], bytes | None]
    """(message, seq, ref) -> frame bytes, or None: use the reference."""
    encode_payload: Callable[[Message], bytes | None]


class _NoPlanError(Exception):
    """The layout or the message uses something this generator does not handle."""


class _Generator:
    """Writes the source of one payload's parser and encoder, and the constants it uses."""

    def __init__(self) -> None:
        self.env: dict[str, Any] = {
            "_new": object.__new__,
            "_starmap": itertools.starmap,
            "_bits": _bits,
            "_ProtocolError": ProtocolError,
        }
        self.count = 0
        self.functions: list[str] = []

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def const(self, value: Any, stem: str) -> str:
        key = self.name(f"_{stem}")
        self.env[key] = value
        return key

    # -- decoding ------------------------------------------------------------------------

    def parse_struct(
        self, items: tuple[wire.LayoutItem, ...], cls: type, out: list[str], ind: str
    ) -> str:
        """Lines (appended to ``out``) that read ``items`` at offset ``p`` of ``data`` up to
        ``end`` and build a ``cls``; returns the variable holding it."""
        specs = {spec.name: spec for spec in field_specs(cls)}
        names = [item.name for item in items if item.kind not in ("flag", "end")]
        if names != list(specs):
            raise _NoPlanError(f"{cls.__name__}: wire fields {names} are not its fields")
        checked = issubclass(cls, Validated)
        raw: dict[str, str] = {}
        pending: list[wire.LayoutItem] = []

        def flush() -> None:
            if not pending:
                return
            layout = struct.Struct("<" + "".join(item.code for item in pending))
            unpack = self.const(layout.unpack_from, "unpack")
            variables = [self.name("r") for _ in pending]
            out.append(f"{ind}if p + {layout.size} > end: return None")
            out.append(f"{ind}{', '.join(variables)}, = {unpack}(data, p)")
            out.append(f"{ind}p += {layout.size}")
            raw.update(zip([item.name for item in pending], variables, strict=True))
            pending.clear()

        for item in items:
            if item.kind in ("int", "bytes"):
                pending.append(item)
                continue
            flush()
            self._parse_item(item, specs, raw, checked=checked, out=out, ind=ind)
        flush()
        return self._build(cls, items, raw, out, ind)

    def _parse_item(
        self,
        item: wire.LayoutItem,
        specs: dict[str, FieldSpec],
        raw: dict[str, str],
        *,
        checked: bool,
        out: list[str],
        ind: str,
    ) -> None:
        """Lines that read one variable-size ``item``; its variable goes into ``raw``."""
        if item.kind == "end":
            out.append(f"{ind}if p != end: return None")
        elif item.kind == "text":
            raw[item.name] = self._parse_text(out, ind)
        elif item.kind == "flag":
            flag = raw[item.name] = self.name("f")
            accepted = self.const(item.values, "accepted")
            out.append(f"{ind}if p >= end: return None")
            out.append(f"{ind}{flag} = data[p]")
            out.append(f"{ind}p += 1")
            out.append(f"{ind}if {flag} not in {accepted}: return None")
        elif item.kind == "record":
            spec = self._spec(specs, item, FieldKind.RECORD)
            raw[item.name] = self.parse_struct(item.items, spec.type, out, ind)
        elif item.kind == "optional":
            spec = self._spec(specs, item, FieldKind.OPTIONAL_RECORD)
            present = self.const(item.values, "present")
            value = raw[item.name] = self.name("o")
            out.append(f"{ind}if {raw[item.flag]} in {present}:")
            inner = self.parse_struct(item.items, spec.type, out, ind + "    ")
            out.append(f"{ind}    {value} = {inner}")
            out.append(f"{ind}else:")
            out.append(f"{ind}    {value} = None")
        elif item.kind == "array":
            spec = self._spec(specs, item, FieldKind.RECORDS)
            bound = spec.size if checked and spec.size else None
            raw[item.name] = self._parse_array(item, spec.type, bound, out, ind)
        else:
            raise _NoPlanError(f"no plan for a {item.kind}")

    def _spec(self, specs: dict[str, FieldSpec], item: wire.LayoutItem, kind: FieldKind) -> Any:
        spec = specs[item.name]
        if spec.kind is not kind:
            raise _NoPlanError(f"{item.name}: a {item.kind} on the wire, a {spec.kind.name} field")
        return spec

    def _parse_text(self, out: list[str], ind: str) -> str:
        # TEXT: u8 count then ASCII; a count past the end or a byte above 0x7F is the
        # reference's to refuse (MALFORMED_PAYLOAD).
        text, stop = self.name("t"), self.name("q")
        out.append(f"{ind}if p >= end: return None")
        out.append(f"{ind}{stop} = p + 1 + data[p]")
        out.append(f"{ind}if {stop} > end: return None")
        out.append(f"{ind}{text} = data[p + 1:{stop}]")
        out.append(f"{ind}if not {text}.isascii(): return None")
        out.append(f"{ind}{text} = {text}.decode('ascii')")
        out.append(f"{ind}p = {stop}")
        return text

    def _parse_array(
        self, item: wire.LayoutItem, cls: type, bound: int | None, out: list[str], ind: str
    ) -> str:
        layout = struct.Struct("<" + "".join(field.code for field in item.items))
        unpack = self.const(layout.iter_unpack, "iter")
        count, stop, records, fields = (self.name(s) for s in ("c", "q", "a", "e"))
        out.append(f"{ind}if p >= end: return None")
        out.append(f"{ind}{count} = data[p]")
        if bound is not None and bound < 0xFF:  # MaxItems narrower than the u8 count
            out.append(f"{ind}if {count} > {bound}: return None")
        out.append(f"{ind}{stop} = p + 1 + {count} * {layout.size}")
        out.append(f"{ind}if {stop} > end: return None")
        element, direct = self._element_function(item.items, cls)
        if direct is not None:
            # Every field passes as read and the record checks itself: construct them all
            # in C (starmap), and let a refusal hand the payload to the reference.
            out.append(f"{ind}try:")
            out.append(
                f"{ind}    {records} = tuple(_starmap({direct}, {unpack}(data[p + 1:{stop}])))"
            )
            out.append(f"{ind}except _ProtocolError:")
            out.append(f"{ind}    return None")
        else:
            out.append(f"{ind}{records} = []")
            out.append(f"{ind}for {fields} in {unpack}(data[p + 1:{stop}]):")
            out.append(f"{ind}    {fields} = {element}(*{fields})")
            out.append(f"{ind}    if {fields} is None: return None")
            out.append(f"{ind}    {records}.append({fields})")
            out.append(f"{ind}{records} = tuple({records})")
        out.append(f"{ind}p = {stop}")
        return records

    def _element_function(
        self, items: tuple[wire.LayoutItem, ...], cls: type
    ) -> tuple[str, str | None]:
        """A function from one array record's unpacked fields to the record, or None; and
        the record's class where that function would only call it (nothing to convert)."""
        specs = {spec.name: spec for spec in field_specs(cls)}
        if [item.name for item in items] != list(specs):
            raise _NoPlanError(f"{cls.__name__}: the array record's fields differ")
        function = self.name("_element")
        raw = {item.name: f"a{index}" for index, item in enumerate(items)}
        body: list[str] = []
        result = self._build(cls, items, raw, body, "    ")
        # _build's last four lines call a self-checking record's constructor in a try: with
        # no lines before them there is nothing to convert, and starmap can call it directly.
        if not issubclass(cls, Validated) and len(body) == 4:
            return function, self.const(cls, "record")
        self.functions.append(
            "\n".join(
                [f"def {function}({', '.join(raw.values())}):", *body, f"    return {result}"]
            )
        )
        return function, None

    def _build(
        self,
        cls: type,
        items: tuple[wire.LayoutItem, ...],
        raw: dict[str, str],
        out: list[str],
        ind: str,
    ) -> str:
        """Convert every field and build ``cls``: a ``Validated`` class without running its
        field checks again where the layout guarantees them (only a range narrower than the
        wire width, a text's length and characters, a list bound are checked), any other
        record through its own constructor, which checks what it alone knows."""
        specs = {spec.name: spec for spec in field_specs(cls)}
        checked = issubclass(cls, Validated)
        codes = {item.name: item.code for item in items}
        values: list[str] = []
        for spec in specs.values():
            value = raw[spec.name]
            kind = spec.kind
            if kind is FieldKind.INT:
                code = codes[spec.name]
                if checked and spec.range is not None and code in _WIDTH_MAX:
                    low, high = spec.range.low, spec.range.high
                    if low > 0 or high < _WIDTH_MAX[code]:
                        out.append(f"{ind}if not {low} <= {value} <= {high}: return None")
                elif code not in _WIDTH_MAX:
                    raise _NoPlanError(f"{spec.name}: an int field carried as {code}")
            elif kind is FieldKind.ENUM:
                table = self.const(_enum_table(spec.type), "enum")
                out.append(f"{ind}{value} = {table}.get({value})")
                out.append(f"{ind}if {value} is None: return None")
            elif kind is FieldKind.ENUM_SET:
                convert = self.const(_enum_set_converter(spec.type), "set_of")
                out.append(f"{ind}{value} = {convert}({value})")
                out.append(f"{ind}if {value} is None: return None")
            elif kind is FieldKind.BOOL:
                out.append(f"{ind}if {value} == 0: {value} = False")
                out.append(f"{ind}elif {value} == 1: {value} = True")
                out.append(f"{ind}else: return None")
            elif kind is FieldKind.BYTES:
                if codes.get(spec.name) != f"{spec.size}s":
                    raise _NoPlanError(f"{spec.name}: not {spec.size} fixed bytes on the wire")
            elif kind is FieldKind.TEXT and checked:
                if spec.size < 1:
                    raise _NoPlanError(f"{spec.name}: a text without a bound")
                # ASCII is checked on reading; 0x20..0x7E is what isprintable() keeps of it.
                out.append(
                    f"{ind}if not 1 <= len({value}) <= {spec.size} or not {value}.isprintable():"
                    " return None"
                )
            values.append(value)
        built = self.name("m")
        if checked:
            out.append(f"{ind}{built} = _new({self.const(cls, 'cls')})")
            for spec, value in zip(specs.values(), values, strict=True):
                setter = self.const(cls.__dict__[spec.name].__set__, "set")
                out.append(f"{ind}{setter}({built}, {value})")
            if cls._check is not Validated._check:  # type: ignore[attr-defined]  # a cross-field rule
                out.append(f"{ind}try:")
                out.append(f"{ind}    {built}._check()")
                out.append(f"{ind}except _ProtocolError:")
                out.append(f"{ind}    return None")
        else:
            out.append(f"{ind}try:")
            out.append(f"{ind}    {built} = {self.const(cls, 'cls')}({', '.join(values)})")
            out.append(f"{ind}except _ProtocolError:")
            out.append(f"{ind}    return None")
        return built

    # -- encoding ------------------------------------------------------------------------

    def pack_struct(self, items: tuple[wire.LayoutItem, ...], cls: type, obj: str) -> list[str]:
        """Expressions whose bytes, joined, are ``obj`` (a ``cls``) packed by ``items``."""
        specs = {spec.name: spec for spec in field_specs(cls)}
        parts: list[str] = []
        pending: list[tuple[str, str]] = []

        def flush() -> None:
            if pending:
                pack = self.const(struct.Struct("<" + "".join(c for c, _ in pending)).pack, "pack")
                parts.append(f"{pack}({', '.join(e for _, e in pending)})")
                pending.clear()

        for item in items:
            if item.kind in ("int", "bytes"):
                pending.append((item.code, self._to_wire(specs[item.name], f"{obj}.{item.name}")))
            elif item.kind == "flag":
                # codec._to_fields writes a presence flag as 1 (present) or 0 (absent).
                target = item.name.removesuffix("_present")
                if target == item.name or not {0, 1} <= item.values:
                    raise _NoPlanError(f"{item.name}: not a presence flag")
                pending.append(("B", f"(0 if {obj}.{target} is None else 1)"))
            elif item.kind == "end":
                continue
            else:
                flush()
                parts.append(self._pack_variable(item, specs, obj))
        flush()
        return parts

    def _pack_variable(self, item: wire.LayoutItem, specs: dict[str, FieldSpec], obj: str) -> str:
        attribute = f"{obj}.{item.name}"
        if item.kind == "text":
            return f"_text({attribute})"
        if item.kind == "record":
            return " + ".join(self.pack_struct(item.items, specs[item.name].type, attribute))
        if item.kind == "optional":
            if item.values != frozenset({1}):
                raise _NoPlanError(f"{item.name}: present on a flag other than 1")
            inner = " + ".join(self.pack_struct(item.items, specs[item.name].type, attribute))
            return f"(b'' if {attribute} is None else {inner})"
        if item.kind == "array":
            element_specs = {spec.name: spec for spec in field_specs(specs[item.name].type)}
            pack = self.const(
                struct.Struct("<" + "".join(field.code for field in item.items)).pack, "pack"
            )
            fields = ", ".join(
                self._to_wire(element_specs[field.name], f"e.{field.name}") for field in item.items
            )
            return f"bytes((len({attribute}),)) + b''.join([{pack}({fields}) for e in {attribute}])"
        raise _NoPlanError(f"no plan for a {item.kind}")

    def _to_wire(self, spec: FieldSpec, expression: str) -> str:
        if spec.kind is FieldKind.ENUM or spec.kind is FieldKind.BOOL:
            return f"int({expression})"
        if spec.kind is FieldKind.ENUM_SET:
            return f"_bits({expression})"
        return expression


def _text(value: str) -> bytes:
    """TEXT's bytes: ValueError (so the reference decides) for over 255 bytes or non-ASCII."""
    data = value.encode("ascii")
    return bytes((len(data),)) + data


_FRAME_TEMPLATE = """
def decode_payload(body):
    return parse(body, 0, len(body))

def decode(data):
    n = len(data)
    if n < {min_frame} or n > {max_frame}:
        return None
    sync, version, flags, seq, ref, opcode, length = _head(data, 0)
    if sync != _SYNC or version != {version} or flags != {flags} or opcode != {opcode}:
        return None
    if length != n - {min_frame} or not seq{ref_rule}:
        return None
    if _crc(data[2:n - 2], 0xFFFF) != data[n - 2] | data[n - 1] << 8:
        return None
    m = parse(data, {header_len}, n - 2)
    if m is None:
        return None
    return (flags, seq, ref, data[{header_len}:n - 2], m)

def encode_payload(m):
    try:
        return {payload}
    except _ENCODE_ERRORS:
        return None

def encode(m, seq, ref):
    if not 1 <= seq <= {u32} or not 0 <= ref <= {u32}{request_ref}:
        return None
    body = encode_payload(m)
    if body is None or len(body) > {max_body}:
        return None
    head = _head_pack(_SYNC, {version}, {flags}, seq, ref, {opcode}, len(body)) + body
    return head + _crc(head[2:], 0xFFFF).to_bytes(2, "little")
"""


def variable_plan(opcode: Opcode, cls: type[Message]) -> VariablePlan | None:
    """The bounds-checked plan of a variable-size payload, or None if it has none."""
    items = wire.payload_layout(opcode.value)
    if items is None:
        return None
    generator = _Generator()
    try:
        lines: list[str] = []
        built = generator.parse_struct(items, cls, lines, "    ")
        payload = " + ".join(generator.pack_struct(items, cls, "m")) or "b''"
    except _NoPlanError:
        return None
    # A payload without Terminated takes trailing bytes, as construct's parse does.
    parse = "\n".join(["def parse(data, p, end):", *lines, f"    return {built}"])
    reply = opcode.is_reply
    source = "\n\n".join(
        [
            *generator.functions,
            parse,
            _FRAME_TEMPLATE.format(
                min_frame=wire.MIN_FRAME_LEN,
                max_frame=wire.MAX_FRAME_LEN,
                version=wire.VERSION,
                flags=wire.FLAG_REPLY if reply else 0,
                opcode=opcode.value,
                # A request's REF must be 0 (docs/protocol.md section 2); a reply's is any u32.
                ref_rule="" if reply else " or ref",
                request_ref="" if reply else " or ref",
                header_len=wire.HEADER_LEN,
                payload=payload,
                u32=_U32_MAX,
                max_body=wire.MAX_BODY_LEN,
            ),
        ]
    )
    env = generator.env
    env.update(
        _crc=binascii.crc_hqx,
        _SYNC=wire.SYNC,
        _head=wire.HEADER_STRUCT.unpack_from,
        _head_pack=wire.HEADER_STRUCT.pack,
        _text=_text,
        _ENCODE_ERRORS=_ENCODE_ERRORS,
    )
    exec(compile(source, f"<variable plan {opcode.name}>", "exec"), env)  # noqa: S102
    return VariablePlan(
        decode=env["decode"],
        decode_payload=env["decode_payload"],
        encode=env["encode"],
        encode_payload=env["encode_payload"],
    )

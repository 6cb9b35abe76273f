"""``pumpemu decode``: show every frame in a byte stream, and the noise between frames.

The stream comes from hex on the command line, a file, stdin (``-``) or the bundled example
(``--example``). It runs through the same framer and codec as the pump
(protocol/framer.py, protocol/codec.py), so what this prints is what the pump would see.

Layers, so other inputs can be added without touching the rest:
- *sources* turn the user's argument into bytes (``read_source``); a JSONL capture reader
  fits here, yielding the raw bytes of each record;
- ``decode_stream`` turns bytes into ``StreamItem`` values (frames and noise);
- *renderers* print items as a table (rich) or as one JSON document.
"""

from __future__ import annotations

import dataclasses
import json
import string
import sys
from enum import IntEnum
from importlib import resources
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from hil.errors import UsageError
from protocol.codec import decode_payload, parse_frame
from protocol.errors import ProtocolError
from protocol.framer import FrameBytes, Framer, Noise

EXAMPLE_RESOURCE = "session.hex"
"""hil/examples/session.hex: a short programming session with noise between frames."""

NOISE_PREVIEW = 16
"""Noise bytes shown in the table; --json carries them all."""


@dataclasses.dataclass(frozen=True, slots=True)
class StreamItem:
    """A frame or a run of noise found at ``offset`` in the stream."""

    kind: str
    """"frame" or "noise"."""
    offset: int
    raw: bytes
    header: dict[str, Any] | None = None
    message: dict[str, Any] | None = None
    error: str | None = None
    """Why a frame with a good CRC did not decode, as the pump would refuse it."""


# -- sources ------------------------------------------------------------------------------


def read_source(source: tuple[str, ...], *, example: bool) -> tuple[str, bytes]:
    """(a name for the source, its bytes). Raises UsageError on bad input."""
    if example:
        if source:
            raise UsageError("give either --example or a source, not both")
        text = resources.files("hil").joinpath("examples", EXAMPLE_RESOURCE).read_text("ascii")
        return "example", parse_hex(text)
    if not source:
        raise UsageError("nothing to decode: give hex, a file, '-' for stdin, or --example")
    if source == ("-",):
        return "stdin", bytes_or_hex(sys.stdin.buffer.read())
    if len(source) == 1 and Path(source[0]).is_file():
        path = Path(source[0])
        try:
            return str(path), bytes_or_hex(path.read_bytes())
        except OSError as error:
            raise UsageError(f"cannot read {path}: {error.strerror}") from error
    text = " ".join(source)
    if not is_hex_text(text):
        raise UsageError(f"{text!r} is neither an existing file nor hex digits")
    return "hex", parse_hex(text)


HEX_TEXT_CHARS = set(string.hexdigits + string.whitespace + ":")


def is_hex_text(text: str) -> bool:
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return bool(body.strip()) and set(body) <= HEX_TEXT_CHARS


def bytes_or_hex(data: bytes) -> bytes:
    """A file or stdin holds raw bytes, or hex text (which no binary frame can look like:
    every frame starts with A5, which is not ASCII)."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return data
    return parse_hex(text) if is_hex_text(text) else data


def parse_hex(text: str) -> bytes:
    """Hex digits, with any whitespace or colons between bytes; '#' starts a comment line."""
    lines = (line for line in text.splitlines() if not line.lstrip().startswith("#"))
    digits = "".join("".join(lines).split()).replace(":", "")
    if digits[:2].lower() == "0x":
        digits = digits[2:]
    if not digits:
        raise UsageError("no hex digits to decode")
    if len(digits) % 2:
        raise UsageError(f"odd number of hex digits ({len(digits)}): a byte is two digits")
    try:
        return bytes.fromhex(digits)
    except ValueError as error:
        raise UsageError(f"not hex: {error}") from error


# -- decoding -----------------------------------------------------------------------------


def decode_stream(data: bytes) -> list[StreamItem]:
    framer = Framer()
    events = framer.feed(data) + framer.finish()
    items = []
    for event in events:
        if isinstance(event, Noise):
            raw = data[event.offset : event.offset + event.length]
            items.append(StreamItem("noise", event.offset, raw))
        elif isinstance(event, FrameBytes):
            items.append(decode_frame(event))
    return items


def decode_frame(found: FrameBytes) -> StreamItem:
    try:
        frame = parse_frame(found.data)
    except ProtocolError as error:
        return StreamItem("frame", found.offset, found.data, error=str(error))
    header = {
        "flags": [name for bit, name in ((1, "REPLY"), (2, "SEALED")) if frame.flags & bit],
        "seq": frame.seq,
        "ref": frame.ref,
        "opcode": frame.opcode.name,
        "length": len(frame.body),
    }
    if frame.is_sealed:
        return StreamItem("frame", found.offset, found.data, header, error="sealed body")
    try:
        message = decode_payload(frame.opcode, frame.body)
    except ProtocolError as error:
        return StreamItem("frame", found.offset, found.data, header, error=str(error))
    return StreamItem("frame", found.offset, found.data, header, message=fields_of(message))


def fields_of(value: Any) -> dict[str, Any]:
    """A message as plain JSON-ready fields: enums by name, bytes as hex."""
    fields: dict[str, Any] = {"type": type(value).__name__}
    for field in dataclasses.fields(value):
        fields[field.name] = plain(getattr(value, field.name))
    return fields


def plain(value: Any) -> Any:
    if isinstance(value, IntEnum):
        return value.name
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, frozenset):
        return sorted(plain(v) for v in sorted(value))
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return fields_of(value)
    return value


# -- renderers ----------------------------------------------------------------------------


def as_json(name: str, data: bytes, items: list[StreamItem]) -> str:
    document = {
        "source": name,
        "length": len(data),
        "frames": sum(1 for item in items if item.kind == "frame"),
        "noise_bytes": sum(len(item.raw) for item in items if item.kind == "noise"),
        "items": [
            {
                "kind": item.kind,
                "offset": item.offset,
                "length": len(item.raw),
                "hex": item.raw.hex(),
                **({"header": item.header} if item.header else {}),
                **({"message": item.message} if item.message else {}),
                **({"error": item.error} if item.error else {}),
            }
            for item in items
        ],
    }
    return json.dumps(document, indent=2)


def as_table(name: str, data: bytes, items: list[StreamItem], console: Console) -> None:
    table = Table(title=f"{name}: {len(data)} bytes", title_justify="left", expand=False)
    for column in ("offset", "seq", "ref", "message", "fields"):
        table.add_column(column, overflow="fold")
    for item in items:
        if item.kind == "noise":
            preview = item.raw[:NOISE_PREVIEW].hex(" ")
            more = " ..." if len(item.raw) > NOISE_PREVIEW else ""
            table.add_row(
                str(item.offset),
                "",
                "",
                "[red]noise[/red]",
                f"{len(item.raw)} bytes: {preview}{more}",
            )
            continue
        header = item.header or {}
        opcode = str(header.get("opcode", "?"))
        text = describe(item.message) if item.message else f"[red]{item.error}[/red]"
        table.add_row(
            str(item.offset), str(header.get("seq", "")), str(header.get("ref", "")), opcode, text
        )
    console.print(table)


def describe(message: dict[str, Any]) -> str:
    """One ``path=value`` per line; nested records and lists by dotted path."""
    return "\n".join(f"{path}={value}" for path, value in flatten(message, ""))


def flatten(value: Any, path: str) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        pairs: list[tuple[str, Any]] = []
        for key, item in value.items():
            if key != "type":
                pairs += flatten(item, f"{path}.{key}" if path else key)
        return pairs
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [pair for i, item in enumerate(value) for pair in flatten(item, f"{path}[{i}]")]
    return [(path, value)]


EPILOG = """\b
Examples:
  pumpemu decode --example                 the bundled session, noise included
  pumpemu decode a55a01000600000000000000110000c8e8
  pumpemu decode capture.bin --json        a binary (or hex text) file, as JSON
  some-tool | pumpemu decode -             raw bytes or hex text on stdin
"""


@click.command(epilog=EPILOG)
@click.argument("source", nargs=-1)
@click.option("--example", is_flag=True, help="Decode the bundled example stream.")
@click.option("--json", "as_json_flag", is_flag=True, help="Print one JSON document.")
def decode(source: tuple[str, ...], example: bool, as_json_flag: bool) -> None:
    """Find and decode every frame in SOURCE, reporting noise between frames.

    SOURCE is hex digits (spaces and colons allowed), a file of raw bytes or hex text, or
    '-' for stdin. The stream goes through the pump's own framer: frames are found after
    garbage or truncation, and noise is reported with its byte offset. Layouts:
    docs/protocol.md.
    """
    try:
        name, data = read_source(source, example=example)
    except UsageError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(2)
    items = decode_stream(data)
    if as_json_flag:
        click.echo(as_json(name, data, items))
    else:
        as_table(name, data, items, Console(soft_wrap=False))

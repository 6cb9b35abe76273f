"""``pumpemu decode``: show every frame in a byte stream or a capture, and the noise between.

The input is hex on the command line, a file, stdin (``-``), the bundled example
(``--example``), or a JSONL capture written by ``pumpemu serve``, ``ctl`` or ``proxy``
(hil/capture.py, docs/capture.md), recognised by its ``.jsonl`` name or by its first line.
Byte streams run through the same framer and codec as the pump (protocol/framer.py,
protocol/codec.py), so what this prints is what the pump would see.

With ``--keys KEYFILE`` sealed frames are opened too. The handshake travels in clear
(OPEN_SESSION with the role and programmer nonce, CHALLENGE with the pump nonce and serial,
SESSION_OPENED), so the decoder follows it and derives each session's keys exactly as the
two ends do (docs/security.md): ``Transcript`` + ``derive_session_keys`` with the role key
from the key file. Requests open under the programmer-to-pump key, replies under the
pump-to-programmer key. A frame that does not open is shown as such, never as a traceback.

Layers, so other inputs can be added without touching the rest:
- *sources* turn the user's argument into bytes or capture records (``read_input``);
- ``decode_stream`` / ``decode_capture`` turn them into ``StreamItem`` values, and
  ``Unsealer`` opens the sealed ones;
- *renderers* print items as a table (rich) or as one JSON document.
"""

from __future__ import annotations

import dataclasses
import json
import string
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hil.capture import (
    CAPTURE_FORMAT,
    CaptureRecord,
    fields_of,
    parse_capture,
    plain,
    summarize_frame,
)
from hil.errors import UsageError
from hil.keys_command import load_keys, open_key_file_warning
from protocol import crypto, wire
from protocol.codec import decode_payload, parse_frame
from protocol.errors import ProtocolError, SessionError
from protocol.framer import FrameBytes, Framer, Noise
from protocol.keys import PumpKeys, role_name
from protocol.messages import Challenge, OpenSession, SessionOpened

__all__ = [
    "StreamItem",
    "Unsealer",
    "decode",
    "decode_capture",
    "decode_frame",
    "decode_stream",
    "describe",
    "fields_of",
    "flatten",
    "plain",
    "read_input",
    "read_source",
]

EXAMPLE_RESOURCE = "session.hex"
"""hil/examples/session.hex: a short programming session with noise between frames."""

NOISE_PREVIEW = 16
"""Noise bytes shown in the table; --json carries them all."""

CAPTURE_SUFFIX = ".jsonl"


@dataclasses.dataclass(frozen=True, slots=True)
class StreamItem:
    """A frame, a run of noise, or (in a capture) a note or a writer's start record."""

    kind: str
    """"frame", "noise", "note" or "capture"."""
    offset: int
    raw: bytes
    header: dict[str, Any] | None = None
    message: dict[str, Any] | None = None
    """An unsealed frame's payload, or a sealed frame's opened plaintext."""
    error: str | None = None
    """Why a frame with a good CRC did not decode or did not open."""
    sealed: bool = False
    opened: bool = False
    """A sealed frame opened with the key file's keys."""
    record: CaptureRecord | None = None
    """The capture line this item came from (None for byte streams)."""


# -- sources ------------------------------------------------------------------------------


def read_input(
    source: tuple[str, ...], *, example: bool
) -> tuple[str, bytes | list[CaptureRecord]]:
    """(a name for the input, its bytes or its capture records). Raises UsageError."""
    if not example and (source == ("-",) or (len(source) == 1 and _is_file(source[0]))):
        if source == ("-",):
            name, data = "stdin", sys.stdin.buffer.read()
        else:
            name = source[0]
            try:
                data = Path(name).read_bytes()
            except OSError as error:
                raise UsageError(f"cannot read {name}: {error.strerror}") from error
        if is_capture(name, data):
            return name, list(parse_capture(data.split(b"\n"), name))
        return name, bytes_or_hex(data)
    return read_source(source, example=example)


def _is_file(name: str) -> bool:
    """Whether ``name`` is an existing file. Long hex on the command line is not a valid
    path at all (ENAMETOOLONG), which means "not a file", not an error."""
    try:
        return Path(name).is_file()
    except (OSError, ValueError):
        return False


def is_capture(name: str, data: bytes) -> bool:
    """A ``.jsonl`` file, or one whose first line is a JSON object with a ``kind``.

    Checking the first line, not just a leading ``{``, keeps a raw byte dump that happens to
    start with 0x7B decodable as a stream.
    """
    if name.lower().endswith(CAPTURE_SUFFIX):
        return True
    first = data.lstrip().split(b"\n", 1)[0]
    if not first.startswith(b"{"):
        return False
    try:
        obj = json.loads(first)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and "kind" in obj


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
    if len(source) == 1 and _is_file(source[0]):
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


def decode_frame(found: FrameBytes, record: CaptureRecord | None = None) -> StreamItem:
    summary = summarize_frame(found.data)
    return StreamItem(
        "frame",
        found.offset,
        found.data,
        summary.header or None,
        summary.message,
        summary.error,
        sealed=summary.sealed,
        record=record,
    )


def decode_capture(records: list[CaptureRecord]) -> list[StreamItem]:
    """One item per record. Frames are decoded again from their hex: the decoded fields a
    writer stored are for reading the file, the bytes are the truth."""
    items = []
    for record in records:
        offset = record.offset if record.offset is not None else 0
        if record.kind == "frame":
            items.append(decode_frame(FrameBytes(offset, record.data), record))
        else:
            items.append(StreamItem(record.kind, offset, record.data, record=record))
    return items


@dataclasses.dataclass(slots=True)
class _KeyContext:
    """One writer's view of the handshakes it saw, and the keys of its current session."""

    opening: OpenSession | None = None
    transcript: crypto.Transcript | None = None
    keys: crypto.SessionKeys | None = None
    problem: str | None = "no session handshake before it in the input"
    """Why ``keys`` is missing or cannot be right, shown on every frame that fails to open."""


class Unsealer:
    """Follows the handshakes in clear and opens sealed frames (docs/security.md).

    Each writer (a capture's ``source``) has its own context, so captures from several
    writers appended to one file do not mix their sessions. A new session starts a new key
    context only at SESSION_OPENED: an OPEN_SESSION refused while a session is open
    (SESSION_BUSY) leaves the open session's keys in use.
    """

    def __init__(self, keys: PumpKeys) -> None:
        self._keys = keys
        self._contexts: dict[str, _KeyContext] = {}

    def process(self, item: StreamItem) -> StreamItem:
        """The item, with a sealed frame opened (or its failure to open explained)."""
        if item.kind == "capture" and item.record is not None:
            # A writer (re)started: what it saw before belongs to another run.
            self._contexts.pop(item.record.source, None)
            return item
        if item.kind != "frame" or (item.error is not None and not item.sealed):
            return item
        context_name = item.record.source if item.record is not None else ""
        context = self._contexts.setdefault(context_name, _KeyContext())
        try:
            frame = parse_frame(item.raw)
        except ProtocolError:
            return item  # its error is already shown
        if frame.is_sealed:
            return self._open(item, context)
        try:
            message = decode_payload(frame.opcode, frame.body)
        except ProtocolError:
            return item
        if isinstance(message, OpenSession):
            context.opening = message
            context.transcript = None
        elif isinstance(message, Challenge):
            self._on_challenge(context, message)
        elif isinstance(message, SessionOpened):
            self._on_opened(context, message)
        return item

    def _on_challenge(self, context: _KeyContext, message: Challenge) -> None:
        if context.opening is None:
            context.transcript = None
            return
        try:
            context.transcript = crypto.Transcript(
                message.serial,
                context.opening.role,
                context.opening.programmer_nonce,
                message.pump_nonce,
            )
        except ValueError:
            context.transcript = None  # a serial no key file can hold; nothing to derive

    def _on_opened(self, context: _KeyContext, message: SessionOpened) -> None:
        transcript = context.transcript
        context.opening = None
        context.transcript = None
        if transcript is None:
            context.keys = None
            context.problem = "the capture lacks this session's OPEN_SESSION or CHALLENGE"
            return
        role_key = self._keys.key_for(transcript.role)
        context.keys = crypto.derive_session_keys(role_key, transcript)
        context.problem = None
        if transcript.serial != self._keys.serial:
            context.problem = (
                f"the session is with pump {transcript.serial}, the key file is for "
                f"{self._keys.serial}"
            )
        elif not crypto.verify_pump_proof(role_key, transcript, message.proof):
            context.problem = (
                f"the key file's {role_name(transcript.role)} key is not this session's "
                "(its SESSION_OPENED proof does not verify)"
            )

    @staticmethod
    def _open(item: StreamItem, context: _KeyContext) -> StreamItem:
        if context.keys is None:
            return dataclasses.replace(item, error=f"cannot open: {context.problem}")
        header, body = item.raw[: wire.HEADER_LEN], item.raw[wire.HEADER_LEN : -wire.CRC_LEN]
        is_reply = bool(header[3] & wire.FLAG_REPLY)
        key = context.keys.to_programmer if is_reply else context.keys.to_pump
        try:
            plaintext = crypto.open(key, header, body)
        except SessionError as error:
            why = context.problem or str(error)
            return dataclasses.replace(item, error=f"does not open: {why}")
        try:
            message = decode_payload(header[12], plaintext)
        except ProtocolError as error:
            return dataclasses.replace(item, opened=True, error=f"opened, but {error}")
        return dataclasses.replace(item, opened=True, message=fields_of(message))


def unseal(items: list[StreamItem], keys: PumpKeys) -> list[StreamItem]:
    unsealer = Unsealer(keys)
    return [unsealer.process(item) for item in items]


# -- renderers ----------------------------------------------------------------------------


def _frame_json(item: StreamItem) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if item.header:
        fields["header"] = item.header
    if item.kind == "frame":
        fields["sealed"] = item.sealed
        if item.sealed:
            fields["opened"] = item.opened
    if item.message:
        fields["message"] = item.message
    if item.error:
        fields["error"] = item.error
    return fields


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
                **_frame_json(item),
            }
            for item in items
        ],
    }
    return json.dumps(document, indent=2)


def capture_as_json(name: str, items: list[StreamItem]) -> str:
    document = {
        "source": name,
        "format": CAPTURE_FORMAT,
        "records": len(items),
        "frames": sum(1 for item in items if item.kind == "frame"),
        "noise_bytes": sum(len(item.raw) for item in items if item.kind == "noise"),
        "notes": sum(1 for item in items if item.kind == "note"),
        "items": [_capture_item_json(item) for item in items],
    }
    return json.dumps(document, indent=2)


def _capture_item_json(item: StreamItem) -> dict[str, Any]:
    record = item.record
    assert record is not None, "every capture item comes from a record"
    fields: dict[str, Any] = {
        "kind": item.kind,
        "line": record.line,
        "source": record.source,
        "wall": record.wall,
        "wall_ns": record.wall_ns,
        "sim_ms": record.sim_ms,
    }
    if item.kind == "capture":
        fields["format"] = record.fields.get("format")
    elif item.kind == "note":
        fields["text"] = record.text
    else:
        fields.update(
            direction=record.direction,
            offset=item.offset,
            length=len(item.raw),
            hex=item.raw.hex(),
            **_frame_json(item),
        )
    return fields


def _frame_text(item: StreamItem) -> str:
    """The fields column of a frame: its fields, or why they cannot be shown."""
    if item.message:
        return escape(describe(item.message))
    if item.error:
        return f"[red]{escape(item.error)}[/red]"
    if item.sealed:
        return "[yellow]sealed: give --keys KEYFILE to open[/yellow]"
    return ""


def _opcode_text(item: StreamItem) -> str:
    opcode = escape(str((item.header or {}).get("opcode", "?")))
    if item.sealed:
        return f"{opcode}\n[dim]{'sealed, opened' if item.opened else 'sealed'}[/dim]"
    return opcode


def _noise_text(raw: bytes) -> str:
    preview = raw[:NOISE_PREVIEW].hex(" ")
    more = " ..." if len(raw) > NOISE_PREVIEW else ""
    return f"{len(raw)} bytes: {preview}{more}"


def as_table(name: str, data: bytes, items: list[StreamItem], console: Console) -> None:
    table = Table(title=f"{escape(name)}: {len(data)} bytes", title_justify="left", expand=False)
    for column in ("offset", "seq", "ref", "message", "fields"):
        table.add_column(column, overflow="fold")
    for item in items:
        if item.kind == "noise":
            table.add_row(str(item.offset), "", "", "[red]noise[/red]", _noise_text(item.raw))
            continue
        header = item.header or {}
        table.add_row(
            str(item.offset),
            str(header.get("seq", "")),
            str(header.get("ref", "")),
            _opcode_text(item),
            _frame_text(item),
        )
    console.print(table)


def capture_as_table(name: str, items: list[StreamItem], console: Console) -> None:
    records = [item.record for item in items if item.record is not None]
    sources = {record.source for record in records}
    start = f", from {records[0].wall}" if records else ""
    table = Table(
        title=f"{escape(name)}: {len(items)} records{start} (times UTC)",
        title_justify="left",
        expand=False,
    )
    # Five columns, so the fields keep a readable width on an 80-column terminal: the
    # time column holds the wall time of day and, below it, the pump time.
    for column in ("time", "dir", "seq/ref", "message", "fields"):
        table.add_column(column, overflow="fold")
    for item in items:
        record = item.record
        assert record is not None, "every capture item comes from a record"
        when = record.wall[11:23]  # time of day to the ms; the title gives the date
        if record.sim_ms is not None:
            when += f"\nsim {record.sim_ms}"
        where = record.direction or ""
        if len(sources) > 1:
            where = f"{record.source} {where}".rstrip()
        where = escape(where)
        if item.kind == "capture":
            text = f"capture by {record.source}, format {record.fields.get('format')}"
            table.add_row(when, where, "", "[dim]start[/dim]", escape(text))
        elif item.kind == "note":
            table.add_row(when, where, "", "[cyan]note[/cyan]", escape(record.text or ""))
        elif item.kind == "noise":
            noise = f"at {item.offset}, {_noise_text(item.raw)}"
            table.add_row(when, where, "", "[red]noise[/red]", noise)
        else:
            header = item.header or {}
            seq_ref = f"{header.get('seq', '')}/{header.get('ref', '')}"
            table.add_row(when, where, seq_ref, _opcode_text(item), _frame_text(item))
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
  pumpemu decode serve.jsonl               a capture from serve, ctl or proxy
  pumpemu decode serve.jsonl --keys pe-000042.keys --json
                                           ... with sealed frames opened
"""


@click.command(epilog=EPILOG)
@click.argument("source", nargs=-1)
@click.option("--example", is_flag=True, help="Decode the bundled example stream.")
@click.option("--json", "as_json_flag", is_flag=True, help="Print one JSON document.")
@click.option(
    "--keys",
    "keys_file",
    metavar="KEYFILE",
    help="The pump's key file (pumpemu keys new): open sealed frames, following each "
    "session's handshake in the input.",
)
def decode(
    source: tuple[str, ...], example: bool, as_json_flag: bool, keys_file: str | None
) -> None:
    """Find and decode every frame in SOURCE, reporting noise between frames.

    SOURCE is hex digits (spaces and colons allowed), a file of raw bytes or hex text, '-'
    for stdin, or a JSONL capture (docs/capture.md) written by serve, ctl or proxy. A byte
    stream goes through the pump's own framer: frames are found after garbage or
    truncation, and noise is reported with its byte offset. A capture is shown record by
    record with its direction, wall time (UTC) and pump time. Layouts: docs/protocol.md.
    """
    try:
        keys = load_keys(keys_file, allow_open=True) if keys_file is not None else None
        name, data = read_input(source, example=example)
    except UsageError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(2)
    warning = open_key_file_warning(Path(keys_file)) if keys_file is not None else None
    if warning is not None:
        click.echo(warning, err=True)
    console = Console(soft_wrap=False)
    if isinstance(data, bytes):
        items = decode_stream(data)
        if keys is not None:
            items = unseal(items, keys)
        if as_json_flag:
            click.echo(as_json(name, data, items))
        else:
            as_table(name, data, items, console)
        return
    items = decode_capture(data)
    if keys is not None:
        items = unseal(items, keys)
    if as_json_flag:
        click.echo(capture_as_json(name, items))
    else:
        capture_as_table(name, items, console)

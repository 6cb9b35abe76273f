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

Bounded memory, whatever the input's size (issue 11): every layer is
a generator. A file or stdin is read in ``CHUNK_SIZE`` chunks (a capture line by line), the
framer is fed chunk by chunk, and each item is printed as soon as it is decoded; nothing
holds the items already printed. Noise runs longer than ``NOISE_ITEM_MAX`` bytes are shown
as consecutive items, as a capture writer records them. A file is checked whole before
anything is printed (a capture's lines, a hex text's digits), so bad input still prints
nothing but one error line; stdin cannot be read twice, so an error found there after
output began ends the output with that one line and exit code 2.

Layers, so other inputs can be added without touching the rest:
- *sources* turn the user's argument into chunks of bytes or capture records
  (``open_input``);
- ``decode_stream`` / ``decode_capture`` turn them into ``StreamItem`` values, and
  ``Unsealer`` opens the sealed ones;
- *renderers* print items as aligned text lines (rich styles on a terminal) or as one JSON
  document written item by item.
"""

from __future__ import annotations

import dataclasses
import json
import string
import sys
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from hil import quantities as q
from hil.errors import UsageError
from protocol.documents import MAX_DOCUMENT_BYTES
from protocol.errors import ProtocolError, SessionError

if TYPE_CHECKING:
    from protocol import crypto
    from protocol.keys import PumpKeys
    from protocol.messages import Challenge, OpenSession, SessionOpened

if TYPE_CHECKING:
    from rich.console import Console

    from hil.capture import (
        CaptureRecord,
    )
    from protocol.framer import FrameBytes

__all__ = [
    "ByteInput",
    "CaptureInput",
    "HexTextDecoder",
    "StreamItem",
    "Unsealer",
    "decode",
    "decode_capture",
    "decode_frame",
    "decode_stream",
    "describe",
    "flatten",
    "open_input",
    "read_source",
    "unseal",
]

EXAMPLE_RESOURCE = "session.hex"
"""hil/examples/session.hex: a short programming session with noise between frames."""

NOISE_PREVIEW = 16
"""Noise bytes shown in the text output; --json carries them all."""

CHUNK_SIZE = 64 * 1024
"""Bytes read from a file or stdin at a time."""

NOISE_ITEM_MAX = 1024
"""hil.capture.NOISE_RECORD_MAX, copied so --help loads no codec (tests/hil/test_cli_lazy_imports.py
checks the copy). The most bytes in one noise item of a byte stream: a longer run is split into
consecutive items, as a capture writer splits it into records (hil/capture.py)."""

CAPTURE_SUFFIX = ".jsonl"

MAX_LINE_BYTES = MAX_DOCUMENT_BYTES
"""The longest capture line read: the record parser refuses a longer one anyway
(protocol/documents.py), so the reader never holds more than this of one line."""


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


@dataclasses.dataclass(frozen=True, slots=True)
class ByteInput:
    """A byte stream: its name for the output and its bytes, chunk by chunk (hex text
    already turned into bytes). Iterating may raise UsageError (an unreadable file, stdin
    that stops being hex text)."""

    name: str
    chunks: Iterator[bytes]


@dataclasses.dataclass(frozen=True, slots=True)
class CaptureInput:
    """A JSONL capture: its name and its records, read line by line. Iterating may raise
    UsageError (a malformed line on stdin; a file is checked before it is returned)."""

    name: str
    records: Iterator[CaptureRecord]


def open_input(source: tuple[str, ...], *, example: bool) -> ByteInput | CaptureInput:
    """The user's argument as a stream to decode. Raises UsageError for bad input found
    before anything is printed: a missing or unreadable file, bad hex, and in a file (not
    stdin) a malformed capture line or a hex text with a bad digit count."""
    if not example and source == ("-",):
        return _open_stream("stdin", sys.stdin.buffer, seekable=False)
    if not example and len(source) == 1 and _is_file(source[0]):
        name = source[0]
        try:
            file = Path(name).open("rb")  # noqa: SIM115 (the chunk generator closes it)
        except OSError as error:
            raise UsageError(f"cannot read {name}: {error.strerror}") from error
        try:
            return _open_stream(name, file, seekable=True)
        except BaseException:
            file.close()
            raise
    name, data = read_source(source, example=example)
    return ByteInput(name, iter((data,)))


def _open_stream(name: str, file: IO[bytes], *, seekable: bool) -> ByteInput | CaptureInput:
    from hil.capture import parse_capture  # noqa: PLC0415

    head = _read_head(name, file)
    if is_capture(name, head):
        if seekable:
            for _ in parse_capture(_lines(name, _chunks(name, file, head, close=False)), name):
                pass  # every line checked before anything is printed
            head = _rewind(name, file)
        return CaptureInput(name, parse_capture(_lines(name, _chunks(name, file, head)), name))
    if seekable:
        if not _is_hex_file(name, file, head):
            return ByteInput(name, _chunks(name, file, _rewind(name, file)))
        head = _rewind(name, file)
    elif not _looks_like_hex_text(head):
        return ByteInput(name, _chunks(name, file, head))
    return ByteInput(name, _hex_chunks(name, _chunks(name, file, head)))


def _read(name: str, file: IO[bytes]) -> bytes:
    try:
        read1 = getattr(file, "read1", None)
        return bytes(read1(CHUNK_SIZE) if read1 is not None else file.read(CHUNK_SIZE))
    except OSError as error:
        raise UsageError(f"cannot read {name}: {error.strerror or error}") from None


def _read_head(name: str, file: IO[bytes]) -> bytes:
    """The first chunk, extended to the end of the first line when it starts like a JSON
    object (is_capture reads that line), up to MAX_LINE_BYTES."""
    head = _read(name, file)
    while head.lstrip().startswith(b"{") and b"\n" not in head.lstrip():
        if len(head) > MAX_LINE_BYTES:
            break
        more = _read(name, file)
        if not more:
            break
        head += more
    return head


def _rewind(name: str, file: IO[bytes]) -> bytes:
    try:
        file.seek(0)
    except OSError as error:
        raise UsageError(f"cannot read {name}: {error.strerror or error}") from None
    return _read(name, file)


def _chunks(name: str, file: IO[bytes], head: bytes, *, close: bool = True) -> Iterator[bytes]:
    """``head``, then the rest of ``file`` in chunks; the file is closed at the end."""
    try:
        chunk = head
        while chunk:
            yield chunk
            chunk = _read(name, file)
    finally:
        if close and file is not sys.stdin.buffer:
            file.close()


def _lines(name: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a chunked stream without their ``\\n`` (as ``bytes.split(b"\\n")``
    gives them, a last empty line included). A line longer than MAX_LINE_BYTES is refused:
    no record can be that long."""
    from hil.capture import CaptureFormatError  # noqa: PLC0415

    partial = b""
    number = 0
    for chunk in chunks:
        lines = (partial + chunk).split(b"\n")
        partial = lines.pop()
        for line in lines:
            number += 1
            yield line
        if len(partial) > MAX_LINE_BYTES:
            raise CaptureFormatError(
                f"{name} line {number + 1}: too long: more than {MAX_LINE_BYTES} bytes"
            )
    yield partial


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
    start with 0x7B decodable as a stream. ``data`` needs to hold the first line only.
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
    """(a name, the bytes) of the bundled example or of hex on the command line, which are
    small and read whole. Raises UsageError on bad input."""
    if example:
        if source:
            raise UsageError("give either --example or a source, not both")
        text = resources.files("hil").joinpath("examples", EXAMPLE_RESOURCE).read_text("ascii")
        return "example", parse_hex(text)
    if not source:
        raise UsageError("nothing to decode: give hex, a file, '-' for stdin, or --example")
    text = " ".join(source)
    if not is_hex_text(text):
        raise UsageError(f"{text!r} is neither an existing file nor hex digits")
    return "hex", parse_hex(text)


HEX_TEXT_CHARS = set(string.hexdigits + string.whitespace + ":")


def is_hex_text(text: str) -> bool:
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return bool(body.strip()) and set(body) <= HEX_TEXT_CHARS


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


class NotHexTextError(ValueError):
    """A line of a stream read as hex text holds something else."""


class HexTextDecoder:
    """Hex text (the ``is_hex_text`` / ``parse_hex`` rules) turned into bytes line by line:
    whitespace and colons between digits, '#' comment lines, a byte's two digits possibly on
    two lines. Holds at most one unfinished line and one odd digit."""

    def __init__(self) -> None:
        self._partial = b""
        self._odd = ""
        self.digits = 0
        """Hex digits seen so far."""
        self.has_body = False
        """Whether a line that is not a comment holds anything but whitespace."""
        self.line = 0
        """Lines read so far, for error messages."""

    def feed(self, chunk: bytes) -> bytes:
        """The bytes of the whole lines ``chunk`` completes. NotHexTextError if one is not
        hex text."""
        data = self._partial + chunk
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return self._decode(data[:cut])

    def end(self) -> bytes:
        """The bytes of the last line, not ended by a line break. NotHexTextError if it
        is not hex text."""
        data, self._partial = self._partial, b""
        return self._decode(data)

    def check(self) -> None:
        """UsageError, with ``parse_hex``'s messages, if no digit was seen or their number
        is odd."""
        if not self.digits:
            raise UsageError("no hex digits to decode")
        if self._odd:
            raise UsageError(f"odd number of hex digits ({self.digits}): a byte is two digits")

    def finish(self) -> bytes:
        data = self.end()
        self.check()
        return data

    def _decode(self, block: bytes) -> bytes:
        if not block:
            return b""
        try:
            text = block.decode("ascii")
        except UnicodeDecodeError:
            raise NotHexTextError(f"line {self.line + 1}: not ASCII") from None
        pieces = []
        # str.splitlines, like is_hex_text: the block ends at a "\n" (or the input's end),
        # so every line break splitlines knows lies inside the block.
        for line in text.splitlines():
            self.line += 1
            if line.lstrip().startswith("#"):
                continue
            if not set(line) <= HEX_TEXT_CHARS:
                raise NotHexTextError(f"line {self.line}: not hex digits")
            pieces.append(line)
        body = "".join("".join(pieces).split())
        self.has_body = self.has_body or bool(body)
        digits = self._odd + body.replace(":", "")
        self.digits += len(digits) - len(self._odd)
        whole = len(digits) // 2 * 2
        self._odd = digits[whole:]
        return bytes.fromhex(digits[:whole])


def _is_hex_file(name: str, file: IO[bytes], head: bytes) -> bool:
    """Whether the whole file is hex text (``bytes_or_hex``'s rule), read once through.
    UsageError if it is hex text with no digits or an odd number of them."""
    decoder = HexTextDecoder()
    try:
        for chunk in _chunks(name, file, head, close=False):
            decoder.feed(chunk)
        decoder.end()
    except NotHexTextError:
        return False
    if not decoder.has_body:
        return False  # nothing but blank and comment lines: not hex text (is_hex_text)
    decoder.check()
    return True


def _looks_like_hex_text(head: bytes) -> bool:
    """Stdin is read once, so its first chunk decides whether it is hex text."""
    try:
        return is_hex_text(head.decode("ascii"))
    except UnicodeDecodeError:
        return False


def _hex_chunks(name: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
    decoder = HexTextDecoder()
    try:
        for chunk in chunks:
            data = decoder.feed(chunk)
            if data:
                yield data
        data = decoder.finish()
    except NotHexTextError as error:
        raise UsageError(f"{name} began as hex text, but {error}") from None
    if data:
        yield data


def bytes_or_hex(data: bytes) -> bytes:
    """Bytes held whole: raw bytes, or hex text (which no binary frame can look like:
    every frame starts with A5, which is not ASCII)."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return data
    return parse_hex(text) if is_hex_text(text) else data


# -- decoding -----------------------------------------------------------------------------


def decode_stream(data: bytes | Iterable[bytes]) -> Iterator[StreamItem]:
    """The frames and noise of a byte stream, given whole or in chunks, as they are found.

    Holds at most one incomplete frame (the framer's buffer) and less than NOISE_ITEM_MAX
    bytes of noise not yet shown: a noise run is shown in NOISE_ITEM_MAX pieces as it goes.
    """
    from protocol.framer import FrameBytes, Framer, Noise  # noqa: PLC0415

    chunks: Iterable[bytes] = (data,) if isinstance(data, bytes | bytearray) else data
    framer = Framer()
    tail = bytearray()
    """Stream bytes [base, framer.position) fed but not yet in an item."""
    base = 0

    def noise_until(end: int) -> Iterator[StreamItem]:
        nonlocal base
        while base < end:
            length = min(end - base, NOISE_ITEM_MAX)
            yield StreamItem("noise", base, bytes(tail[:length]))
            del tail[:length]
            base += length

    for chunk in chunks:
        tail += chunk
        for event in framer.feed(chunk):
            if isinstance(event, Noise):
                yield from noise_until(event.offset + event.length)
            elif isinstance(event, FrameBytes):
                yield from noise_until(event.offset)
                yield decode_frame(event)
                del tail[: len(event.data)]
                base += len(event.data)
        consumed = framer.position - framer.buffered
        if consumed - base >= NOISE_ITEM_MAX:
            yield from noise_until(base + (consumed - base) // NOISE_ITEM_MAX * NOISE_ITEM_MAX)
    for event in framer.finish():
        if isinstance(event, FrameBytes):
            yield from noise_until(event.offset)
            yield decode_frame(event)
            del tail[: len(event.data)]
            base += len(event.data)
    yield from noise_until(framer.position)


def decode_frame(found: FrameBytes, record: CaptureRecord | None = None) -> StreamItem:
    from hil.capture import summarize_frame  # noqa: PLC0415

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


def decode_capture(records: Iterable[CaptureRecord]) -> Iterator[StreamItem]:
    """One item per record, as the records are read. Frames are decoded again from their
    hex: the decoded fields a writer stored are for reading the file, the bytes are the
    truth."""
    from protocol.framer import FrameBytes  # noqa: PLC0415

    for record in records:
        offset = record.offset if record.offset is not None else 0
        if record.kind == "frame":
            yield decode_frame(FrameBytes(offset, record.data), record)
        else:
            yield StreamItem(record.kind, offset, record.data, record=record)


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
        from protocol.codec import decode_payload, parse_frame  # noqa: PLC0415
        from protocol.messages import Challenge, OpenSession, SessionOpened  # noqa: PLC0415

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
        from protocol import crypto  # noqa: PLC0415

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
        from protocol import crypto  # noqa: PLC0415
        from protocol.keys import role_name  # noqa: PLC0415

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
        from hil.capture import fields_of  # noqa: PLC0415
        from protocol import crypto, wire  # noqa: PLC0415
        from protocol.codec import decode_payload  # noqa: PLC0415

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


def unseal(items: Iterable[StreamItem], keys: PumpKeys) -> Iterator[StreamItem]:
    unsealer = Unsealer(keys)
    return (unsealer.process(item) for item in items)


# -- renderers ----------------------------------------------------------------------------

Write = Callable[[str], object]


@dataclasses.dataclass(slots=True)
class _Counts:
    """What the JSON document's totals and the text summary say, counted as items pass."""

    items: int = 0
    length: int = 0
    frames: int = 0
    noise_bytes: int = 0
    notes: int = 0

    def add(self, item: StreamItem) -> StreamItem:
        self.items += 1
        if item.kind in ("frame", "noise"):
            self.length += len(item.raw)
        if item.kind == "frame":
            self.frames += 1
        elif item.kind == "noise":
            self.noise_bytes += len(item.raw)
        elif item.kind == "note":
            self.notes += 1
        return item


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


def _stream_item_json(item: StreamItem) -> dict[str, Any]:
    return {
        "kind": item.kind,
        "offset": item.offset,
        "length": len(item.raw),
        "hex": item.raw.hex(),
        **_frame_json(item),
    }


def _write_json_document(
    write: Write,
    head: dict[str, Any],
    items: Iterable[StreamItem],
    item_json: Callable[[StreamItem], dict[str, Any]],
    tail: Callable[[], dict[str, Any]],
) -> None:
    """One JSON document, ``json.dumps(..., indent=2)`` item for item, written as the items
    come: ``head``'s fields, the ``items`` array, then ``tail()``'s fields (the totals,
    known only at the end)."""
    write("{\n")
    for key, value in head.items():
        write(f"  {json.dumps(key)}: {json.dumps(value)},\n")
    write('  "items": [')
    separator = "\n"
    for item in items:
        text = json.dumps(item_json(item), indent=2).replace("\n", "\n    ")
        write(f"{separator}    {text}")
        separator = ",\n"
    write("\n  ]" if separator != "\n" else "]")
    for key, value in tail().items():
        write(f",\n  {json.dumps(key)}: {json.dumps(value)}")
    write("\n}\n")


def write_stream_json(write: Write, name: str, items: Iterable[StreamItem]) -> None:
    counts = _Counts()
    _write_json_document(
        write,
        {"source": name},
        (counts.add(item) for item in items),
        _stream_item_json,
        lambda: {
            "length": counts.length,
            "frames": counts.frames,
            "noise_bytes": counts.noise_bytes,
        },
    )


def write_capture_json(write: Write, name: str, items: Iterable[StreamItem]) -> None:
    from hil.capture import CAPTURE_FORMAT  # noqa: PLC0415

    counts = _Counts()
    _write_json_document(
        write,
        {"source": name, "format": CAPTURE_FORMAT},
        (counts.add(item) for item in items),
        _capture_item_json,
        lambda: {
            "records": counts.items,
            "frames": counts.frames,
            "noise_bytes": counts.noise_bytes,
            "notes": counts.notes,
        },
    )


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


# Text: one row per item, in aligned columns; a cell of several lines (a message's fields,
# a sealed frame's state, a record's pump time) continues on the lines below. A cell is a
# list of (text, style) lines; the style is rich's, used only when the output has colours.
Cell = list[tuple[str, str | None]]

MESSAGE_WIDTH = 21
"""The longest opcode name, PATIENT_BOLUS_REQUEST."""


class _Rows:
    """Writes rows of cells as lines, padded to fixed column widths (the last column is
    not padded). Plain text unless the console has colours."""

    def __init__(self, console: Console, widths: tuple[int, ...]) -> None:
        self._console = console
        self._widths = widths
        self._styled = console.color_system is not None
        self._write = console.file.write

    def line(self, text: str, style: str | None = None) -> None:
        from rich.text import Text  # noqa: PLC0415

        if self._styled:
            self._console.print(Text(text, style or ""), soft_wrap=True, highlight=False)
        else:
            self._write(text + "\n")

    def row(self, *cells: Cell) -> None:
        from rich.text import Text  # noqa: PLC0415

        height = max(len(cell) for cell in cells)
        last = len(cells) - 1
        lines = []
        for n in range(height):
            parts: list[tuple[str, str | None]] = []
            for column, cell in enumerate(cells):
                text, style = cell[n] if n < len(cell) else ("", None)
                if column < last:
                    text = text.ljust(self._widths[column]) + "  "
                parts.append((text, style))
            lines.append(parts)
        if self._styled:
            row = Text()
            for n, parts in enumerate(lines):
                if n:
                    row.append("\n")
                for text, style in parts:
                    row.append(text, style or "")
            self._console.print(row, soft_wrap=True, highlight=False)
        else:
            self._write("".join("".join(t for t, _ in p).rstrip() + "\n" for p in lines))


def _cell(text: str, style: str | None = None) -> Cell:
    return [(line, style) for line in text.split("\n")] if text else []


def _frame_cell(item: StreamItem) -> Cell:
    """The fields column of a frame: its fields, or why they cannot be shown."""
    if item.message:
        return _cell(describe(item.message))
    if item.error:
        return _cell(item.error, "red")
    if item.sealed:
        return _cell("sealed: give --keys KEYFILE to open", "yellow")
    return []


def _opcode_cell(item: StreamItem) -> Cell:
    cell = _cell(str((item.header or {}).get("opcode", "?")))
    if item.sealed:
        cell += _cell("sealed, opened" if item.opened else "sealed", "dim")
    return cell


def _noise_text(raw: bytes) -> str:
    preview = raw[:NOISE_PREVIEW].hex(" ")
    more = " ..." if len(raw) > NOISE_PREVIEW else ""
    return f"{len(raw)} bytes: {preview}{more}"


def write_stream_text(console: Console, name: str, items: Iterable[StreamItem]) -> None:
    """A title, a header, one row per item as it comes, and the totals at the end."""
    rows = _Rows(console, (9, 6, 6, MESSAGE_WIDTH))
    rows.line(name, "bold")
    rows.row(*(_cell(column, "bold") for column in ("offset", "seq", "ref", "message", "fields")))
    counts = _Counts()
    for item in items:
        counts.add(item)
        if item.kind == "noise":
            rows.row(
                _cell(str(item.offset)), [], [], _cell("noise", "red"), _cell(_noise_text(item.raw))
            )
            continue
        header = item.header or {}
        rows.row(
            _cell(str(item.offset)),
            _cell(str(header.get("seq", ""))),
            _cell(str(header.get("ref", ""))),
            _opcode_cell(item),
            _frame_cell(item),
        )
    rows.line(
        f"{name}: {counts.length} bytes, {counts.frames} frames, "
        f"{counts.noise_bytes} bytes of noise"
    )


def write_capture_text(console: Console, name: str, items: Iterable[StreamItem]) -> None:
    """A title with the first record's date, one row per record as it comes, and the
    totals at the end. Once a second writer (``source``) has been seen, the dir column
    names the writer too."""
    rows = _Rows(console, (12, 10, 11, MESSAGE_WIDTH))
    counts = _Counts()
    sources: set[str] = set()
    for item in items:
        record = item.record
        assert record is not None, "every capture item comes from a record"
        if not counts.items:
            rows.line(f"{name}: from {record.wall} (times UTC)", "bold")
            # The time column holds the wall time of day and, below it, the emulator's
            # elapsed time.
            for_columns = ("time", "dir", "seq/ref", "message", "fields")
            rows.row(*(_cell(column, "bold") for column in for_columns))
        counts.add(item)
        sources.add(record.source)
        when = record.wall[11:23]  # time of day to the ms; the title gives the date
        if record.sim_ms is not None:
            when += f"\n{q.elapsed(record.sim_ms)}"  # docs/quantities.md, "Display"
        where = record.direction or ""
        if len(sources) > 1:
            where = f"{record.source} {where}".rstrip()
        if item.kind == "capture":
            text = f"capture by {record.source}, format {record.fields.get('format')}"
            rows.row(_cell(when), _cell(where), [], _cell("start", "dim"), _cell(text))
        elif item.kind == "note":
            rows.row(_cell(when), _cell(where), [], _cell("note", "cyan"), _cell(record.text or ""))
        elif item.kind == "noise":
            noise = f"at {item.offset}, {_noise_text(item.raw)}"
            rows.row(_cell(when), _cell(where), [], _cell("noise", "red"), _cell(noise))
        else:
            header = item.header or {}
            seq_ref = f"{header.get('seq', '')}/{header.get('ref', '')}"
            rows.row(
                _cell(when), _cell(where), _cell(seq_ref), _opcode_cell(item), _frame_cell(item)
            )
    rows.line(
        f"{name}: {counts.items} records, {counts.frames} frames, "
        f"{counts.noise_bytes} bytes of noise, {counts.notes} notes"
    )


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
    Items are printed as they are decoded, so any size of input runs in bounded memory.
    """
    from hil.console import make_console  # noqa: PLC0415
    from hil.key_files import load_keys, open_key_file_warning  # noqa: PLC0415

    try:
        keys = load_keys(keys_file, allow_open=True) if keys_file is not None else None
        stream = open_input(source, example=example)
    except UsageError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(2)
    warning = open_key_file_warning(Path(keys_file)) if keys_file is not None else None
    if warning is not None:
        click.echo(warning, err=True)
    console = make_console()
    write = console.file.write
    try:
        if isinstance(stream, ByteInput):
            items = decode_stream(stream.chunks)
            if keys is not None:
                items = unseal(items, keys)
            if as_json_flag:
                write_stream_json(write, stream.name, items)
            else:
                write_stream_text(console, stream.name, items)
            return
        items = decode_capture(stream.records)
        if keys is not None:
            items = unseal(items, keys)
        if as_json_flag:
            write_capture_json(write, stream.name, items)
        else:
            write_capture_text(console, stream.name, items)
    except UsageError as error:  # found on stdin after output began (a file is pre-checked)
        console.file.flush()
        click.echo(f"Error: {error}", err=True)
        sys.exit(2)

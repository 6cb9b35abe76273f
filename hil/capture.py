"""JSONL traffic capture: every frame and every run of noise on a link, one JSON line each.

docs/architecture.md principle 11: every layer records its traffic, and ``pumpemu decode`` reads it
back. ``pumpemu serve``, ``pumpemu ctl`` and ``pumpemu proxy`` each hand the bytes they see to
a ``CaptureWriter``::

    with CaptureWriter("serve.jsonl", source="serve") as capture:
        capture.note("session opened", sim_ms=now)
        capture.record("rx", chunk, sim_ms=now, wall_ns=time.time_ns())

The writer frames each direction itself (one ``Framer`` per direction), so callers pass
chunks exactly as the link delivered them and get whole frames in the file however the
bytes were split. docs/capture.md specifies the record format field by field.

Design choices:

- Times are arguments. The shells own the clocks (docs/architecture.md principle 2); the writer only
  falls back to ``time.time_ns()`` when no wall time is given, so tests are deterministic.
- Each line is flushed as soon as it is written, so a crashed process loses no record it
  wrote. Bytes still being framed (at most one incomplete frame and less than
  ``NOISE_RECORD_MAX`` bytes of noise per direction) are written by ``finish``/``close``.
  There is no fsync per line: that would put a disk round trip on the serve loop's path.
- Bounded cost. A ``record`` call costs time linear in its chunk; each frame costs one
  header parse, at most one payload decode (at most 1024 bytes) and one JSON line. Noise is
  written in records of at most ``NOISE_RECORD_MAX`` bytes, so memory per direction stays
  below one frame plus one noise record, however long a link spews garbage.
- Replayable. Per direction, the frame and noise records tile the stream: their ``offset``
  and ``length`` cover every byte exactly once, so the original byte stream can be rebuilt
  from the file.
- Sealed bodies are recorded as hex but never interpreted here: the writer has no keys.
  ``pumpemu decode --keys`` opens them later (hil/decode_command.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from hil.errors import HilError, UsageError
from protocol import wire
from protocol.codec import decode_payload, parse_frame
from protocol.documents import DocumentError, parse_json
from protocol.errors import ProtocolError
from protocol.framer import FrameBytes, Framer, FramerEvent, Noise
from protocol.messages import Opcode

__all__ = [
    "CAPTURE_FORMAT",
    "KINDS",
    "NOISE_RECORD_MAX",
    "CaptureError",
    "CaptureFormatError",
    "CaptureRecord",
    "CaptureWriter",
    "FrameSummary",
    "fields_of",
    "iso_utc",
    "parse_capture",
    "plain",
    "read_capture",
    "summarize_frame",
]

CAPTURE_FORMAT = "pumpemu-capture/1"
"""The format tag of the first record a writer writes; readers refuse other versions."""

NOISE_RECORD_MAX = 1024
"""The most bytes in one noise record. Longer runs are split into consecutive records."""

KINDS = ("capture", "frame", "noise", "note")
"""Record kinds: the writer's start record, a frame, a run of noise, an event note."""

_OPCODES = {op.value: op for op in Opcode}
_FLAG_NAMES = ((wire.FLAG_REPLY, "REPLY"), (wire.FLAG_SEALED, "SEALED"))


class CaptureError(HilError):
    """A capture file could not be created or written (disk full, bad path)."""


class CaptureFormatError(UsageError):
    """A capture file is malformed; the message names the file and the line."""


# -- describing frames ----------------------------------------------------------------------


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


@dataclasses.dataclass(frozen=True, slots=True)
class FrameSummary:
    """What can be said about one whole frame without keys."""

    header: dict[str, Any]
    """flags (names), seq, ref, opcode (name, or hex if unknown), length: always present."""
    sealed: bool
    message: dict[str, Any] | None
    """The decoded payload of an unsealed frame (``fields_of``); None if sealed or bad."""
    error: str | None
    """Why the frame does not decode, as a pump would refuse it; None if it does."""


def summarize_frame(data: bytes) -> FrameSummary:
    """Header fields and, for an unsealed frame, the payload's fields. Never raises for
    any bytes at least a header long (the framer only yields frames of 17 bytes or more)."""
    header = _raw_header(data)
    sealed = bool(data[3] & wire.FLAG_SEALED) if len(data) > 3 else False
    try:
        frame = parse_frame(data)
    except ProtocolError as error:
        return FrameSummary(header, sealed, None, str(error))
    if frame.is_sealed:
        return FrameSummary(header, True, None, None)
    try:
        message = decode_payload(frame.opcode, frame.body)
    except ProtocolError as error:
        return FrameSummary(header, False, None, str(error))
    return FrameSummary(header, False, fields_of(message), None)


def _raw_header(data: bytes) -> dict[str, Any]:
    # Read from the bytes rather than from parse_frame, so a frame with a good CRC but an
    # unknown opcode or a bad version still shows what its header says.
    if len(data) < wire.HEADER_LEN:
        return {}
    flags, seq, ref, opcode, length = struct.unpack_from("<BIIBH", data, 3)
    names = [name for bit, name in _FLAG_NAMES if flags & bit]
    names += [f"{1 << bit:#04x}" for bit in range(2, 8) if flags & (1 << bit)]
    known = _OPCODES.get(opcode)
    return {
        "flags": names,
        "seq": seq,
        "ref": ref,
        "opcode": known.name if known is not None else f"{opcode:#04x}",
        "length": length,
    }


def iso_utc(wall_ns: int) -> str:
    """``wall_ns`` (ns since the Unix epoch) as ISO 8601 UTC with microseconds and a Z."""
    seconds, ns = divmod(wall_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ns // 1000:06d}Z"


# -- writing ----------------------------------------------------------------------------------


class _Direction:
    """One direction's framer, and the stream bytes not yet written as a record."""

    __slots__ = ("framer", "tail", "tail_base")

    def __init__(self) -> None:
        self.framer = Framer()
        self.tail = bytearray()
        """Stream bytes [tail_base, framer.position): fed but not yet in any record."""
        self.tail_base = 0


def _check_time(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be a non-negative int or None, got {value!r}")


def _check_label(name: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty str, got {value!r}")


def _open_for_append(path: str) -> IO[str]:
    """Open a capture file to append to (never truncated; created 0600). A line left torn
    by a killed writer is ended first, so the new run's start record is a line of its own."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            os.write(fd, b"\n")
        return open(fd, "a", encoding="utf-8", newline="\n", closefd=True)
    except BaseException:
        os.close(fd)
        raise


class CaptureWriter:
    """Writes a JSONL capture: one record per frame, per noise run and per note.

    ``target`` is a path, always appended to and never truncated (created with mode 0600
    if it does not exist: a capture holds a pump's traffic), or an open text stream
    (written to and flushed, never closed). Every run starts with a ``capture`` record, so
    the runs in one file stay apart. ``source`` names the writer in every
    record: ``"serve"``, ``"ctl"``, ``"proxy"``. Safe to call from several threads: a lock
    keeps lines whole and in order.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[str],
        source: str,
        *,
        wall_ns: int | None = None,
    ) -> None:
        _check_label("source", source)
        _check_time("wall_ns", wall_ns)
        self._source = source
        self._lock = threading.Lock()
        self._directions: dict[str, _Direction] = {}
        self._closed = False
        if isinstance(target, str | os.PathLike):
            self._name = os.fspath(target)
            try:
                self._stream: IO[str] = _open_for_append(self._name)
            except OSError as error:
                raise CaptureError(
                    f"cannot create capture file {self._name}: {error.strerror or error}"
                ) from None
            self._owns_stream = True
        else:
            self._name = getattr(target, "name", "<stream>")
            self._stream = target
            self._owns_stream = False
        try:
            self._write(
                {
                    "kind": "capture",
                    "format": CAPTURE_FORMAT,
                    "source": source,
                    **self._stamp(None, wall_ns),
                }
            )
        except CaptureError:
            if self._owns_stream:
                self._stream.close()
            raise

    @property
    def name(self) -> str:
        """The capture file's path, or the stream's name."""
        return self._name

    @property
    def closed(self) -> bool:
        return self._closed

    def record(
        self, direction: str, data: bytes, sim_ms: int | None, wall_ns: int | None = None
    ) -> None:
        """Bytes seen on the link in ``direction``, in any chunking.

        ``direction`` is free text naming one byte stream: ``"rx"``/``"tx"`` for an end
        point, ``"a->b"``/``"b->a"`` for a proxy. Every whole frame (and every run of noise)
        the chunk completes is written as one line stamped with ``sim_ms`` (pump time in ms,
        None if the caller has no pump clock) and ``wall_ns`` (ns since the epoch; read now
        if None).
        """
        _check_label("direction", direction)
        _check_time("sim_ms", sim_ms)
        _check_time("wall_ns", wall_ns)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        with self._lock:
            self._check_open()
            state = self._directions.get(direction)
            if state is None:
                state = self._directions[direction] = _Direction()
            if not data:
                return
            state.tail += data
            events = state.framer.feed(data)
            self._emit(direction, state, events, self._stamp(sim_ms, wall_ns), at_end=False)

    def note(self, text: str, sim_ms: int | None, wall_ns: int | None = None) -> None:
        """An event worth seeing beside the traffic: session opened, fault injected, ..."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        _check_time("sim_ms", sim_ms)
        _check_time("wall_ns", wall_ns)
        with self._lock:
            self._check_open()
            self._write(
                {
                    "kind": "note",
                    "source": self._source,
                    **self._stamp(sim_ms, wall_ns),
                    "text": text,
                }
            )

    def finish(self, direction: str, sim_ms: int | None, wall_ns: int | None = None) -> None:
        """No more bytes are coming in ``direction`` for now (end of stream, or the link
        idle for longer than a frame takes): a frame still incomplete is truncated and is
        written as noise, like the pump's framer treats it. More bytes may follow later."""
        _check_label("direction", direction)
        _check_time("sim_ms", sim_ms)
        _check_time("wall_ns", wall_ns)
        with self._lock:
            self._check_open()
            state = self._directions.get(direction)
            if state is not None:
                events = state.framer.finish()
                self._emit(direction, state, events, self._stamp(sim_ms, wall_ns), at_end=True)

    def close(self, sim_ms: int | None = None, wall_ns: int | None = None) -> None:
        """Finish every direction, then close the file if this writer opened it. Idempotent."""
        _check_time("sim_ms", sim_ms)
        _check_time("wall_ns", wall_ns)
        with self._lock:
            if self._closed:
                return
            try:
                stamp = self._stamp(sim_ms, wall_ns)
                for direction, state in self._directions.items():
                    self._emit(direction, state, state.framer.finish(), stamp, at_end=True)
            finally:
                self._closed = True
                if self._owns_stream:
                    self._stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals --

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"capture {self._name} is closed")

    @staticmethod
    def _stamp(sim_ms: int | None, wall_ns: int | None) -> dict[str, Any]:
        if wall_ns is None:
            wall_ns = time.time_ns()
        return {"wall": iso_utc(wall_ns), "wall_ns": wall_ns, "sim_ms": sim_ms}

    def _emit(
        self,
        direction: str,
        state: _Direction,
        events: list[FramerEvent],
        stamp: dict[str, Any],
        *,
        at_end: bool,
    ) -> None:
        for event in events:
            if isinstance(event, Noise):
                # Part of this run may already be written (see the early flush below).
                self._write_noise(direction, state, event.offset + event.length, stamp)
            elif isinstance(event, FrameBytes):
                self._write_noise(direction, state, event.offset, stamp)
                self._write_frame(direction, event, stamp)
                self._advance(state, event.offset + len(event.data))
        # Everything the framer has consumed but not yet reported is noise it is still
        # merging. Write it in whole NOISE_RECORD_MAX pieces now (all of it at the end), so
        # memory stays bounded and a crash loses little.
        consumed = state.framer.position - state.framer.buffered
        if at_end:
            self._write_noise(direction, state, consumed, stamp)
        elif consumed - state.tail_base >= NOISE_RECORD_MAX:
            whole = (consumed - state.tail_base) // NOISE_RECORD_MAX * NOISE_RECORD_MAX
            self._write_noise(direction, state, state.tail_base + whole, stamp)

    def _write_noise(
        self, direction: str, state: _Direction, end: int, stamp: dict[str, Any]
    ) -> None:
        """Write stream bytes [tail_base, end) as noise records of at most NOISE_RECORD_MAX."""
        while state.tail_base < end:
            length = min(end - state.tail_base, NOISE_RECORD_MAX)
            raw = bytes(state.tail[:length])
            self._write(
                {
                    "kind": "noise",
                    "source": self._source,
                    "direction": direction,
                    **stamp,
                    "offset": state.tail_base,
                    "length": length,
                    "hex": raw.hex(),
                }
            )
            self._advance(state, state.tail_base + length)

    def _write_frame(self, direction: str, found: FrameBytes, stamp: dict[str, Any]) -> None:
        summary = summarize_frame(found.data)
        record: dict[str, Any] = {
            "kind": "frame",
            "source": self._source,
            "direction": direction,
            **stamp,
            "offset": found.offset,
            "length": len(found.data),
            "header": summary.header,
            "sealed": summary.sealed,
        }
        if summary.message is not None:
            record["message"] = summary.message
        if summary.error is not None:
            record["error"] = summary.error
        record["hex"] = found.data.hex()
        self._write(record)

    @staticmethod
    def _advance(state: _Direction, to: int) -> None:
        del state.tail[: to - state.tail_base]
        state.tail_base = to

    def _write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        try:
            self._stream.write(line)
            self._stream.flush()
        except OSError as error:
            raise CaptureError(
                f"cannot write capture {self._name}: {error.strerror or error}"
            ) from None


# -- reading ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CaptureRecord:
    """One line of a capture, checked. ``fields`` is the whole JSON object as read."""

    line: int
    kind: str
    source: str
    wall_ns: int
    sim_ms: int | None
    direction: str | None
    """Set for frames and noise."""
    offset: int | None
    """Stream offset in its direction, for frames and noise."""
    data: bytes
    """The raw bytes of a frame or noise record; empty otherwise."""
    text: str | None
    """A note's text."""
    fields: Mapping[str, Any]

    @property
    def wall(self) -> str:
        return iso_utc(self.wall_ns)


def read_capture(path: str | os.PathLike[str]) -> Iterator[CaptureRecord]:
    """The records of a capture file, in order. Raises ``CaptureFormatError`` naming the
    line of the first malformed record, or if the file cannot be read."""
    name = os.fspath(path)
    try:
        file = Path(path).open("rb")  # noqa: SIM115 (closed below, the generator may pause)
    except OSError as error:
        raise CaptureFormatError(f"cannot read {name}: {error.strerror or error}") from None
    with file:
        try:
            yield from parse_capture(file, name)
        except OSError as error:
            raise CaptureFormatError(f"cannot read {name}: {error.strerror or error}") from None


def parse_capture(lines: Iterable[bytes | str], name: str) -> Iterator[CaptureRecord]:
    """Records from the lines of a capture; blank lines are skipped. ``name`` is used in
    error messages (``capture.jsonl line 7: ...``)."""
    for number, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise CaptureFormatError(f"{name} line {number}: not UTF-8 text") from None
        else:
            text = line
        if not text.strip():
            continue
        try:
            yield _parse_record(text, number)
        except _BadRecordError as error:
            raise CaptureFormatError(f"{name} line {number}: {error}") from None


class _BadRecordError(Exception):
    """One line breaks the format; parse_capture adds the file name and line number."""


def _parse_record(text: str, number: int) -> CaptureRecord:
    try:
        obj = parse_json(text)
    except DocumentError as error:
        raise _BadRecordError(str(error)) from None
    if not isinstance(obj, dict):
        raise _BadRecordError(f"a record is a JSON object, got {type(obj).__name__}")
    kind = obj.get("kind")
    if kind not in KINDS:
        raise _BadRecordError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    source = _field(obj, "source", str)
    if not source:
        raise _BadRecordError("source is empty")
    _field(obj, "wall", str)
    wall_ns = _count(obj, "wall_ns")
    sim_ms = None if obj.get("sim_ms", ...) is None else _count(obj, "sim_ms")
    direction = offset = text_field = None
    data = b""
    if kind == "capture":
        tag = _field(obj, "format", str)
        if tag != CAPTURE_FORMAT:
            raise _BadRecordError(f"format {tag!r} is not {CAPTURE_FORMAT!r}, the one this reads")
    elif kind == "note":
        text_field = _field(obj, "text", str)
    else:
        direction = _field(obj, "direction", str)
        offset = _count(obj, "offset")
        digits = _field(obj, "hex", str)
        try:
            data = bytes.fromhex(digits)
        except ValueError:
            raise _BadRecordError("hex is not hex digits") from None
        if _count(obj, "length") != len(data):
            raise _BadRecordError(f"length {obj['length']} but hex holds {len(data)} bytes")
        if not data:
            raise _BadRecordError(f"a {kind} record holds at least one byte")
    return CaptureRecord(
        number, kind, source, wall_ns, sim_ms, direction, offset, data, text_field, obj
    )


def _field(obj: dict[str, Any], name: str, kind: type[str]) -> str:
    if name not in obj:
        raise _BadRecordError(f"{obj['kind']} record has no {name!r}")
    value = obj[name]
    if not isinstance(value, kind):
        raise _BadRecordError(f"{name} must be a string, got {json.dumps(value)}")
    return value


def _count(obj: dict[str, Any], name: str) -> int:
    if name not in obj:
        raise _BadRecordError(f"{obj['kind']} record has no {name!r}")
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _BadRecordError(f"{name} must be a non-negative integer, got {json.dumps(value)}")
    return value

"""Incremental framing: feed bytes in any chunks, get whole frames and noise reports out.

docs/protocol.md, "Framing and resynchronisation", is the normative rule this implements:

1. Search for SYNC (A5 5A). Bytes before it are noise.
2. A candidate whose VERSION is not 1, whose FLAGS have reserved bits set, or whose LENGTH
   is above 1024 is not a frame: skip one byte past the sync and search again.
3. Wait until 17 + LENGTH bytes from the sync are buffered, then check the CRC. On a bad CRC,
   skip one byte past the sync and search again, so a real frame hidden inside a truncated
   or corrupt one is still found (C2).
4. On a good CRC, the frame is emitted and the search resumes right after it.

The framer is pure: no I/O, no clock, never blocks. It holds at most one incomplete
candidate (``MAX_FRAME_LEN`` - 1 bytes), however much noise goes through it. Contiguous noise
is reported once, as one ``Noise`` event, when the next frame is found or at ``finish()``,
so the events are identical however the stream is chunked (tests/protocol/test_framer.py).
Offsets count bytes from the start of the stream.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.checksum import crc16
from protocol.wire import (
    CRC_LEN,
    FLAGS_DEFINED,
    HEADER_LEN,
    LENGTH_OFFSET,
    MAX_BODY_LEN,
    MAX_FRAME_LEN,
    MIN_FRAME_LEN,
    SYNC,
    VERSION,
)

_SYNC_FIRST = SYNC[0]
_SYNC_SECOND = SYNC[1]


@dataclass(frozen=True, slots=True)
class FrameBytes:
    """One whole frame whose length and CRC are good, at ``offset`` in the stream."""

    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Noise:
    """``length`` bytes at ``offset`` that belong to no frame (garbage, corrupt frames, or
    a truncated frame at the end of the stream)."""

    offset: int
    length: int


FramerEvent = FrameBytes | Noise


class Framer:
    """Reassembles frames from a byte stream; see the module docstring for the rules."""

    MAX_BUFFERED = MAX_FRAME_LEN - 1
    """The most bytes held between calls: one incomplete candidate frame."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._base = 0
        """Stream offset of ``_buffer[0]``."""
        self._noise_start = 0
        self._noise_length = 0

    @property
    def buffered(self) -> int:
        """Bytes held, waiting for the rest of a candidate frame."""
        return len(self._buffer)

    @property
    def position(self) -> int:
        """Stream offset of the next byte to be fed."""
        return self._base + len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[FramerEvent]:
        """Add bytes; return the frames (and the noise before them) now complete."""
        if not self._buffer:
            whole = self._whole_frame(data)
            if whole is not None:
                return whole
        self._buffer += data
        return self._scan(at_end=False)

    def _whole_frame(self, data: bytes | bytearray | memoryview) -> list[FramerEvent] | None:
        """``feed``'s events when nothing is buffered and ``data`` is exactly one good frame,
        the usual read on a quiet link; None otherwise, and ``_scan`` decides. The checks
        are rules 1-4 of the module docstring on a candidate at offset 0, so the events are
        the ones ``_scan`` would give (tests/protocol/test_framer.py compares the two)."""
        size = len(data)
        if size < MIN_FRAME_LEN or size > MAX_FRAME_LEN:
            return None
        frame = bytes(data)
        length = frame[LENGTH_OFFSET] | frame[LENGTH_OFFSET + 1] << 8
        if (
            frame[0] != _SYNC_FIRST
            or frame[1] != _SYNC_SECOND
            or frame[2] != VERSION
            or frame[3] & ~FLAGS_DEFINED
            or size != MIN_FRAME_LEN + length
            or crc16(frame[2:-CRC_LEN]) != frame[-2] | frame[-1] << 8
        ):
            return None
        events: list[FramerEvent] = []
        self._flush_noise(events)
        events.append(FrameBytes(self._base, frame))
        self._base += size
        return events

    def finish(self) -> list[FramerEvent]:
        """No more bytes are coming: end of stream, or a link idle for longer than a frame.

        A candidate still incomplete is a truncated frame: it is skipped one byte past its
        sync like any bad candidate, so complete frames buffered inside its claimed length
        are still found (docs/protocol.md, rule 3). Bytes may be fed again afterwards.
        """
        if not self._buffer and not self._noise_length:
            return []  # nothing held: the device asks after every read that left none
        events = self._scan(at_end=True)
        self._flush_noise(events)
        return events

    def _scan(self, *, at_end: bool) -> list[FramerEvent]:
        buffer = self._buffer
        events: list[FramerEvent] = []
        pos = 0
        end = len(buffer)
        while True:
            start = buffer.find(SYNC, pos)
            if start < 0:
                # Keep a trailing A5 while more may come: it may be the first half of a sync.
                keep = 1 if not at_end and end > pos and buffer[end - 1] == _SYNC_FIRST else 0
                self._add_noise(pos, end - keep)
                pos = end - keep
                break
            self._add_noise(pos, start)
            pos = start
            if end - start < HEADER_LEN:
                if not at_end:
                    break
                self._add_noise(start, start + 1)
                pos = start + 1
                continue
            length = int.from_bytes(buffer[start + LENGTH_OFFSET : start + HEADER_LEN], "little")
            if (
                buffer[start + 2] != VERSION
                or buffer[start + 3] & ~FLAGS_DEFINED
                or length > MAX_BODY_LEN
            ):
                self._add_noise(start, start + 1)
                pos = start + 1
                continue
            frame_end = start + MIN_FRAME_LEN + length
            if frame_end > end:
                if not at_end:
                    break
                self._add_noise(start, start + 1)
                pos = start + 1
                continue
            crc_at = frame_end - CRC_LEN
            if crc16(buffer[start + 2 : crc_at]) != int.from_bytes(
                buffer[crc_at:frame_end], "little"
            ):
                self._add_noise(start, start + 1)
                pos = start + 1
                continue
            self._flush_noise(events)
            events.append(FrameBytes(self._base + start, bytes(buffer[start:frame_end])))
            pos = frame_end
        del buffer[:pos]
        self._base += pos
        return events

    def _add_noise(self, begin: int, end: int) -> None:
        """Count buffer bytes [begin, end) as noise, merged with the run before them."""
        if end <= begin:
            return
        if self._noise_length == 0:
            self._noise_start = self._base + begin
        self._noise_length += end - begin

    def _flush_noise(self, events: list[FramerEvent]) -> None:
        if self._noise_length:
            events.append(Noise(self._noise_start, self._noise_length))
            self._noise_length = 0


__all__ = ["HEADER_LEN", "MAX_FRAME_LEN", "FrameBytes", "Framer", "FramerEvent", "Noise"]

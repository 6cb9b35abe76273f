"""A JSONL capture as pcapng, for Wireshark and tshark (docs/capture.md, "pcapng export").

Sans-IO: ``capture_to_pcapng`` turns capture records into the bytes of a pcapng file, and
``read_pcapng`` (a small reader, used by the tests and by anyone who wants the packets back)
turns such bytes into packets. Neither opens a file or reads a clock.

The file is one Section Header Block, one Interface Description Block with link type
``LINKTYPE`` (LINKTYPE_USER0, 147) and nanosecond timestamps (``if_tsresol`` 9), then one
Enhanced Packet Block per capture record, in file order, so packet N is the Nth record:

- its timestamp is the record's ``wall_ns``, exactly;
- its EPB flags hold the direction: ``rx`` inbound (1), ``tx`` outbound (2), any other
  direction (the proxy's ``a->b``) unknown (0), the name kept in the pseudo-header;
- a comment option says what the record is, for people (``demo rx line 8 sim_ms=60``);
- its data is a 16-byte pseudo-header (``PSEUDO_HEADER``), the direction and source names,
  then the record's bytes: a frame or a noise run as the link carried it, a note's text or a
  run start's format tag (UTF-8).

Pseudo-header, all integers little-endian:

| offset | size | field |
|---|---|---|
| 0 | 1 | version, 1 |
| 1 | 1 | kind: 0 frame, 1 noise, 2 note, 3 capture (a writer's run start) |
| 2 | 1 | flags: bit 0 set when sim_ms is known |
| 3 | 1 | D, the direction name's byte count (0 for notes and run starts) |
| 4 | 1 | S, the source name's byte count |
| 5 | 3 | reserved, 0 |
| 8 | 8 | sim_ms, u64: pump (simulated) time in ms; 0 when unknown |
| 16 | D | direction name, UTF-8 |
| 16+D | S | source name, UTF-8 |
| 16+D+S | rest | the record's bytes |
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable, Iterator

from hil.capture import CaptureRecord

__all__ = [
    "DIRECTION_INBOUND",
    "DIRECTION_OUTBOUND",
    "KINDS",
    "LINKTYPE",
    "PSEUDO_HEADER",
    "Packet",
    "PcapngError",
    "capture_to_pcapng",
    "packet_of",
    "pcapng_blocks",
    "read_pcapng",
]

LINKTYPE = 147
"""LINKTYPE_USER0: a link type reserved for private use; the shipped dissector claims it."""

SHB_TYPE = 0x0A0D0D0A
IDB_TYPE = 0x00000001
EPB_TYPE = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_END = 0
OPT_COMMENT = 1
OPT_SHB_USERAPPL = 4
OPT_IF_NAME = 2
OPT_IF_TSRESOL = 9
OPT_EPB_FLAGS = 2

DIRECTION_INBOUND = 1
DIRECTION_OUTBOUND = 2
DIRECTIONS = {"rx": DIRECTION_INBOUND, "tx": DIRECTION_OUTBOUND}
"""Capture direction -> EPB flags direction bits; any other name is 0 (unknown)."""

KINDS = ("frame", "noise", "note", "capture")
"""Pseudo-header kind values, by index."""

PSEUDO_HEADER = struct.Struct("<BBBBB3xQ")
PSEUDO_VERSION = 1
FLAG_SIM_MS = 0x01
NAME_MAX = 255


class PcapngError(ValueError):
    """Bytes that are not a pcapng file this module wrote (or a record it cannot write)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Packet:
    """One packet, as written for a record or read back."""

    kind: str
    """"frame", "noise", "note" or "capture"."""
    wall_ns: int
    sim_ms: int | None
    direction: str
    source: str
    data: bytes
    comment: str = ""
    epb_direction: int = 0
    """The EPB flags' direction bits: 0 unknown, 1 inbound, 2 outbound."""


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + _pad(value)


def _options(options: Iterable[tuple[int, bytes]]) -> bytes:
    body = b"".join(_option(code, value) for code, value in options)
    return body + struct.pack("<HH", OPT_END, 0) if body else b""


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def _utf8_name(what: str, value: str) -> bytes:
    data = value.encode("utf-8")
    if len(data) > NAME_MAX:
        raise PcapngError(f"{what} {value[:40]!r}... is longer than {NAME_MAX} bytes")
    return data


def packet_of(record: CaptureRecord) -> Packet:
    """The packet for one capture record."""
    if record.kind in ("frame", "noise"):
        data = record.data
    elif record.kind == "note":
        data = (record.text or "").encode("utf-8")
    else:
        data = str(record.fields.get("format", "")).encode("utf-8")
    direction = record.direction or ""
    where = f" {direction}" if direction else ""
    sim = f" sim_ms={record.sim_ms}" if record.sim_ms is not None else ""
    comment = f"{record.source}{where} {record.kind} line {record.line}{sim}"
    return Packet(
        kind=record.kind,
        wall_ns=record.wall_ns,
        sim_ms=record.sim_ms,
        direction=direction,
        source=record.source,
        data=data,
        comment=comment,
        epb_direction=DIRECTIONS.get(direction, 0),
    )


def section_header(application: str = "pumpemu capture export") -> bytes:
    body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1)
    body += _options([(OPT_SHB_USERAPPL, application.encode("utf-8"))])
    return _block(SHB_TYPE, body)


def interface_description() -> bytes:
    body = struct.pack("<HHI", LINKTYPE, 0, 0)
    body += _options([(OPT_IF_NAME, b"pumpemu-link"), (OPT_IF_TSRESOL, bytes([9]))])
    return _block(IDB_TYPE, body)


def enhanced_packet(packet: Packet) -> bytes:
    """One EPB on interface 0: the pseudo-header, the names, then the packet's bytes."""
    if packet.kind not in KINDS:
        raise PcapngError(f"unknown record kind {packet.kind!r}")
    direction = _utf8_name("direction", packet.direction)
    source = _utf8_name("source", packet.source)
    known = packet.sim_ms is not None
    data = (
        PSEUDO_HEADER.pack(
            PSEUDO_VERSION,
            KINDS.index(packet.kind),
            FLAG_SIM_MS if known else 0,
            len(direction),
            len(source),
            packet.sim_ms if packet.sim_ms is not None else 0,
        )
        + direction
        + source
        + packet.data
    )
    high, low = divmod(packet.wall_ns, 1 << 32)
    body = struct.pack("<IIIII", 0, high, low, len(data), len(data)) + _pad(data)
    options = [(OPT_EPB_FLAGS, struct.pack("<I", packet.epb_direction))]
    if packet.comment:
        options.append((OPT_COMMENT, packet.comment.encode("utf-8")))
    body += _options(options)
    return _block(EPB_TYPE, body)


def pcapng_blocks(records: Iterable[CaptureRecord]) -> Iterator[bytes]:
    """The file's blocks, one at a time (a capture of any size in bounded memory)."""
    yield section_header()
    yield interface_description()
    for record in records:
        yield enhanced_packet(packet_of(record))


def capture_to_pcapng(records: Iterable[CaptureRecord]) -> bytes:
    """The whole pcapng file for these records."""
    return b"".join(pcapng_blocks(records))


# -- reading back -------------------------------------------------------------------------


def _parse_options(data: bytes) -> dict[int, bytes]:
    options: dict[int, bytes] = {}
    at = 0
    while at + 4 <= len(data):
        code, length = struct.unpack_from("<HH", data, at)
        if code == OPT_END:
            break
        options[code] = data[at + 4 : at + 4 + length]
        at += 4 + length + (-length % 4)
    return options


def read_pcapng(data: bytes) -> list[Packet]:
    """The packets of a pcapng file written by ``capture_to_pcapng``. Raises PcapngError on
    anything else (another byte order, another link type, a cut block)."""
    packets: list[Packet] = []
    at = 0
    seen_idb = False
    while at < len(data):
        if at + 12 > len(data):
            raise PcapngError(f"cut block at offset {at}")
        block_type, total = struct.unpack_from("<II", data, at)
        if total < 12 or total % 4 or at + total > len(data):
            raise PcapngError(f"bad block length {total} at offset {at}")
        (trailer,) = struct.unpack_from("<I", data, at + total - 4)
        if trailer != total:
            raise PcapngError(f"block at offset {at}: trailing length {trailer} != {total}")
        body = data[at + 8 : at + total - 4]
        if block_type == SHB_TYPE:
            (magic,) = struct.unpack_from("<I", body)
            if magic != BYTE_ORDER_MAGIC:
                raise PcapngError("not a little-endian pcapng section")
        elif block_type == IDB_TYPE:
            (linktype,) = struct.unpack_from("<H", body)
            if linktype != LINKTYPE:
                raise PcapngError(f"link type {linktype}, expected {LINKTYPE}")
            seen_idb = True
        elif block_type == EPB_TYPE:
            if not seen_idb:
                raise PcapngError("packet before the interface description")
            packets.append(_read_epb(body))
        at += total
    return packets


def _read_epb(body: bytes) -> Packet:
    _interface, high, low, captured, _original = struct.unpack_from("<IIIII", body)
    data = body[20 : 20 + captured]
    options = _parse_options(body[20 + captured + (-captured % 4) :])
    version, kind, flags, dlen, slen, sim_ms = PSEUDO_HEADER.unpack_from(data)
    if version != PSEUDO_VERSION or kind >= len(KINDS):
        raise PcapngError(f"pseudo-header version {version} kind {kind} not known")
    start = PSEUDO_HEADER.size
    direction = data[start : start + dlen].decode("utf-8")
    source = data[start + dlen : start + dlen + slen].decode("utf-8")
    epb_flags = options.get(OPT_EPB_FLAGS, b"\0\0\0\0")
    return Packet(
        kind=KINDS[kind],
        wall_ns=(high << 32) | low,
        sim_ms=sim_ms if flags & FLAG_SIM_MS else None,
        direction=direction,
        source=source,
        data=data[start + dlen + slen :],
        comment=options.get(OPT_COMMENT, b"").decode("utf-8"),
        epb_direction=struct.unpack("<I", epb_flags)[0] & 0x3,
    )

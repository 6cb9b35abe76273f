"""hil/pcapng.py: captures written as pcapng and read back by the module's own reader."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil.capture import CaptureRecord, CaptureWriter, parse_capture
from hil.pcapng import (
    DIRECTION_INBOUND,
    DIRECTION_OUTBOUND,
    LINKTYPE,
    PSEUDO_HEADER,
    PcapngError,
    capture_to_pcapng,
    enhanced_packet,
    packet_of,
    read_pcapng,
)
from protocol.codec import encode
from protocol.messages import ReadStatus

FRAME = encode(ReadStatus(), seq=3)

events = st.lists(
    st.one_of(
        st.tuples(
            st.just("data"),
            st.sampled_from(["rx", "tx", "a->b", "b->a"]),
            st.one_of(st.just(FRAME), st.binary(min_size=1, max_size=64)),
        ),
        st.tuples(st.just("note"), st.just(""), st.text(min_size=1, max_size=40)),
    ),
    max_size=12,
)


def records_of(
    items: list[tuple[str, str, object]], sims: list[int | None], walls: list[int]
) -> list[CaptureRecord]:
    out = io.StringIO()
    with CaptureWriter(out, source="prop", wall_ns=walls[0]) as writer:
        for n, (kind, direction, value) in enumerate(items):
            sim, wall = sims[n % len(sims)], walls[n % len(walls)]
            if kind == "data":
                assert isinstance(value, bytes)
                writer.record(direction, value, sim_ms=sim, wall_ns=wall)
            else:
                assert isinstance(value, str)
                writer.note(value, sim_ms=sim, wall_ns=wall)
    return list(parse_capture(out.getvalue().splitlines(), "prop.jsonl"))


@given(
    events,
    st.lists(st.one_of(st.none(), st.integers(0, 2**63)), min_size=1, max_size=4),
    st.lists(st.integers(0, 2**63), min_size=1, max_size=4),
)
def test_every_record_round_trips_as_one_packet(
    items: list[tuple[str, str, object]], sims: list[int | None], walls: list[int]
) -> None:
    records = records_of(items, sims, walls)
    packets = read_pcapng(capture_to_pcapng(records))
    assert len(packets) == len(records)
    for record, packet in zip(records, packets, strict=True):
        assert packet == packet_of(record)
        assert packet.kind == record.kind
        assert packet.wall_ns == record.wall_ns
        assert packet.sim_ms == record.sim_ms
        assert packet.source == record.source
        if record.kind in ("frame", "noise"):
            assert packet.data == record.data
            assert packet.direction == record.direction
        elif record.kind == "note":
            assert packet.data.decode("utf-8") == record.text


@pytest.mark.parametrize(
    ("direction", "flags"),
    [
        pytest.param("rx", DIRECTION_INBOUND, id="rx-inbound"),
        pytest.param("tx", DIRECTION_OUTBOUND, id="tx-outbound"),
        pytest.param("a->b", 0, id="proxy-unknown"),
    ],
)
def test_the_direction_goes_into_the_epb_flags(direction: str, flags: int) -> None:
    (record,) = [r for r in records_of([("data", direction, FRAME)], [5], [7]) if r.kind == "frame"]
    (packet,) = read_pcapng(capture_to_pcapng([record]))
    assert packet.epb_direction == flags
    assert packet.direction == direction
    assert packet.comment == f"prop {direction} frame line {record.line} sim_ms=5"


def test_the_file_layout_is_a_section_an_interface_and_nanosecond_packets() -> None:
    records = records_of([("data", "rx", FRAME)], [None], [1_700_000_000_123_456_789])
    data = capture_to_pcapng(records)
    block_type, length, magic = struct.unpack_from("<III", data)
    assert (block_type, magic) == (0x0A0D0D0A, 0x1A2B3C4D)
    idb = data[length:]
    assert struct.unpack_from("<IIH", idb)[0] == 1
    assert struct.unpack_from("<H", idb, 8)[0] == LINKTYPE == 147
    assert b"\x09\x00\x01\x00\x09" in idb[: struct.unpack_from("<I", idb, 4)[0]]  # if_tsresol 9
    packets = read_pcapng(data)
    frame = packets[-1]
    assert frame.kind == "frame"
    assert frame.wall_ns == 1_700_000_000_123_456_789
    assert frame.sim_ms is None


def test_a_name_longer_than_the_pseudo_header_allows_is_refused() -> None:
    (record,) = [r for r in records_of([("data", "x" * 256, FRAME)], [1], [1]) if r.kind == "frame"]
    with pytest.raises(PcapngError, match="longer than 255 bytes"):
        enhanced_packet(packet_of(record))


@pytest.mark.parametrize(
    "cut",
    [pytest.param(5, id="in-the-first-block"), pytest.param(-3, id="in-the-last-block")],
)
def test_a_cut_file_is_refused(cut: int) -> None:
    data = capture_to_pcapng(records_of([("data", "rx", FRAME)], [1], [1]))
    with pytest.raises(PcapngError):
        read_pcapng(data[:cut])


def test_the_pseudo_header_is_sixteen_bytes() -> None:
    assert PSEUDO_HEADER.size == 16

"""hil.capture: the JSONL traffic capture written by serve, ctl and proxy, and its reader."""

from __future__ import annotations

import io
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil import capture as capture_module
from hil.capture import (
    CAPTURE_FORMAT,
    NOISE_RECORD_MAX,
    CaptureError,
    CaptureFormatError,
    CaptureRecord,
    CaptureWriter,
    iso_utc,
    read_capture,
)
from protocol.checksum import crc16
from protocol.codec import encode
from protocol.messages import ReadStatus, StartTherapy

READ_STATUS = encode(ReadStatus(), seq=6)
START = encode(StartTherapy(command_id=7), seq=7)
# A sealed READ_STATUS from docs/security.md's test vectors (clinician session keys).
SEALED = bytes.fromhex("a55a01020300000000000000111400257403d2320a5c66145f317bcc73f270203cbf5f23f8")
T0 = 1_700_000_000_123_456_789
"""A fixed wall time in ns: 2023-11-14T22:13:20.123456Z."""


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def stream_of(records: list[CaptureRecord], direction: str) -> bytes:
    """Rebuild one direction's byte stream from its frame and noise records."""
    parts = [r for r in records if r.direction == direction and r.kind in ("frame", "noise")]
    rebuilt = b""
    for record in parts:
        assert record.offset == len(rebuilt), "records must tile the stream, in order"
        rebuilt += record.data
    return rebuilt


def test_round_trip_frames_note_and_times(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with CaptureWriter(path, "serve", wall_ns=T0) as writer:
        writer.record("rx", READ_STATUS, sim_ms=1000, wall_ns=T0 + 1)
        writer.note("fault injected: motor stall", sim_ms=1500, wall_ns=T0 + 2)
        writer.record("tx", START, sim_ms=None, wall_ns=T0 + 3)
    start, frame, note, other = lines(path)
    assert start == {
        "kind": "capture",
        "format": CAPTURE_FORMAT,
        "source": "serve",
        "wall": "2023-11-14T22:13:20.123456Z",
        "wall_ns": T0,
        "sim_ms": None,
    }
    assert frame["kind"] == "frame"
    assert frame["direction"] == "rx"
    assert frame["source"] == "serve"
    assert (frame["wall_ns"], frame["sim_ms"], frame["offset"]) == (T0 + 1, 1000, 0)
    assert frame["header"] == {
        "flags": [],
        "seq": 6,
        "ref": 0,
        "opcode": "READ_STATUS",
        "length": 0,
    }
    assert frame["sealed"] is False
    assert frame["message"] == {"type": "ReadStatus"}
    assert frame["hex"] == READ_STATUS.hex()
    assert frame["length"] == len(READ_STATUS)
    assert note["text"] == "fault injected: motor stall"
    assert note["sim_ms"] == 1500
    assert other["message"] == {"type": "StartTherapy", "command_id": 7}
    assert other["sim_ms"] is None

    records = list(read_capture(path))
    assert [r.kind for r in records] == ["capture", "frame", "note", "frame"]
    assert [r.line for r in records] == [1, 2, 3, 4]
    assert records[1].data == READ_STATUS
    assert records[1].wall == "2023-11-14T22:13:20.123456Z"
    assert records[2].text == "fault injected: motor stall"
    assert records[3].direction == "tx"
    assert records[3].fields["header"]["opcode"] == "START_THERAPY"


def test_a_frame_split_across_many_calls_is_one_record_stamped_when_complete(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.jsonl"
    with CaptureWriter(path, "ctl", wall_ns=T0) as writer:
        for i, byte in enumerate(START):
            writer.record("rx", bytes([byte]), sim_ms=i, wall_ns=T0 + i)
            # Nothing but the start record until the last byte arrives.
            assert len(lines(path)) == (1 if i < len(START) - 1 else 2)
    (frame,) = [r for r in read_capture(path) if r.kind == "frame"]
    assert frame.data == START
    assert frame.sim_ms == len(START) - 1
    assert frame.wall_ns == T0 + len(START) - 1


def test_noise_is_recorded_with_offsets_and_a_truncated_frame_at_close(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with CaptureWriter(path, "proxy", wall_ns=T0) as writer:
        writer.record("a->b", b"\x00\xff" + READ_STATUS + START[:5], sim_ms=1, wall_ns=T0)
        writer.close(sim_ms=2, wall_ns=T0 + 9)
    records = list(read_capture(path))
    kinds = [(r.kind, r.offset, r.data) for r in records[1:]]
    assert kinds == [
        ("noise", 0, b"\x00\xff"),
        ("frame", 2, READ_STATUS),
        ("noise", 2 + len(READ_STATUS), START[:5]),
    ]
    assert records[-1].sim_ms == 2  # written at close, stamped with close's time
    assert all(r.source == "proxy" and r.direction in (None, "a->b") for r in records)


def test_finish_writes_a_truncated_frame_and_the_stream_continues(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with CaptureWriter(path, "serve", wall_ns=T0) as writer:
        writer.record("rx", START[:4], sim_ms=0, wall_ns=T0)
        writer.finish("rx", sim_ms=5, wall_ns=T0)  # link idle: the rest never comes
        writer.record("rx", READ_STATUS, sim_ms=6, wall_ns=T0)
    records = list(read_capture(path))[1:]
    assert [(r.kind, r.offset, r.data) for r in records] == [
        ("noise", 0, START[:4]),
        ("frame", 4, READ_STATUS),
    ]


def test_long_noise_is_written_in_bounded_records_before_any_frame_arrives(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.jsonl"
    junk = bytes(range(0x20, 0x80)) * 30  # 2880 bytes, no sync in it
    with CaptureWriter(path, "serve", wall_ns=T0) as writer:
        for i in range(0, len(junk), 7):
            writer.record("rx", junk[i : i + 7], sim_ms=0, wall_ns=T0)
        # Already on disk, without waiting for a frame or close: a crash loses little, and
        # the writer holds less than one noise record of it.
        written = [r for r in read_capture(path) if r.kind == "noise"]
        assert [len(r.data) for r in written] == [NOISE_RECORD_MAX, NOISE_RECORD_MAX]
        writer.record("rx", READ_STATUS, sim_ms=0, wall_ns=T0)
    records = list(read_capture(path))
    assert all(len(r.data) <= NOISE_RECORD_MAX for r in records)
    assert stream_of(records, "rx") == junk + READ_STATUS


def test_sealed_frames_are_recorded_with_the_opcode_only(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with CaptureWriter(path, "serve", wall_ns=T0) as writer:
        writer.record("rx", SEALED, sim_ms=0, wall_ns=T0)
    frame = lines(path)[1]
    assert frame["sealed"] is True
    assert frame["header"]["opcode"] == "READ_STATUS"
    assert frame["header"]["flags"] == ["SEALED"]
    assert "message" not in frame
    assert "error" not in frame
    assert frame["hex"] == SEALED.hex()


def test_a_frame_that_does_not_decode_is_recorded_with_its_error(tmp_path: Path) -> None:
    # READ_STATUS with a one-byte body: the CRC is good, the payload is not.
    head_and_body = bytes.fromhex("a55a01000100000000000000110100ff")
    frame = head_and_body + crc16(head_and_body[2:]).to_bytes(2, "little")
    path = tmp_path / "c.jsonl"
    with CaptureWriter(path, "serve", wall_ns=T0) as writer:
        writer.record("rx", frame, sim_ms=0, wall_ns=T0)
    record = lines(path)[1]
    assert record["header"]["opcode"] == "READ_STATUS"
    assert "READ_STATUS payload" in record["error"]
    assert "message" not in record


def test_directions_are_framed_separately(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with CaptureWriter(path, "ctl", wall_ns=T0) as writer:
        # Interleave halves of two frames in different directions: neither corrupts the other.
        writer.record("tx", READ_STATUS[:8], sim_ms=0, wall_ns=T0)
        writer.record("rx", START[:8], sim_ms=0, wall_ns=T0)
        writer.record("tx", READ_STATUS[8:], sim_ms=0, wall_ns=T0)
        writer.record("rx", START[8:], sim_ms=0, wall_ns=T0)
    records = list(read_capture(path))
    assert stream_of(records, "tx") == READ_STATUS
    assert stream_of(records, "rx") == START
    assert [r.kind for r in records] == ["capture", "frame", "frame"]


@given(
    pieces=st.lists(
        st.one_of(
            st.sampled_from([READ_STATUS, START, SEALED]),
            st.binary(min_size=1, max_size=40),
            st.binary(min_size=1200, max_size=2500),
        ),
        max_size=8,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=6000), max_size=30),
)
def test_any_chunking_gives_the_same_frames_and_records_tile_the_stream(
    pieces: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(pieces)
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    chunked = io.StringIO()
    whole = io.StringIO()
    with CaptureWriter(chunked, "t", wall_ns=T0) as writer:
        for begin, end in itertools.pairwise(bounds):
            writer.record("rx", data[begin:end], sim_ms=0, wall_ns=T0)
    with CaptureWriter(whole, "t", wall_ns=T0) as writer:
        writer.record("rx", data, sim_ms=0, wall_ns=T0)
    for text in (chunked, whole):
        records = list(capture_module.parse_capture(text.getvalue().splitlines(), "t"))
        assert stream_of(records, "rx") == data
        assert all(len(r.data) <= NOISE_RECORD_MAX for r in records if r.kind == "noise")

    def frames(text: io.StringIO) -> list[tuple[int | None, bytes]]:
        parsed = capture_module.parse_capture(text.getvalue().splitlines(), "t")
        return [(r.offset, r.data) for r in parsed if r.kind == "frame"]

    assert frames(chunked) == frames(whole)


def test_a_stream_target_is_flushed_per_line_and_left_open() -> None:
    class CountingStream(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1
            super().flush()

    stream = CountingStream()
    writer = CaptureWriter(stream, "ctl", wall_ns=T0)
    writer.record("tx", READ_STATUS + START, sim_ms=0, wall_ns=T0)
    assert stream.flushes == len(stream.getvalue().splitlines()) == 3
    writer.close()
    assert not stream.closed
    assert writer.closed


def test_append_keeps_earlier_runs(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with CaptureWriter(path, "ctl", wall_ns=T0) as writer:
        writer.record("tx", READ_STATUS, sim_ms=None, wall_ns=T0)
    with CaptureWriter(path, "ctl", wall_ns=T0) as writer:
        writer.record("tx", START, sim_ms=None, wall_ns=T0)
    assert [r.kind for r in read_capture(path)] == ["capture", "frame", "capture", "frame"]
    with CaptureWriter(path, "serve", wall_ns=T0):
        pass  # a third run, even an empty one, truncates nothing and marks its start
    kinds = [(r.kind, r.source) for r in read_capture(path)]
    assert kinds == [
        ("capture", "ctl"),
        ("frame", "ctl"),
        ("capture", "ctl"),
        ("frame", "ctl"),
        ("capture", "serve"),
    ]


def test_a_new_capture_file_is_private_and_an_existing_one_keeps_its_mode(
    tmp_path: Path,
) -> None:
    new = tmp_path / "new.jsonl"
    with CaptureWriter(new, "serve", wall_ns=T0):
        pass
    assert new.stat().st_mode & 0o777 == 0o600
    shared = tmp_path / "shared.jsonl"
    shared.write_text("")
    shared.chmod(0o640)
    with CaptureWriter(shared, "serve", wall_ns=T0):
        pass
    assert shared.stat().st_mode & 0o777 == 0o640


def test_a_line_cut_by_a_killed_writer_does_not_swallow_the_next_runs_marker(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.jsonl"
    with CaptureWriter(path, "serve", wall_ns=T0) as writer:
        writer.record("rx", READ_STATUS, sim_ms=0, wall_ns=T0)
    cut = path.read_bytes() + b'{"kind":"no'  # killed in the middle of a line
    path.write_bytes(cut)
    with CaptureWriter(path, "serve", wall_ns=T0):
        pass
    lines = path.read_bytes().splitlines()
    assert lines[-2] == b'{"kind":"no'
    assert json.loads(lines[-1])["kind"] == "capture"
    assert path.read_bytes().startswith(cut)


def test_wall_time_defaults_to_the_system_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time_ns", lambda: T0)
    path = tmp_path / "c.jsonl"
    with CaptureWriter(path, "serve") as writer:
        writer.record("rx", READ_STATUS, sim_ms=3)
        writer.note("hello", sim_ms=None)
    assert {record.wall_ns for record in read_capture(path)} == {T0}


def test_iso_utc() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00.000000Z"
    assert iso_utc(T0) == "2023-11-14T22:13:20.123456Z"


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda w: w.record("", b"x", sim_ms=0), "direction"),
        (lambda w: w.record("rx", b"x", sim_ms=-1), "sim_ms"),
        (lambda w: w.record("rx", b"x", sim_ms=True), "sim_ms"),
        (lambda w: w.record("rx", b"x", sim_ms=0, wall_ns=-5), "wall_ns"),
        (lambda w: w.finish("", sim_ms=0), "direction"),
    ],
    ids=["empty-direction", "negative-sim", "bool-sim", "negative-wall", "finish-direction"],
)
def test_bad_arguments_are_the_callers_bug(call: Any, words: str) -> None:
    writer = CaptureWriter(io.StringIO(), "serve", wall_ns=T0)
    with pytest.raises(ValueError, match=words):
        call(writer)


def test_writing_after_close_is_refused(tmp_path: Path) -> None:
    writer = CaptureWriter(tmp_path / "c.jsonl", "serve", wall_ns=T0)
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        writer.record("rx", READ_STATUS, sim_ms=0)
    with pytest.raises(ValueError, match="closed"):
        writer.note("late", sim_ms=0)


def test_an_uncreatable_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r"cannot create capture file .*no-such-dir"):
        CaptureWriter(tmp_path / "no-such-dir" / "c.jsonl", "serve", wall_ns=T0)


def test_a_write_failure_is_a_capture_error() -> None:
    class FullDisk(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(CaptureError, match="No space left on device"):
        CaptureWriter(FullDisk(), "serve", wall_ns=T0)


GOOD_FRAME = json.dumps(
    {
        "kind": "frame",
        "source": "s",
        "direction": "rx",
        "wall": "x",
        "wall_ns": 1,
        "sim_ms": 2,
        "offset": 0,
        "length": len(READ_STATUS),
        "hex": READ_STATUS.hex(),
    }
)


def with_field(**change: Any) -> str:
    record = json.loads(GOOD_FRAME)
    for key, value in change.items():
        if value is ...:
            del record[key]
        else:
            record[key] = value
    return json.dumps(record)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "a record is a JSON object, got list"),
        (with_field(kind="packet"), "kind 'packet' is not one of"),
        (with_field(hex="zz"), "hex is not hex digits"),
        (with_field(length=3), "length 3 but hex holds 17 bytes"),
        (with_field(offset=-1), "offset must be a non-negative integer"),
        (with_field(wall_ns="soon"), "wall_ns must be a non-negative integer"),
        (with_field(sim_ms=...), "frame record has no 'sim_ms'"),
        (with_field(direction=...), "frame record has no 'direction'"),
        (with_field(source=""), "source is empty"),
        (
            json.dumps(
                {"kind": "capture", "format": "pumpemu-capture/9", "source": "s", "wall": "x"}
                | {"wall_ns": 1, "sim_ms": None}
            ),
            "format 'pumpemu-capture/9' is not 'pumpemu-capture/1'",
        ),
    ],
    ids=[
        "not-json",
        "not-object",
        "unknown-kind",
        "bad-hex",
        "length-mismatch",
        "negative-offset",
        "string-time",
        "missing-sim",
        "missing-direction",
        "empty-source",
        "other-format",
    ],
)
def test_malformed_lines_are_reported_with_their_line_number(
    tmp_path: Path, line: str, words: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(GOOD_FRAME + "\n\n" + GOOD_FRAME + "\n" + line + "\n")
    records = read_capture(path)
    assert next(records).line == 1
    assert next(records).line == 3  # the blank line 2 is skipped, but counted
    with pytest.raises(CaptureFormatError) as caught:
        next(records)
    assert str(caught.value).startswith(f"{path} line 4: ")
    assert words in str(caught.value)


def test_reading_a_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CaptureFormatError, match=r"cannot read .*nothing\.jsonl"):
        list(read_capture(tmp_path / "nothing.jsonl"))


def test_non_utf8_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(GOOD_FRAME.encode() + b"\n\xff\xfe\n")
    with pytest.raises(CaptureFormatError, match="line 2: not UTF-8"):
        list(read_capture(path))


def test_the_examples_in_docs_capture_md_are_valid_records() -> None:
    # docs/capture.md shows one-line records; the reader must accept every one of them, so
    # the documented format and the code cannot drift apart.
    docs = Path(__file__).resolve().parents[2] / "docs" / "capture.md"
    examples = [line for line in docs.read_text().splitlines() if line.startswith('{"kind":"')]
    records = list(capture_module.parse_capture(examples, "docs/capture.md"))
    assert {record.kind for record in records} == set(capture_module.KINDS)
    for record in records:
        if record.kind == "frame":
            summary = capture_module.summarize_frame(record.data)
            assert summary.header == record.fields["header"]
            assert summary.sealed == record.fields["sealed"]
            assert summary.message == record.fields.get("message")

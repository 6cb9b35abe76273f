"""``pumpemu capture export --pcapng`` (hil/capture_command.py)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from hil.capture import CaptureWriter, read_capture
from hil.cli import main
from hil.pcapng import read_pcapng
from protocol.codec import encode
from protocol.messages import ReadStatus


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def write_capture(path: Path) -> None:
    with CaptureWriter(path, source="t", wall_ns=1_700_000_000_000_000_000) as writer:
        writer.record("rx", encode(ReadStatus(), seq=1), sim_ms=5, wall_ns=1)
        writer.note("hello", sim_ms=6, wall_ns=2)


def test_export_writes_one_packet_per_record(tmp_path: Path) -> None:
    capture = tmp_path / "c.jsonl"
    write_capture(capture)
    out = tmp_path / "c.pcapng"
    result = run("capture", "export", "--pcapng", str(capture), "-o", str(out))
    assert result.exit_code == 0, result.output
    packets = read_pcapng(out.read_bytes())
    assert [p.kind for p in packets] == [r.kind for r in read_capture(capture)]
    assert [p.kind for p in packets] == ["capture", "frame", "note"]
    assert "3 packets" in result.output


def test_a_malformed_capture_is_one_line_and_exit_2_and_no_file(tmp_path: Path) -> None:
    capture = tmp_path / "bad.jsonl"
    capture.write_text('{"kind": "frame"\n')
    out = tmp_path / "bad.pcapng"
    result = run("capture", "export", "--pcapng", str(capture), "-o", str(out))
    assert result.exit_code == 2
    assert result.output.startswith("Error: ")
    assert "line 1" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_a_missing_capture_is_exit_2(tmp_path: Path) -> None:
    result = run("capture", "export", "--pcapng", str(tmp_path / "none.jsonl"), "-o", "x")
    assert result.exit_code == 2
    assert "cannot read" in result.output


def test_the_format_flag_is_required(tmp_path: Path) -> None:
    capture = tmp_path / "c.jsonl"
    write_capture(capture)
    result = run("capture", "export", str(capture), "-o", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "--pcapng" in result.output


def test_export_to_stdout(tmp_path: Path) -> None:
    capture = tmp_path / "c.jsonl"
    write_capture(capture)
    result = CliRunner().invoke(main, ["capture", "export", "--pcapng", str(capture), "-o", "-"])
    assert result.exit_code == 0
    assert [p.kind for p in read_pcapng(result.stdout_bytes)] == ["capture", "frame", "note"]


def test_a_name_too_long_for_the_pseudo_header_is_exit_2_and_no_file(tmp_path: Path) -> None:
    capture = tmp_path / "c.jsonl"
    with CaptureWriter(capture, source="t", wall_ns=1) as writer:
        writer.record("d" * 300, encode(ReadStatus(), seq=1), sim_ms=5, wall_ns=1)
    out = tmp_path / "o.pcapng"
    result = run("capture", "export", "--pcapng", str(capture), "-o", str(out))
    assert result.exit_code == 2
    assert "longer than 255 bytes" in result.output
    assert list(tmp_path.iterdir()) == [capture]

"""``pumpemu decode``: frames and noise from hex, files, stdin and the bundled example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hil.cli import main
from protocol.checksum import crc16
from protocol.codec import encode
from protocol.messages import ReadStatus, StartTherapy

READ_STATUS = encode(ReadStatus(), seq=6)
START = encode(StartTherapy(command_id=7), seq=7)


def run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["decode", *args], input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_example_decodes_frames_and_reports_noise_with_offsets() -> None:
    code, out, _ = run("--example", "--json")
    assert code == 0
    document = json.loads(out)
    kinds = [item["kind"] for item in document["items"]]
    assert kinds.count("noise") >= 2
    assert document["frames"] >= 10
    frames = [item for item in document["items"] if item["kind"] == "frame"]
    assert all("message" in frame for frame in frames)
    assert {frame["header"]["opcode"] for frame in frames} >= {"STAGE_PRESCRIPTION", "NAK"}
    # Items tile the stream: every byte is in exactly one frame or noise run.
    offset = 0
    for item in document["items"]:
        assert item["offset"] == offset
        offset += item["length"]
    assert offset == document["length"]


def test_example_table_is_readable() -> None:
    code, out, _ = run("--example")
    assert code == 0
    assert "noise" in out
    assert "STAGE_PRESCRIPTION" in out
    assert "prescription.drug_name=Morphine" in out


def test_hex_on_the_command_line_with_noise() -> None:
    code, out, _ = run("00ff" + READ_STATUS.hex(), START.hex(" "), "--json")
    assert code == 0
    items = json.loads(out)["items"]
    assert items[0] == {"kind": "noise", "offset": 0, "length": 2, "hex": "00ff"}
    assert items[1]["message"] == {"type": "ReadStatus"}
    assert items[2]["message"] == {"type": "StartTherapy", "command_id": 7}


def test_binary_file_and_stdin(tmp_path: Path) -> None:
    capture = tmp_path / "capture.bin"
    capture.write_bytes(READ_STATUS + b"\x00" + START)
    code, out, _ = run(str(capture), "--json")
    assert code == 0
    assert json.loads(out)["frames"] == 2
    code, out, _ = run("-", "--json", stdin=READ_STATUS + START)
    assert code == 0
    assert json.loads(out)["frames"] == 2


def test_hex_text_file(tmp_path: Path) -> None:
    capture = tmp_path / "capture.hex"
    capture.write_text("# a comment\n" + READ_STATUS.hex(" ") + "\n")
    code, out, _ = run(str(capture), "--json")
    assert code == 0
    assert json.loads(out)["frames"] == 1


def test_a_frame_with_a_good_crc_but_bad_payload_is_shown_with_its_error() -> None:
    head_and_body = bytes.fromhex("a55a010001000000000000003805000100000000")
    frame = head_and_body + crc16(head_and_body[2:]).to_bytes(2, "little")
    code, out, _ = run(frame.hex(), "--json")
    assert code == 0
    (item,) = json.loads(out)["items"]
    assert item["header"]["opcode"] == "ACKNOWLEDGE_ALARM"
    assert "payload.alarm" in item["error"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("zz",), "neither an existing file nor hex"),
        (("abc",), "odd number of hex digits"),
        ((), "nothing to decode"),
        (("--example", "a55a"), "either --example or a source"),
        (("/no/such/file.bin",), "neither an existing file nor hex"),
    ],
    ids=["not-hex", "odd-digits", "no-source", "example-and-source", "missing-file"],
)
def test_bad_input_is_one_line_and_exit_code_2(args: tuple[str, ...], words: str) -> None:
    code, out, err = run(*args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert words in err
    assert "Traceback" not in err


def test_help_has_examples() -> None:
    code, out, _ = run("--help")
    assert code == 0
    assert "pumpemu decode --example" in out
    assert "--json" in out

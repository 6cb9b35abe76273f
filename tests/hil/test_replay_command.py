"""``pumpemu replay``'s usage errors: one line, exit 2, before anything is sent. Replays
against a served pump are in tests/hil/e2e/test_replay_e2e.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hil.capture import CaptureWriter
from hil.cli import main
from hil.key_files import write_key_file
from protocol.codec import encode
from protocol.keys import generate_keys
from protocol.messages import ReadStatus


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "pump.keys"
    write_key_file(path, generate_keys("PE-000042", bytes(range(1, 65))))
    return path


def test_a_capture_without_an_opened_session_is_a_usage_error(
    tmp_path: Path, keys_file: Path
) -> None:
    capture = tmp_path / "c.jsonl"
    with CaptureWriter(capture, source="t", wall_ns=1) as writer:
        writer.record("rx", encode(ReadStatus(), seq=1), sim_ms=0, wall_ns=1)
    result = run("replay", str(capture), "--port", "loop://", "--keys", str(keys_file))
    assert result.exit_code == 2
    assert "no request to replay" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_bad_capture_line_is_a_usage_error(tmp_path: Path, keys_file: Path) -> None:
    capture = tmp_path / "c.jsonl"
    capture.write_text("not json\n")
    result = run("replay", str(capture), "--port", "loop://", "--keys", str(keys_file))
    assert result.exit_code == 2
    assert "line 1" in result.output


def test_a_missing_key_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run(
        "replay", str(tmp_path / "c.jsonl"), "--port", "loop://", "--keys", str(tmp_path / "k")
    )
    assert result.exit_code == 2
    assert result.output.startswith("Error: ")


def test_port_and_keys_are_required(tmp_path: Path) -> None:
    result = run("replay", str(tmp_path / "c.jsonl"))
    assert result.exit_code == 2
    assert "--port" in result.output

"""``pumpemu serve``'s user errors: one clear line on stderr and exit code 2, before serving."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from emulator.clock import ManualClock
from hil.cli import main
from hil.clock import ScaledClock, SystemClock
from hil.errors import UsageError
from hil.keys_command import write_key_file
from hil.serve_command import parse_clock, parse_start_time
from protocol.keys import generate_keys


@pytest.fixture
def key_file(tmp_path: Path) -> str:
    path = tmp_path / "pump.keys"
    write_key_file(path, generate_keys("PE-000009", os.urandom(64)))
    return str(path)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["serve", *args])
    return result.exit_code, result.output


def one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def test_missing_keys_gives_the_command_to_make_them() -> None:
    code, out = run("--pty")
    assert code == 2
    assert "pumpemu keys new --serial" in one_error_line(out)


def test_a_key_file_that_does_not_exist(tmp_path: Path) -> None:
    code, out = run("--pty", "--keys", str(tmp_path / "nope.keys"))
    assert code == 2
    assert "does not exist (create one with: pumpemu keys new" in one_error_line(out)


def test_a_bad_key_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.keys"
    bad.write_text("not a key file\n")
    code, out = run("--pty", "--keys", str(bad))
    assert code == 2
    assert f"key file {bad}" in one_error_line(out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "choose exactly one of --pty, --port URL or --tcp HOST:PORT"),
        (("--pty", "--tcp", "127.0.0.1:0"), "(got --pty and --tcp)"),
        (("--pty", "--profile", "no-such-pump"), "no profile 'no-such-pump'"),
        (("--pty", "--clock", "fast"), "--clock: expected real, manual or xN"),
        (("--pty", "--start-time", "yesterday"), "--start-time: not an ISO 8601"),
        (("--tcp", "0.0.0.0:5555"), "only loopback addresses"),
        (("--tcp", "127.0.0.1"), "expected HOST:PORT"),
        (("--port", "/dev/no-such-serial-port"), "cannot open '/dev/no-such-serial-port'"),
        (("--port", "nonsense://x"), "cannot open 'nonsense://x'"),
        (("--pty", "--control", "0.0.0.0:7001"), "--control: refusing to listen on 0.0.0.0"),
    ],
)
def test_user_errors_are_one_line_and_exit_code_2(
    key_file: str, args: tuple[str, ...], message: str
) -> None:
    code, out = run(*args, "--keys", key_file)
    assert code == 2
    assert message in one_error_line(out)


def test_a_capture_file_that_cannot_be_created(key_file: str, tmp_path: Path) -> None:
    code, out = run("--pty", "--keys", key_file, "--capture", str(tmp_path / "no" / "c.jsonl"))
    assert code == 2
    assert "cannot create capture file" in one_error_line(out)


def test_help_has_examples() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    assert "pumpemu serve --pty --keys pe.keys" in result.output
    assert "--baud" in result.output


def test_parse_clock() -> None:
    assert isinstance(parse_clock("manual", 7), ManualClock)
    assert parse_clock("manual", 7).now_ms() == 7
    real = parse_clock("real", 0)
    assert isinstance(real, SystemClock)
    scaled = parse_clock("x60", 0)
    assert isinstance(scaled, ScaledClock)
    assert scaled.factor == 60
    for bad in ("x0", "x1.5", "60x", "", "slow"):
        with pytest.raises(UsageError, match="--clock"):
            parse_clock(bad, 0)


def test_parse_start_time_is_local_wall_time() -> None:
    assert parse_start_time("1970-01-02T00:00:00") == 86_400_000
    # The offset is ignored: the pump keeps local time, and 08:30 local is 08:30.
    assert parse_start_time("2026-03-01T08:30:00+01:00") == parse_start_time("2026-03-01T08:30:00")
    assert parse_start_time("2026-03-01T08:30:00.250") % 1000 == 250
    with pytest.raises(UsageError, match="before 1970"):
        parse_start_time("1969-12-31T23:59:59")

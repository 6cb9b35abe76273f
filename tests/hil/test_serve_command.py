"""``pumpemu serve``'s user errors: one clear line on stderr and exit code 2, before serving."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.pump import Pump
from hil import state_file as state_file_module
from hil.cli import main
from hil.clock import ScaledClock, SystemClock
from hil.errors import UsageError
from hil.key_files import load_keys, write_key_file
from hil.serve import write_state_file
from hil.serve_command import ServeOptions, _load_state, parse_clock, parse_start_time
from hil.state_file import StateFile, seal_state
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
        pytest.param(
            (), "choose exactly one of --pty, --port URL or --tcp HOST:PORT", id="no-link"
        ),
        pytest.param(("--pty", "--tcp", "127.0.0.1:0"), "(got --pty and --tcp)", id="two-links"),
        pytest.param(
            ("--pty", "--profile", "no-such-pump"), "no profile 'no-such-pump'", id="profile"
        ),
        pytest.param(
            ("--pty", "--clock", "fast"), "--clock: expected real, manual or xN", id="clock"
        ),
        pytest.param(
            ("--pty", "--start-time", "yesterday"), "--start-time: not an ISO 8601", id="start"
        ),
        pytest.param(("--tcp", "0.0.0.0:5555"), "only loopback addresses", id="remote-tcp"),
        pytest.param(("--tcp", "127.0.0.1"), "expected HOST:PORT", id="tcp-no-port"),
        pytest.param(
            ("--port", "/dev/no-such-serial-port"),
            "cannot open '/dev/no-such-serial-port'",
            id="missing-port",
        ),
        pytest.param(("--port", "nonsense://x"), "cannot open 'nonsense://x'", id="bad-url"),
        pytest.param(
            ("--pty", "--control", "0.0.0.0:7001"),
            "--control: refusing to listen on 0.0.0.0",
            id="remote-control",
        ),
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
    assert "--spin-us US" in result.output
    assert "[default: 200;" in result.output


def test_a_negative_spin_is_a_usage_error(key_file: str) -> None:
    code, out = run("--pty", "--keys", key_file, "--spin-us", "-1")
    assert code == 2
    assert "Invalid value for '--spin-us': -1 is not in the range 0<=x<=50000" in out


def test_parse_clock() -> None:
    assert isinstance(parse_clock("manual", 7), ManualClock)
    assert parse_clock("manual", 7).now_ms() == 7
    real = parse_clock("real", 0)
    assert isinstance(real, SystemClock)
    scaled = parse_clock("x60", 0)
    assert isinstance(scaled, ScaledClock)
    assert scaled.factor == 60
    assert parse_clock("x100000", 0).factor == 100_000  # type: ignore[attr-defined]
    for bad in ("x0", "x1.5", "60x", "", "slow", "x100001", "x99999999999999999999"):
        with pytest.raises(UsageError, match="--clock"):
            parse_clock(bad, 0)


def test_parse_start_time_is_local_wall_time() -> None:
    assert parse_start_time("1970-01-02T00:00:00") == 86_400_000
    # The offset is ignored: the pump keeps local time, and 08:30 local is 08:30.
    assert parse_start_time("2026-03-01T08:30:00+01:00") == parse_start_time("2026-03-01T08:30:00")
    assert parse_start_time("2026-03-01T08:30:00.250") % 1000 == 250
    with pytest.raises(UsageError, match="before 1970"):
        parse_start_time("1969-12-31T23:59:59")


# -- --state ------------------------------------------------------------------------------------


def saved_state(key_file: str, path: Path, profile: str = "peristaltic-20") -> bytes:
    keys = load_keys(key_file)
    device = PumpDevice(Pump(profile), keys, random.Random(1).randbytes)
    blob = seal_state(keys, device.snapshot())
    path.write_bytes(blob)
    return blob


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda blob: blob[: len(blob) // 2], "its length does not match its header"),
        (lambda blob: blob[:100] + bytes([blob[100] ^ 1]) + blob[101:], "MAC does not verify"),
        (lambda blob: b"", "not a pumpemu state file"),
        (lambda blob: b"hello, not a pump\n" * 4, "not a pumpemu state file"),
        (lambda blob: blob[:8] + b"\x02\x00" + blob[10:], "format version 2 is newer than"),
        (lambda blob: b"PEMU-DV1" + blob[8:], "written by an older pumpemu, without a MAC"),
    ],
)
def test_a_damaged_state_file_is_one_line_exit_2_and_never_overwritten(
    key_file: str, tmp_path: Path, damage: Callable[[bytes], bytes], message: str
) -> None:
    state = tmp_path / "pump.state"
    bad = damage(saved_state(key_file, state))
    state.write_bytes(bad)
    code, out = run("--pty", "--keys", key_file, "--state", str(state))
    assert code == 2
    line = one_error_line(out)
    assert f"--state: {state} is not a usable pump state" in line
    assert message in line
    assert state.read_bytes() == bad


def test_a_state_file_that_cannot_be_read(key_file: str, tmp_path: Path) -> None:
    state = tmp_path / "pump.state"
    state.symlink_to(state)  # a loop: exists, never readable
    code, out = run("--pty", "--keys", key_file, "--state", str(state))
    assert code == 2
    assert f"--state: cannot read {state}" in one_error_line(out)


def test_a_state_file_in_a_missing_directory(key_file: str, tmp_path: Path) -> None:
    code, out = run("--pty", "--keys", key_file, "--state", str(tmp_path / "no" / "p.state"))
    assert code == 2
    assert "--state: no such directory" in one_error_line(out)


def test_another_pumps_state_is_refused(key_file: str, tmp_path: Path) -> None:
    other = tmp_path / "other.keys"
    write_key_file(other, generate_keys("PE-000777", os.urandom(64)))
    state = tmp_path / "pump.state"
    saved_state(str(other), state)
    code, out = run("--pty", "--keys", key_file, "--state", str(state))
    assert code == 2
    line = one_error_line(out)
    assert "its MAC does not verify" in line
    assert "belongs to another key file" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--profile", "valve-gated-20"), "--profile valve-gated-20 conflicts with the pump"),
        (("--start-time", "2026-03-01T08:30:00"), "--start-time sets a new pump's clock"),
    ],
)
def test_options_that_conflict_with_the_saved_pump(
    key_file: str, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    state = tmp_path / "pump.state"
    blob = saved_state(key_file, state)
    code, out = run("--pty", "--keys", key_file, "--state", str(state), *args)
    assert code == 2
    assert message in one_error_line(out)
    assert state.read_bytes() == blob


def test_the_saved_profile_given_again_is_no_conflict(key_file: str, tmp_path: Path) -> None:
    state = tmp_path / "pump.state"
    saved_state(key_file, state, "valve-gated-20")
    opts = ServeOptions(
        use_pty=True,
        port_url=None,
        tcp=None,
        allow_remote=False,
        profile="valve-gated-20",
        keys_file=key_file,
        clock_text="manual",
        baud=None,
        capture_file=None,
        control_address=None,
        start_time=None,
        state_file=state,
        profile_given=True,
    )
    keys = load_keys(key_file)
    with StateFile(state, keys) as locked:
        device = _load_state(opts, locked)
    assert device is not None
    assert device.pump.profile.name == "valve-gated-20"
    with StateFile(tmp_path / "new.state", keys) as fresh:
        assert _load_state(replace(opts, state_file=fresh.path), fresh) is None


def test_write_state_file_is_atomic_and_private(tmp_path: Path) -> None:
    state = tmp_path / "pump.state"
    state.write_bytes(b"old")
    state.chmod(0o644)
    write_state_file(state, b"new state")
    assert state.read_bytes() == b"new state"
    assert state.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["pump.state"]


def test_a_state_file_that_cannot_be_written_is_one_line_exit_2(
    key_file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(path: Path, blob: bytes) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(state_file_module, "write_state_file", refuse)
    state = tmp_path / "pump.state"
    code, out = run("--pty", "--keys", key_file, "--state", str(state))
    assert code == 2
    assert f"--state: cannot write {state}: Permission denied" in one_error_line(out)
    assert not state.exists()

"""``pumpemu keys new`` / ``show`` and ``load_keys``: private files, clear errors, no leaks."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hil.cli import main
from hil.errors import UsageError
from hil.key_files import load_keys
from protocol.keys import PumpKeys, fingerprint, parse_key_file, serialize_key_file

KEYS = PumpKeys("PE-000042", bytes(range(32)), bytes(range(32, 64)))


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_writes_a_private_key_file(tmp_path: Path) -> None:
    out = tmp_path / "pump.keys"
    result = run("keys", "new", "--serial", "PE-000042", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert mode(out) == 0o600
    keys = parse_key_file(out.read_text("utf-8"))
    assert keys.serial == "PE-000042"
    assert fingerprint(keys.clinician) in result.output
    assert fingerprint(keys.patient) in result.output
    assert keys.clinician.hex() not in result.output
    assert keys.patient.hex() not in result.output


def test_the_mode_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        out = tmp_path / "pump.keys"
        assert run("keys", "new", "--serial", "PE-1", "--out", str(out)).exit_code == 0
    finally:
        os.umask(previous)
    assert mode(out) == 0o600


def test_the_file_is_created_private_in_one_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, int, int]] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        calls.append((str(path), flags, mode))
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", spy)
    out = tmp_path / "pump.keys"
    assert run("keys", "new", "--serial", "PE-1", "--out", str(out)).exit_code == 0
    ours = [call for call in calls if call[0].startswith(str(tmp_path))]
    assert len(ours) == 1
    path, flags, created_mode = ours[0]
    assert path == str(out)
    assert created_mode == 0o600
    assert flags & os.O_CREAT
    assert flags & os.O_EXCL  # never opens (and truncates) a file that already exists


def test_two_generated_files_differ(tmp_path: Path) -> None:
    a, b = tmp_path / "a.keys", tmp_path / "b.keys"
    for out in (a, b):
        assert run("keys", "new", "--serial", "PE-000042", "--out", str(out)).exit_code == 0
    ka, kb = load_keys(a), load_keys(b)
    assert ka.serial == kb.serial
    assert len({ka.clinician, ka.patient, kb.clinician, kb.patient}) == 4


def test_new_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "pump.keys"
    out.write_text("precious")
    result = run("keys", "new", "--serial", "PE-1", "--out", str(out))
    assert result.exit_code == 2
    assert "already exists; use --force" in result.output
    assert out.read_text() == "precious"


def test_force_replaces_the_file_and_makes_it_private(tmp_path: Path) -> None:
    out = tmp_path / "pump.keys"
    out.write_text("old")
    out.chmod(0o644)
    result = run("keys", "new", "--serial", "PE-2", "--out", str(out), "--force")
    assert result.exit_code == 0, result.output
    assert mode(out) == 0o600
    assert load_keys(out).serial == "PE-2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pump.keys"]  # no temporary left


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--serial", "PE 1"], "--serial: serial 'PE 1' has ' '"),
        (["--serial", "P" * 17], "--serial: serial must be 1-16 characters"),
        (["--serial", "PE-1", "--out", "/nonexistent-dir/pump.keys"], "cannot write"),
    ],
)
def test_new_errors_are_one_line_with_exit_code_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "x.keys")]
    result = run("keys", "new", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_new_requires_serial_and_out() -> None:
    result = run("keys", "new", "--serial", "PE-1")
    assert result.exit_code == 2
    assert "--out" in result.output


def test_show_prints_fingerprints_never_keys(tmp_path: Path) -> None:
    out = tmp_path / "pump.keys"
    out.write_text(serialize_key_file(KEYS))
    out.chmod(0o600)
    result = run("keys", "show", str(out))
    assert result.exit_code == 0, result.output
    assert "PE-000042" in result.output
    assert fingerprint(KEYS.clinician) in result.output
    assert fingerprint(KEYS.patient) in result.output
    assert KEYS.clinician.hex() not in result.output
    assert KEYS.patient.hex() not in result.output
    assert "warning" not in result.output


def test_show_warns_about_a_readable_key_file(tmp_path: Path) -> None:
    out = tmp_path / "pump.keys"
    out.write_text(serialize_key_file(KEYS))
    out.chmod(0o644)
    result = run("keys", "show", str(out))
    assert result.exit_code == 0
    assert fingerprint(KEYS.clinician) in result.output  # show still shows it
    assert (
        f"warning: key file {out} has mode 0644: group or others can access it; "
        f"run: chmod 600 {out} (pumpemu serve and ctl refuse it)"
    ) in result.output


def test_show_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.keys"
    bad.write_text(json.dumps({"format": "pumpemu-keys/9"}))
    for path, message in (
        (tmp_path / "missing.keys", "does not exist"),
        (bad, "unknown key file format 'pumpemu-keys/9'"),
        (tmp_path, "is a directory"),
    ):
        result = run("keys", "show", str(path))
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_help_has_an_example() -> None:
    for args in (["keys", "--help"], ["keys", "new", "--help"], ["keys", "show", "--help"]):
        result = run(*args)
        assert result.exit_code == 0
        assert "pumpemu keys " in result.output.split("Example")[-1]


# -- load_keys ---------------------------------------------------------------------------------


def private_file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    path.chmod(0o600)
    return path


def test_load_keys_reads_a_key_file(tmp_path: Path) -> None:
    path = private_file(tmp_path / "pump.keys", serialize_key_file(KEYS).encode())
    assert load_keys(path) == KEYS
    assert load_keys(str(path)) == KEYS


@pytest.mark.parametrize("bits", [0o644, 0o640, 0o604, 0o620, 0o602, 0o610, 0o601])
def test_load_keys_refuses_a_file_group_or_others_can_access(tmp_path: Path, bits: int) -> None:
    path = private_file(tmp_path / "pump.keys", serialize_key_file(KEYS).encode())
    path.chmod(bits)
    with pytest.raises(UsageError) as info:
        load_keys(path)
    assert str(info.value) == (
        f"key file {path} has mode {bits:04o}: group or others can access it; run: chmod 600 {path}"
    )
    assert load_keys(path, allow_open=True) == KEYS  # keys show and decode: read, then warn


def test_load_keys_accepts_an_owner_only_file(tmp_path: Path) -> None:
    path = private_file(tmp_path / "pump.keys", serialize_key_file(KEYS).encode())
    path.chmod(0o400)
    assert load_keys(path) == KEYS


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe", "not UTF-8 text"),
        (b'{"format": "pumpemu-keys/1", "serial": "PE-1"}', "keys: missing field"),
        (b"x" * (64 * 1024 + 1), "far too large"),
    ],
)
def test_load_keys_errors_name_the_file_and_the_fault(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = private_file(tmp_path / "pump.keys", content)
    with pytest.raises(UsageError) as info:
        load_keys(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_load_keys_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"does not exist .*pumpemu keys new"):
        load_keys(tmp_path / "nope.keys")


def test_load_keys_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = private_file(tmp_path / "pump.keys", serialize_key_file(KEYS).encode())

    def denied(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(UsageError, match="permission denied"):
        load_keys(path)

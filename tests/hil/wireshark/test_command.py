"""``pumpemu wireshark path|install`` (hil/wireshark/command.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hil.cli import main
from hil.wireshark.generate import shipped_path


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_path_prints_the_shipped_dissector() -> None:
    result = run("wireshark", "path")
    assert result.exit_code == 0
    assert Path(result.output.strip()) == shipped_path()
    assert shipped_path().name == "pumpemu.lua"


def test_install_copies_then_leaves_the_same_file_alone(tmp_path: Path) -> None:
    first = run("wireshark", "install", "--dir", str(tmp_path / "plugins"))
    assert first.exit_code == 0, first.output
    target = tmp_path / "plugins" / "pumpemu.lua"
    assert target.read_bytes() == shipped_path().read_bytes()
    again = run("wireshark", "install", "--dir", str(tmp_path / "plugins"))
    assert again.exit_code == 0
    assert "nothing to do" in again.output


def test_install_refuses_to_overwrite_a_different_file_without_force(tmp_path: Path) -> None:
    target = tmp_path / "pumpemu.lua"
    target.write_text("-- my own edit\n")
    refused = run("wireshark", "install", "--dir", str(tmp_path))
    assert refused.exit_code == 2
    assert "differs from the shipped dissector" in refused.output
    assert "--force" in refused.output
    assert target.read_text() == "-- my own edit\n"
    forced = run("wireshark", "install", "--dir", str(tmp_path), "--force")
    assert forced.exit_code == 0
    assert target.read_bytes() == shipped_path().read_bytes()


def test_install_into_a_directory_named_like_the_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pumpemu.lua").mkdir()
    result = run("wireshark", "install", "--dir", str(tmp_path))
    assert result.exit_code == 2
    assert "is a directory" in result.output


def test_the_default_folder_is_wiresharks_personal_plugin_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    result = run("wireshark", "install")
    assert result.exit_code == 0, result.output
    assert (tmp_path / ".local/lib/wireshark/plugins/pumpemu.lua").exists()

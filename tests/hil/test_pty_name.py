"""hil/pty_name.py: serve --link never clobbers, and removes only its own link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hil.errors import UsageError
from hil.pty_name import PtyName


def test_the_link_points_at_the_pty_and_goes_on_exit(tmp_path: Path) -> None:
    pty = tmp_path / "pts-1"
    pty.touch()
    name = PtyName(tmp_path / "pump.tty", str(pty))
    assert os.readlink(tmp_path / "pump.tty") == str(pty)
    name.remove()
    assert not (tmp_path / "pump.tty").is_symlink()


def test_a_link_left_by_a_killed_serve_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "pump.tty").symlink_to(tmp_path / "gone")  # its pty no longer exists
    live = tmp_path / "pts-2"
    live.touch()
    PtyName(tmp_path / "pump.tty", str(live))
    assert os.readlink(tmp_path / "pump.tty") == str(live)


@pytest.mark.parametrize("kind", ["live-link", "regular-file", "directory"])
def test_anything_else_at_the_path_is_an_error_and_kept(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "pump.tty"
    if kind == "live-link":
        other = tmp_path / "other-pty"
        other.touch()
        path.symlink_to(other)
    elif kind == "regular-file":
        path.write_text("notes")
    else:
        path.mkdir()
    with pytest.raises(UsageError, match="--link"):
        PtyName(path, str(tmp_path / "pts-3"))
    assert path.exists()


def test_a_link_taken_over_by_another_serve_is_not_removed(tmp_path: Path) -> None:
    first = tmp_path / "pts-4"
    first.touch()
    name = PtyName(tmp_path / "pump.tty", str(first))
    (tmp_path / "pump.tty").unlink()
    (tmp_path / "pump.tty").symlink_to(tmp_path / "pts-5")  # someone else's now
    name.remove()
    assert (tmp_path / "pump.tty").is_symlink()

"""The conformance options of ``pumpemu serve`` and ``pumpemu proxy``: misuse is one line and
exit code 2, before anything is opened. (Running them is tests/hil/e2e/test_conformance_e2e.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hil.cli import main
from hil.key_files import write_key_file
from tests.hil.conformance.rig import KEYS


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "pe.keys"
    write_key_file(path, KEYS)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--pty", "--conformance-report", "out"], "needs --conformance"),
        (["serve", "--pty", "--conformance", "loose"], "'loose' is not one of"),
        (["proxy", "--a", "pty", "--b", "pty", "--conformance"], "needs --keys FILE"),
        (["proxy", "--a", "pty", "--b", "pty", "--conformance-report", "x"], "needs --conformance"),
    ],
    ids=["serve-report-alone", "serve-bad-mode", "proxy-no-keys", "proxy-report-alone"],
)
def test_misuse_is_one_line_and_exit_2(args: list[str], message: str, key_file: Path) -> None:
    if args[0] == "serve":
        args = [*args, "--keys", str(key_file)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_help_documents_the_options() -> None:
    for command in ("serve", "proxy"):
        result = CliRunner(env={"COLUMNS": "200"}).invoke(main, [command, "--help"])
        assert result.exit_code == 0
        assert "--conformance [report|strict]" in result.output
        assert "--conformance-report DIR" in result.output

"""Every ``pumpemu`` command explains itself: ``--help`` works and shows an example."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from hil import cli
from hil.cli import COMMANDS, load_command, main
from hil.cli_tree import command_paths

PATHS = command_paths(main)


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) or "pumpemu" for p in PATHS])
def test_help_shows_options_and_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert "example" in result.output.lower(), f"pumpemu {' '.join(path)} --help has no example"


def test_the_walk_found_every_command() -> None:
    # The walk must reach the leaves, or the test above would pass vacuously.
    assert ("serve",) in PATHS
    assert ("ctl", "program") in PATHS
    assert ("time", "advance") in PATHS


def test_the_listed_summaries_are_each_commands_own() -> None:
    """``pumpemu --help`` lists COMMANDS' summaries without importing the commands; each
    must be the first paragraph of the command's own help."""
    for name, (_module, _attribute, summary) in COMMANDS.items():
        command = load_command(name)
        assert command.name == name or name == "time", name
        first = " ".join((command.help or "").split("\n\n")[0].split())
        assert first == summary, name


def test_the_top_level_help_imports_no_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lazy group: listing the commands loads none of them (so neither the emulator,
    construct nor rich behind them); benchmarks/cli.py measures the time this saves."""

    def refuse(name: str) -> click.Command:
        raise AssertionError(f"pumpemu --help loaded the {name} command")

    monkeypatch.setattr(cli, "load_command", refuse)
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    for name, (_module, _attribute, summary) in COMMANDS.items():
        assert name in result.output
        assert summary.split()[0] in result.output

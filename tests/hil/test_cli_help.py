"""Every ``pumpemu`` command explains itself: ``--help`` works and shows an example."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from hil.cli import main


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = [prefix]
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, (*prefix, name)))
        else:
            paths.append((*prefix, name))
    return paths


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

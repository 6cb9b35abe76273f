"""``pumpemu <cmd> --help`` loads only the command's declaration (issue 15, item 3).

Each command module declares its click options with light imports at its top and imports
the heavy stack (the emulator, the codec's construct layouts, rich's consoles, matplotlib)
inside its callbacks (docs/architecture.md, "Layers and imports"). Each command path of
the click tree, found by walking it so a new command is covered without editing this
file, shows its help in a fresh interpreter, which then reports which of those packages
it imported: none may be.
"""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from hil.cli import main

HEAVY = ("emulator", "construct", "rich", "matplotlib")

PROBE = f"""
import json, sys
from hil.cli import main
try:
    main(sys.argv[1:] + ["--help"], prog_name="pumpemu")
except SystemExit as end:
    code = end.code
else:
    code = 0
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
print(json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
"""


def command_paths(
    command: click.Command, ctx: click.Context, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """Every command and group below ``command``, groups included (their --help too)."""
    paths = [prefix]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            paths += command_paths(sub, click.Context(sub, parent=ctx, info_name=name), (*prefix, name))
    return paths


PATHS = command_paths(main, click.Context(main, info_name="pumpemu"))


def test_the_walk_reaches_nested_commands() -> None:
    # Without the leaves, the table below would pass vacuously.
    for path in (("ctl", "program"), ("ctl", "trial", "record"), ("scenario", "run"), ("fault", "stall")):
        assert path in PATHS


@pytest.mark.e2e
@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) or "pumpemu" for p in PATHS])
def test_help_imports_none_of_the_heavy_stack(path: tuple[str, ...]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr
    assert "Usage:" in done.stdout
    assert report["heavy"] == [], f"pumpemu {' '.join(path)} --help imported {report['heavy']}"

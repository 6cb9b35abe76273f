"""Every command of the ``pumpemu`` tree, groups included, for the tests and benchmarks that
must visit them all (``--help`` of each, its imports, its options, its time to start), so a
command added to hil/cli.py is covered without editing them."""

from __future__ import annotations

from collections.abc import Iterator

import click

__all__ = ["command_paths", "walk_commands"]


def walk_commands(
    command: click.Command, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """(path, command) for ``command`` (``hil.cli.main`` for the whole of pumpemu, path
    ``()``) and every command and group below it, in the order ``--help`` lists them. Lazy
    commands load. The root is an argument: this module is a library, and hil/cli.py is a
    command module (tests/pumpemu/test_api_docs.py)."""
    yield prefix, command
    if isinstance(command, click.Group):
        ctx = click.Context(command, info_name=prefix[-1] if prefix else "pumpemu")
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None:
                raise LookupError(f"pumpemu {' '.join((*prefix, name))} is listed but not found")
            yield from walk_commands(sub, (*prefix, name))


def command_paths(command: click.Command) -> list[tuple[str, ...]]:
    """Every path ``walk_commands`` visits: ``()`` for pumpemu, ``("ctl", "program")``..."""
    return [path for path, _command in walk_commands(command)]

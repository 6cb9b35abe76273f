"""``pumpemu wireshark``: where the shipped Lua dissector is, and installing it where
Wireshark looks for personal plugins (docs/wireshark.md)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

from hil.errors import UsageError
from hil.json_output import echo_json, json_option

PERSONAL_PLUGINS = Path("~/.local/lib/wireshark/plugins")
"""Wireshark's personal plugin folder on Linux and macOS (Help > About > Folders)."""

WIRESHARK_EPILOG = """\b
Examples:
  pumpemu wireshark path
  pumpemu wireshark install
  tshark -X lua_script:$(pumpemu wireshark path) -r visit.pcapng
"""

INSTALL_EPILOG = """\b
Examples:
  pumpemu wireshark install                 into ~/.local/lib/wireshark/plugins
  pumpemu wireshark install --force         replace a different pumpemu.lua there
  pumpemu wireshark install --dir /tmp/p    somewhere else
  pumpemu wireshark install --json          what was done, as JSON
"""


@click.group(epilog=WIRESHARK_EPILOG)
def wireshark() -> None:
    """The Wireshark dissector for pumpemu's protocol (docs/wireshark.md)."""


@wireshark.command(epilog=WIRESHARK_EPILOG)
@json_option('one JSON object: {"path"}')
def path(as_json: bool) -> None:
    """Print the path of the shipped dissector (pumpemu.lua)."""
    from hil.wireshark.generate import shipped_path  # noqa: PLC0415 (construct: on use)

    if as_json:
        echo_json({"path": str(shipped_path())})
        return
    click.echo(str(shipped_path()))


@wireshark.command(epilog=INSTALL_EPILOG)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Install into DIR instead of {PERSONAL_PLUGINS}.",
)
@click.option("--force", is_flag=True, help="Replace a pumpemu.lua there that differs.")
@json_option(
    'one JSON object of what was done: {"path", "action"}, action one of "installed", '
    '"replaced", "unchanged"'
)
def install(directory: Path | None, force: bool, as_json: bool) -> None:
    """Copy the shipped dissector into Wireshark's personal plugin folder.

    A pumpemu.lua already there with the same content is left as is; one that differs
    (an older pumpemu, or your own edit) is replaced only with --force. Restart Wireshark
    (or Analyze > Reload Lua Plugins) to load it.
    """
    from hil.wireshark.generate import shipped_path  # noqa: PLC0415 (construct: on use)

    source = shipped_path()
    target_dir = (directory or PERSONAL_PLUGINS).expanduser()
    target = target_dir / source.name
    shipped = source.read_bytes()
    action = "installed"
    if target.is_dir():
        raise UsageError(f"{target} is a directory, not a file: remove it first")
    if target.exists():
        try:
            current = target.read_bytes()
        except OSError as error:
            raise UsageError(f"cannot read {target}: {error.strerror or error}") from None
        if current == shipped:
            if as_json:
                echo_json({"path": str(target), "action": "unchanged"})
            else:
                click.echo(f"{target} is already the shipped dissector: nothing to do")
            return
        if not force:
            raise UsageError(
                f"{target} exists and differs from the shipped dissector: "
                "run again with --force to replace it"
            )
        action = "replaced"
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except OSError as error:
        raise UsageError(f"cannot install into {target_dir}: {error.strerror or error}") from None
    if as_json:
        echo_json({"path": str(target), "action": action})
        return
    click.echo(f"{action} {target}; restart Wireshark or use Analyze > Reload Lua Plugins")

"""``pumpemu wireshark``: where the shipped Lua dissector is, and installing it where
Wireshark looks for personal plugins (docs/wireshark.md)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click

from hil.errors import UsageError

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
"""


@click.group(epilog=WIRESHARK_EPILOG)
def wireshark() -> None:
    """The Wireshark dissector for pumpemu's protocol (docs/wireshark.md)."""


@wireshark.command(epilog=WIRESHARK_EPILOG)
def path() -> None:
    """Print the path of the shipped dissector (pumpemu.lua)."""
    from hil.wireshark.generate import shipped_path  # noqa: PLC0415 (construct: on use)

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
def install(directory: Path | None, force: bool) -> None:
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
    if target.is_dir():
        raise UsageError(f"{target} is a directory, not a file: remove it first")
    if target.exists():
        try:
            current = target.read_bytes()
        except OSError as error:
            raise UsageError(f"cannot read {target}: {error.strerror or error}") from None
        if current == shipped:
            click.echo(f"{target} is already the shipped dissector: nothing to do")
            return
        if not force:
            raise UsageError(
                f"{target} exists and differs from the shipped dissector: "
                "run again with --force to replace it"
            )
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except OSError as error:
        raise UsageError(f"cannot install into {target_dir}: {error.strerror or error}") from None
    click.echo(f"installed {target}; restart Wireshark or use Analyze > Reload Lua Plugins")

"""``pumpemu keys``: provision and inspect per-pump role keys (docs/security.md, "Key file").

``pumpemu keys new`` draws 512 bits from ``secrets`` (the operating system's CSPRNG), splits
them into a clinician and a patient key, and writes the key file with mode 0600. The file is
created with that mode in the same system call, so it is never readable by others, not even
briefly. ``pumpemu keys show`` prints the serial and key fingerprints, never the keys.

Reading and writing key files lives in hil/key_files.py (``load_keys``, ``write_key_file``),
shared with the other commands and the library API (docs/api.md).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import click

from hil.command_error import CommandError
from hil.errors import HilError
from hil.json_output import echo_json, json_option
from protocol.device_state import Role

if TYPE_CHECKING:
    from protocol.keys import (
        PumpKeys,
    )


def _fingerprints(keys: PumpKeys) -> list[dict[str, str]]:
    """The --json rows: one per role, ``id`` the role's name."""
    from protocol.keys import fingerprint, role_name  # noqa: PLC0415

    return [
        {"id": role_name(role), "fingerprint": fingerprint(keys.key_for(role))} for role in Role
    ]


def _fingerprint_lines(keys: PumpKeys) -> list[str]:
    from protocol.keys import fingerprint, role_name  # noqa: PLC0415

    return [
        f"{role_name(role):<10} key fingerprint {fingerprint(keys.key_for(role))}" for role in Role
    ]


KEYS_EPILOG = """\b
Examples:
  pumpemu keys new --serial PE-000042 --out pe-000042.keys
  pumpemu keys show pe-000042.keys
"""


@click.group(epilog=KEYS_EPILOG)
def keys() -> None:
    """Provision and inspect per-pump role keys.

    Every emulated pump has its own random 256-bit key per role (clinician, patient), kept
    in a key file (docs/security.md). The emulator loads the whole file; a programmer is
    given the key of the role it acts in. Keys are never derived from the serial number.
    """


@keys.command(
    "new",
    epilog="""\b
Example:
  pumpemu keys new --serial PE-000042 --out pe-000042.keys
  pumpemu keys new --serial PE-000042 --out pe-000042.keys --json
""",
)
@click.option("--serial", required=True, help="The pump's serial: 1-16 printable ASCII, no spaces.")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The key file to create (mode 0600).",
)
@click.option("--force", is_flag=True, help="Replace an existing key file (its keys are lost).")
@json_option(
    'one JSON object of what was written: {"file", "serial", "mode", "fingerprints": '
    '[{"id": role, "fingerprint"}, ...]} (never the keys)'
)
def new(serial: str, out: Path, force: bool, as_json: bool) -> None:
    """Create a key file with fresh random keys for one pump.

    The file holds the serial and a clinician and a patient key, each 256 random bits
    from the operating system. It is created with mode 0600 and never overwritten
    unless --force is given. Only fingerprints are printed.
    """
    from hil.key_files import write_key_file  # noqa: PLC0415
    from protocol.crypto import KEY_LEN  # noqa: PLC0415
    from protocol.keys import KeyFileError, generate_keys  # noqa: PLC0415

    try:
        pump_keys = generate_keys(serial, secrets.token_bytes(2 * KEY_LEN))
    except KeyFileError as exc:
        raise CommandError(f"--serial: {exc.message}") from None
    try:
        write_key_file(out, pump_keys, force=force)
    except HilError as exc:
        raise CommandError(str(exc)) from None
    if as_json:
        echo_json(
            {
                "file": str(out),
                "serial": pump_keys.serial,
                "mode": "0600",
                "fingerprints": _fingerprints(pump_keys),
            }
        )
        return
    click.echo(f"wrote keys for pump {pump_keys.serial} to {out} (mode 0600)")
    for line in _fingerprint_lines(pump_keys):
        click.echo(f"  {line}")


@keys.command(
    "show",
    epilog="""\b
Example:
  pumpemu keys show pe-000042.keys
  pumpemu keys show pe-000042.keys --json
""",
)
@click.argument("file", type=click.Path(path_type=Path))
@json_option(
    'one JSON object: {"file", "serial", "format", "fingerprints": [{"id": role, '
    '"fingerprint"}, ...], "warning": text or null} (the warning also goes to stderr)'
)
def show(file: Path, as_json: bool) -> None:
    """Print a key file's serial and key fingerprints (never the keys).

    Warns if group or others can access the file (pumpemu serve and ctl refuse it).
    """
    from hil.key_files import load_keys, open_key_file_warning  # noqa: PLC0415
    from protocol.keys import KEY_FILE_FORMAT  # noqa: PLC0415

    try:
        pump_keys = load_keys(file, allow_open=True)
    except HilError as exc:
        raise CommandError(str(exc)) from None
    warning = open_key_file_warning(file)
    if as_json:
        echo_json(
            {
                "file": str(file),
                "serial": pump_keys.serial,
                "format": KEY_FILE_FORMAT,
                "fingerprints": _fingerprints(pump_keys),
                "warning": warning,
            }
        )
    else:
        click.echo(f"serial     {pump_keys.serial}")
        click.echo(f"format     {KEY_FILE_FORMAT}")
        for line in _fingerprint_lines(pump_keys):
            click.echo(line)
    if warning is not None:
        click.echo(warning, err=True)

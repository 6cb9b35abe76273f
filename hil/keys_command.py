"""``pumpemu keys``: provision and inspect per-pump role keys (docs/security.md, "Key file").

``pumpemu keys new`` draws 512 bits from ``secrets`` (the operating system's CSPRNG), splits
them into a clinician and a patient key, and writes the key file with mode 0600. The file is
created with that mode in the same system call, so it is never readable by others, not even
briefly. ``pumpemu keys show`` prints the serial and key fingerprints, never the keys.

``load_keys`` is the one way other commands read a key file; every failure is one clear line.
It refuses a key file that group or others can access (mode ``& 0o077``), as ssh refuses an
unprotected private key: ``serve`` and ``ctl`` act on a pump with these keys. ``keys show``
and ``decode`` only read it, so they load it with ``allow_open=True`` and print
``open_key_file_warning`` instead.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

import click

from hil.errors import HilError, UsageError
from protocol.crypto import KEY_LEN
from protocol.device_state import Role
from protocol.keys import (
    KEY_FILE_FORMAT,
    KeyFileError,
    PumpKeys,
    fingerprint,
    generate_keys,
    parse_key_file,
    role_name,
    serialize_key_file,
)

KEY_FILE_MODE = 0o600
MAX_KEY_FILE_BYTES = 64 * 1024
"""A key file is about 200 bytes; anything far larger is not a key file."""


class _CommandError(click.ClickException):
    """One line on stderr, exit code 2 (hil/cli.py's convention for user errors)."""

    exit_code = 2


def open_key_file_problem(file: Path, mode: int) -> str | None:
    """What is wrong with a key file's permission bits, or None if only its owner has access."""
    if not mode & 0o077:
        return None
    return (
        f"key file {file} has mode {mode:04o}: group or others can access it; run: chmod 600 {file}"
    )


def load_keys(path: str | os.PathLike[str], *, allow_open: bool = False) -> PumpKeys:
    """Read and parse a key file. Raises ``UsageError`` with one clear line on any failure,
    including (unless ``allow_open``) a file that group or others can access."""
    file = Path(path)
    try:
        info = file.stat()
        if stat.S_ISDIR(info.st_mode):
            raise UsageError(f"key file {file}: is a directory, not a key file")
        problem = open_key_file_problem(file, stat.S_IMODE(info.st_mode))
        if problem is not None and not allow_open:
            raise UsageError(problem)
        if info.st_size > MAX_KEY_FILE_BYTES:
            raise UsageError(
                f"key file {file}: {info.st_size} bytes is far too large for a key file"
            )
        data = file.read_bytes()
    except FileNotFoundError:
        raise UsageError(
            f"key file {file} does not exist (create one with: pumpemu keys new "
            f"--serial SERIAL --out {file})"
        ) from None
    except PermissionError:
        raise UsageError(f"key file {file}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"key file {file}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"key file {file}: not UTF-8 text (is this a key file?)") from None
    try:
        return parse_key_file(text)
    except KeyFileError as exc:
        raise UsageError(f"key file {file}: {exc}") from None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    os.fsync(fd)


def create_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 and write ``data``; fails if ``path`` exists."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, KEY_FILE_MODE)
    try:
        os.fchmod(fd, KEY_FILE_MODE)  # exactly 0600, whatever the umask
        _write_all(fd, data)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def write_key_file(path: Path, keys: PumpKeys, *, force: bool = False) -> None:
    """Write ``keys`` to ``path`` with mode 0600. Without ``force`` an existing file is kept.

    With ``force`` the new file is written beside the old one and renamed over it, so the
    path always holds either the old keys or the complete new ones.
    """
    data = serialize_key_file(keys).encode("utf-8")
    try:
        if not force:
            create_private_file(path, data)
            return
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        create_private_file(temporary, data)
        try:
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    except FileExistsError:
        raise UsageError(
            f"{path} already exists; use --force to replace it (its keys will be lost)"
        ) from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory; give a file name with --out") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _fingerprint_lines(keys: PumpKeys) -> list[str]:
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
def new(serial: str, out: Path, force: bool) -> None:
    """Create a key file with fresh random keys for one pump.

    The file holds the serial and a clinician and a patient key, each 256 random bits
    from the operating system. It is created with mode 0600 and never overwritten
    unless --force is given. Only fingerprints are printed.
    """
    try:
        pump_keys = generate_keys(serial, secrets.token_bytes(2 * KEY_LEN))
    except KeyFileError as exc:
        raise _CommandError(f"--serial: {exc.message}") from None
    try:
        write_key_file(out, pump_keys, force=force)
    except HilError as exc:
        raise _CommandError(str(exc)) from None
    click.echo(f"wrote keys for pump {pump_keys.serial} to {out} (mode 0600)")
    for line in _fingerprint_lines(pump_keys):
        click.echo(f"  {line}")


@keys.command(
    "show",
    epilog="""\b
Example:
  pumpemu keys show pe-000042.keys
""",
)
@click.argument("file", type=click.Path(path_type=Path))
def show(file: Path) -> None:
    """Print a key file's serial and key fingerprints (never the keys).

    Warns if group or others can access the file (pumpemu serve and ctl refuse it).
    """
    try:
        pump_keys = load_keys(file, allow_open=True)
    except HilError as exc:
        raise _CommandError(str(exc)) from None
    click.echo(f"serial     {pump_keys.serial}")
    click.echo(f"format     {KEY_FILE_FORMAT}")
    for line in _fingerprint_lines(pump_keys):
        click.echo(line)
    warning = open_key_file_warning(file)
    if warning is not None:
        click.echo(warning, err=True)


def open_key_file_warning(file: Path) -> str | None:
    """The warning line for a key file that group or others can access, else None."""
    with contextlib.suppress(OSError):
        problem = open_key_file_problem(file, stat.S_IMODE(file.stat().st_mode))
        if problem is not None:
            return f"warning: {problem} (pumpemu serve and ctl refuse it)"
    return None

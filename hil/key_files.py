"""Key files on disk: read one safely, write one that only its owner can read.

The one way pumpemu reads a key file (``load_keys``) and writes one (``write_key_file``),
for the commands and for programs that use pumpemu as a library (docs/api.md). Every
failure is one clear line (``UsageError``). ``load_keys`` refuses a key file that group or
others can access (mode ``& 0o077``), as ssh refuses an unprotected private key: whoever
holds these keys acts on the pump (docs/security.md section 9). Readers that only inspect a
file (``keys show``, ``decode``) load it with ``allow_open=True`` and print
``open_key_file_warning``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from hil.errors import UsageError
from protocol.keys import KeyFileError, PumpKeys, parse_key_file, serialize_key_file

__all__ = [
    "KEY_FILE_MODE",
    "MAX_KEY_FILE_BYTES",
    "create_private_file",
    "load_keys",
    "open_key_file_problem",
    "open_key_file_warning",
    "write_key_file",
]

KEY_FILE_MODE = 0o600
MAX_KEY_FILE_BYTES = 64 * 1024
"""A key file is about 200 bytes; anything far larger is not a key file."""


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


def open_key_file_warning(file: Path) -> str | None:
    """The warning line for a key file that group or others can access, else None."""
    with contextlib.suppress(OSError):
        problem = open_key_file_problem(file, stat.S_IMODE(file.stat().st_mode))
        if problem is not None:
            return f"warning: {problem} (pumpemu serve and ctl refuse it)"
    return None

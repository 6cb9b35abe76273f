"""The ``--state`` file: one pump's saved state, signed, locked, and written atomically.

``pumpemu serve --state FILE`` keeps the pump (``PumpDevice.snapshot()``) in FILE so that a
restarted emulator resumes it. This module owns everything about that file
(docs/state-file.md is the normative description):

- **The envelope.** ``MAGIC | version u16 | flags u16 | length u32 | record | MAC``, the MAC
  an HMAC-SHA256 over everything before it, under a key derived with HKDF-SHA256 from the
  pump's key file. A file edited outside pumpemu, even with its inner SHA-256 recomputed,
  or a file of another pump, fails the MAC and is refused like a corrupt one. A checksum
  finds accidents; only a keyed MAC finds edits (a cleared lockout, an emptied ledger: C1,
  C4).
- **The lock.** ``FILE.lock`` is held with ``flock`` for the whole life of a serve, so a
  second serve on the same FILE stops at once with one line instead of running beside the
  first and later writing an older pump over it.
- **Atomic writes.** A temporary file in the same directory, written, fsynced, renamed over
  FILE, directory fsynced, mode 0600. A kill during a save leaves the old file or the new
  one; the temporary file it leaves behind is removed by the next serve that takes the lock.
- **Refusal leaves the file alone.** A file that is corrupt, foreign, of a newer format or
  otherwise unusable raises ``StateFileError`` and is never rewritten or replaced by a
  fresh pump.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import os
import struct
import threading
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from emulator.device import Entropy, PumpDevice
from emulator.firmware.nvram import SnapshotError
from hil.errors import UsageError
from protocol.keys import PumpKeys

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "StateFile",
    "StateFileBusyError",
    "StateFileError",
    "seal_state",
    "state_key",
    "unseal_state",
    "write_state_file",
]

MAGIC = b"PEMU-STF"
FORMAT_VERSION = 1
HEADER = struct.Struct("<8sHHI")
"""magic, format version, flags (0), record length."""
MAC_LEN = 32
MAX_STATE_BYTES = 64 << 20
"""Larger than any state a pump writes (its log is bounded); a bigger file is refused
unread, so a hostile file cannot make the start allocate without bound."""
KEY_INFO = b"pumpemu state-file v1"
"""HKDF info label: this key is for state files only, never equal to a session key."""
LEGACY_MAGICS = (b"PEMU-DV1", b"PEMU-DV2")


class StateFileError(UsageError):
    """The state file cannot be used: one line naming the file and why (exit code 2)."""


class StateFileBusyError(StateFileError):
    """Another ``pumpemu serve`` holds the state file's lock."""


def state_key(keys: PumpKeys) -> bytes:
    """The MAC key of this pump's state files: HKDF-SHA256 over both role keys (never the
    serial, which is public), with its own info label (docs/security.md)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_INFO)
    return hkdf.derive(keys.clinician + keys.patient)


def _mac(key: bytes, data: bytes) -> bytes:
    mac = HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def seal_state(keys: PumpKeys, record: bytes) -> bytes:
    """The state file's bytes for a device record (``PumpDevice.snapshot()``)."""
    head = HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(record))
    return head + record + _mac(state_key(keys), head + record)


def unseal_state(keys: PumpKeys, data: bytes) -> bytes:
    """The device record in a state file's bytes; StateFileError (without the file's name)
    if they are not a state file of this format, of this key file, unaltered."""
    if data[:8] in LEGACY_MAGICS:
        raise StateFileError(
            "written by an older pumpemu, without a MAC, so it cannot be trusted; "
            "move it away to start a new pump"
        )
    if len(data) < HEADER.size + MAC_LEN or data[:8] != MAGIC:
        raise StateFileError("not a pumpemu state file")
    _magic, version, flags, length = HEADER.unpack_from(data)
    if version != FORMAT_VERSION:
        newer = "newer than" if version > FORMAT_VERSION else "not"
        raise StateFileError(
            f"its format version {version} is {newer} the one this pumpemu reads ({FORMAT_VERSION})"
        )
    if flags != 0 or len(data) != HEADER.size + length + MAC_LEN:
        raise StateFileError("truncated or extended: its length does not match its header")
    body, tag = data[: HEADER.size + length], data[HEADER.size + length :]
    if not hmac.compare_digest(_mac(state_key(keys), body), tag):
        raise StateFileError(
            "its MAC does not verify: it was changed outside pumpemu, is damaged, "
            "or belongs to another key file"
        )
    return body[HEADER.size :]


def write_state_file(path: Path, blob: bytes) -> None:
    """Replace ``path`` with ``blob`` atomically: a temporary file in the same directory,
    written and fsynced, then renamed over it (mode 0600), then the directory fsynced. A
    crash leaves the old file or the new one, never a torn one."""
    directory = path.parent
    tmp = directory / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # The rename itself must be durable before an ACK relies on it (C1).
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _is_temp_of(name: str, state_name: str) -> bool:
    return name.startswith(f".{state_name}.") and name.endswith(".tmp")


class StateFile:
    """One ``--state`` file, locked while this object holds it.

    ``with StateFile(path, keys) as state:`` takes the lock (``StateFileBusyError`` if
    another process has it), removes temporary files a killed save left (``removed``), and
    releases the lock on exit. ``load(entropy)`` resumes the saved device (None if there is
    no file yet); ``write(record)`` saves one atomically: pass it as the device's
    ``persist``.
    """

    def __init__(self, path: Path, keys: PumpKeys) -> None:
        self.path = path
        self.keys = keys
        self.lock_path = path.with_name(path.name + ".lock")
        self.removed: list[str] = []
        """Leftover temporary files removed when the lock was taken."""
        self._lock_fd: int | None = None

    def __enter__(self) -> StateFile:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def locked(self) -> bool:
        return self._lock_fd is not None

    def acquire(self) -> None:
        """Take the lock for this process, then clean up after a killed save."""
        if self._lock_fd is not None:
            return
        path = self.path
        if not path.parent.is_dir():
            raise StateFileError(f"--state: no such directory: {path.parent}")
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateFileError(
                f"--state: cannot create the lock file {self.lock_path}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StateFileBusyError(
                f"--state: {path} is in use by another pumpemu serve{holder}; "
                "stop it first, or use another state file"
            ) from None
        # The holder's pid, for the busy message above; the lock file itself is never
        # deleted (deleting a lock file lets two processes lock two different files).
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._lock_fd = fd
        self.removed = self._remove_leftovers()

    def release(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the flock

    def _remove_leftovers(self) -> list[str]:
        """Temporary files of this state file: only a killed save leaves one, and with the
        lock held no live save of this file can be in progress."""
        removed = []
        for entry in self.path.parent.iterdir():
            if _is_temp_of(entry.name, self.path.name):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed.append(entry.name)
        return sorted(removed)

    def read_record(self) -> bytes | None:
        """The device record saved in the file, None if there is no file; StateFileError if
        it cannot be read or does not verify (the file is left as it is)."""
        path = self.path
        try:
            with path.open("rb") as stream:
                size = os.fstat(stream.fileno()).st_size
                if size > MAX_STATE_BYTES:
                    raise StateFileError(
                        f"--state: {path} is not a usable pump state: {size} bytes, larger "
                        f"than any pump state ({MAX_STATE_BYTES})"
                    )
                data = stream.read(MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateFileError(f"--state: cannot read {path}: {exc.strerror or exc}") from None
        try:
            return unseal_state(self.keys, data)
        except StateFileError as exc:
            raise StateFileError(f"--state: {path} is not a usable pump state: {exc}") from None

    def load(self, entropy: Entropy, *, persist: bool = True) -> PumpDevice | None:
        """The device saved in the file, resumed (None if there is no file yet), saving to
        this file from now on if ``persist``. StateFileError if it cannot be used."""
        record = self.read_record()
        if record is None:
            return None
        try:
            return PumpDevice.restore(
                record, self.keys, entropy, persist=self.write if persist else None
            )
        except SnapshotError as exc:
            raise StateFileError(
                f"--state: {self.path} is not a usable pump state: {exc}"
            ) from None

    def write(self, record: bytes) -> None:
        """Save a device record (``PumpDevice.snapshot()``) atomically. Only the lock holder
        writes; OSError if the file system refuses (the device then refuses NOT_STORED)."""
        if self._lock_fd is None:
            raise StateFileError(f"--state: {self.path} is not locked by this process")
        write_state_file(self.path, seal_state(self.keys, record))


def _read_pid(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 32, 0).decode("ascii").strip()
        if text.isdigit():
            return f" (pid {int(text)})"
    return ""

"""Reading a user's text file (a scenario, a prescription, a proxy fault file) with bounds
and a one-line reason for every way it can fail, so each format says the same thing about
a missing, oversized or binary file and adds only its own prefix."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["TextFileError", "read_text_file"]


class TextFileError(Exception):
    """Why a text file could not be read: a short phrase for after its name ("no such
    file", "not UTF-8 text")."""


def read_text_file(path: str | os.PathLike[str], *, max_bytes: int) -> str:
    """The file's text, read as UTF-8, refused beyond ``max_bytes`` before it is read."""
    file = Path(path)
    try:
        if file.is_dir():
            raise TextFileError("is a directory")
        size = file.stat().st_size
        if size > max_bytes:
            raise TextFileError(f"far too large ({size:,} bytes; at most {max_bytes:,})")
        data = file.read_bytes()
    except FileNotFoundError:
        raise TextFileError("no such file") from None
    except PermissionError:
        raise TextFileError("permission denied") from None
    except OSError as exc:
        raise TextFileError(f"cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise TextFileError("not UTF-8 text") from None

"""A stable name for a pty: ``pumpemu serve --pty --link PATH`` (docs/serve.md).

A pty's device path changes every run (/dev/pts/5 today, /dev/pts/7 tomorrow), so rig
scripts and CI jobs would have to read it from serve's first line. ``--link PATH`` makes
PATH a symbolic link to the pty, as ``socat PTY,link=PATH`` does, and removes it on exit.

The link never clobbers anything: an existing symlink is replaced only when it points at a
pty that no longer exists (a serve that was killed); a live one, or a file that is not a
symlink, is an error naming the path. On exit the link is removed only while it still
points at this pty, so a second serve that took the name over keeps it.
"""

from __future__ import annotations

import os
from pathlib import Path

from hil.errors import UsageError

__all__ = ["PtyName"]


class PtyName:
    """PATH -> the pty, for as long as this serve runs."""

    def __init__(self, path: str | os.PathLike[str], target: str) -> None:
        self.path = Path(path)
        self.target = target
        link = self.path
        if link.is_symlink():
            pointed = os.readlink(link)
            if os.path.exists(link):
                raise UsageError(
                    f"--link {link}: already a link to {pointed}, which exists (another "
                    "serve?); choose another path or remove it"
                )
            link.unlink()  # left by a serve that was killed: its pty is gone
        elif link.exists():
            raise UsageError(f"--link {link}: exists and is not a symbolic link; not replaced")
        try:
            link.symlink_to(target)
        except OSError as exc:
            raise UsageError(f"--link {link}: cannot create it: {exc.strerror or exc}") from None

    def remove(self) -> None:
        """Remove the link if it still points at this pty."""
        try:
            if self.path.is_symlink() and os.readlink(self.path) == self.target:
                self.path.unlink()
        except OSError:
            pass  # gone already, or not ours to remove: leave it

"""The hil package's exceptions: failures of the outside world, reported as one clear line."""

from __future__ import annotations


class HilError(Exception):
    """Root of every error the hil package raises. Its message is shown to the user as is."""


class UsageError(HilError):
    """The user gave bad input: a file that does not exist, hex that is not hex, a bad URL."""

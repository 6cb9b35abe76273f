"""The emulator package's exceptions.

A pump *refusal* is never an exception: it is a reply value carrying a
``protocol.refusal.RefusalCode``. These exceptions are for the caller's mistakes when driving
the model directly (a bad profile file, time running backwards), which no pump would see.
"""

from __future__ import annotations


class EmulatorError(Exception):
    """Root of every error the emulator raises."""


class ProfileError(EmulatorError):
    """A profile file is missing, unreadable, or has a key outside its allowed range."""


class TimeError(EmulatorError):
    """``now`` went backwards: the pump core only ever moves forward in time."""

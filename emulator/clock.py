"""Clocks for the thin I/O shells (docs/architecture.md principle 2).

The pump core never reads a clock: it is handed ``now`` as integer milliseconds. A shell (the
serve loop, the programmer's link) holds a ``Clock`` and asks it for ``now_ms()`` before each
call into the core. This module has the protocol and the manual clock for tests and CI; the
clocks that read real time live in ``hil.clock``, because emulator/ must not import a time
source (tests/test_layering.py).
"""

from __future__ import annotations

from typing import Protocol

from emulator.errors import TimeError

__all__ = ["Clock", "ManualClock"]


class Clock(Protocol):
    """A source of pump time in integer milliseconds that never goes backwards."""

    def now_ms(self) -> int: ...


class ManualClock:
    """Pump time that moves only when told to: months of therapy in a test, no sleeping."""

    __slots__ = ("_now",)

    def __init__(self, start_ms: int = 0) -> None:
        if not isinstance(start_ms, int) or isinstance(start_ms, bool) or start_ms < 0:
            raise ValueError(f"start_ms must be an int >= 0, got {start_ms!r}")
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> int:
        """Move forward by ``ms`` (>= 0) and return the new time."""
        if not isinstance(ms, int) or isinstance(ms, bool) or ms < 0:
            raise TimeError(f"a manual clock only moves forward: advance({ms!r})")
        self._now += ms
        return self._now

    def set(self, ms: int) -> None:
        """Jump to ``ms``; TimeError if that is before now (pump time never runs backwards)."""
        if not isinstance(ms, int) or isinstance(ms, bool):
            raise TypeError(f"ms must be an int, got {type(ms).__name__}")
        if ms < self._now:
            raise TimeError(f"a manual clock only moves forward: set({ms}) < now {self._now}")
        self._now = ms

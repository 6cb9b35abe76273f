"""Clocks that read real time, for the serve loop and rigs (docs/architecture.md principle 2).

Both satisfy ``emulator.clock.Clock``. Pump time starts at ``start_ms`` when the clock is
made and then follows a monotonic source, so wall-clock changes (NTP, daylight saving)
never move pump time. The source is injectable (a callable returning integer nanoseconds,
``time.monotonic_ns`` by default) so the tests need no sleeping. All arithmetic is integer.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["NS_PER_MS", "ScaledClock", "SystemClock"]

NS_PER_MS = 1_000_000


class ScaledClock:
    """Pump time running ``factor`` times faster than real time (e.g. 60 for rigs)."""

    __slots__ = ("_factor", "_last", "_origin_ns", "_source", "_start_ms")

    def __init__(
        self,
        factor: int,
        start_ms: int = 0,
        source: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        # An integer factor keeps pump time exact; a rig needing 1.5x can use 3x and slower
        # polling, but never a float near a dose time.
        if not isinstance(factor, int) or isinstance(factor, bool) or factor < 1:
            raise ValueError(f"factor must be an int >= 1, got {factor!r}")
        if not isinstance(start_ms, int) or isinstance(start_ms, bool) or start_ms < 0:
            raise ValueError(f"start_ms must be an int >= 0, got {start_ms!r}")
        self._factor = factor
        self._start_ms = start_ms
        self._source = source
        self._origin_ns = source()
        self._last = start_ms

    @property
    def factor(self) -> int:
        return self._factor

    def now_ms(self) -> int:
        elapsed_ns = self._source() - self._origin_ns
        now = self._start_ms + elapsed_ns * self._factor // NS_PER_MS
        # A monotonic source never steps back, but an injected one might; the pump core
        # refuses backwards time, so hold the last value rather than hand it one.
        self._last = max(self._last, now)
        return self._last

    def real_ns_until(self, pump_ms: int) -> int:
        """Real nanoseconds to wait until pump time reaches ``pump_ms`` (0 if already there).

        The serve loop sleeps this long before ``handle_timer``; it is the least wait after
        which ``now_ms() >= pump_ms``, rounded up so the loop never wakes early.
        """
        needed_ns = -(-(pump_ms - self._start_ms) * NS_PER_MS // self._factor)
        return max(0, self._origin_ns + needed_ns - self._source())


class SystemClock(ScaledClock):
    """Pump time at real speed (factor 1), from a monotonic source."""

    __slots__ = ()

    def __init__(self, start_ms: int = 0, source: Callable[[], int] = time.monotonic_ns) -> None:
        super().__init__(1, start_ms, source)

"""The firmware's next deadline, computed once and kept until something that can move it
changes (docs/pump-model.md, "Time").

The pump asks for the next deadline before every step, and the serve loop asks again for
its timer. Between two changes the answer stays the same: every candidate is an absolute
instant (a battery check, end of service, a bolus end, a flex boundary), and the
stroke-counted reservoir crossings (low, empty, the bridge's end) are the k-th future
stroke, where each delivered stroke lowers k by one as the engine moves past it. So the
firmware invalidates the cache only where an input can move: a command, a logged event
(every therapy transition, alarm, battery and concentration event is logged), a battery
check, a stroke the sensor saw blocked or an empty estimate cut, a reboot; and an answer
at or before now is always recomputed (the deadline came: acting on it changes state).

Check mode (``check=True`` on one cache, or ``CHECK_ALL.on = True`` for every pump built
afterwards, the engine's one switch in emulator/cache_checks.py; tests/conftest.py turns it
on for the whole suite) recomputes on every request
and raises ``DeadlineCacheError`` if the kept answer differs, so a missed invalidation fails
a test rather than shifting a stroke. The emulator reads no environment (it is a library:
tests/test_layering.py), so a debugging caller sets the switch itself.
"""

from __future__ import annotations

from collections.abc import Callable

from emulator.cache_checks import CHECK_ALL, CacheCheckError, CheckSwitch

__all__ = ["CHECK_ALL", "CheckSwitch", "DeadlineCache", "DeadlineCacheError"]


class DeadlineCacheError(CacheCheckError):
    """Check mode found a kept deadline that a fresh computation contradicts: a firmware
    change that can move the deadline does not invalidate the cache."""


class DeadlineCache:
    """``compute(now_ms)``'s last answer, reused while valid and still in the future.

    The owner passes ``compute`` with each request rather than the cache keeping it: a
    kept bound method would make the firmware a reference cycle, freed only by the cyclic
    collector, and a replaced pump's memory would linger (benchmarks/delivery.py's
    ``memory_decade_vs_year``)."""

    __slots__ = ("_value", "check", "valid")

    def __init__(self, *, check: bool = False) -> None:
        self.valid = False
        """Whether the kept answer may serve the next request; ``invalidate`` clears it.
        Public so the firmware's hottest paths (every command, log entry and transition)
        clear it with a store rather than a call."""
        self._value: int | None = None
        self.check = check

    def get(self, now_ms: int, compute: Callable[[int], int | None]) -> int | None:
        value = self._value
        if self.valid and (value is None or value > now_ms):
            if self.check:
                fresh = compute(now_ms)
                if fresh != value:
                    raise DeadlineCacheError(
                        f"kept next deadline {value} but it is {fresh} at {now_ms}"
                    )
            return value
        value = self._value = compute(now_ms)
        self.valid = True
        return value

    def invalidate(self) -> None:
        self.valid = False

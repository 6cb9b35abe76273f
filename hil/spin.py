"""Spin, then block: a read that expects bytes within microseconds polls before it sleeps.

A pty round trip wakes four threads: the kernel worker that moves the request's bytes, the
serve thread, the worker that moves the reply's, and the programmer. On an idle virtual
machine each wake-up can start from a halted vCPU (an exit to the hypervisor, then cold
caches), and those wake-ups, not the code, set a round trip's pace (docs/serve.md, "The
serve loop's cost", has the measurements). A reader that knows bytes are due (serve, right
after it answered; a programmer, right after it sent a request) keeps polling for a moment
instead: the bytes are taken while the thread still runs, and the CPU it runs on never
halts. The links poll with ``FIONREAD`` (hil/links.py ``_bytes_waiting``), which never
waits: a tty's ``read`` and ``select`` can sleep until the kernel worker is done. Between
polls the reader yields the CPU, so the kernel worker, or the peer, scheduled on the same
CPU runs at once instead of after the spinner's time slice.

The spin adapts. A spin that found nothing (a peer slower than the window: a real UART at
115200 baud takes milliseconds per frame) makes the next 1, 2, 4 ... 64 reads skip it; one
that found bytes resets that. A peer that is always slower costs one window in up to 64
reads; one that answers in bursts (a programmer's session: a few requests back to back,
then a pause) costs about one window per burst, the one after its last request.

A spin never outlasts the caller's own wait (a timer due sooner, a read's timeout), and it
polls at most once per microsecond of its window, so a clock that does not move (a test's)
or moves coarsely (Windows' monotonic clock before Python 3.13 ticks every 15.6 ms) cannot
keep it spinning.

Only where the peer runs in another process: two threads of one interpreter spinning and
answering each other contend for its lock, which is slower than blocking (measured in the
same place).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

__all__ = ["DEFAULT_SPIN_US", "MAX_SKIP", "Spinner", "yield_cpu"]

DEFAULT_SPIN_US = 200
"""``pumpemu serve --spin-us`` and ``SerialLink``'s default: a little more than a warm round
trip over a pty on the 2-vCPU machine of issue 15 (about 100-150 us)."""

MAX_SKIP = 64
"""After misses in a row, the most reads that skip the spin before it is tried again."""

yield_cpu: Callable[[], None] = getattr(os, "sched_yield", None) or (lambda: time.sleep(0))
"""Give the CPU to anything runnable on it (``time.sleep(0)`` where there is no
``sched_yield``: Windows)."""


class Spinner:
    """Polls ``read_now`` for up to ``spin_us`` microseconds; see the module docstring."""

    __slots__ = ("_clock", "_misses", "_skip", "spin_ns")

    def __init__(
        self, spin_us: int, *, monotonic_ns: Callable[[], int] = time.perf_counter_ns
    ) -> None:
        if spin_us < 0:
            raise ValueError("spin_us must be >= 0")
        self.spin_ns = spin_us * 1_000
        self._clock = monotonic_ns
        self._misses = 0
        self._skip = 0

    def reset(self) -> None:
        """Forget the misses: a new link, or a new peer on it."""
        self._misses = self._skip = 0

    def spin(self, read_now: Callable[[], bytes], limit_ns: int) -> tuple[bytes, int]:
        """``(bytes, 0)`` as soon as ``read_now`` returns some, else ``(b"", ns spent)`` once
        the window, or ``limit_ns`` if shorter (the caller's own wait), has passed; at once
        when the spin is off or skipped. The caller then blocks for what is left of its
        wait."""
        window = self.spin_ns if self.spin_ns < limit_ns else limit_ns
        if window <= 0:
            return b"", 0
        if self._skip:
            self._skip -= 1
            return b"", 0
        clock = self._clock
        started = now = clock()
        until = started + window
        polls = window // 1_000 + 1  # at most one a microsecond, whatever the clock does
        while now < until and polls:
            data = read_now()
            if data:
                self._misses = 0
                return data, 0
            yield_cpu()
            polls -= 1
            now = clock()
        self._skip = min(1 << self._misses, MAX_SKIP)
        self._misses = min(self._misses + 1, MAX_SKIP.bit_length())
        return b"", now - started

    def read(
        self, read_now: Callable[[], bytes], read: Callable[[float], bytes], wait_s: float
    ) -> bytes:
        """Spin within ``wait_s`` (``spin``), then block in ``read`` for what is left of it:
        the one spin-then-block read of serve's loop and of a programmer's link."""
        data, spent_ns = self.spin(read_now, int(wait_s * 1e9))
        return data or read(max(wait_s - spent_ns / 1e9, 0.0))

"""A link whose far end is a ``PumpDevice`` in the same thread, on a manual clock.

The blocking reference programmer (hil/programmer/client.py) talks to a pump through a
``Link`` and waits on it with timeouts. ``DeviceLink`` gives it a pump without a thread, a
pty or a wall clock: bytes written are handed to the device at once, at the clock's time,
and a read that finds nothing lets *simulated* time pass for the timeout asked, firing the
device's timers on the way. So a whole session, with its retries and idle timeouts, runs
deterministically in microseconds, and a test on it may use the blocking API and still
obey the manual-clock rule (docs/architecture.md principle 2).

One timeline: the device runs its pump and link timers on the clock's time (joint mode).
"""

from __future__ import annotations

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from hil.links import MAX_READ, LinkClosedError

__all__ = ["DeviceLink"]


class DeviceLink:
    """A ``Link`` (hil/links.py) to ``device``, driven by ``clock``."""

    def __init__(self, device: PumpDevice, clock: ManualClock, name: str = "device") -> None:
        if clock.now_ms() < device.now_ms:
            raise ValueError("the clock is behind the pump")
        self._device = device
        self._clock = clock
        self._name = name
        self._pending = b""
        self._closed = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def device(self) -> PumpDevice:
        return self._device

    def advance(self, ms: int) -> None:
        """Let ``ms`` of time pass for the pump (its timers fire on the way)."""
        if ms < 0:
            raise ValueError("time only moves forward")
        target = self._clock.now_ms() + ms
        while True:
            timer = self._device.get_timer()
            if timer is None or timer > target:
                break
            self._clock.set(max(timer, self._clock.now_ms()))
            self._device.handle_timer(self._clock.now_ms())
            self._collect()
        self._clock.set(target)
        self._device.handle_timer(target)
        self._collect()

    def read(self, timeout_s: float) -> bytes:
        if self._closed:
            raise LinkClosedError(f"{self._name}: link closed")
        self._collect()
        if not self._pending:
            # Nothing to read: the wait passes in simulated time, up to the next thing the
            # pump does by itself (a timer), so a reply it sends on a timer is seen then.
            wait_ms = max(int(timeout_s * 1000), 0)
            now = self._clock.now_ms()
            timer = self._device.get_timer()
            step = wait_ms if timer is None else min(wait_ms, max(timer - now, 0))
            self.advance(step)
        out, self._pending = self._pending[:MAX_READ], self._pending[MAX_READ:]
        return out

    def write(self, data: bytes) -> None:
        if self._closed:
            raise LinkClosedError(f"{self._name}: link closed")
        if data:
            self._device.receive_data(bytes(data), self._clock.now_ms())
            self._collect()

    def close(self) -> None:
        self._closed = True

    def _collect(self) -> None:
        out = self._device.data_to_send()
        if out:
            self._pending += out

"""The proxy's I/O shell: two links, one ``ProxyEngine``, three threads.

- One reader thread per side blocks on ``link.read`` (docs/field-notes.md "pyserial 3.5": one
blocking thread per
  port was the fastest way to move serial bytes). It feeds the engine and writes whatever
  is due at once itself, so an undelayed frame crosses the proxy with no thread hop.
- One timer thread wakes for outputs scheduled later (delay, split) and for the engine's
  idle timer. With no delay or split faults and whole frames it never wakes, so an
  in-memory proxy runs as fast as its links.

Ordering: outputs join a per-direction queue in the order the engine made them, and a
per-direction write lock lets one thread at a time take due items from the head and write
them, so each direction stays FIFO whichever thread writes.

A side whose link is lost while reading is reopened every ``REOPEN_INTERVAL_S`` if the link
can be (``SerialLink.reopen``: a USB adapter pulled and plugged back); otherwise the proxy
stops and ``error`` says why. Bytes that cannot be written to a lost side are dropped and
counted.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Self

from hil.clock import NS_PER_MS, SystemClock
from hil.errors import HilError
from hil.links import Link, LinkClosedError, LinkOpenError, MemoryLink, memory_pair
from hil.proxy.engine import (
    DEFAULT_IDLE_MS,
    Listener,
    Output,
    ProxyEngine,
    ProxyStats,
    Sent,
)
from hil.proxy.faults import Direction, FaultSpec

__all__ = ["READ_TIMEOUT_S", "REOPEN_INTERVAL_S", "FaultProxy", "memory_proxy"]

READ_TIMEOUT_S = 0.1
"""How long a reader blocks before checking for stop: bounds shutdown time, not latency."""

REOPEN_INTERVAL_S = 1.0
"""Time between attempts to reopen a lost side."""


class FaultProxy:
    """Forwards bytes between links ``a`` and ``b`` through a ``ProxyEngine``.

    ``with FaultProxy(a, b, faults, seed=7) as proxy: ...`` starts it and stops it. ``log``
    receives one human line at a time (link lost, link back); per-fault lines come from
    listeners (see ``command.py`` for the stderr logger).
    """

    def __init__(
        self,
        a: Link,
        b: Link,
        faults: Sequence[FaultSpec] = (),
        *,
        seed: int = 0,
        idle_ms: int = DEFAULT_IDLE_MS,
        listeners: Iterable[Listener] = (),
        log: Callable[[str], None] | None = None,
        clock: SystemClock | None = None,
    ) -> None:
        self._links = {"a": a, "b": b}
        self._clock = clock if clock is not None else SystemClock()
        self._cond = threading.Condition()
        self.engine = ProxyEngine(
            faults, seed=seed, start_ms=self._clock.now_ms(), idle_ms=idle_ms, listeners=listeners
        )
        self._queues: dict[Direction, deque[Output]] = {d: deque() for d in Direction}
        self._write_locks = {d: threading.Lock() for d in Direction}
        self._write_failing = dict.fromkeys(Direction, False)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._log = log if log is not None else (lambda _line: None)
        self.bytes_written = dict.fromkeys(Direction, 0)
        self.bytes_unsent = dict.fromkeys(Direction, 0)
        """Bytes dropped because their side was lost, or still queued at stop."""
        self.error: HilError | None = None
        """Why the proxy stopped by itself (a side lost for good), if it did."""

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> Self:
        if self._threads:
            raise RuntimeError("proxy already started")
        for source, target, direction in (("a", "b", Direction.A2B), ("b", "a", Direction.B2A)):
            self._threads.append(
                threading.Thread(
                    target=self._reader,
                    args=(source, target, direction),
                    name=f"proxy-read-{source}",
                    daemon=True,
                )
            )
        self._threads.append(threading.Thread(target=self._timer, name="proxy-timer", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop forwarding and join the threads. Queued outputs not yet due are dropped
        (counted in ``bytes_unsent``). Idempotent. Does not close the links."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout_s)
        with self._cond:
            for direction, queue in self._queues.items():
                self.bytes_unsent[direction] += sum(len(o.data) for o in queue)
                queue.clear()

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._stop.is_set()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the proxy stops (``stop()`` or a side lost for good); True if it did."""
        return self._stop.wait(timeout_s)

    def flush(self) -> None:
        """Forward every held byte now, as if both sides had gone idle (the engine's
        ``flush``). Useful in tests and before a planned stop."""
        with self._cond:
            self._enqueue(self.engine.flush(self._clock.now_ms()))
        for direction in Direction:
            self._drain(direction)

    def pending(self) -> int:
        """Outputs queued but not yet written (delayed or split frames)."""
        with self._cond:
            return sum(len(q) for q in self._queues.values())

    @property
    def stats(self) -> ProxyStats:
        return self.engine.stats

    def elapsed_ms(self) -> int:
        return self.engine.elapsed(self._clock.now_ms())

    def summary(self) -> list[str]:
        """The engine's summary plus what the I/O side could not deliver."""
        with self._cond:
            lines = self.engine.stats.summary(self.elapsed_ms())
            for direction in Direction:
                if self.bytes_unsent[direction]:
                    lines.append(
                        f"  {direction}: {self.bytes_unsent[direction]} bytes not delivered "
                        "(side lost, or still delayed at stop)"
                    )
        return lines

    def close(self) -> None:
        """Stop, then close both links (their peers see the link closed)."""
        self.stop()
        for link in self._links.values():
            link.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- threads ------------------------------------------------------------------------

    def _reader(self, source: str, target: str, direction: Direction) -> None:
        link = self._links[source]
        while not self._stop.is_set():
            try:
                data = link.read(READ_TIMEOUT_S)
            except LinkClosedError as error:
                if not self._recover(source, error):
                    return
                continue
            if not data:
                continue
            # A write to this side still in progress ends, with its Sent event, first: bytes
            # this side sends in answer to it are then always reported after it, so listeners
            # (a capture, the conformance monitor) see cause before effect.
            with self._write_locks[direction.reverse], self._cond:
                now = self._clock.now_ms()
                outputs = self.engine.receive(direction, data, now)
                self._enqueue(outputs)
                if self.engine.next_timer_ms() is not None or any(o.due_ms > now for o in outputs):
                    self._cond.notify_all()
            for out_direction in {o.direction for o in outputs}:
                self._drain(out_direction)

    def _timer(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                now = self._clock.now_ms()
                timer = self.engine.next_timer_ms()
                if timer is not None and timer <= now:
                    self._enqueue(self.engine.handle_timer(now))
                    timer = self.engine.next_timer_ms()
                wakes = [q[0].due_ms for q in self._queues.values() if q]
                if timer is not None:
                    wakes.append(timer)
                next_wake = min(wakes) if wakes else None
                if next_wake is None or next_wake > now:
                    # No work due: sleep until the next due time or until a reader adds
                    # some. Waking early is harmless; the loop re-checks.
                    timeout_s = (
                        None
                        if next_wake is None
                        else self._clock.real_ns_until(next_wake) / (1000 * NS_PER_MS)
                    )
                    self._cond.wait(timeout_s)
                    continue
            for direction in Direction:
                self._drain(direction)

    def _enqueue(self, outputs: Iterable[Output]) -> None:
        """Queue outputs in engine order (the caller holds ``_cond``)."""
        for output in outputs:
            self._queues[output.direction].append(output)

    def _drain(self, direction: Direction) -> None:
        """Write the due head of ``direction``'s queue, in order, as one write."""
        target = self._links["b" if direction is Direction.A2B else "a"]
        with self._write_locks[direction]:
            while True:
                with self._cond:
                    queue = self._queues[direction]
                    now = self._clock.now_ms()
                    chunks: list[bytes] = []
                    while queue and queue[0].due_ms <= now:
                        chunks.append(queue.popleft().data)
                    if not chunks:
                        return
                data = b"".join(chunks)
                try:
                    target.write(data)
                except LinkClosedError as error:
                    with self._cond:
                        self.bytes_unsent[direction] += len(data)
                    if not self._write_failing[direction]:
                        self._write_failing[direction] = True
                        self._log(f"{direction}: cannot write, dropping bytes: {error}")
                    continue
                self._write_failing[direction] = False
                with self._cond:
                    self.bytes_written[direction] += len(data)
                    self.engine.emit(Sent(self.engine.elapsed(now), direction, data))

    def _recover(self, side: str, error: LinkClosedError) -> bool:
        """A read failed: reopen the side if it can be, else stop. True to keep reading."""
        link = self._links[side]
        reopen: Callable[[], None] | None = getattr(link, "reopen", None)
        if reopen is None:
            self.error = error
            self._log(f"{side}: {error}; stopping")
            self._stop.set()
            with self._cond:
                self._cond.notify_all()
            return False
        self._log(f"{side}: {error}; reopening every {REOPEN_INTERVAL_S:g}s")
        while not self._stop.wait(REOPEN_INTERVAL_S):
            try:
                reopen()
            except LinkOpenError:
                continue
            self._log(f"{side}: {link.name} is back")
            return True
        return False


def memory_proxy(
    faults: Sequence[FaultSpec] = (),
    *,
    seed: int = 0,
    idle_ms: int = DEFAULT_IDLE_MS,
    listeners: Iterable[Listener] = (),
) -> tuple[MemoryLink, MemoryLink, FaultProxy]:
    """An in-process proxy between two in-memory links, not yet started.

    Returns ``(a_end, b_end, proxy)``: give ``a_end`` to one peer (say, the programmer) and
    ``b_end`` to the other (the emulator's serve loop)::

        programmer_link, pump_link, proxy = memory_proxy([FaultSpec.make("drop", Rate(0.05))])
        with proxy:
            ...
    """
    a_outer, a_inner = memory_pair("proxy-a")
    b_inner, b_outer = memory_pair("proxy-b")
    proxy = FaultProxy(a_inner, b_inner, faults, seed=seed, idle_ms=idle_ms, listeners=listeners)
    return a_outer, b_outer, proxy

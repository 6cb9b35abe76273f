"""A programmer and an emulated pump joined in one thread, on a manual clock.

``TwoPeer`` is a small discrete-event simulation. Bytes written by either side travel
through a ``LinkModel`` that may drop, duplicate, delay or corrupt them, and arrive when
they are due. The clock jumps straight to the next thing that happens: a delivery, a
programmer timeout, a pump event. Months of pump time and thousands of commands run in
seconds, with no threads and no sleeps, and one seed always gives the same run. This is
how the exactly-once property (C1) is tested over random link misbehaviour.

It is shipped product, not a test-only helper (docs/architecture.md principle 9): a CI pipeline
can drive its own programmer logic against the emulated pump in-process the same way.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from hil.programmer.core import ProgrammerCore, Result
from protocol.messages import Message

TO_PUMP = "programmer->pump"
TO_PROGRAMMER = "pump->programmer"


@dataclass(frozen=True, slots=True)
class Delivery:
    """Bytes that a link delivers ``delay_ms`` after they were written."""

    delay_ms: int
    data: bytes


class LinkModel(Protocol):
    """Decides what becomes of each chunk written to the link."""

    def carry(self, direction: str, data: bytes, now_ms: int) -> list[Delivery]: ...


@dataclass(frozen=True, slots=True)
class PerfectLink:
    """Every chunk arrives intact after a fixed latency."""

    latency_ms: int = 1

    def carry(self, direction: str, data: bytes, now_ms: int) -> list[Delivery]:
        return [Delivery(self.latency_ms, data)]


@dataclass(slots=True)
class ScriptedLink:
    """A link whose fate for each chunk is chosen by a function: for property tests.

    ``fate(direction, index, data)`` returns the deliveries for the ``index``-th chunk
    written in that direction (an empty list drops it).
    """

    fate: Callable[[str, int, bytes], list[Delivery]]
    counts: dict[str, int] = field(default_factory=dict)

    def carry(self, direction: str, data: bytes, now_ms: int) -> list[Delivery]:
        index = self.counts.get(direction, 0)
        self.counts[direction] = index + 1
        return self.fate(direction, index, data)


@dataclass(slots=True)
class LossyLink:
    """A noisy serial line: each chunk written is dropped, damaged (one bit flipped) or
    duplicated with the given probabilities, from a seeded generator (one seed, one run).

    A duplicate arrives ``latency_ms`` to ``max_duplicate_delay_ms`` after the original, so
    late copies of handshake frames and requests reach the peer after newer frames: the
    link damage that docs/security.md section 5 says must never fail an opening.
    """

    drop: float = 0.1
    corrupt: float = 0.1
    duplicate: float = 0.1
    seed: int = 0
    latency_ms: int = 1
    max_duplicate_delay_ms: int = 3_000
    rng: random.Random = field(init=False)
    counts: dict[str, int] = field(default_factory=dict)
    """How many chunks met each fate: ``dropped``, ``corrupted``, ``duplicated``."""

    def __post_init__(self) -> None:
        for name in ("drop", "corrupt", "duplicate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability 0..1, got {value!r}")
        self.rng = random.Random(self.seed)  # noqa: S311 - a seeded simulation, not crypto

    def carry(self, direction: str, data: bytes, now_ms: int) -> list[Delivery]:
        rng = self.rng
        if rng.random() < self.drop:
            self._count("dropped")
            return []
        if data and rng.random() < self.corrupt:
            self._count("corrupted")
            bit = rng.randrange(len(data) * 8)
            damaged = bytearray(data)
            damaged[bit // 8] ^= 1 << (bit % 8)
            data = bytes(damaged)
        out = [Delivery(self.latency_ms, data)]
        if rng.random() < self.duplicate:
            self._count("duplicated")
            delay = rng.randint(self.latency_ms, max(self.latency_ms, self.max_duplicate_delay_ms))
            out.append(Delivery(delay, data))
        return out

    def _count(self, fate: str) -> None:
        self.counts[fate] = self.counts.get(fate, 0) + 1


class StalledError(RuntimeError):
    """The simulation reached its time limit with work still pending (a pumpemu bug or an
    impossible link: the caller's bound, not the pump's)."""


class TwoPeer:
    """Drives a ``ProgrammerCore`` against a ``PumpDevice`` over a ``LinkModel``."""

    def __init__(
        self,
        device: PumpDevice,
        programmer: ProgrammerCore,
        clock: ManualClock,
        link: LinkModel | None = None,
    ) -> None:
        if clock.now_ms() != device.now_ms:
            raise ValueError("the clock and the pump must start at the same time")
        self.device = device
        self.programmer = programmer
        self.clock = clock
        self.link: LinkModel = link or PerfectLink()
        self._in_flight: list[tuple[int, int, str, bytes]] = []
        self._order = itertools.count()

    def request(self, message: Message, *, limit_ms: int = 3_600_000) -> Result:
        """Submit one request and run until the programmer resolves it."""
        self.programmer.submit(message, self.clock.now_ms())
        deadline = self.clock.now_ms() + limit_ms
        while True:
            self._flush()
            results = self.programmer.results()
            if results:
                return results[-1]
            if not self._step(deadline):
                raise StalledError(f"{type(message).__name__} unresolved after {limit_ms} ms")

    def run_until(self, time_ms: int) -> None:
        """Let time pass to ``time_ms``, delivering whatever is in flight on the way."""
        while self._step(time_ms):
            self._flush()
        self.clock.set(max(time_ms, self.clock.now_ms()))
        self.device.handle_timer(self.clock.now_ms())

    def close(self, *, limit_ms: int = 600_000) -> None:
        """Close the programmer's session and run until it has finished closing."""
        self.programmer.close(self.clock.now_ms())
        deadline = self.clock.now_ms() + limit_ms
        while not self.programmer.idle:
            self._flush()
            if not self._step(deadline):
                break
        self.programmer.results()

    # -- the event loop --

    def _flush(self) -> None:
        now = self.clock.now_ms()
        for direction, data in (
            (TO_PUMP, self.programmer.data_to_send()),
            (TO_PROGRAMMER, self.device.data_to_send()),
        ):
            if data:
                for delivery in self.link.carry(direction, data, now):
                    due = now + max(delivery.delay_ms, 0)
                    heapq.heappush(
                        self._in_flight, (due, next(self._order), direction, delivery.data)
                    )

    def _step(self, limit_ms: int) -> bool:
        """Advance to the next event at or before ``limit_ms``; False if there is none."""
        times = [self.programmer.get_timer(), self.device.get_timer()]
        if self._in_flight:
            times.append(self._in_flight[0][0])
        due = min((t for t in times if t is not None), default=None)
        if due is None or due > limit_ms:
            return False
        now = max(due, self.clock.now_ms())
        self.clock.set(now)
        while self._in_flight and self._in_flight[0][0] <= now:
            _, _, direction, data = heapq.heappop(self._in_flight)
            if direction == TO_PUMP:
                self.device.receive_data(data, now)
            else:
                self.programmer.receive_data(data, now)
        timer = self.device.get_timer()
        if timer is not None and timer <= now:
            self.device.handle_timer(now)
        timer = self.programmer.get_timer()
        if timer is not None and timer <= now:
            self.programmer.handle_timer(now)
        return True

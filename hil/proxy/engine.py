"""The fault-injection core: bytes in, scheduled bytes out. No I/O, no clock, no threads.

``ProxyEngine.receive(direction, data, now_ms)`` takes the bytes one side sent, frames them
(protocol/framer.py), decides each whole frame's faults and returns ``Output`` values: the
bytes to write to the other side and the time (``due_ms``) to write them. The runner
(runner.py) does the reading, the writing and the waiting. Everything here depends only on
the seed and on the (direction, bytes, now) calls, so tests replay exact outcomes.

Rules (docs/proxy.md is the user's version):

- **Per frame.** Faults hit whole frames. Frames are numbered from 1 per direction, in
  arrival order; ``@N`` means the Nth frame of a direction.
- **Noise passes through unchanged.** Bytes the framer has ruled out of any frame are
  forwarded as soon as that is known, in stream order. Bytes that may still be the start of
  a frame are held; if the side goes quiet for ``idle_ms`` while holding some, the timer
  (``next_timer_ms``/``handle_timer``) ends the candidate and forwards what it held.
- **Each direction is a FIFO, like a wire.** An output is never due before an earlier
  output of its direction, so a delayed or split frame holds back what follows it, and with
  no drop, truncate, corrupt or junk the bytes out equal the bytes in, whatever the timing.
- **Random draws are per direction** (``random.Random`` streams derived from the seed), so
  the faults on a->b frames depend only on the a->b traffic and not on how replies happened
  to interleave with it. Each rate fault draws once per frame, hit or not, and the shaping
  draws (bit positions, cut points, junk) come from a separate stream, so which frames a
  fault hits depends only on the seed, the fault list and the frame count.
- **A disconnect** cuts both directions for its duration, starting with the frame that
  triggered it: bytes arriving in the cut are dropped and frames completed in it are counted
  as lost. Bytes that arrived before the cut but were still held as a possible frame start
  are forwarded (a real wire had delivered them). Outputs already scheduled still go out.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from hil.proxy.faults import (
    Direction,
    FaultKind,
    FaultSpec,
    Nth,
    Rate,
    Window,
)
from protocol.framer import FrameBytes, Framer

__all__ = [
    "DEFAULT_IDLE_MS",
    "DirectionStats",
    "FaultApplied",
    "FrameLost",
    "Listener",
    "Output",
    "ProxyEngine",
    "ProxyEvent",
    "ProxyStats",
    "Received",
    "Sent",
]

DEFAULT_IDLE_MS = 100
"""Quiet time after which held bytes are no longer waited on as the start of a frame.

Bytes of one frame arrive back to back (a USB serial adapter batches them within ~16 ms);
a longer silence mid-frame means the rest is not coming.
"""

MAX_IDLE_MS = 60_000
"""The longest ``idle_ms`` (proxy --idle-ms): a minute of holding bytes as a possible frame
start is already far beyond any link's gap inside a frame."""


@dataclass(frozen=True, slots=True)
class Output:
    """Bytes to write in ``direction`` (to the side it points to) at ``due_ms``."""

    due_ms: int
    direction: Direction
    data: bytes


# -- events for listeners (the stderr log, a capture writer) -----------------------------


@dataclass(frozen=True, slots=True)
class Received:
    """``data`` arrived in ``direction`` (read from its source side)."""

    elapsed_ms: int
    direction: Direction
    data: bytes


@dataclass(frozen=True, slots=True)
class Sent:
    """``data`` was written in ``direction``. Emitted by the runner, which does the writing."""

    elapsed_ms: int
    direction: Direction
    data: bytes


@dataclass(frozen=True, slots=True)
class FaultApplied:
    """A fault was applied to frame ``frame`` of ``direction``.

    ``detail`` is what a person reads ("flipped bits 13, 97"); ``info`` holds the same facts
    for a machine (bit positions, cut points, lengths, ms).
    """

    elapsed_ms: int
    direction: Direction
    frame: int
    kind: FaultKind
    detail: str
    info: tuple[tuple[str, int | tuple[int, ...]], ...] = ()
    spec: FaultSpec | None = None

    def describe(self) -> str:
        """One log line: time, direction, frame number, fault."""
        text = f"t={self.elapsed_ms}ms {self.direction} frame {self.frame}: {self.kind}"
        return f"{text} ({self.detail})" if self.detail else text


@dataclass(frozen=True, slots=True)
class FrameLost:
    """Frame ``frame`` of ``direction`` completed during a disconnect and was dropped."""

    elapsed_ms: int
    direction: Direction
    frame: int
    length: int

    def describe(self) -> str:
        return (
            f"t={self.elapsed_ms}ms {self.direction} frame {self.frame}: "
            f"lost in disconnect ({self.length} bytes)"
        )


ProxyEvent = Received | Sent | FaultApplied | FrameLost
Listener = Callable[[ProxyEvent], None]


@dataclass(slots=True)
class DirectionStats:
    """Counters for one direction."""

    bytes_in: int = 0
    bytes_out: int = 0
    """Bytes handed out in outputs (the runner counts what it actually wrote separately)."""
    frames_in: int = 0
    frames_out: int = 0
    """Frames forwarded in some form (a duplicate counts once)."""
    noise_bytes: int = 0
    """Non-frame bytes forwarded unchanged."""
    frames_lost: int = 0
    """Frames completed during a disconnect."""
    bytes_cut: int = 0
    """Bytes that arrived during a disconnect, or were held when one began on this side."""


@dataclass(slots=True)
class ProxyStats:
    """What the engine has seen and done."""

    directions: dict[Direction, DirectionStats] = field(
        default_factory=lambda: {d: DirectionStats() for d in Direction}
    )
    faults: Counter[FaultKind] = field(default_factory=Counter)

    def summary(self, elapsed_ms: int | None = None) -> list[str]:
        """Human lines: frames per direction, faults by kind."""
        head = "summary" if elapsed_ms is None else f"summary after {elapsed_ms / 1000:.1f}s"
        lines = [head + ":"]
        for direction, s in self.directions.items():
            line = (
                f"  {direction}: {s.frames_in} frames in, {s.frames_out} forwarded, "
                f"{s.noise_bytes} noise bytes, {s.bytes_in} bytes in, {s.bytes_out} bytes out"
            )
            if s.frames_lost or s.bytes_cut:
                line += f", {s.frames_lost} frames / {s.bytes_cut} bytes lost in disconnects"
            lines.append(line)
        if self.faults:
            total = sum(self.faults.values())
            kinds = ", ".join(f"{k} {self.faults[k]}" for k in FaultKind if self.faults[k])
            lines.append(f"  faults: {kinds} (total {total})")
        else:
            lines.append("  faults: none")
        return lines


class _Side:
    """Framing state of one direction."""

    __slots__ = (
        "framer",
        "frames",
        "held_in_cut",
        "last_rx_ms",
        "raw",
        "raw_base",
        "rng",
        "shape_rng",
        "tail",
    )

    def __init__(self, seed: int) -> None:
        self.framer = Framer()
        self.raw = bytearray()
        """Stream bytes from ``raw_base`` on that have not been forwarded or dropped yet."""
        self.raw_base = 0
        self.frames = 0
        self.last_rx_ms = 0
        self.tail = 0
        """Due time of the last output: later outputs are never due earlier (FIFO)."""
        self.held_in_cut = False
        """The framer holds bytes that arrived during a disconnect."""
        # Fault injection needs reproducible draws, not secrecy. Triggers and shapes draw
        # from separate streams, so which frames a fault hits does not change when another
        # fault's parameters (bits flipped, pieces) do.
        self.rng = random.Random(seed)  # noqa: S311
        self.shape_rng = random.Random(seed + 1)  # noqa: S311

    def reset_framer(self) -> int:
        """Forget held bytes; return how many were dropped."""
        dropped = len(self.raw)
        self.framer = Framer()
        self.raw.clear()
        self.raw_base = 0
        self.held_in_cut = False
        return dropped

    def take(self, upto: int) -> bytes:
        """Remove and return the stream bytes [raw_base, upto)."""
        count = upto - self.raw_base
        data = bytes(self.raw[:count])
        del self.raw[:count]
        self.raw_base = upto
        return data


class ProxyEngine:
    """Decides and schedules what a link-fault proxy sends; see the module docstring.

    ``faults`` are applied in ``FaultKind`` order when several hit one frame; among faults
    of the same kind that hit one frame, the first listed applies. ``start_ms`` is the
    ``now`` at which the proxy started: windows and logged times count from it.
    """

    def __init__(
        self,
        faults: Sequence[FaultSpec] = (),
        *,
        seed: int = 0,
        start_ms: int = 0,
        idle_ms: int = DEFAULT_IDLE_MS,
        listeners: Iterable[Listener] = (),
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if isinstance(idle_ms, bool) or not isinstance(idle_ms, int) or idle_ms < 1:
            raise ValueError(f"idle_ms must be an int >= 1, got {idle_ms!r}")
        self._faults = tuple(faults)
        self._seed = seed
        self._start_ms = start_ms
        self._idle_ms = idle_ms
        self._listeners: list[Listener] = list(listeners)
        # One stream of draws per direction (module docstring); an int seed keeps them
        # reproducible across Python runs, unlike hash-seeded str/bytes seeds.
        self._sides = {d: _Side(seed * 4 + index * 2) for index, d in enumerate(Direction)}
        self._by_direction = {
            d: tuple(f for f in self._faults if f.direction.includes(d)) for d in Direction
        }
        self._cut_until: int | None = None
        self._now = start_ms
        self.stats = ProxyStats()

    # -- configuration and observers ----------------------------------------------------

    @property
    def faults(self) -> tuple[FaultSpec, ...]:
        return self._faults

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def start_ms(self) -> int:
        return self._start_ms

    @property
    def has_timed_faults(self) -> bool:
        """True if some fault schedules output later than its input (delay, split)."""
        return any(f.kind in (FaultKind.DELAY, FaultKind.SPLIT) for f in self._faults)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every ``ProxyEvent`` from now on (under the caller's lock)."""
        self._listeners.append(listener)

    def emit(self, event: ProxyEvent) -> None:
        """Hand ``event`` to every listener (the runner uses this for ``Sent``)."""
        for listener in self._listeners:
            listener(event)

    def elapsed(self, now_ms: int) -> int:
        return now_ms - self._start_ms

    def disconnected(self, now_ms: int) -> bool:
        return self._cut_until is not None and now_ms < self._cut_until

    # -- input --------------------------------------------------------------------------

    def receive(self, direction: Direction, data: bytes, now_ms: int) -> list[Output]:
        """Bytes arrived in ``direction`` at ``now_ms``; return what to send and when.

        ``now_ms`` must not go backwards between calls (a runner reads a monotonic clock).
        """
        self._advance(now_ms)
        out: list[Output] = []
        if not data:
            return out
        data = bytes(data)
        side = self._sides[direction]
        side.last_rx_ms = now_ms
        self.stats.directions[direction].bytes_in += len(data)
        self.emit(Received(self.elapsed(now_ms), direction, data))
        self._end_cut_leftovers(direction, out)
        if self.disconnected(now_ms):
            side.held_in_cut = True
        side.raw += data
        self._process(direction, side.framer.feed(data), now_ms, out)
        return out

    def next_timer_ms(self) -> int | None:
        """When ``handle_timer`` should next be called, or None if nothing is waiting."""
        times = [
            side.last_rx_ms + self._idle_ms for side in self._sides.values() if side.framer.buffered
        ]
        return min(times) if times else None

    def handle_timer(self, now_ms: int) -> list[Output]:
        """End candidates held longer than ``idle_ms`` of silence; forward what they held."""
        self._advance(now_ms)
        out: list[Output] = []
        for direction, side in self._sides.items():
            if side.framer.buffered and now_ms >= side.last_rx_ms + self._idle_ms:
                self._end_cut_leftovers(direction, out)
                self._process(direction, side.framer.finish(), now_ms, out)
        return out

    def flush(self, now_ms: int) -> list[Output]:
        """End of both streams: end every held candidate now, whatever the idle time."""
        self._advance(now_ms)
        out: list[Output] = []
        for direction, side in self._sides.items():
            self._end_cut_leftovers(direction, out)
            self._process(direction, side.framer.finish(), now_ms, out)
        return out

    # -- internals ----------------------------------------------------------------------

    def _advance(self, now_ms: int) -> None:
        if now_ms < self._now:
            raise ValueError(f"time went backwards: now_ms {now_ms} < {self._now}")
        self._now = now_ms
        if self._cut_until is not None and now_ms >= self._cut_until:
            self._cut_until = None

    def _end_cut_leftovers(self, direction: Direction, out: list[Output]) -> None:
        """After a cut, bytes held from during it were never delivered: drop them."""
        side = self._sides[direction]
        if side.held_in_cut and not self.disconnected(self._now):
            self.stats.directions[direction].bytes_cut += side.reset_framer()

    def _process(
        self,
        direction: Direction,
        events: Sequence[object],
        now: int,
        out: list[Output],
    ) -> None:
        side = self._sides[direction]
        stats = self.stats.directions[direction]
        framer = side.framer
        for event in events:
            if not isinstance(event, FrameBytes):
                continue  # Noise: its bytes are the gaps between frames, handled below.
            side.frames += 1
            stats.frames_in += 1
            if side.framer is not framer:
                # A frame earlier in this batch started a disconnect and the framer was
                # reset: this one arrived in the cut, and its bytes are already counted.
                stats.frames_lost += 1
                self.emit(FrameLost(self.elapsed(now), direction, side.frames, len(event.data)))
                continue
            if self.disconnected(now):
                self._drop_cut(direction, event.offset + len(event.data))
                stats.frames_lost += 1
                self.emit(FrameLost(self.elapsed(now), direction, side.frames, len(event.data)))
                continue
            self._forward_noise(direction, event.offset, now, out)
            side.take(event.offset + len(event.data))
            self._frame(direction, side.frames, event.data, now, out)
        if side.framer is not framer:
            return
        # Everything the framer let go of and did not call a frame is noise.
        settled = side.framer.position - side.framer.buffered
        if self.disconnected(now):
            self._drop_cut(direction, max(settled, side.raw_base))
        else:
            self._forward_noise(direction, settled, now, out)

    def _drop_cut(self, direction: Direction, upto: int) -> None:
        side = self._sides[direction]
        if upto > side.raw_base:
            self.stats.directions[direction].bytes_cut += len(side.take(upto))

    def _forward_noise(self, direction: Direction, upto: int, now: int, out: list[Output]) -> None:
        side = self._sides[direction]
        if upto <= side.raw_base:
            return
        noise = side.take(upto)
        self.stats.directions[direction].noise_bytes += len(noise)
        self._schedule(direction, now, noise, out)

    def _schedule(self, direction: Direction, due: int, data: bytes, out: list[Output]) -> int:
        side = self._sides[direction]
        due = max(due, side.tail)
        side.tail = due
        self.stats.directions[direction].bytes_out += len(data)
        out.append(Output(due, direction, data))
        return due

    def _fires(self, spec: FaultSpec, frame: int, now: int, rng: random.Random) -> bool:
        trigger = spec.trigger
        if isinstance(trigger, Rate):
            # One draw per rate fault per frame, fired or not, so the draws (and so the
            # outcome) for one fault do not depend on what the others did.
            return rng.random() < trigger.probability
        if isinstance(trigger, Nth):
            return frame == trigger.n
        assert isinstance(trigger, Window)
        return trigger.contains(self.elapsed(now))

    def _frame(
        self, direction: Direction, number: int, data: bytes, now: int, out: list[Output]
    ) -> None:
        side = self._sides[direction]
        rng = side.rng
        stats = self.stats.directions[direction]
        chosen: dict[FaultKind, FaultSpec] = {}
        for spec in self._by_direction[direction]:
            if self._fires(spec, number, now, rng) and spec.kind not in chosen:
                chosen[spec.kind] = spec
        if not chosen:
            stats.frames_out += 1
            self._schedule(direction, now, data, out)
            return

        def record(kind: FaultKind, detail: str, **info: int | tuple[int, ...]) -> None:
            self.stats.faults[kind] += 1
            self.emit(
                FaultApplied(
                    self.elapsed(now),
                    direction,
                    number,
                    kind,
                    detail,
                    tuple(info.items()),
                    chosen[kind],
                )
            )

        if FaultKind.DISCONNECT in chosen:
            span = chosen[FaultKind.DISCONNECT].param("for")
            self._cut_until = now + span
            record(
                FaultKind.DISCONNECT,
                f"both ways for {span}ms, until t={self.elapsed(now) + span}ms; frame dropped",
                for_ms=span,
            )
            self._start_cut(direction, now, out)
            return
        if FaultKind.DROP in chosen:
            record(FaultKind.DROP, f"{len(data)} bytes", length=len(data))
            return
        stats.frames_out += 1
        self._shape(direction, data, chosen=chosen, now=now, record=record, out=out)

    def _shape(
        self,
        direction: Direction,
        data: bytes,
        *,
        chosen: dict[FaultKind, FaultSpec],
        now: int,
        record: Callable[..., None],
        out: list[Output],
    ) -> None:
        """Apply the faults that change what is sent and when, and schedule it."""
        rng = self._sides[direction].shape_rng
        frame = bytearray(data)
        if FaultKind.TRUNCATE in chosen:
            keep = rng.randint(1, len(frame) - 1)
            del frame[keep:]
            record(FaultKind.TRUNCATE, f"kept {keep} of {len(data)} bytes", kept=keep)
        if FaultKind.CORRUPT in chosen:
            count = min(chosen[FaultKind.CORRUPT].param("bits"), len(frame) * 8)
            bits = tuple(sorted(rng.sample(range(len(frame) * 8), count)))
            for bit in bits:
                # Bit k is bit (k % 8), least significant first, of byte k // 8.
                frame[bit // 8] ^= 1 << (bit % 8)
            record(FaultKind.CORRUPT, f"flipped bit {', '.join(map(str, bits))}", bits=bits)
        copies = 1
        if FaultKind.DUPLICATE in chosen:
            copies = 2
            record(FaultKind.DUPLICATE, "sent twice back to back")
        junk = b""
        if FaultKind.JUNK in chosen:
            junk = rng.randbytes(chosen[FaultKind.JUNK].param("bytes"))
            record(
                FaultKind.JUNK, f"{len(junk)} random bytes first: {junk.hex()}", length=len(junk)
            )
        pieces: list[bytes] = [bytes(frame)]
        gap = 0
        if FaultKind.SPLIT in chosen:
            spec = chosen[FaultKind.SPLIT]
            gap = spec.param("gap")
            count = min(spec.param("pieces"), len(frame))
            cuts = tuple(sorted(rng.sample(range(1, len(frame)), count - 1)))
            bounds = (0, *cuts, len(frame))
            pieces = [bytes(frame[lo:hi]) for lo, hi in itertools.pairwise(bounds)]
            record(
                FaultKind.SPLIT,
                f"{len(pieces)} pieces cut at byte {', '.join(map(str, cuts)) or '-'}, "
                f"{gap}ms apart",
                cuts=cuts,
                gap_ms=gap,
            )
        due = now
        if FaultKind.DELAY in chosen:
            delay = chosen[FaultKind.DELAY].param("by")
            due = now + delay
            record(FaultKind.DELAY, f"by {delay}ms", by_ms=delay)

        if junk:
            due = self._schedule(direction, due, junk, out)
        for _ in range(copies):
            for index, piece in enumerate(pieces):
                # The gap separates the pieces of one copy; a duplicate follows at once.
                step = gap if index > 0 else 0
                due = self._schedule(direction, due + step, piece, out)

    def _start_cut(self, direction: Direction, now: int, out: list[Output]) -> None:
        """The frame that triggered the cut is gone; bytes after it arrived in the cut."""
        side = self._sides[direction]
        stats = self.stats.directions[direction]
        # The rest of this side's bytes arrived with the trigger, i.e. in the cut.
        stats.bytes_cut += side.reset_framer()
        # The other side's held bytes arrived before the cut: a wire had delivered them.
        other = direction.reverse
        other_side = self._sides[other]
        if other_side.raw:
            noise = other_side.take(other_side.raw_base + len(other_side.raw))
            other_side.reset_framer()
            self.stats.directions[other].noise_bytes += len(noise)
            self._schedule(other, now, noise, out)

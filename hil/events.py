"""The event hub behind the control API's ``subscribe`` op (docs/serve.md, "subscribe").

The serve loop and the control operations ``publish`` events; each subscriber has its own
bounded queue and reads it from its own connection thread. Publishing never blocks and
never waits for a subscriber: an event that finds a subscriber's queue full is dropped for
that subscriber alone, and counted. Every event a subscriber was offered takes the next
number of its own sequence (``seq``, from 1), delivered or not, so a gap is visible; the
first read after a loss is a ``dropped`` notice naming how many and which numbers.

Event bodies are built once per publish and shared by every subscriber (never mutated
after); a subscriber's line is encoded in its own thread, off the pump's path.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_QUEUE",
    "EVENT_TYPES",
    "MAX_QUEUE",
    "MIN_QUEUE",
    "EventHub",
    "Subscription",
    "parse_subscribe",
]

EVENT_TYPES = (
    "frame",
    "noise",
    "log",
    "session",
    "alarm",
    "state",
    "fault",
    "time",
    "conformance",
    "status",
)
"""What a subscriber may ask for (docs/serve.md lists each one's fields)."""

DEFAULT_QUEUE = 1024
"""Events held for one subscriber that has not read them yet, unless it asks otherwise."""
MIN_QUEUE = 16
MAX_QUEUE = 65_536
"""Bounds on ``queue``: a subscriber cannot make serve hold unbounded memory for it."""


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    """A checked ``subscribe`` request: which event types, and how many to hold."""

    events: frozenset[str]
    queue: int


def parse_subscribe(request: Mapping[str, Any]) -> SubscribeRequest:
    """Check a ``subscribe`` request; ``ValueError`` with a message for the client."""
    unknown = sorted(set(request) - {"op", "events", "queue"})
    if unknown:
        raise ValueError(f"subscribe takes no field {unknown[0]!r} (allowed: events, queue)")
    events = request.get("events", list(EVENT_TYPES))
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise ValueError(
            f"'events' must be a non-empty list of event types: {', '.join(EVENT_TYPES)}"
        )
    bad = [e for e in events if e not in EVENT_TYPES]
    if bad:
        raise ValueError(f"unknown event type {bad[0]!r}; known: {', '.join(EVENT_TYPES)}")
    queue = request.get("queue", DEFAULT_QUEUE)
    if isinstance(queue, bool) or not isinstance(queue, int) or not MIN_QUEUE <= queue <= MAX_QUEUE:
        raise ValueError(f"'queue' must be an integer {MIN_QUEUE}..{MAX_QUEUE}, got {queue!r}")
    return SubscribeRequest(frozenset(events), queue)


class Subscription:
    """One subscriber's queue. ``offer`` from any publisher (never blocks), ``get`` from the
    subscriber's own thread. Closed by the subscriber (``cancel``) or by serve (``end``)."""

    def __init__(self, hub: EventHub, events: frozenset[str], capacity: int) -> None:
        self.events = events
        self.capacity = capacity
        self._hub = hub
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[dict[str, Any]] = deque()
        self._next_seq = 1
        self._lost_first = 0
        self._lost = 0
        self.dropped_total = 0
        """Events this subscriber has lost so far (its queue was full)."""
        self._end_reason: str | None = None

    @property
    def next_seq(self) -> int:
        """The number the next event offered will take."""
        with self._cond:
            return self._next_seq

    def offer(self, event: str, body: Mapping[str, Any]) -> None:
        """Queue one event, or drop and count it if the queue is full. Never blocks on the
        reader: the lock is only ever held for a few list operations."""
        with self._cond:
            if self._end_reason is not None:
                return
            seq = self._next_seq
            self._next_seq += 1
            if self._lost and len(self._queue) < self.capacity:
                self._queue.append(self._notice())
            if len(self._queue) >= self.capacity:
                if not self._lost:
                    self._lost_first = seq
                self._lost += 1
                self.dropped_total += 1
                return
            line = {"event": event, "seq": seq, **body}
            line["event"], line["seq"] = event, seq  # first, and never a body's own
            self._queue.append(line)
            self._cond.notify()

    def _notice(self) -> dict[str, Any]:
        """The ``dropped`` notice for the run of losses so far, which it resets (lock held)."""
        notice = {
            "event": "dropped",
            "count": self._lost,
            "first_seq": self._lost_first,
            "last_seq": self._lost_first + self._lost - 1,
        }
        self._lost = 0
        return notice

    def get(self, timeout_s: float) -> dict[str, Any] | None:
        """The next event, waiting at most ``timeout_s``; None if none came. After ``end``,
        what was queued, then one ``end`` event, then None for good."""
        with self._cond:
            if not self._queue and not self._lost and self._end_reason is None:
                self._cond.wait(timeout_s)
            if self._queue:
                return self._queue.popleft()
            if self._lost:
                return self._notice()
            if self._end_reason is not None and self._end_reason != "":
                reason, self._end_reason = self._end_reason, ""
                return {"event": "end", "reason": reason}
            return None

    @property
    def ended(self) -> bool:
        """``end`` was called and its ``end`` event has been read."""
        with self._cond:
            return self._end_reason == "" and not self._queue and not self._lost

    def end(self, reason: str) -> None:
        """Serve is stopping: no more events; ``get`` drains, then yields ``end``."""
        with self._cond:
            if self._end_reason is None:
                self._end_reason = reason
            self._cond.notify_all()
        self._hub.remove(self)

    def cancel(self) -> None:
        """The subscriber went away: forget it at once."""
        with self._cond:
            if self._end_reason is None:
                self._end_reason = ""
            self._queue.clear()
            self._lost = 0
            self._cond.notify_all()
        self._hub.remove(self)


class EventHub:
    """The subscribers of one served pump. ``wants(type)`` is one set lookup, so a serve
    loop without subscribers for a type builds nothing for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: tuple[Subscription, ...] = ()
        self._wanted: frozenset[str] = frozenset()
        self._closed: str | None = None

    def subscribe(self, events: Collection[str], capacity: int = DEFAULT_QUEUE) -> Subscription:
        """A new subscriber of ``events`` (names from ``EVENT_TYPES``)."""
        subscription = Subscription(self, frozenset(events), capacity)
        with self._lock:
            closed = self._closed
            if closed is None:
                self._subscribers = (*self._subscribers, subscription)
                self._rewant()
        if closed is not None:
            subscription.end(closed)  # outside the lock: end() takes it to remove
        return subscription

    def remove(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s is not subscription)
            self._rewant()

    def _rewant(self) -> None:
        self._wanted = frozenset().union(*(s.events for s in self._subscribers))

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def wants(self, event: str) -> bool:
        """Does any subscriber want ``event``? (No lock: a stale answer costs one event.)"""
        return event in self._wanted

    def publish(self, event: str, body: Mapping[str, Any]) -> None:
        """Offer ``body`` as an ``event`` to every subscriber of that type. Never blocks."""
        for subscription in self._subscribers:
            if event in subscription.events:
                subscription.offer(event, body)

    def close(self, reason: str) -> None:
        """End every subscription (serve is stopping); later subscribers end at once."""
        with self._lock:
            self._closed = reason
            subscribers = self._subscribers
        for subscription in subscribers:
            subscription.end(reason)

"""The bounded event log: sequence-numbered, time-stamped, oldest entries dropped first.

Memory stays bounded however long the pump runs (benchmarks/delivery.py checks it), while
``seq`` keeps counting for the pump's whole life, so a programmer can tell that entries were
dropped. Values must be non-negative (LogEntry's wire ranges); callers log magnitudes and
put a sign, where one matters, in ``detail``.

Two kinds of entry can be written as fast as someone presses a button, so each has a
*share* of the log's slots, a quarter by default (docs/protocol.md section 11.3):

- security entries (``SECURITY_KINDS``: what the session layer writes for refusals, which
  anyone in radio range can cause);
- refused patient boluses (PATIENT_BOLUS_REFUSED: a patient pressing the button in the
  lockout, or anyone holding the patient key).

An entry that would exceed its share pushes out the oldest entry *of that share*, never a
programming one, so however long a flood of both lasts the newest
``capacity - 2 * (capacity // 4)`` other entries stay. When the log is full for any other
reason the oldest entry of any kind goes, as before.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any

from protocol.device_state import SECURITY_KINDS, EventKind, LogEntry
from protocol.units import U16_MAX, U32_MAX, U64_MAX

__all__ = ["SECURITY_SHARE_DIVISOR", "EventLog"]

SECURITY_SHARE_DIVISOR = 4
"""Each share may hold at most 1/4 of the log (512 of a 2,048-entry log)."""

FLOOD_SHARES: tuple[frozenset[EventKind], ...] = (
    SECURITY_KINDS,
    frozenset({EventKind.PATIENT_BOLUS_REFUSED}),
)
"""The kinds that share a quarter of the log each; every other kind is "other"."""


_SHARE_OF: dict[EventKind, int] = {}
for _index, _kinds in enumerate(FLOOD_SHARES):
    for _kind in _kinds:
        _SHARE_OF.setdefault(_kind, _index)  # the first share naming a kind holds it
"""Each flood-share kind's share, looked up once per entry instead of scanning the shares."""

_Row = tuple[int, int, EventKind, int, int, int]
"""A held entry: LogEntry's fields in order (seq first, so rows sort by seq). The log
keeps rows and builds a LogEntry only for a reader: a frozen dataclass per entry written
was a tenth of a simulated year (benchmarks/delivery.py), and most entries are never read
before they are dropped."""


class EventLog:
    __slots__ = ("_capacity", "_held", "_next_seq", "_other", "_share_capacity", "_shares")

    def __init__(self, capacity: int, next_seq: int = 1) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._share_capacity = max(1, capacity // SECURITY_SHARE_DIVISOR)
        self._other: deque[_Row] = deque()
        self._shares: tuple[deque[_Row], ...] = tuple(deque() for _ in FLOOD_SHARES)
        self._next_seq = next_seq
        self._held = 0  # entries held over all queues (len)

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def security_capacity(self) -> int:
        """The most security entries the log holds at once (also the most refused patient
        boluses: each share is the same size)."""
        return self._share_capacity

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def append(
        self, time_ms: int, kind: EventKind, detail: int = 0, value_a: int = 0, value_b: int = 0
    ) -> int:
        """Record one event; return its sequence number. The values are checked as a
        LogEntry checks them (its wire ranges), when written."""
        seq = self._next_seq
        row = (seq, time_ms, kind, detail, value_a, value_b)
        if not (
            type(time_ms) is int and type(detail) is int
            and type(value_a) is int and type(value_b) is int
            and seq <= U32_MAX and 0 <= time_ms <= U64_MAX and 0 <= detail <= U16_MAX
            and 0 <= value_a <= U64_MAX and 0 <= value_b <= U64_MAX
        ):  # fmt: skip
            LogEntry(*row)  # the per-field checks, with their messages (or an int subclass)
        if kind in _SHARE_OF:
            self._keep(row)
        else:  # _keep for an entry of no flood share (nearly every one), inlined
            other = self._other
            if self._held < self._capacity:
                self._held += 1
            else:
                for queue in self._shares:
                    if queue:
                        self._drop_oldest()  # a share may hold the oldest entry
                        break
                else:
                    other.popleft()  # every share empty: the oldest is here
            other.append(row)
        self._next_seq = seq + 1
        return seq

    def _keep(self, entry: _Row) -> None:
        share = _SHARE_OF.get(entry[2])
        if share is not None:
            queue = self._shares[share]
            if len(queue) >= self._share_capacity:
                queue.popleft()  # the share is full: its own oldest entry goes
                queue.append(entry)
                return
        else:
            queue = self._other
        if self._held >= self._capacity:
            self._drop_oldest()
        else:
            self._held += 1  # counted as kept, not summed over the queues per entry
        queue.append(entry)

    def _drop_oldest(self) -> None:
        # Every append once the log is full: the queue whose head is oldest, found without
        # building a list (seqs are unique, so there is no tie).
        oldest = self._other
        for queue in self._shares:
            if queue and (not oldest or queue[0][0] < oldest[0][0]):
                oldest = queue
        oldest.popleft()

    def entries(self, since_seq: int = 0) -> tuple[LogEntry, ...]:
        """The retained entries with ``seq >= since_seq``, oldest first."""
        merged = heapq.merge(self._other, *self._shares)  # rows sort by seq (unique)
        return tuple(LogEntry(*row) for row in merged if row[0] >= since_seq)

    def oldest_seq(self) -> int | None:
        """The seq of the oldest entry held, None if the log is empty."""
        heads = [d[0][0] for d in (self._other, *self._shares) if d]
        return min(heads, default=None)

    def __len__(self) -> int:
        return self._held

    def to_json(self) -> dict[str, object]:
        return {
            "capacity": self.capacity,
            "next_seq": self._next_seq,
            "entries": [
                [seq, t, int(kind), detail, a, b]
                for seq, t, kind, detail, a, b in heapq.merge(self._other, *self._shares)
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EventLog:
        log = cls(int(data["capacity"]))
        log.restore(
            [
                LogEntry(seq, t, EventKind(kind), detail, a, b)
                for seq, t, kind, detail, a, b in data["entries"]
            ]
        )
        next_seq = int(data["next_seq"])
        if next_seq < log._next_seq:
            raise ValueError("next_seq is below the last entry's")
        log._next_seq = next_seq
        return log

    def restore(self, entries: list[LogEntry]) -> None:
        """Load entries (oldest first) into an empty log, e.g. from a snapshot. The share
        applies as it does when entries are written."""
        if len(self):
            raise ValueError("restore into an empty log only")
        for entry in entries:
            if entry.seq < self._next_seq:
                raise ValueError("log sequence numbers must strictly increase")
            self._keep(
                (entry.seq, entry.time_ms, entry.kind, entry.detail, entry.value_a, entry.value_b)
            )
            self._next_seq = entry.seq + 1

"""The bounded event log: sequence-numbered, time-stamped, oldest entries dropped first.

Memory stays bounded however long the pump runs (benchmarks/delivery.py checks it), while
``seq`` keeps counting for the pump's whole life, so a programmer can tell that entries were
dropped. Values must be non-negative (LogEntry's wire ranges); callers log magnitudes and
put a sign, where one matters, in ``detail``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from protocol.device_state import EventKind, LogEntry

__all__ = ["EventLog"]


class EventLog:
    __slots__ = ("_entries", "_next_seq")

    def __init__(self, capacity: int, next_seq: int = 1) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._entries: deque[LogEntry] = deque(maxlen=capacity)
        self._next_seq = next_seq

    @property
    def capacity(self) -> int:
        maxlen = self._entries.maxlen
        assert maxlen is not None
        return maxlen

    @property
    def next_seq(self) -> int:
        return self._next_seq

    def append(
        self, time_ms: int, kind: EventKind, detail: int = 0, value_a: int = 0, value_b: int = 0
    ) -> int:
        """Record one event; return its sequence number."""
        seq = self._next_seq
        self._entries.append(LogEntry(seq, time_ms, kind, detail, value_a, value_b))
        self._next_seq = seq + 1
        return seq

    def entries(self, since_seq: int = 0) -> tuple[LogEntry, ...]:
        """The retained entries with ``seq >= since_seq``, oldest first."""
        return tuple(e for e in self._entries if e.seq >= since_seq)

    def __len__(self) -> int:
        return len(self._entries)

    def to_json(self) -> dict[str, object]:
        return {
            "capacity": self.capacity,
            "next_seq": self._next_seq,
            "entries": [
                [e.seq, e.time_ms, int(e.kind), e.detail, e.value_a, e.value_b]
                for e in self._entries
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
        """Load entries (oldest first) into an empty log, e.g. from a snapshot."""
        if self._entries:
            raise ValueError("restore into an empty log only")
        for entry in entries:
            if entry.seq < self._next_seq:
                raise ValueError("log sequence numbers must strictly increase")
            self._entries.append(entry)
            self._next_seq = entry.seq + 1

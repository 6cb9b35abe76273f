"""Alarms: what the pump sounds, and what a programmer reads and acknowledges.

An alarm is active from the moment its condition is sensed until the condition clears (a
refill, a recovered motor, a cleared memory error). Acknowledging silences it but leaves it
active, so status keeps showing it. Severity comes from AlarmKind (critical: 3 s two-tone;
non-critical: 1 s single tone, docs/domain.md section 1).
"""

from __future__ import annotations

from protocol.device_state import AlarmKind, AlarmRecord, AlarmSeverity

__all__ = ["AlarmSet"]


class AlarmSet:
    __slots__ = ("_active",)

    def __init__(self, records: tuple[AlarmRecord, ...] = ()) -> None:
        self._active: dict[AlarmKind, AlarmRecord] = {r.kind: r for r in records}

    def raise_(self, kind: AlarmKind, since_ms: int) -> bool:
        """Activate an alarm raised at ``since_ms`` on the pump clock (the clock as it reads
        when the alarm is raised, like its ALARM_RAISED entry; never rewritten by a later
        SET_CLOCK). False if it was already active (it is not raised twice)."""
        if kind in self._active:
            return False
        self._active[kind] = AlarmRecord(kind, since_ms, acknowledged=False)
        return True

    def clear(self, kind: AlarmKind) -> bool:
        """The condition is gone; False if the alarm was not active."""
        return self._active.pop(kind, None) is not None

    def acknowledge(self, kind: AlarmKind) -> bool:
        """Silence an active alarm; False if it is not active."""
        record = self._active.get(kind)
        if record is None:
            return False
        self._active[kind] = AlarmRecord(kind, record.since_ms, acknowledged=True)
        return True

    def kinds(self) -> frozenset[AlarmKind]:
        """The kinds of the active alarms: what STATUS reports, without building records."""
        return frozenset(self._active)

    def is_active(self, kind: AlarmKind) -> bool:
        return kind in self._active

    def records(self) -> tuple[AlarmRecord, ...]:
        """Active alarms, critical first, then by kind: a stable order for status replies."""
        return tuple(sorted(self._active.values(), key=lambda r: (-r.kind.severity, r.kind)))

    def sounding(self) -> AlarmSeverity | None:
        """The tone the pump plays now: the most severe unacknowledged alarm, if any."""
        pending = [r.kind.severity for r in self._active.values() if not r.acknowledged]
        return max(pending, default=None)

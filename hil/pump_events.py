"""What a served pump publishes to the control API's subscribers (docs/serve.md, "subscribe").

``PumpEvents`` turns what ``PumpServer`` sees into events on its ``EventHub``: the bytes of
each direction, framed and decoded as a capture records them (docs/capture.md); the pump's
event-log entries, and the session and alarm changes among them; faults and time moved by
the control API; conformance violations as the monitor finds them; and a ``status`` of
belief beside truth whenever something a dashboard shows has changed.

It is called by the serve thread and the control threads, always under the device lock
except for the bytes the serve thread writes (``chunk`` for ``tx``), which only that thread
touches. Everything is skipped at the cost of one set lookup for a type nobody wants.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from emulator.device import PumpDevice
from hil import quantities as q
from hil.capture import fields_of, summarize_frame
from hil.events import EventHub
from hil.pump_text import describe_event, format_pump_time
from hil.truth_rows import compare_rows, truth_fields
from protocol.device_state import AlarmKind, AlarmSeverity, EventKind, LogEntry, Role
from protocol.framer import FrameBytes, Framer, Noise

__all__ = [
    "STATUS_EVERY_MS",
    "TONES",
    "PumpEvents",
    "alarm_tone",
    "clock_fields",
    "log_entry_json",
    "status_body",
]

STATUS_EVERY_MS = 1_000
"""How often (link time) the serve loop looks for a status change that no frame, log entry
or control operation announced: delivery moving the reservoir under a real-time clock."""

TONES = {
    AlarmSeverity.CRITICAL: "3 s two-tone",
    AlarmSeverity.NON_CRITICAL: "1 s single tone",
}
"""The tone each alarm severity sounds (docs/domain.md section 1, emulator/firmware/alarms.py)."""

_SESSION_KINDS = {EventKind.SESSION_OPENED: "opened", EventKind.SESSION_CLOSED: "closed"}
_ALARM_KINDS = {
    EventKind.ALARM_RAISED: "raised",
    EventKind.ALARM_ACKNOWLEDGED: "acknowledged",
    EventKind.ALARM_CLEARED: "cleared",
}


def alarm_tone(kind: AlarmKind) -> str:
    return TONES[kind.severity]


def log_entry_json(entry: LogEntry) -> dict[str, Any]:
    """An event-log entry as the ``log`` op returns it."""
    return {
        "seq": entry.seq,
        "time_ms": entry.time_ms,
        "kind": entry.kind.name,
        "detail": entry.detail,
        "value_a": entry.value_a,
        "value_b": entry.value_b,
    }


def clock_fields(pump_clock_ms: int, internal_ms: int) -> dict[str, Any]:
    """The fields every control answer and event with a ``now`` carries beside it: ``now`` is
    the internal timeline, these the instant as a person reads it (docs/quantities.md)."""
    return {
        "pump_clock_ms": pump_clock_ms,
        "pump_clock": q.pump_time(pump_clock_ms),
        "elapsed": q.elapsed(internal_ms),
    }


def _name(enum: type[AlarmKind] | type[Role], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return f"#{value}"


class PumpEvents:
    """The publishing side of one ``PumpServer``'s ``EventHub``."""

    def __init__(self, hub: EventHub) -> None:
        self.hub = hub
        self._framers = {"rx": Framer(), "tx": Framer()}
        self._framing = {"rx": False, "tx": False}
        self._status_key: object = None
        self._state: str | None = None
        self._next_status_ms = 0
        self._violations = 0
        self._chunk_epoch: object = None

    # -- bytes --

    def chunk(self, direction: str, data: bytes, now_ms: int, link_ms: int) -> None:
        """A chunk crossed the link (``rx``: to the pump, ``tx``: from it)."""
        hub = self.hub
        if not (hub.wants("frame") or hub.wants("noise")):
            self._framing[direction] = False
            return
        framer = self._framers[direction]
        if not self._framing[direction]:
            # Nobody listened for a while: start afresh; the framer resynchronises.
            framer = self._framers[direction] = Framer()
            self._framing[direction] = True
        stamp = {"direction": direction, "now_ms": now_ms, "link_ms": link_ms}
        for found in framer.feed(data):
            if isinstance(found, FrameBytes) and hub.wants("frame"):
                summary = summarize_frame(found.data)
                body: dict[str, Any] = {
                    **stamp,
                    "offset": found.offset,
                    "length": len(found.data),
                    "header": summary.header,
                    "sealed": summary.sealed,
                }
                if summary.message is not None:
                    body["message"] = summary.message
                if summary.error is not None:
                    body["error"] = summary.error
                body["hex"] = found.data.hex()
                hub.publish("frame", body)
            elif isinstance(found, Noise) and hub.wants("noise"):
                # Offset and length only: holding the bytes of a long run of noise for
                # subscribers would cost the serve loop memory (a capture keeps them).
                hub.publish("noise", {**stamp, "offset": found.offset, "length": found.length})

    # -- the event log --

    def log_entries(self, entries: Sequence[LogEntry], internal_ms: Sequence[int]) -> None:
        """New event-log entries, with where each falls on the internal timeline."""
        hub = self.hub
        for entry, now_ms in zip(entries, internal_ms, strict=True):
            if hub.wants("log"):
                hub.publish(
                    "log",
                    {
                        "now_ms": now_ms,
                        "entry": log_entry_json(entry),
                        "text": describe_event(entry),
                    },
                )
            session = _SESSION_KINDS.get(entry.kind)
            if session is not None and hub.wants("session"):
                hub.publish(
                    "session",
                    {"now_ms": now_ms, "change": session, "role": _name(Role, entry.detail)},
                )
            alarm = _ALARM_KINDS.get(entry.kind)
            if alarm is not None and hub.wants("alarm"):
                body: dict[str, Any] = {
                    "now_ms": now_ms,
                    "change": alarm,
                    "alarm": _name(AlarmKind, entry.detail),
                }
                if entry.detail in AlarmKind._value2member_map_:
                    kind = AlarmKind(entry.detail)
                    body["severity"] = kind.severity.name
                    body["tone"] = alarm_tone(kind)
                else:
                    body["severity"] = None
                    body["tone"] = None
                hub.publish("alarm", body)

    # -- control operations --

    def fault(self, fault: object, now_ms: int) -> None:
        if self.hub.wants("fault"):
            applied = fields_of(fault)
            self.hub.publish(
                "fault", {"now_ms": now_ms, "fault": applied.pop("type"), "applied": applied}
            )

    def operation(self, what: str, now_ms: int) -> None:
        """A plant operation the firmware never sees (a CAP aspiration or injection)."""
        if self.hub.wants("fault"):
            self.hub.publish("fault", {"now_ms": now_ms, "fault": "operation", "applied": what})

    def time(self, before_ms: int, now_ms: int, pump_clock_ms: int) -> None:
        """Time moved from ``before_ms`` to ``now_ms`` (internal); ``pump_clock_ms`` is the
        pump clock at ``now_ms``."""
        if self.hub.wants("time"):
            self.hub.publish(
                "time",
                {
                    "from_ms": before_ms,
                    "now_ms": now_ms,
                    "advanced_ms": now_ms - before_ms,
                    "now": format_pump_time(now_ms),
                    **clock_fields(pump_clock_ms, now_ms),
                },
            )

    # -- conformance --

    def conformance(self, violations_since: Callable[[int], list[dict[str, Any]]]) -> None:
        """Publish the violations the monitor found since the last call."""
        if not self.hub.wants("conformance"):
            return
        new = violations_since(self._violations)
        self._violations += len(new)
        for violation in new:
            self.hub.publish("conformance", violation)

    # -- status --

    def status_due(self, link_ms: int) -> bool:
        """Time for the periodic look at the status (serve loop, every STATUS_EVERY_MS)."""
        if not (self.hub.wants("status") or self.hub.wants("state")):
            return False
        if link_ms < self._next_status_ms:
            return False
        self._next_status_ms = link_ms + STATUS_EVERY_MS
        return True

    def status_after_chunk(self, device: PumpDevice, clock: str, link_ms: int) -> None:
        """After a chunk from the programmer: look at the status only if the chunk changed
        the session, the event log or the exactly-once memory (a command applied). Building
        a status costs far more than most requests (benchmarks/events.py); what a chunk
        changes otherwise (a staged prescription) shows at the next periodic look."""
        if not (self.hub.wants("status") or self.hub.wants("state")):
            return
        session = device.session
        epoch = (
            device.ledger.recorded,
            device.pump.log_next_seq,
            session.state,
            session.role,
            session.failed_openings,
        )
        if epoch != self._chunk_epoch:
            self._chunk_epoch = epoch
            self.status_changed(device, clock, link_ms)

    def status_changed(self, device: PumpDevice, clock: str, link_ms: int) -> None:
        """Publish ``state`` and ``status`` if what they show changed (device lock held)."""
        hub = self.hub
        if not (hub.wants("status") or hub.wants("state")):
            return
        body = status_body(device, clock, link_ms)
        state = body["state"]
        if self._state is not None and state != self._state and hub.wants("state"):
            hub.publish("state", {"now_ms": body["now_ms"], "from": self._state, "to": state})
        self._state = state
        key = _status_key(body)
        if key != self._status_key:
            self._status_key = key
            if hub.wants("status"):
                hub.publish("status", body)


def status_body(device: PumpDevice, clock: str, link_ms: int) -> dict[str, Any]:
    """One ``status`` event's fields: belief beside truth, now (device lock held)."""
    pump = device.pump
    status = pump.status()
    plant, firmware = truth_fields(pump.plant_truth(), status)
    session = device.session
    role = session.role
    alarms = [
        {
            "kind": record.kind.name,
            "severity": record.kind.severity.name,
            "tone": alarm_tone(record.kind),
            "acknowledged": record.acknowledged,
            "since_ms": record.since_ms,
        }
        for record in status.alarms
    ]
    pending = [r.kind for r in status.alarms if not r.acknowledged]
    loudest = max(pending, key=lambda kind: kind.severity, default=None)
    return {
        "now_ms": pump.now_ms,
        "now": format_pump_time(pump.now_ms),
        **clock_fields(status.local_time_ms, pump.now_ms),
        "link_ms": link_ms,
        "clock": clock,
        "serial": session.serial,
        "state": status.state.name,
        "session": {"state": session.state.name, "role": role.name if role else None},
        "alarms": alarms,
        "sounding": alarm_tone(loudest) if loudest is not None else None,
        "plant": plant,
        "firmware": firmware,
        "compare": compare_rows(plant, firmware),
    }


def _status_key(body: dict[str, Any]) -> object:
    """What a status change is: anything shown but the clocks themselves."""
    firmware = {k: v for k, v in body["firmware"].items() if k not in _CLOCK_FIELDS}
    return repr((body["state"], body["session"], body["alarms"], body["compare"], firmware))


_CLOCK_FIELDS = frozenset({"time_ms", "local_time_ms"})

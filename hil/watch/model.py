"""What the dashboard shows, built from control API events alone (docs/watch.md).

``Dashboard.apply`` takes each event of a ``subscribe`` stream (docs/serve.md, "subscribe")
and keeps what the panels need; each ``*_text`` method renders one panel as a rich
``Text``. No terminal, no socket and no clock here: the textual app only places the texts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from rich.text import Text

from hil import quantities as q

__all__ = ["RECENT", "Dashboard", "instant_of", "plant_faults"]

RECENT = 12
"""How many frames, events and violations a panel keeps (the newest last)."""

_PLANT_OK = {"motor": "OK", "catheter": "OK"}


def plant_faults(plant: Mapping[str, Any], bias_before: int | None = None) -> list[str]:
    """The plant faults in force, from a ``status`` event's ``plant`` fields: what a fault
    key changes and the firmware may never sense (docs/architecture.md principle 3). A
    pump's stroke bias is part of its make (the profile), so only a change from
    ``bias_before`` (the first one seen) is a fault."""
    found: list[str] = []
    bias = plant.get("bias_ppm")
    if bias_before is not None and isinstance(bias, int) and bias != bias_before:
        found.append(f"stroke bias {bias:+,} ppm (was {bias_before:+,})")
    for field, ok in _PLANT_OK.items():
        value = plant.get(field)
        if value is not None and value != ok:
            found.append(f"{field} {value}")
    if plant.get("leak_ppm"):
        found.append(f"leak {plant['leak_ppm'] / 10_000:g} %")
    if plant.get("valve_closed"):
        found.append("valve closed")
    if plant.get("pocket_nl"):
        found.append(f"pocket holds {plant['pocket_nl']:,} nL")
    return found


def _number(value: Any) -> str:
    if value is None:
        return "(not sensed)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


class Dashboard:
    """The state of one pump as its events tell it."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.status: dict[str, Any] | None = None
        self.frames: deque[str] = deque(maxlen=RECENT)
        self.events: deque[str] = deque(maxlen=RECENT)
        self.violations: deque[str] = deque(maxlen=RECENT)
        self.violation_count = 0
        self.dropped = 0
        self.ended: str | None = None
        self.bias_before: int | None = None
        self.clock_offset_ms: int | None = None
        """Pump clock minus internal time, from the last event that carried both."""

    def apply(self, event: Mapping[str, Any]) -> None:
        """Take one event; an unknown type is ignored (a newer serve may add types)."""
        kind = event.get("event")
        when = self._when(event)
        match kind:
            case "status":
                self.status = dict(event)
                if self.bias_before is None:
                    bias = (event.get("plant") or {}).get("bias_ppm")
                    self.bias_before = bias if isinstance(bias, int) else None
            case "frame":
                self.frames.append(f"{when} {_frame_line(event)}")
            case "noise":
                self.frames.append(
                    f"{event.get('direction')} noise: {event.get('length')} bytes at "
                    f"{event.get('offset')}"
                )
            case "log":
                text = event.get("text")
                entry = event.get("entry") or {}
                self.events.append(f"{when} {text or str(entry.get('kind', 'log entry'))}")
            case "fault":
                self.events.append(f"{when} fault injected: {event.get('fault')}")
            case "time":
                self.events.append(
                    f"{when} time advanced {_duration(int(event.get('advanced_ms', 0)))}"
                )
            case "state":
                self.events.append(f"{when} therapy {event.get('from')} -> {event.get('to')}")
            case "conformance":
                self.violation_count += 1
                self.violations.append(
                    f"{event.get('severity')} {event.get('rule')}: {event.get('detail')}"
                )
            case "dropped":
                count = int(event.get("count", 0))
                self.dropped += count
                self.events.append(f"{count} event(s) dropped: this view was too slow")
            case "end":
                self.ended = str(event.get("reason", "the stream ended"))
                self.events.append(f"stream ended: {self.ended}")
            case _:
                pass  # session and alarm changes show in the status that follows them

    def _when(self, event: Mapping[str, Any]) -> str:
        """When ``event`` happened: its own pump clock if it has one, else the clock offset
        the last ``status`` or ``time`` event told (frames and faults carry only
        ``now_ms``), else the elapsed time alone until one arrives."""
        now = event.get("now_ms")
        if not isinstance(now, int):
            return ""
        clock = event.get("pump_clock_ms")
        if isinstance(clock, int) and event.get("event") in ("status", "time"):
            self.clock_offset_ms = clock - now
        shown = instant_of(event)
        if shown is not None:
            return shown
        if self.clock_offset_ms is not None:
            return q.instant(now + self.clock_offset_ms, now)
        return q.elapsed(now)

    def note(self, text: str) -> None:
        """A line of the dashboard's own (a key's result, an error)."""
        self.events.append(text)

    # -- panels --

    def pump_text(self) -> Text:
        status = self.status
        out = Text()
        if status is None:
            out.append(f"waiting for the pump at {self.address}...")
            return out
        out.append(f"{status.get('serial')}  ", style="bold")
        out.append(f"{instant_of(status) or status.get('now')}  clock {status.get('clock')}\n")
        out.append("therapy ")
        state = str(status.get("state"))
        out.append(state, style="bold green" if state == "RUNNING" else "bold yellow")
        session = status.get("session") or {}
        role = session.get("role")
        out.append(f"\nsession {session.get('state')}")
        out.append(f" ({str(role).lower()})" if role else " (no programmer)")
        firmware = status.get("firmware") or {}
        prescription = firmware.get("prescription")
        if isinstance(prescription, Mapping):
            out.append(
                f"\nprescription {prescription.get('drug_name')} "
                f"{_number(prescription.get('concentration_ug_per_ml'))} ug/mL "
                f"{prescription.get('mode')}"
            )
        else:
            out.append("\nno prescription")
        if self.ended is not None:
            out.append(f"\nENDED: {self.ended}", style="bold red")
        return out

    def alarms_text(self) -> Text:
        status = self.status or {}
        alarms = status.get("alarms") or []
        out = Text()
        sounding = status.get("sounding")
        if sounding:
            out.append(f"SOUNDING: {sounding}\n", style="bold red")
        elif alarms:
            out.append("silenced (acknowledged)\n")
        if not alarms:
            out.append("no alarms")
        for alarm in alarms:
            mark = "acknowledged" if alarm.get("acknowledged") else "sounding"
            style = "red" if alarm.get("severity") == "CRITICAL" else "yellow"
            out.append(
                f"{alarm.get('kind')} ({str(alarm.get('severity')).lower()}): "
                f"{alarm.get('tone')}, {mark}\n",
                style=style,
            )
        return out

    def truth_text(self) -> Text:
        status = self.status or {}
        rows = status.get("compare") or []
        out = Text()
        out.append(f"{'':<38}{'firmware':>14}{'plant truth':>14}\n", style="bold")
        for row in rows:
            unit = f" ({row['unit']})" if row.get("unit") else ""
            name = f"{row.get('quantity')}{unit}"
            firmware, plant = _number(row.get("firmware")), _number(row.get("plant"))
            style = "bold yellow" if _disagree(row.get("firmware"), row.get("plant")) else ""
            out.append(f"{name:<38}{firmware:>14}{plant:>14}\n", style=style)
        return out

    def faults_text(self) -> Text:
        status = self.status or {}
        faults = plant_faults(status.get("plant") or {}, self.bias_before)
        return Text("\n".join(faults) if faults else "no plant fault in force")

    def frames_text(self) -> Text:
        return Text("\n".join(self.frames) if self.frames else "no frames yet")

    def conformance_text(self) -> Text:
        if not self.violations:
            return Text("no violations so far")
        out = Text(f"{self.violation_count} violation(s)\n", style="bold red")
        out.append("\n".join(self.violations))
        return out

    def events_text(self) -> Text:
        return Text("\n".join(self.events) if self.events else "no events yet")


def _disagree(firmware: Any, plant: Any) -> bool:
    """Does the firmware's belief differ from the truth? Numbers must be equal; the motor's
    words differ in kind ("ok" or "stall detected" beside OK, STALLED or RECOVERING)."""
    if firmware is None:
        return False  # not sensed: nothing to disagree with
    if isinstance(firmware, int) and isinstance(plant, int):
        return firmware != plant
    return (str(firmware).lower() == "ok") != (str(plant).upper() == "OK")


def _frame_line(event: Mapping[str, Any]) -> str:
    header = event.get("header") or {}
    direction = "programmer -> pump" if event.get("direction") == "rx" else "pump -> programmer"
    what = str(header.get("opcode", "?"))
    if event.get("sealed"):
        what += " (sealed)"
    elif event.get("error"):
        what += f" (bad: {event['error']})"
    message = event.get("message")
    if isinstance(message, Mapping):
        fields = [f"{k}={v}" for k, v in message.items() if k != "type"][:3]
        if fields:
            what += " " + " ".join(fields)
    return f"{direction} seq {header.get('seq', '?')} {what}"


def instant_of(event: Mapping[str, Any]) -> str | None:
    """The instant an event or answer names, as every command shows one (docs/quantities.md),
    if it carries the pump clock beside ``now_ms`` (a log event's entry stamp is the pump
    clock); None if it does not."""
    now = event.get("now_ms")
    if not isinstance(now, int):
        return None
    clock = event.get("pump_clock_ms")
    if not isinstance(clock, int):
        entry = event.get("entry")
        clock = entry.get("time_ms") if isinstance(entry, Mapping) else None
    return q.instant(clock, now) if isinstance(clock, int) else None


def _duration(ms: int) -> str:
    if ms % 86_400_000 == 0 and ms:
        return f"{ms // 86_400_000} d"
    if ms % 3_600_000 == 0 and ms:
        return f"{ms // 3_600_000} h"
    return f"{ms:,} ms"

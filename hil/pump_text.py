"""Pump times and event-log entries as an operator reads them: serve's log lines, the
capture's notes and the control API's ``log`` events (docs/serve.md)."""

from __future__ import annotations

from enum import IntEnum

from hil import quantities as q
from protocol.device_state import AlarmKind, EventKind, LogEntry, Role
from protocol.messages import Opcode
from protocol.refusal import RefusalCode

__all__ = ["StampedLine", "describe_event", "format_pump_time", "stamp_line"]


class StampedLine(str):
    """A log line that names an instant: ``[<pump clock> (+<elapsed>)] <text>``.

    Still a plain ``str`` to every ``Log`` hook (hil/serve.py); it carries the instant as
    integers too, so ``--log-format json`` gives a log collector both timelines as fields
    (hil/logs.py, docs/serve.md "Logs") without parsing the text back."""

    pump_clock_ms: int
    internal_ms: int

    def __new__(cls, text: str, pump_clock_ms: int, internal_ms: int) -> StampedLine:
        line = super().__new__(cls, text)
        line.pump_clock_ms = pump_clock_ms
        line.internal_ms = internal_ms
        return line


def stamp_line(text: str, pump_clock_ms: int, internal_ms: int) -> StampedLine:
    """``text`` stamped with the one display style for instants (docs/quantities.md): the
    pump clock as ISO 8601 (``.mmm`` when there are ms), then the elapsed internal time."""
    return StampedLine(
        f"[{q.instant(pump_clock_ms, internal_ms)}] {text}", pump_clock_ms, internal_ms
    )


def format_pump_time(ms: int) -> str:
    """A time on the emulator's internal timeline (``PumpDevice.now_ms``, what the serve
    loop's clock drives; ms since power-on unless ``start_ms`` was given) as
    ``T+<days>d<hh>:<mm>:<ss>.<mmm>``: the control API's machine-readable ``now`` field,
    kept as it is for the clients that parse it (docs/serve.md, "Control API"). Nothing
    shown to a person uses it: they read ``q.instant`` (``stamp_line``)."""
    seconds, millis = divmod(ms, 1000)
    minutes, sec = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(hours, 24)
    return f"T+{days}d{hour:02d}:{minute:02d}:{sec:02d}.{millis:03d}"


def describe_event(entry: LogEntry) -> str | None:
    """A one-line description of a log entry worth telling an operator, or None."""
    kind = entry.kind
    match kind:
        case EventKind.SESSION_OPENED | EventKind.SESSION_CLOSED:
            verb = "opened" if kind is EventKind.SESSION_OPENED else "closed"
            return f"session {verb} ({_enum_name(Role, entry.detail).lower()})"
        case EventKind.SECURITY_EVENT:
            opcode = _enum_name(Opcode, entry.value_a)
            code = _enum_name(RefusalCode, entry.detail)
            return f"security event: {code} (request {opcode}, seq {entry.value_b})"
        case EventKind.SECURITY_SUMMARY:
            code = _enum_name(RefusalCode, entry.detail)
            return f"security events: {entry.value_a} more {code} (coalesced)"
        case EventKind.ALARM_RAISED | EventKind.ALARM_ACKNOWLEDGED | EventKind.ALARM_CLEARED:
            verb = kind.name.removeprefix("ALARM_").lower()
            alarm = _enum_name(AlarmKind, entry.detail)
            severity = ""
            if kind is EventKind.ALARM_RAISED and alarm in AlarmKind.__members__:
                severity = f" ({AlarmKind[alarm].severity.name.lower()})"
            return f"alarm {verb}: {alarm}{severity}"
        case EventKind.MOTOR_STALL:
            return "motor stall detected: therapy suspended"
        case EventKind.MOTOR_RECOVERED:
            return f"motor recovered after {entry.value_a // 1000} s"
        case EventKind.RESERVOIR_EMPTY:
            return "reservoir empty"
        case EventKind.ELECTIVE_REPLACEMENT:
            # value_a battery percent, value_b the end-of-service instant on the pump clock
            # as it read when the entry was written, like the entry's own stamp (protocol.md
            # 11): their difference is how long is left, whatever the clock says.
            left_ms = max(entry.value_b - entry.time_ms, 0)
            days, rest = divmod(left_ms, 86_400_000)
            return (
                f"elective replacement indicator (battery {entry.value_a}%, "
                f"end of service in {days} d {rest // 3_600_000} h)"
            )
        case EventKind.END_OF_SERVICE:
            return f"end of service: the pump has stopped for good (battery {entry.value_a}%)"
        case EventKind.RESET:
            return "processor reset: restarted from non-volatile memory"
        case EventKind.MEMORY_ERROR:
            return "memory error: non-volatile record corrupt, safe state"
        case _:
            return None


def _enum_name(enum: type[IntEnum], value: int) -> str:
    try:
        return enum(value).name
    except ValueError:
        return f"#{value}"

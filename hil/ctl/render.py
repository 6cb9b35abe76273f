"""What ``pumpemu ctl`` shows: outcomes in words, pump replies as tables, the program review.

Every line here is written to be exact: a command is reported "applied" only when the pump
acknowledged it (or its STATUS shows it was), "refused" only with the pump's NAK, and
"UNCERTAIN" whenever the pump could not be asked. Quantities are shown in human units with
exact decimal arithmetic (hil/quantities.py), never rounded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.table import Table

from hil import quantities as q
from hil.capture import fields_of, plain
from hil.ctl.prescription_file import PrescriptionFile
from hil.programmer.core import Outcome, Result
from protocol.device_state import AlarmKind, EventKind, LogEntry, TherapyState
from protocol.messages import (
    NEVER_MS,
    OVERRIDE_DOSE_CHANGE,
    OVERRIDE_SOFT_LIMIT,
    Ack,
    AlarmList,
    CatheterInfo,
    DeviceInfo,
    Message,
    Nak,
    Opcode,
    PatientView,
    PrescriptionStaged,
    StagedWithOverride,
    Status,
    StatusDetail,
)
from protocol.prescription import InfusionMode, Prescription, Repeat
from protocol.refusal import FieldId, RefusalCode
from protocol.units import MS_PER_DAY, S_PER_DAY, S_PER_WEEK

MEANINGS: dict[RefusalCode, str] = {
    RefusalCode.FRAME_CORRUPT: "the frame arrived damaged and was discarded unread",
    RefusalCode.UNSUPPORTED_VERSION: "the pump does not speak this protocol version",
    RefusalCode.UNKNOWN_OPCODE: "the pump does not know this request",
    RefusalCode.MALFORMED_PAYLOAD: "the request's payload did not parse",
    RefusalCode.INVALID_FIELD: "a field is outside its allowed range",
    RefusalCode.NOT_AUTHENTICATED: "no session was open for this request",
    RefusalCode.AUTHENTICATION_FAILED: "the key is not this pump's key for this role",
    RefusalCode.LOCKED_OUT: "a lockout is running and no challenge was pending; open again",
    RefusalCode.NOT_PERMITTED_FOR_ROLE: "this role may not make this request",
    RefusalCode.SESSION_EXPIRED: "the session idled out or reached its maximum length",
    RefusalCode.REPLAY_DETECTED: "the frame's counter was stale (a replay)",
    RefusalCode.SESSION_BUSY: (
        "a session is already open on the pump (another programmer's, or an earlier one of "
        "this programmer whose replies were lost)"
    ),
    RefusalCode.COMMAND_ID_CONFLICT: "the command id was already used for another request",
    RefusalCode.FRAME_NOT_AUTHENTIC: "a sealed frame failed its authenticity check",
    RefusalCode.HANDSHAKE_STALE: "a late copy of an ended handshake frame; nothing changed",
    RefusalCode.NOTHING_STAGED: "no staged prescription to commit (a session cut discards it)",
    RefusalCode.DIGEST_MISMATCH: "the digest is not the staged prescription's",
    RefusalCode.STAGE_EXPIRED: "the staged prescription expired before the commit",
    RefusalCode.TOO_MANY_STEPS: "more flex steps than this pump allows",
    RefusalCode.BAD_SCHEDULE: "flex steps not strictly increasing from 00:00 within the period",
    RefusalCode.UNKNOWN_DRUG: "the drug is not in the pump's drug library under any name",
    RefusalCode.CONCENTRATION_OUT_OF_RANGE: (
        "the concentration is outside the drug's range (mg entered for mcg?)"
    ),
    RefusalCode.SOFT_LIMIT_NEEDS_OVERRIDE: (
        "the daily dose is above the drug's soft limit; program again with --override "
        "soft-limit if that is the dose meant"
    ),
    RefusalCode.DOSE_CHANGE_NEEDS_OVERRIDE: (
        "the daily dose changes the running one by more than the drug's limit; program again "
        "with --override dose-change if that change is meant"
    ),
    RefusalCode.CONCENTRATION_CHANGE_PENDING: (
        "the reservoir holds a new concentration no prescription is for yet; program a "
        "prescription at that concentration"
    ),
    RefusalCode.NO_CONCENTRATION_CHANGE: "no old drug in the path to bridge",
    RefusalCode.RATE_ABOVE_MAX: "a rate is above the pump's maximum",
    RefusalCode.RATE_BELOW_MIN: "a non-zero rate is below the pump's minimum",
    RefusalCode.DAILY_DOSE_ABOVE_MAX: "the daily dose (mass) is above the maximum",
    RefusalCode.BOLUS_ABOVE_MAX: "the bolus dose is above the maximum",
    RefusalCode.LOCKOUT_ACTIVE: "a patient bolus inside the lockout interval",
    RefusalCode.DAILY_BOLUS_COUNT_REACHED: "the maximum number of patient boluses in 24 h",
    RefusalCode.RESERVOIR_EMPTY: "the reservoir estimate is at or below empty",
    RefusalCode.INSUFFICIENT_RESERVOIR: "the requested volume is more than the reservoir holds",
    RefusalCode.THERAPY_STOPPED: "the pump is stopped; a bolus needs running therapy",
    RefusalCode.NO_PATIENT_BOLUS: "the prescription allows no patient bolus",
    RefusalCode.BOLUS_IN_PROGRESS: "a bolus is already being delivered",
    RefusalCode.NO_BOLUS_IN_PROGRESS: "no bolus is running",
    RefusalCode.VOLUME_ABOVE_CAPACITY: "the refill volume is above the reservoir's capacity",
    RefusalCode.REFILL_NOT_STARTED: "refill complete without refill begin",
    RefusalCode.REFILL_IN_PROGRESS: "not allowed while a refill is in progress",
    RefusalCode.NO_SUCH_ALARM: "that alarm is not active",
    RefusalCode.BAD_STATE: "the pump cannot do this in its current state",
    RefusalCode.NO_FLOW_VALVE: "this pump has no flow-activated valve to reset",
    RefusalCode.MOTOR_STALLED: "the motor is stalled; delivery cannot start",
    RefusalCode.END_OF_SERVICE: "the battery reached end of service",
    RefusalCode.MEMORY_ERROR: "the pump's memory failed its check; it is in a safe state",
    RefusalCode.NOT_STORED: "the pump could not store it, so nothing was applied; try again",
}
"""What each refusal means, in a clinician's words (docs/protocol.md section 12)."""

_VOLUME_FIELDS = {
    FieldId.PATIENT_BOLUS_DOSE,
    FieldId.LOW_RESERVOIR_THRESHOLD,
    FieldId.BOLUS_DOSE,
    FieldId.CATHETER_VOLUME,
    FieldId.WITHDRAWN_VOLUME,
    FieldId.NEW_VOLUME,
}
_DURATION_FIELDS = {
    FieldId.PATIENT_BOLUS_DURATION,
    FieldId.PATIENT_BOLUS_LOCKOUT,
    FieldId.BOLUS_DURATION,
}
_COUNT_FIELDS = {FieldId.PATIENT_BOLUS_MAX_PER_24H, FieldId.STEP_COUNT, FieldId.LOG_COUNT}

FILE_KEYS: dict[FieldId, str] = {
    FieldId.DRUG_NAME: "drug",
    FieldId.CONCENTRATION: "concentration",
    FieldId.MODE: "mode",
    FieldId.REPEAT: "repeat",
    FieldId.STEP_COUNT: "steps",
    FieldId.STEP_START: "steps[].start",
    FieldId.STEP_RATE: "steps[].rate",
    FieldId.PATIENT_BOLUS_DOSE: "patient_bolus.dose",
    FieldId.PATIENT_BOLUS_DURATION: "patient_bolus.duration",
    FieldId.PATIENT_BOLUS_LOCKOUT: "patient_bolus.lockout",
    FieldId.PATIENT_BOLUS_MAX_PER_24H: "patient_bolus.max_per_24h",
    FieldId.LOW_RESERVOIR_THRESHOLD: "low_reservoir_threshold",
    FieldId.DAILY_DOSE: "the steps' rates and the patient bolus",
}
"""Where in a prescription file a staging refusal's field is written."""

_PLAUSIBLE_SECONDS_LEFT = S_PER_WEEK
"""A lockout "seconds left" above a week cannot be one (profiles cap lockouts at a day):
such a value is reported raw, not as a time, so a malformed NAK is never shown as fact."""


def field_value(field: FieldId, value: int) -> str:
    """A field's value in human units."""
    if field is FieldId.STEP_RATE:
        return q.rate(value)
    if field is FieldId.DAILY_DOSE:
        return q.mass_per_day(value)
    if field in _VOLUME_FIELDS:
        return q.volume(value)
    if field in _DURATION_FIELDS:
        return q.duration(value)
    if field in (FieldId.CONCENTRATION, FieldId.NEW_CONCENTRATION):
        return q.concentration(value)
    if field is FieldId.STEP_START:
        return q.duration(value) + " into the period"
    if field is FieldId.CLOCK:
        return q.pump_time(value)
    if field is FieldId.CATHETER_LENGTH:
        return f"{value} cm"
    return str(value)


def _seconds_left(value: int) -> str:
    if value > _PLAUSIBLE_SECONDS_LEFT:
        return f"time left not readable: the pump sent {value}, not seconds left"
    return f"{q.duration(value)} left"


def _rate_limit(field: FieldId) -> Callable[[int], str]:
    """RATE_ABOVE_MAX: the maximum rate for a step; for a bolus (a duration field) the
    shortest duration that keeps basal + bolus within it."""
    if field in (FieldId.BOLUS_DURATION, FieldId.PATIENT_BOLUS_DURATION):
        return lambda v: f"shortest duration {q.duration(v)}"
    return lambda v: f"limit {q.rate(v)}"


def describe_limit(nak: Nak) -> str | None:
    """The NAK's limit in human units, per its code (docs/protocol.md section 12): the unit
    follows the code where section 12 fixes it, whatever the field."""
    code, field, limit = nak.code, nak.field, nak.limit
    special: dict[RefusalCode, Callable[[int], str]] = {
        RefusalCode.RATE_ABOVE_MAX: _rate_limit(field),
        RefusalCode.DAILY_DOSE_ABOVE_MAX: lambda v: f"limit {q.mass_per_day(v)}",
        RefusalCode.SOFT_LIMIT_NEEDS_OVERRIDE: lambda v: f"soft limit {q.mass_per_day(v)}",
        RefusalCode.DOSE_CHANGE_NEEDS_OVERRIDE: lambda v: f"limit {q.mass_per_day(v)}",
        RefusalCode.LOCKED_OUT: _seconds_left,
        RefusalCode.LOCKOUT_ACTIVE: _seconds_left,
        RefusalCode.SESSION_BUSY: lambda v: f"it expires in {q.duration(v)} unless it is used",
        RefusalCode.STAGE_EXPIRED: lambda v: f"stage lifetime {q.duration(v)}",
        RefusalCode.REPLAY_DETECTED: lambda v: f"last accepted SEQ {v}",
        RefusalCode.UNSUPPORTED_VERSION: lambda v: f"supported version {v}",
        RefusalCode.INSUFFICIENT_RESERVOIR: lambda v: f"reservoir holds {q.volume(v)}",
        RefusalCode.VOLUME_ABOVE_CAPACITY: lambda v: f"capacity {q.volume(v)}",
        RefusalCode.DAILY_BOLUS_COUNT_REACHED: lambda v: f"at most {v} per 24 h",
        RefusalCode.TOO_MANY_STEPS: lambda v: f"at most {v} steps",
    }
    if code in special:
        return special[code](limit)
    if code is RefusalCode.INVALID_FIELD or limit:
        return f"limit {field_value(field, limit)}"
    return None


def describe_refusal(nak: Nak) -> str:
    """``refused: RATE_ABOVE_MAX — a rate is above the pump's maximum (field STEP_RATE,
    limit 24 mL/day)``."""
    parts = []
    if nak.field is not FieldId.NONE:
        parts.append(f"field {nak.field.name}")
    limit = describe_limit(nak)
    if limit:
        parts.append(limit)
    tail = f" ({', '.join(parts)})" if parts else ""
    return f"refused: {nak.code.name} — {MEANINGS[nak.code]}{tail}"


def state_name(state: TherapyState) -> str:
    return state.name.replace("_", " ").lower()


def ack_value(ack: Ack) -> str | None:
    """The ACK's ``value`` in words (docs/protocol.md section 8.1)."""
    request = ack.request
    if request is Opcode.SET_CLOCK:
        return f"pump time before the change {q.pump_time(ack.value)}"
    if request in (Opcode.CLINICIAN_BOLUS, Opcode.PATIENT_BOLUS_REQUEST):
        return f"bolus ends at {q.pump_time(ack.value)} (pump time)"
    if request is Opcode.PRIMING_BOLUS:
        return f"priming ends at {q.pump_time(ack.value)} (pump time)"
    if request is Opcode.REFILL_BEGIN:
        return f"predicted residual {q.volume(ack.value)}"
    if request is Opcode.REFILL_COMPLETE:
        return f"residual predicted at refill begin {q.volume(ack.value)}"
    if request is Opcode.SET_CATHETER:
        return f"catheter dead volume {q.volume(ack.value)}"
    if request is Opcode.BRIDGE_BOLUS:
        return f"old drug out of the catheter at {q.pump_time(ack.value)} (pump time)"
    return None


def _command_id(request: Message) -> int | None:
    value = getattr(request, "command_id", None)
    return value if isinstance(value, int) else None


@dataclass(frozen=True, slots=True)
class Verdict:
    """One request's end, as a line for people and fields for ``--json``."""

    ok: bool
    line: str

    def as_json(self, result: Result, action: str) -> dict[str, Any]:
        return {
            "action": action,
            "outcome": result.outcome.value,
            "ok": self.ok,
            "message": self.line,
            "command_id": _command_id(result.request),
            "attempts": result.attempts,
            "resolved_by_status": result.resolved_by_status,
            "detail": result.detail,
            "reply": None if result.reply is None else fields_of(result.reply),
        }


def verdict(action: str, result: Result) -> Verdict:
    """The honest one-line outcome of ``action`` (e.g. "clinician bolus")."""
    outcome, reply = result.outcome, result.reply
    command_id = _command_id(result.request)
    detail = result.detail or "no reply"
    if isinstance(reply, Nak) and outcome is not Outcome.REFUSED:
        # The pump refused the *session* (a wrong key, a lockout): no request reached it.
        detail = (
            f"the pump refused the session: {describe_refusal(reply).removeprefix('refused: ')}"
        )
    if outcome is Outcome.APPLIED:
        if result.resolved_by_status and isinstance(reply, Status):
            return Verdict(
                True,
                f"applied: {action} (reply lost; pump status shows last command "
                f"{reply.last_command_id}, this command): state {state_name(reply.state)}, "
                f"reservoir {q.volume(reply.reservoir_nl)}",
            )
        if isinstance(reply, Ack):
            extra = ack_value(reply)
            return Verdict(
                True,
                f"applied: {action}: state {state_name(reply.state)}, reservoir "
                f"{q.volume(reply.reservoir_nl)}" + (f", {extra}" if extra else ""),
            )
        return Verdict(True, f"applied: {action}")
    if outcome is Outcome.ANSWERED:
        return Verdict(True, f"{action}: answered")
    if outcome is Outcome.REFUSED:
        if isinstance(reply, Nak):
            return Verdict(False, f"{action} {describe_refusal(reply)}")
        return Verdict(False, f"{action} refused: {result.detail or 'no reason given'}")
    if outcome is Outcome.NOT_APPLIED:
        if result.resolved_by_status and isinstance(reply, Status):
            return Verdict(
                False,
                f"not applied: {action} (reply lost; pump status shows last command "
                f"{reply.last_command_id}, not this command {command_id}); "
                "nothing was delivered by it, and it can be sent again",
            )
        if command_id is None:
            return Verdict(False, f"{action}: no answer: {detail}")
        return Verdict(False, f"not applied: {action}: never reached the pump ({detail})")
    return Verdict(
        False,
        f"UNCERTAIN: could not reach the pump to confirm whether {action} was applied "
        f"({detail}); read its status before retrying",
    )


# -- tables ---------------------------------------------------------------------------------


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for column in columns:
        table.add_column(column)
    return table


def _pairs(title: str, rows: Sequence[tuple[str, str]]) -> Table:
    table = _table(title, "", "")
    table.show_header = False
    for name, value in rows:
        table.add_row(name, value)
    return table


def when(ms: int, now_ms: int | None) -> str:
    """A predicted pump time, with how far away it is when the pump's time is known."""
    if ms == NEVER_MS:
        return "never (at this prescription)"
    text = q.pump_time(ms)
    if now_ms is not None and ms >= now_ms:
        days, rest = divmod(ms - now_ms, MS_PER_DAY)
        text += f" (in {days} d {rest // 3_600_000} h)"
    return text


def info_table(info: DeviceInfo) -> Table:
    lim = info.limits
    return _pairs(
        f"Pump {info.serial}",
        [
            ("model", info.model),
            ("serial", info.serial),
            ("firmware", info.firmware_version),
            ("reservoir capacity", q.volume(lim.reservoir_capacity_nl)),
            ("stroke volume", q.volume(lim.stroke_volume_nl)),
            (
                "rate range",
                f"{q.rate(lim.rate_min_nl_per_day)} to {q.rate(lim.rate_max_nl_per_day)}",
            ),
            ("max clinician bolus", q.volume(lim.max_clinician_bolus_nl)),
            ("max daily dose", q.mass_per_day(lim.max_daily_dose_pg)),
            ("max flex steps", str(lim.max_flex_steps)),
            ("max patient bolus", q.volume(lim.patient_bolus_dose_max_nl)),
            (
                "patient bolus duration",
                f"{q.duration(lim.patient_bolus_duration_min_s)} to "
                f"{q.duration(lim.patient_bolus_duration_max_s)}",
            ),
            (
                "patient bolus lockout",
                f"{q.duration(lim.patient_bolus_lockout_min_s)} to "
                f"{q.duration(lim.patient_bolus_lockout_max_s)}",
            ),
            ("max patient boluses / 24 h", str(lim.patient_bolus_max_per_24h)),
            (
                "low-reservoir threshold",
                f"{q.volume(lim.low_reservoir_threshold_min_nl)} to "
                f"{q.volume(lim.low_reservoir_threshold_max_nl)}",
            ),
            ("max priming volume", q.volume(lim.max_priming_volume_nl)),
        ],
    )


def status_table(status: Status) -> Table:
    alarms = ", ".join(sorted(kind.name for kind in status.active_alarms)) or "none"
    return _pairs(
        "Status",
        [
            ("state", state_name(status.state)),
            ("rate now", q.rate(status.rate_nl_per_day)),
            ("reservoir (estimate)", q.volume(status.reservoir_nl)),
            ("battery", f"{status.battery_percent} %"),
            ("active alarms", alarms),
            ("last command id", str(status.last_command_id)),
            ("pump time", q.pump_time(status.pump_time_ms)),
        ],
    )


def status_detail_table(d: StatusDetail) -> Table:
    """STATUS_DETAIL in clinical words: every figure is what the pump believes (H7)."""
    now = d.pump_time_ms
    eri = (
        f"reached at {q.pump_time(d.eri_at_ms)}"
        if d.eri_reached
        else f"projected {when(d.eri_at_ms, now)} (not later, at the current rate)"
    )
    lockout = "none" if d.lockout_ends_ms <= now else when(d.lockout_ends_ms, now)
    return _pairs(
        "Status detail (pump belief)",
        [
            ("pump time", q.pump_time(now)),
            ("elective replacement (ERI)", eri),
            ("end of service", when(d.end_of_service_at_ms, now)),
            ("low reservoir", when(d.low_reservoir_at_ms, now)),
            ("empty", when(d.empty_at_ms, now)),
            ("patient-bolus lockout ends", lockout),
            ("patient boluses in 24 h", str(d.patient_boluses_24h)),
            ("delivered today", q.mass(d.mass_today_pg)),
            ("delivered since refill", q.mass(d.mass_since_refill_pg)),
            ("delivered in all", f"{q.volume(d.delivered_nl)}, {q.mass(d.delivered_pg)}"),
        ],
    )


def catheter_table(c: CatheterInfo) -> Table:
    return _pairs(
        "Catheter (as entered)",
        [
            ("length", f"{c.length_cm} cm (at most {c.max_length_cm} cm)"),
            ("dead volume", q.volume(c.dead_volume_nl)),
            ("primed", "yes" if c.primed else "no"),
        ],
    )


def patient_view_table(v: PatientView) -> Table:
    if not v.patient_bolus_allowed:
        next_bolus = "no patient bolus in this prescription"
    elif v.next_bolus_at_ms <= v.pump_time_ms:
        next_bolus = "now"
    else:
        next_bolus = when(v.next_bolus_at_ms, v.pump_time_ms)
    return _pairs(
        "Patient view",
        [
            ("pump time", q.pump_time(v.pump_time_ms)),
            ("next bolus", next_bolus),
            ("boluses left in 24 h", str(v.boluses_left_24h)),
        ],
    )


def alarms_table(alarms: AlarmList) -> Table:
    table = _table("Alarms", "alarm", "tone", "since (pump time)", "acknowledged")
    for record in alarms.alarms:
        tone = "critical" if record.kind.severity.name == "CRITICAL" else "non-critical"
        table.add_row(
            record.kind.name,
            tone,
            q.pump_time(record.since_ms),
            "yes" if record.acknowledged else "no",
        )
    if not alarms.alarms:
        table.add_row("none", "", "", "")
    return table


def _refusal_name(code: int) -> str:
    try:
        return RefusalCode(code).name
    except ValueError:
        return f"code {code}"


def _alarm_name(code: int) -> str:
    try:
        return AlarmKind(code).name
    except ValueError:
        return f"alarm {code}"


_REFUSAL_DETAIL = {
    EventKind.PATIENT_BOLUS_REFUSED,
    EventKind.COMMAND_REFUSED,
    EventKind.SECURITY_EVENT,
    EventKind.SECURITY_SUMMARY,
}
_ALARM_DETAIL = {EventKind.ALARM_RAISED, EventKind.ALARM_ACKNOWLEDGED, EventKind.ALARM_CLEARED}
_ROLE_DETAIL = {EventKind.SESSION_OPENED, EventKind.SESSION_CLOSED}


def describe_detail(entry: LogEntry) -> str:
    """The entry's ``detail`` by name where it is an enumeration (a refusal, an alarm, a
    role); otherwise the number. ``value_a``/``value_b`` are shown raw beside it: their
    meaning per kind is docs/protocol.md section 11, and a programmer that guessed units
    for them could show a wrong dose as fact."""
    d = entry.detail
    if entry.kind in _REFUSAL_DETAIL:
        return _refusal_name(d)
    if entry.kind in _ALARM_DETAIL:
        return _alarm_name(d)
    if entry.kind in _ROLE_DETAIL:
        return {1: "clinician", 2: "patient"}.get(d, f"role {d}")
    return str(d)


def log_table(entries: Sequence[LogEntry], oldest: int, next_seq: int) -> Table:
    table = _table(
        f"Event log (entries {oldest}..{next_seq - 1} held)",
        "seq",
        "pump time",
        "event",
        "detail",
        "value_a",
        "value_b",
    )
    for entry in entries:
        table.add_row(
            str(entry.seq),
            q.pump_time(entry.time_ms),
            entry.kind.name,
            describe_detail(entry),
            str(entry.value_a),
            str(entry.value_b),
        )
    return table


def _steps_rows(rx: Prescription) -> list[tuple[str, str, str, str, str]]:
    weekly = rx.repeat is Repeat.WEEKLY
    rows = []
    for step, length in zip(rx.steps, rx.step_durations_s(), strict=True):
        per_day = step.rate_nl_per_day * rx.concentration_ug_per_ml
        # Volume and mass delivered during this step, exact: rate x seconds / 86400.
        within_pg = per_day * length // S_PER_DAY
        rows.append(
            (
                q.offset(step.start_s, weekly=weekly),
                q.duration(length),
                q.rate(step.rate_nl_per_day),
                q.mass_per_day(per_day),
                q.mass(within_pg)
                + ("" if per_day * length % S_PER_DAY == 0 else " (rounded down)"),
            )
        )
    return rows


def prescription_table(rx: Prescription | None) -> Table:
    if rx is None:
        return _pairs("Prescription", [("prescription", "none committed")])
    rows = [
        ("drug", rx.drug_name),
        ("concentration", q.concentration(rx.concentration_ug_per_ml)),
        ("mode", rx.mode.name.lower()),
    ]
    if rx.mode is InfusionMode.FLEX:
        rows.append(("repeat", rx.repeat.name.lower()))
    rows.append(("low-reservoir threshold", q.volume(rx.low_reservoir_threshold_nl)))
    pb = rx.patient_bolus
    if pb is None:
        rows.append(("patient bolus", "not allowed"))
    else:
        rows.append(
            (
                "patient bolus",
                f"{q.volume(pb.dose_nl)} ({q.mass(pb.dose_nl * rx.concentration_ug_per_ml)}) "
                f"over {q.duration(pb.duration_s)}, lockout {q.duration(pb.lockout_s)}, "
                f"at most {pb.max_per_24h} per 24 h",
            )
        )
    return _pairs("Prescription", rows)


def steps_table(rx: Prescription, title: str = "Schedule") -> Table:
    table = _table(title, "start", "lasts", "rate", "dose rate", "delivered in step")
    for row in _steps_rows(rx):
        table.add_row(*row)
    if not rx.steps:
        table.add_row("stopped", "", "0 mL/day", "", "")
    return table


# -- the program review ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Review:
    """The programmer's own figures beside the pump's, for the clinician to compare."""

    digest_ours: bytes
    staged: PrescriptionStaged | StagedWithOverride
    """STAGED_WITH_OVERRIDE when the programmer sent overrides (docs/protocol.md 7)."""
    basal_24h_nl: int
    bolus_24h_nl: int
    pump_now_ms: int | None

    @property
    def digest_matches(self) -> bool:
        return self.digest_ours == self.staged.digest

    @property
    def confirmation(self) -> str:
        """What the clinician types to commit: the digest's first 8 hex digits."""
        return self.staged.digest.hex()[:8]


def review_tables(file: PrescriptionFile, review: Review) -> list[Table]:
    """Side by side: what the file asked, what is sent, what the pump computed."""
    rx = file.prescription
    asked = file.asked
    sent = _table(
        "Review: asked (file) and programmed (sent to the pump)", "setting", "asked", "programmed"
    )
    sent.add_row("drug", asked["drug"], rx.drug_name)
    sent.add_row(
        "concentration", asked["concentration"], q.concentration(rx.concentration_ug_per_ml)
    )
    sent.add_row("mode", asked["mode"], rx.mode.name.lower())
    if rx.mode is InfusionMode.FLEX:
        sent.add_row("repeat", asked.get("repeat", "(daily)"), rx.repeat.name.lower())
    sent.add_row(
        "low-reservoir threshold",
        asked["low_reservoir_threshold"],
        q.volume(rx.low_reservoir_threshold_nl),
    )
    pb = rx.patient_bolus
    if pb is None:
        sent.add_row("patient bolus", "(none)", "not allowed")
    else:
        conc = rx.concentration_ug_per_ml
        sent.add_row(
            "patient bolus dose",
            asked["patient_bolus.dose"],
            f"{q.volume(pb.dose_nl)} = {q.mass(pb.dose_nl * conc)}",
        )
        sent.add_row(
            "patient bolus duration", asked["patient_bolus.duration"], q.duration(pb.duration_s)
        )
        sent.add_row(
            "patient bolus lockout", asked["patient_bolus.lockout"], q.duration(pb.lockout_s)
        )
        sent.add_row(
            "patient boluses / 24 h", asked["patient_bolus.max_per_24h"], str(pb.max_per_24h)
        )

    steps = _table(
        "Steps: asked and programmed",
        "#",
        "asked start",
        "asked",
        "start",
        "lasts",
        "rate",
        "dose rate",
        "delivered in step",
    )
    for index, (asked_step, row) in enumerate(zip(file.asked_steps, _steps_rows(rx), strict=True)):
        steps.add_row(str(index), asked_step.start, asked_step.amount, *row)
    if not rx.steps:
        steps.add_row("-", "", "", "stopped", "", "0 mL/day", "", "")

    conc = rx.concentration_ug_per_ml
    staged = review.staged
    basal, boluses = review.basal_24h_nl, review.bolus_24h_nl
    computed = _table("Computed: programmer and pump", "figure", "programmer", "pump")
    computed.add_row(
        "digest",
        review.digest_ours.hex(),
        staged.digest.hex() + ("  (matches)" if review.digest_matches else "  (DIFFERENT)"),
    )
    computed.add_row(
        "daily volume (most in 24 h)",
        f"{q.volume(basal)} basal + {q.volume(boluses)} patient boluses "
        f"= {q.volume(basal + boluses)}",
        q.volume(staged.daily_volume_nl),
    )
    computed.add_row(
        "daily dose (most in 24 h)",
        f"{q.mass(basal * conc)} basal + {q.mass(boluses * conc)} patient boluses "
        f"= {q.mass((basal + boluses) * conc)}",
        q.mass(staged.daily_mass_pg),
    )
    computed.add_row(
        "low reservoir predicted", "", when(staged.low_reservoir_at_ms, review.pump_now_ms)
    )
    computed.add_row("empty predicted", "", when(staged.empty_at_ms, review.pump_now_ms))
    computed.add_row(
        "commit before",
        "",
        f"{q.duration(staged.stage_lifetime_s)} after staging (the stage lifetime, link time)",
    )
    if isinstance(staged, StagedWithOverride):
        # The clinician sees what the override let through before confirming (H9).
        computed.add_row("overrides used", "", override_names(staged.overrides_used))
        computed.add_row("drug's soft limit", "", q.mass_per_day(staged.soft_limit_pg))
        reference = staged.reference_daily_mass_pg
        computed.add_row(
            "running daily dose", "", q.mass_per_day(reference) if reference else "(none)"
        )
    return [sent, steps, computed]


OVERRIDE_NAMES = {OVERRIDE_SOFT_LIMIT: "soft-limit", OVERRIDE_DOSE_CHANGE: "dose-change"}
"""``pumpemu ctl program --override`` names of the STAGE_PRESCRIPTION_OVERRIDE flags."""


def override_names(flags: int) -> str:
    names = [name for bit, name in OVERRIDE_NAMES.items() if flags & bit]
    return ", ".join(names) if names else "none needed"


def review_json(file: PrescriptionFile, review: Review) -> dict[str, Any]:
    rx = file.prescription
    return {
        "file": file.path,
        "asked": dict(file.asked),
        "asked_steps": [
            {"start": s.start, "amount": s.amount, "by_mass": s.by_mass} for s in file.asked_steps
        ],
        "prescription": plain(rx),
        "digest_programmer": review.digest_ours.hex(),
        "digest_pump": review.staged.digest.hex(),
        "digest_matches": review.digest_matches,
        "basal_24h_nl": review.basal_24h_nl,
        "patient_bolus_24h_nl": review.bolus_24h_nl,
        "pump_daily_volume_nl": review.staged.daily_volume_nl,
        "pump_daily_mass_pg": review.staged.daily_mass_pg,
        "low_reservoir_at_ms": review.staged.low_reservoir_at_ms,
        "empty_at_ms": review.staged.empty_at_ms,
        "stage_lifetime_s": review.staged.stage_lifetime_s,
        "pump_time_ms": review.pump_now_ms,
        **(
            {
                "overrides_used": review.staged.overrides_used,
                "soft_limit_pg": review.staged.soft_limit_pg,
                "reference_daily_mass_pg": review.staged.reference_daily_mass_pg,
            }
            if isinstance(review.staged, StagedWithOverride)
            else {}
        ),
    }

"""Values the pump reports about itself, shared by the firmware and the wire format.

The firmware keeps its state in these types and the status, alarm and log replies carry them
unchanged, so what a programmer reads is what the pump believes, with no mapping in between.
Enum values are wire values: never renumber one, only append.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from protocol.prescription import check_range
from protocol.units import U16_MAX, U32_MAX, U64_MAX


class Role(IntEnum):
    """Who a session speaks for. Deny by default: a patient may read status and the patient
    view and ask for a patient bolus, nothing else (docs/security.md section 7, C4)."""

    CLINICIAN = 1
    PATIENT = 2


class TherapyState(IntEnum):
    """The firmware's therapy state machine (emulator/firmware)."""

    STOPPED = 0
    CONTINUOUS = 1
    FLEX = 2
    CLINICIAN_BOLUS = 3
    PATIENT_BOLUS = 4
    PRIMING = 5
    SUSPENDED_BY_ALARM = 6
    END_OF_SERVICE = 7


class AlarmSeverity(IntEnum):
    NON_CRITICAL = 1
    """A 1 s single tone: low reservoir, elective replacement indicator."""
    CRITICAL = 2
    """A 3 s two-tone: motor stall, empty reservoir, end of service, memory error."""


class AlarmKind(IntEnum):
    LOW_RESERVOIR = 1
    RESERVOIR_EMPTY = 2
    MOTOR_STALL = 3
    ELECTIVE_REPLACEMENT = 4
    END_OF_SERVICE = 5
    MEMORY_ERROR = 6
    LOW_BATTERY_RESET = 7
    """Early battery depletion reset the flow to the safe low rate (H4, H6)."""
    CONCENTRATION_UNPROGRAMMED = 8
    """A refill's new concentration reached the catheter tip before a prescription for it
    was committed: delivery suspended rather than run it at the old volume rates."""

    @property
    def severity(self) -> AlarmSeverity:
        if self in (AlarmKind.LOW_RESERVOIR, AlarmKind.ELECTIVE_REPLACEMENT):
            return AlarmSeverity.NON_CRITICAL
        return AlarmSeverity.CRITICAL


class EventKind(IntEnum):
    """What a log entry records. ``LogEntry.value_a``/``value_b`` meanings are per kind and
    documented in docs/protocol.md (event log)."""

    POWER_ON = 1
    CLOCK_SET = 2
    PRESCRIPTION_STAGED = 3
    PRESCRIPTION_COMMITTED = 4
    THERAPY_STARTED = 5
    THERAPY_STOPPED = 6
    CLINICIAN_BOLUS_STARTED = 7
    CLINICIAN_BOLUS_COMPLETED = 8
    BOLUS_CANCELLED = 9
    PATIENT_BOLUS_GRANTED = 10
    PATIENT_BOLUS_REFUSED = 11
    PATIENT_BOLUS_COMPLETED = 12
    PRIMING_STARTED = 13
    PRIMING_COMPLETED = 14
    REFILL_BEGUN = 15
    REFILL_COMPLETED = 16
    REFILL_DISCREPANCY = 17
    ALARM_RAISED = 18
    ALARM_ACKNOWLEDGED = 19
    ALARM_CLEARED = 20
    ALARM_TEST = 21
    MOTOR_STALL = 22
    MOTOR_RECOVERED = 23
    RESERVOIR_EMPTY = 24
    ELECTIVE_REPLACEMENT = 25
    END_OF_SERVICE = 26
    RESET = 27
    MEMORY_ERROR = 28
    COMMAND_REFUSED = 29
    SECURITY_EVENT = 30
    SESSION_OPENED = 31
    SESSION_CLOSED = 32
    FLOW_VALVE_RESET = 33
    """A clinician reopened a valve-gated pump's closed flow-activated valve (H15)."""
    SECURITY_SUMMARY = 34
    """How many more security events of one refusal code a run counted instead of writing,
    and when the last of them came (docs/protocol.md section 11.3)."""
    # 40-47: the drug library and concentration changes (docs/protocol.md section 11.2)
    OVERRIDE_STAGED = 40
    """A stage passed a soft or dose-change limit on the clinician's explicit override."""
    OVERRIDE_COMMITTED = 41
    """A prescription staged with an override was committed."""
    BRIDGE_STARTED = 42
    """BRIDGE_BOLUS: the old drug in the path runs at the old rates first."""
    BRIDGE_COMPLETED = 43
    """The old drug is out of the path; the prescription committed during the bridge runs."""
    CONCENTRATION_UNPROGRAMMED = 44
    """A new concentration reached the catheter tip with no prescription for it: suspended."""
    CATHETER_SET = 48
    """SET_CATHETER recorded a catheter: detail 1 if primed, value_a its length in cm."""


SECURITY_KINDS = frozenset({EventKind.SECURITY_EVENT, EventKind.SECURITY_SUMMARY})
"""Log entries the session layer writes for refusals: at most a bounded share of the log
(docs/protocol.md section 11.3), so a flood never pushes out the programming history."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One event-log record. ``seq`` strictly increases for the pump's whole life."""

    seq: int
    time_ms: int
    kind: EventKind
    detail: int
    """A small code: a RefusalCode, an AlarmKind, or 0, depending on ``kind``."""
    value_a: int
    value_b: int

    def __post_init__(self) -> None:
        # Every entry the pump writes passes here: one chained test for the good case,
        # the per-field checks (with their messages) only when something is off.
        seq, t, detail, a, b = self.seq, self.time_ms, self.detail, self.value_a, self.value_b
        if (
            type(seq) is int and type(t) is int and type(detail) is int
            and type(a) is int and type(b) is int
            and 0 <= seq <= U32_MAX and 0 <= t <= U64_MAX and 0 <= detail <= U16_MAX
            and 0 <= a <= U64_MAX and 0 <= b <= U64_MAX
        ):  # fmt: skip
            return
        check_range("seq", self.seq, 0, U32_MAX)
        check_range("time_ms", self.time_ms, 0, U64_MAX)
        check_range("detail", self.detail, 0, U16_MAX)
        check_range("value_a", self.value_a, 0, U64_MAX)
        check_range("value_b", self.value_b, 0, U64_MAX)


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    """An alarm as the pump reports it: raised at ``since_ms``, maybe acknowledged."""

    kind: AlarmKind
    since_ms: int
    acknowledged: bool

    def __post_init__(self) -> None:
        check_range("since_ms", self.since_ms, 0, U64_MAX)

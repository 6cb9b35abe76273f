"""The clinic visit the demo plays, step by step, through the real serial path.

Every step goes through a ``Programmer`` on a serial port (the pty the emulator serves): the
same frames, sessions and sealing a clinician programmer would use. Only time and plant
faults, which no programmer can touch, go through ``Bench``. That is the emulator's side:
a manual clock and direct access to the pump, as the control API gives a test rig.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from emulator.faults import Fault, MagnetExposure
from emulator.pump import Pump
from hil.demo.recorder import Recorder
from hil.programmer.client import Programmer
from hil.programmer.core import Outcome, Result
from hil.quantities import volume
from protocol.device_state import EventKind, LogEntry
from protocol.messages import (
    Ack,
    DeviceInfo,
    EventLogPage,
    Nak,
    PrescriptionStaged,
    Status,
)
from protocol.prescription import (
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)
from protocol.refusal import RefusalCode
from protocol.units import MS_PER_HOUR, S_PER_HOUR

VISIT_LOCAL_MS = 1_795_510_800_000
"""2026-11-24 09:00 local: when the visit starts, on the pump's clock (SET_CLOCK)."""

PRESCRIPTION = Prescription(
    drug_name="morphine",
    concentration_ug_per_ml=10_000,  # 10 mg/mL
    mode=InfusionMode.FLEX,
    repeat=Repeat.DAILY,
    steps=(
        FlexStep(0, 200_000),  # 00:00  0.20 mL/day  (2.0 mg/day)
        FlexStep(7 * S_PER_HOUR, 350_000),  # 07:00  0.35 mL/day, mornings hurt most
        FlexStep(12 * S_PER_HOUR, 300_000),  # 12:00  0.30 mL/day
        FlexStep(22 * S_PER_HOUR, 250_000),  # 22:00  0.25 mL/day
    ),
    patient_bolus=PatientBolusLimits(
        dose_nl=20_000, duration_s=600, lockout_s=3 * S_PER_HOUR, max_per_24h=4
    ),
    low_reservoir_threshold_nl=2_000_000,
)
"""A four-step daily flex schedule of morphine, with patient boluses of 0.2 mg."""


class Bench(Protocol):
    """The emulator's side: what a rig's control API does, not the programmer."""

    def now_ms(self) -> int: ...

    def advance_to(self, time_ms: int) -> None:
        """Move pump time forward (the pump steps event to event on the way)."""
        ...

    def pump(self) -> AbstractContextManager[Pump]:
        """The pump, locked against the serve loop while the block runs."""
        ...

    def inject(self, fault: Fault) -> None:
        """Apply a plant fault now, as a rig's control API does (a capture notes it, so
        ``pumpemu replay`` can inject it again)."""
        ...


@dataclass(slots=True)
class Step:
    """One line of the visit's summary."""

    what: str
    outcome: str
    detail: str


@dataclass(slots=True)
class VisitReport:
    steps: list[Step] = field(default_factory=list)
    info: DeviceInfo | None = None
    status_before: Status | None = None
    status_after: Status | None = None
    staged: PrescriptionStaged | None = None
    log: list[LogEntry] = field(default_factory=list)
    first_seq: int = 0
    """The seq of the visit's first log entry: "since the visit" whatever the clock says."""
    start_pump_ms: int = 0
    """The pump clock when the visit started: log stamps and the stage's predictions are on
    it (docs/protocol.md section 1), never on ``Pump.now_ms``'s internal timeline."""
    refill_predicted_nl: int = 0
    refill_withdrawn_nl: int = 0

    def add(self, what: str, result: Result, detail: str = "") -> Result:
        self.steps.append(Step(what, describe_outcome(result), detail or describe_reply(result)))
        return result


def describe_outcome(result: Result) -> str:
    if result.outcome is Outcome.REFUSED and isinstance(result.reply, Nak):
        return f"refused: {result.reply.code.name}"
    return result.outcome.value


def describe_reply(result: Result) -> str:
    reply = result.reply
    if isinstance(reply, Ack):
        return f"state {reply.state.name}, reservoir {volume(reply.reservoir_nl)}"
    if isinstance(reply, Nak):
        if reply.code is RefusalCode.LOCKOUT_ACTIVE:
            return "the lockout that programming started is still running"
        limit = f", limit {reply.limit}" if reply.limit else ""
        return f"field {reply.field.name}{limit}" if reply.field.value else limit.lstrip(", ")
    return result.detail


def run_visit(
    bench: Bench,
    clinician: Callable[[], AbstractContextManager[Programmer]],
    patient: Callable[[], AbstractContextManager[Programmer]],
    recorder: Recorder,
    *,
    days: int = 30,
    progress: Callable[[int], None] | None = None,
) -> VisitReport:
    """Play the visit. ``clinician()`` and ``patient()`` open programmers on the serial port."""
    report = VisitReport()
    with bench.pump() as pump:
        recorder.sample(pump)
        visit_start = pump.now_ms  # internal: what the bench advances
        now = pump.status()
        report.first_seq, report.start_pump_ms = now.log_next_seq, now.local_time_ms
    with clinician() as programmer:
        program_the_pump(programmer, bench, report)
    with bench.pump() as pump:
        recorder.sample(pump)
        recorder.mark(pump.now_ms, "refilled, programmed")
    patient_boluses(patient, bench, report)
    fast_forward(bench, patient, recorder, visit_start, days=days, progress=progress)
    with clinician() as programmer:
        status = report.add(f"interrogate after {days} days", programmer.status())
        report.status_after = status.reply if isinstance(status.reply, Status) else None
        report.log = list(read_whole_log(programmer, report))
    return report


def program_the_pump(programmer: Programmer, bench: Bench, report: VisitReport) -> None:
    """Interrogate, refill with the discrepancy check, then stage, review and commit."""
    info = report.add("interrogate: device info", programmer.info())
    report.info = info.reply if isinstance(info.reply, DeviceInfo) else None
    status = report.add("interrogate: status", programmer.status())
    report.status_before = status.reply if isinstance(status.reply, Status) else None
    report.add("set the pump clock", programmer.set_clock(VISIT_LOCAL_MS))
    # The syringe's reading is physical truth, so it comes from the bench, not the pump.
    with bench.pump() as pump:
        withdrawn_before = pump.plant_truth().withdrawn_nl
    begun = report.add("refill: begin", programmer.refill_begin())
    predicted = begun.reply.value if isinstance(begun.reply, Ack) else 0
    with bench.pump() as pump:
        withdrawn = pump.plant_truth().withdrawn_nl - withdrawn_before
    report.refill_predicted_nl, report.refill_withdrawn_nl = predicted, withdrawn
    verdict = "within" if abs(withdrawn - predicted) <= 1_000_000 else "OUTSIDE"
    report.add(
        "refill: complete 20 mL",
        programmer.refill_complete(withdrawn, 20_000_000, PRESCRIPTION.concentration_ug_per_ml),
        f"withdrew {volume(withdrawn)}, pump predicted {volume(predicted)}: "
        f"{verdict} the 1 mL discrepancy limit",
    )
    staged = report.add("program: stage flex prescription", programmer.stage(PRESCRIPTION))
    if isinstance(staged.reply, PrescriptionStaged):
        report.staged = staged.reply
        # A committed FLEX prescription runs at once: no separate START.
        report.add("program: commit after review", programmer.commit(staged.reply.digest))


def patient_boluses(
    patient: Callable[[], AbstractContextManager[Programmer]], bench: Bench, report: VisitReport
) -> None:
    """The patient's own device: refused in the lockout that programming started, then not."""
    with patient() as handset:
        report.add("patient bolus right after programming", handset.patient_bolus())
    bench.advance_to(bench.now_ms() + 3 * MS_PER_HOUR + 1_000)
    with patient() as handset:
        report.add("patient bolus 3 h later", handset.patient_bolus())
        report.add("patient bolus again at once", handset.patient_bolus())
        report.add("patient tries to stop therapy", handset.stop(), "deny by default (C4)")


def fast_forward(
    bench: Bench,
    patient: Callable[[], AbstractContextManager[Programmer]],
    recorder: Recorder,
    visit_start: int,
    *,
    days: int,
    progress: Callable[[int], None] | None,
) -> None:
    """Days of therapy: boluses twice a day, and an MRI scan on day 10 stalls the rotor."""
    for hour in range(6, days * 24 + 1, 6):
        bench.advance_to(visit_start + hour * MS_PER_HOUR)
        if hour == 10 * 24:
            bench.inject(MagnetExposure(scan_s=1_800, recovery_s=8 * S_PER_HOUR))
            with bench.pump() as pump:
                recorder.mark(pump.now_ms, "MRI: rotor stalls")
        if hour % 24 in (12, 18):
            with patient() as handset:
                handset.patient_bolus()
        with bench.pump() as pump:
            recorder.sample(pump)
        if progress is not None:
            progress(hour // 24)


def read_whole_log(programmer: Programmer, report: VisitReport) -> Iterator[LogEntry]:
    """Page through the event log from its oldest entry."""
    next_seq = 0
    for _ in range(1_000):
        result = programmer.event_log(next_seq, 32)
        page = result.reply
        if not isinstance(page, EventLogPage):
            report.add("read the event log", result)
            return
        yield from page.entries
        if not page.entries or page.entries[-1].seq + 1 >= page.next_seq:
            report.steps.append(Step("read the event log", "answered", f"{page.next_seq} events"))
            return
        next_seq = page.entries[-1].seq + 1


NOTABLE = frozenset(
    {
        EventKind.CLOCK_SET,
        EventKind.PRESCRIPTION_COMMITTED,
        EventKind.THERAPY_STARTED,
        EventKind.PATIENT_BOLUS_GRANTED,
        EventKind.PATIENT_BOLUS_REFUSED,
        EventKind.REFILL_BEGUN,
        EventKind.REFILL_COMPLETED,
        EventKind.REFILL_DISCREPANCY,
        EventKind.MOTOR_STALL,
        EventKind.MOTOR_RECOVERED,
        EventKind.ALARM_RAISED,
        EventKind.ALARM_CLEARED,
        EventKind.COMMAND_REFUSED,
        EventKind.SECURITY_EVENT,
    }
)
"""The log entries worth a line in the demo's summary."""

"""The firmware: therapy state machine, interlocks, reservoir estimate, alarms and log.

The firmware believes what it was told (the volume entered at refill, the prescription) and
what its sensors report (a stalled rotor if the profile has the sensor, the battery charge).
It never reads the plant (docs/architecture.md principle 3): ``emulator.pump.Pump`` plays the
hardware, turning plant truth into the sensor inputs below.

Every therapy change goes through ``therapy_table`` (principle 6). Every command returns a
value, ``Refused(code, field, limit)`` or an accepted result, and is logged either way.

Event-driven time: ``next_deadline`` names the next instant the firmware must act (a flex
boundary, a bolus's end, the low-reservoir or empty crossing, a battery check, end of
service). The pump advances the engine from deadline to deadline and calls ``after_step``;
nothing here loops over seconds or strokes.

Two timelines (docs/pump-model.md, "Time"). Every ``now_ms`` argument, every deadline and
all scheduling state (bolus end, lockout, stall retries, battery checks, end of service,
stage expiry) are on the *internal* timeline: monotonic, never set. The *pump clock* is
internal + ``_clock_offset_ms``, which SET_CLOCK changes; it is the one STATUS and CLOCK
report, and every instant that leaves the firmware is on it (docs/protocol.md section 1):
log entries and alarms are stamped with the pump clock *as it read when they were written*
(``_stamp``), and results, status and predictions give instants to come on the pump clock
as it reads now (``_on_pump_clock``). The conversion happens here, once; nothing outside
the firmware converts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from emulator.drug_library import DrugLibrary, default_library
from emulator.firmware import battery, boluses, deadlines, readouts, refill, service, staging
from emulator.firmware.alarms import AlarmSet
from emulator.firmware.basal_plan import PlanCache, next_rate_change
from emulator.firmware.command_scope import command as _command
from emulator.firmware.concentration_change import (
    PendingChange,
    TipAction,
    at_tip,
    bridge_refusal,
    delivery_block,
)
from emulator.firmware.deadline_cache import CHECK_ALL, DeadlineCache
from emulator.firmware.engine_api import Engine
from emulator.firmware.event_log import EventLog
from emulator.firmware.forecast import reservoir_crossings
from emulator.firmware.interlocks import (
    prescription_digest,
)
from emulator.firmware.nvram import (
    SnapshotError,
    decode_record,
    encode_record,
    prescription_from_json,
    prescription_to_json,
)
from emulator.firmware.readouts import CatheterReadout, DetailReadout, PatientReadout
from emulator.firmware.record import load_into, record_of
from emulator.firmware.results import (
    Accepted,
    BolusStarted,
    Refused,
)
from emulator.firmware.schedule import Schedule
from emulator.firmware.service import CatheterBelief
from emulator.firmware.staging import StagedPrescription
from emulator.firmware.therapy_table import (
    BASAL_UNDER_BOLUS_STATES,
    BOLUS_STATES,
    DELIVERING_STATES,
    FIXED_TARGETS,
    RUNNING_STATES,
    TABLE,
    Go,
    Refuse,
    Target,
    TherapyInput,
)
from emulator.firmware.totals import DeliveryTotals, day_of
from emulator.profile import Profile
from emulator.rate_plan import RatePlan
from protocol.device_state import AlarmKind, AlarmRecord, EventKind, TherapyState
from protocol.messages import Opcode
from protocol.prescription import InfusionMode, Prescription
from protocol.refusal import FieldId, RefusalCode
from protocol.units import MS_PER_DAY, MS_PER_S, PUMP_CLOCK_MAX_MS, U64_MAX

__all__ = ["BY_COMMAND", "NV_MAGIC", "Commanded", "Engine", "Firmware", "FirmwareStatus"]

NV_MAGIC = b"PEMU-NV1"

_RUNNING = RUNNING_STATES
_BOLUS = BOLUS_STATES
_DELIVERING = DELIVERING_STATES

BY_COMMAND = frozenset(
    {
        EventKind.CLOCK_SET,
        EventKind.PRESCRIPTION_COMMITTED,
        EventKind.THERAPY_STARTED,
        EventKind.THERAPY_STOPPED,
        EventKind.CLINICIAN_BOLUS_STARTED,
        EventKind.BOLUS_CANCELLED,
        EventKind.PATIENT_BOLUS_GRANTED,
        EventKind.PATIENT_BOLUS_REFUSED,
        EventKind.PRIMING_STARTED,
        EventKind.REFILL_BEGUN,
        EventKind.REFILL_COMPLETED,
        EventKind.REFILL_DISCREPANCY,
        EventKind.ALARM_RAISED,
        EventKind.ALARM_ACKNOWLEDGED,
        EventKind.ALARM_CLEARED,
        EventKind.ALARM_TEST,
        EventKind.COMMAND_REFUSED,
        EventKind.FLOW_VALVE_RESET,
        EventKind.CATHETER_SET,
        EventKind.OVERRIDE_COMMITTED,
        EventKind.BRIDGE_STARTED,
    }
)
"""The kinds a command can cause: their ``value_b`` is the command id of the request being
applied or refused when the entry was written, 0 when the pump wrote it on its own
(docs/protocol.md section 11, "the command rule"). ``Firmware._log`` fills it in, so no
entry can carry another value there."""

_OPCODES: dict[TherapyInput, Opcode] = {
    TherapyInput.STAGE: Opcode.STAGE_PRESCRIPTION,
    TherapyInput.COMMIT: Opcode.COMMIT_PRESCRIPTION,
    TherapyInput.START: Opcode.START_THERAPY,
    TherapyInput.STOP: Opcode.STOP_THERAPY,
    TherapyInput.CLINICIAN_BOLUS: Opcode.CLINICIAN_BOLUS,
    TherapyInput.PATIENT_BOLUS: Opcode.PATIENT_BOLUS_REQUEST,
    TherapyInput.PRIME: Opcode.PRIMING_BOLUS,
    TherapyInput.CANCEL_BOLUS: Opcode.CANCEL_BOLUS,
    TherapyInput.REFILL_BEGIN: Opcode.REFILL_BEGIN,
    TherapyInput.REFILL_COMPLETE: Opcode.REFILL_COMPLETE,
    TherapyInput.CLEAR_MEMORY_ERROR: Opcode.CLEAR_MEMORY_ERROR,
    TherapyInput.BRIDGE_BOLUS: Opcode.BRIDGE_BOLUS,
}
"""The request opcode a refused input is logged with (COMMAND_REFUSED ``value_a``). Inputs
without one (the firmware's own sensor and timer inputs) are logged with 0: an internal
enumeration value never reaches the log."""


StatusFigures = tuple[TherapyState, int, int, int, frozenset[AlarmKind], int | None, int]
"""(state, basal rate nl/day, reservoir estimate nl, battery nAh, active alarm kinds, last
command id or None, pump clock ms): ``Firmware.status_figures``, the ``FirmwareStatus``
fields a STATUS reply carries, in the reply's order."""


@dataclass(frozen=True, slots=True)
class FirmwareStatus:
    """What the pump reports about itself (all firmware belief, never plant truth).

    ``time_ms`` is the internal timeline (``Pump.now_ms``); every other instant is on the
    pump clock (``local_time_ms``, what STATUS reports): instants to come (predictions,
    bolus end, lockout end, end of service) as the clock reads now, instants past (alarms'
    ``since_ms``, ``elective_replacement_ms``) as it read when they happened.
    """

    time_ms: int
    """Now on the internal timeline (monotonic, never set): for ``Pump.advance_to``."""
    local_time_ms: int
    """Now on the pump clock (SET_CLOCK sets it; STATUS ``pump_time_ms``)."""
    state: TherapyState
    prescription: Prescription | None
    basal_rate_nl_per_day: int
    reservoir_estimate_nl: int
    low_reservoir_threshold_nl: int
    predicted_low_reservoir_ms: int | None
    """Pump clock; None if never (basal only, docs/protocol.md PRESCRIPTION_STAGED)."""
    predicted_empty_ms: int | None
    """Pump clock; None if never."""
    delivered_nl: int
    """Everything the firmware believes it delivered since power-on (strokes x stroke_nl)."""
    bolus_strokes_remaining: int
    bolus_ends_ms: int | None
    """Pump clock: when the running bolus ends (the ACK value), None if none runs."""
    lockout_until_ms: int
    """Pump clock: when the patient-bolus lockout ends (past if none is running)."""
    patient_boluses_last_24h: int
    refill_in_progress: bool
    staged_digest: bytes | None
    alarms: tuple[AlarmRecord, ...]
    """Active alarms; ``since_ms`` is the pump clock when each was raised."""
    motor_stall_detected: bool
    memory_error: bool
    battery_nah: int
    """The last battery reading."""
    elective_replacement_ms: int | None
    """Pump clock when ERI was reached (as the clock read then, like its log entry)."""
    end_of_service_ms: int | None
    """Pump clock: when the pump stops for good (ERI + days_eri_to_eos), once ERI has been
    reached (H7)."""
    last_command_id: int | None
    log_next_seq: int
    pending_concentration_ug_per_ml: int | None = None
    """A refill's new concentration no prescription in effect is for yet (None: none)."""
    old_drug_in_path_nl: int = 0
    """Old drug the firmware believes still lies between reservoir and catheter tip."""
    bridging: bool = False
    """BRIDGE_BOLUS accepted: a COMMIT takes effect when the old drug is out."""
    waiting_prescription: Prescription | None = None
    """Committed during the bridge, in effect when the old drug is out (CURRENT_PRESCRIPTION
    reports it: it is the committed one; ``prescription`` is the one running)."""


@dataclass(slots=True)
class Commanded:
    """The strokes the firmware commanded in one step ending at ``at_ms``: ``count`` in
    all, ``bolus`` of them on the bolus channel (the rest are basal). Not frozen: one is
    built every pump step and handed straight to the pump, and a frozen dataclass sets
    each field through ``object.__setattr__``."""

    count: int
    bolus: int
    at_ms: int = 0


_NOTHING = Commanded(0, 0)


class Firmware:
    """The pump's decisions. ``now_ms`` arguments never go backwards (the pump ensures it)."""

    def __init__(
        self,
        profile: Profile,
        engine: Engine,
        start_ms: int,
        reservoir_estimate_nl: int,
        *,
        log: EventLog | None = None,
        power_on: bool = True,
        catheter_length_cm: int | None = None,
        catheter_primed: bool = True,
    ) -> None:
        """A firmware at power-on (``power_on=False``: an empty shell for a restore).

        ``catheter_length_cm`` and ``catheter_primed`` are what the implanting clinician
        told the pump (default: the profile's longest catheter, primed)."""
        self.profile = profile
        self.engine = engine
        self._command_in_effect = 0
        # Kept between steps; what can move it invalidates it (deadline_cache.py).
        self._deadline = DeadlineCache(check=CHECK_ALL.on)
        self.log = log if log is not None else EventLog(profile.log_capacity)
        self._stroke = profile.stroke_nl
        # -- persisted in the non-volatile record (to_record / from_record) --
        self.state = TherapyState.STOPPED
        self.rx: Prescription | None = None
        self._intent_running = False
        self._estimate = reservoir_estimate_nl
        self._delivered = 0
        self._bolus_end_ms: int | None = None
        self._bolus_volume = 0
        self._bolus_done = 0  # strokes of the running bolus counted as delivered
        self._stalled = False
        self._stall_detected_ms = 0
        self._empty = False
        self._memory_error = False
        self._eri_ms: int | None = None  # pump clock when ERI was reached (history)
        self._eos_ms: int | None = None  # internal: a deadline
        self._low_reset_done = False
        self._battery_nah = profile.battery_capacity_nah
        self._next_battery_check_ms = start_ms + profile.battery_check_interval_s * MS_PER_S
        # The design-life shut-off (SynchroMed II: 7 years, whatever the rate; H6, H7): a
        # deadline on the internal timeline, so it costs nothing per step.
        life_days = profile.battery_design_life_days
        self._eri_lead_ms = profile.days_eri_to_eos * MS_PER_DAY
        self._design_eos_ms: int | None = start_ms + life_days * MS_PER_DAY if life_days else None
        self._lockout_until_ms = start_ms
        self._patient_grants: deque[int] = deque()
        self._clinician_boluses: deque[tuple[int, int]] = deque()
        self._last_command_id: int | None = None
        self._clock_offset_ms = 0
        self.alarms = AlarmSet()
        self._totals = DeliveryTotals(day=day_of(start_ms))
        # The last battery reading's time (internal) and the volume delivered then: the
        # ERI projection subtracts what the pump believes it drew since (forecast.py).
        self._battery_read_ms = start_ms
        self._battery_read_delivered_nl = 0
        self._catheter = CatheterBelief(
            profile.catheter_max_length_cm if catheter_length_cm is None else catheter_length_cm,
            catheter_primed,
        )
        self._change: PendingChange | None = None
        # The catheter's dead volume as the firmware believes it, for the bridge: the
        # catheter it was told of (SET_CATHETER or implant), then what a priming filled.
        self._catheter_nl = profile.catheter_volume_nl(self._catheter.length_cm)
        self.library: DrugLibrary = default_library()
        # -- volatile (lost on reset: C5, a staged prescription never survives) --
        self._staged: StagedPrescription | None = None
        self._refill_predicted: int | None = None
        self._nv_fault: bytes | None = None
        self._schedule = Schedule(None)
        self._plans = PlanCache()
        self._before_day = 0  # strokes of the step in progress that fell before its day began
        if power_on:
            self._log(start_ms, EventKind.POWER_ON, 0, reservoir_estimate_nl)
            self._check_reservoir_alarms(start_ms)

    # ====================================================================================
    # Status and time
    # ====================================================================================

    @property
    def memory_error(self) -> bool:
        return self._memory_error

    @property
    def stall_detected(self) -> bool:
        return self._stalled

    @property
    def stall_detected_ms(self) -> int:
        return self._stall_detected_ms

    @property
    def reservoir_estimate_nl(self) -> int:
        return self._estimate

    @property
    def delivered_nl(self) -> int:
        return self._delivered

    @property
    def last_command_id(self) -> int | None:
        return self._last_command_id

    @property
    def low_threshold_nl(self) -> int:
        rx = self.rx
        return (
            rx.low_reservoir_threshold_nl
            if rx is not None
            else self.profile.low_reservoir_threshold_default_nl
        )

    @property
    def therapy_running(self) -> bool:
        """Delivering the basal schedule (running, or a bolus on top of it)."""
        return self.state in _DELIVERING and self._intent_running

    def local_ms(self, now_ms: int) -> int:
        """The pump clock at internal time ``now_ms``, with the clock as it is set now."""
        return now_ms + self._clock_offset_ms

    def _stamp(self, now_ms: int) -> int:
        """The stamp of something written now (a log entry, an alarm): the pump clock as
        it reads at ``now_ms``. It is never rewritten: a later SET_CLOCK leaves it alone."""
        return now_ms + self._clock_offset_ms

    def _on_pump_clock(self, at_ms: int | None) -> int | None:
        """An internal instant (a deadline to come) on the pump clock as it reads now."""
        return None if at_ms is None else at_ms + self._clock_offset_ms

    def patient_boluses_in_24h(self, now_ms: int) -> int:
        grants = self._patient_grants
        clinician = self._clinician_boluses
        horizon = now_ms - MS_PER_DAY
        if (grants and grants[0] <= horizon) or (clinician and clinician[0][0] <= horizon):
            self._prune(now_ms)  # otherwise (most requests) there is nothing to forget
        return len(grants)

    def lockout_until_ms(self) -> int:
        return self._lockout_until_ms

    def status(self, now_ms: int) -> FirmwareStatus:
        low, empty = self.predictions(now_ms)
        return FirmwareStatus(
            time_ms=now_ms,
            local_time_ms=self.local_ms(now_ms),
            state=self.state,
            prescription=self.rx,
            basal_rate_nl_per_day=self.engine.basal_rate_nl_per_day,
            reservoir_estimate_nl=self._estimate,
            low_reservoir_threshold_nl=self.low_threshold_nl,
            predicted_low_reservoir_ms=low,
            predicted_empty_ms=empty,
            delivered_nl=self._delivered,
            bolus_strokes_remaining=self.engine.bolus_strokes_remaining,
            bolus_ends_ms=self._on_pump_clock(self._bolus_end_ms),
            lockout_until_ms=self.local_ms(self._lockout_until_ms),
            patient_boluses_last_24h=self.patient_boluses_in_24h(now_ms),
            refill_in_progress=self._refill_predicted is not None,
            staged_digest=None if self._staged is None else self._staged.digest,
            alarms=self.alarms.records(),
            motor_stall_detected=self._stalled,
            memory_error=self._memory_error,
            battery_nah=self._battery_nah,
            elective_replacement_ms=self._eri_ms,
            end_of_service_ms=self._on_pump_clock(self._eos_ms),
            last_command_id=self._last_command_id,
            log_next_seq=self.log.next_seq,
            pending_concentration_ug_per_ml=None
            if self._change is None
            else self._change.new_concentration,
            old_drug_in_path_nl=0 if self._change is None else self._change.old_in_path_nl,
            bridging=self._change is not None and self._change.bridging,
            waiting_prescription=None if self._change is None else self._change.next_rx,
        )

    def status_figures(self, now_ms: int) -> StatusFigures:
        """The seven figures a STATUS reply carries, as ``status`` would give them, without
        the forecasts, the alarm records and the rest ``status`` builds: a READ_STATUS, the
        programmer's most frequent request, pays for nothing it does not send
        (emulator/status_reply.py; docs/serve.md, "The serve loop's cost")."""
        return (
            self.state,
            self.engine.basal_rate_nl_per_day,
            self._estimate,
            self._battery_nah,
            self.alarms.kinds(),
            self._last_command_id,
            now_ms + self._clock_offset_ms,
        )

    def predictions(
        self, now_ms: int, rx: Prescription | None = None, running: bool | None = None
    ) -> tuple[int | None, int | None]:
        """Predicted (low-reservoir, empty) instants on the pump clock, basal only, from
        internal time ``now_ms``; None if never.

        With no ``rx`` this is the running therapy. The estimate falls by whole strokes, so
        "empty" is when less than one stroke is left. The schedule runs on the pump clock,
        so the answer is on it already: what STATUS and PRESCRIPTION_STAGED report,
        never a deadline to advance to (the pump steps to the crossing by stroke
        count, deadlines.py ``next_reservoir_crossing``).
        """
        if rx is None:
            rx = self.rx
            running = self.therapy_running
        if not running or rx is None:
            return None, None
        schedule = self._schedule if rx is self.rx else Schedule(rx)
        return reservoir_crossings(
            schedule,
            self.local_ms(now_ms),
            self._estimate,
            rx.low_reservoir_threshold_nl,
            self._stroke,
        )

    def detail(self, now_ms: int) -> DetailReadout:
        """STATUS_DETAIL's figures: belief and closed-form forecasts (readouts.py; H7)."""
        return readouts.detail(self, now_ms)

    def patient_view(self, now_ms: int) -> PatientReadout:
        """PATIENT_VIEW: what a patient device shows, nothing more (docs/security.md 7)."""
        return readouts.patient_view(self, now_ms)

    def catheter(self) -> CatheterReadout:
        return readouts.catheter(self)

    def next_deadline(self, now_ms: int) -> int | None:
        """The next instant, after now, at which the firmware must act; None if none.
        Kept between requests until something that can move it changes (deadline_cache.py)."""
        return self._deadline.get(now_ms, self._compute_next_deadline)

    @property
    def deadline_cache(self) -> DeadlineCache:
        """The cache behind ``next_deadline`` (its ``check`` flag turns on check mode)."""
        return self._deadline

    _compute_next_deadline = deadlines.next_deadline
    """The computation behind ``next_deadline`` (deadlines.py), called as a method."""

    def next_rate_change(self, now_ms: int) -> int | None:
        """The next flex boundary after now (internal; basal_plan.py), None if none."""
        applies = self._basal_applies()
        return next_rate_change(self._schedule, self._clock_offset_ms, now_ms, applies)

    def _rate_plan(self) -> RatePlan:
        return self._plans.plan(self._schedule, self._clock_offset_ms)

    def _run_schedule(self, applies: bool = True) -> None:
        self._plans.run(self.engine, self._schedule, self._clock_offset_ms, applies)

    def user_deadlines(self, now_ms: int) -> list[int]:
        """Times after now when what the pump accepts changes (lockout end, stage expiry)."""
        return deadlines.user_deadlines(self, now_ms)

    # -- the step hooks the pump calls ---------------------------------------------------

    def command_strokes(self, now_ms: int) -> Commanded:
        """Advance the engine to ``now_ms``: the strokes the firmware commands in the step.

        No delivery past an empty estimate: strokes beyond it are never commanded. The
        pump's deadlines end a step at the stroke that empties the estimate, so a cut only
        drops strokes falling at that same instant; they are taken from the bolus first
        (the bolus is then dropped by the empty suspension and logged as not delivered).
        """
        engine = self.engine
        bolus_before = engine.bolus_strokes_remaining  # 0, at one call, with no bolus
        # A step that crosses the pump clock's midnight: count exactly how many strokes
        # fell before the new day began, so the day's mass is exact (totals.py).
        offset = self._clock_offset_ms
        day_start = (now_ms + offset) // MS_PER_DAY * MS_PER_DAY - offset
        if engine.now_ms < day_start <= now_ms:
            self._before_day = engine.strokes_between(day_start - 1)
        else:
            self._before_day = 0
        count = engine.advance_count(now_ms)
        if not count:
            return _NOTHING
        bolus = bolus_before - engine.bolus_strokes_remaining if bolus_before else 0
        allowed = self._estimate // self._stroke
        if allowed >= count:
            return Commanded(count, bolus, now_ms)  # every step but the one that empties
        self._deadline.invalidate()  # strokes cut: the estimate no longer moves with k
        bolus -= count - allowed
        return Commanded(allowed, bolus if bolus > 0 else 0, now_ms)

    def on_strokes_delivered(self, commanded: Commanded) -> None:
        """The motor turned the commanded strokes (as far as the firmware can tell). Never
        called for strokes the sensor saw blocked: those are not delivered (H5, H12)."""
        count = commanded.count
        stroke = self._stroke
        volume = count * stroke
        self._estimate -= volume
        self._delivered += volume
        # Mass believed delivered: at the running prescription's concentration (none known
        # before the first COMMIT: volume only, totals.py).
        rx = self.rx
        conc = 0 if rx is None else rx.concentration_ug_per_ml
        before = self._before_day
        totals = self._totals
        if before:  # the step crossed midnight: the strokes before it count on the old day
            before = min(before, count)
            totals.add(before * stroke * conc)
        day = (commanded.at_ms + self._clock_offset_ms) // MS_PER_DAY  # the engine's now
        if day != totals.day:
            totals.roll_to(day)
        mass = (count - before) * stroke * conc  # totals.add, inlined (every step)
        totals.delivered_pg += mass
        totals.today_pg += mass
        if self._change is not None:
            self._change = self._change.delivered(volume)
        if self._bolus_end_ms is not None:
            self._bolus_done += commanded.bolus

    def after_step(self, now_ms: int, battery_nah: int) -> None:
        """Act on everything due at ``now_ms``, after the strokes up to it were counted."""
        self._before_day = 0
        day = (now_ms + self._clock_offset_ms) // MS_PER_DAY  # day_of
        totals = self._totals
        if day != totals.day:
            totals.roll_to(day)
        if self._nv_fault is not None and not self._memory_error:
            # The firmware writes its record at every step; a write that does not verify is
            # a memory error (H8). The pump steps 1 ms after the fault (emulator/pump.py).
            self._enter_memory_error(now_ms)
        end = self._bolus_end_ms
        if end is not None and now_ms >= end and not self.engine.bolus_active:
            self._complete_bolus(now_ms)
        state = self.state
        if state in _RUNNING or (state in BASAL_UNDER_BOLUS_STATES and self._intent_running):
            # _basal_applies, inlined (every step); a no-op while the engine follows the
            # schedule.
            self._plans.run(self.engine, self._schedule, self._clock_offset_ms, True)
        if self._change is not None:  # otherwise at_tip has nothing to do
            self._check_concentration_change(now_ms)
        if self.state in _DELIVERING and self._estimate < self._stroke:
            # No delivery past an empty estimate: suspend, critical alarm.
            self._empty = True
            self._internal(TherapyInput.RESERVOIR_EMPTY, now_ms)
        rx = self.rx
        threshold = (
            self.profile.low_reservoir_threshold_default_nl
            if rx is None
            else rx.low_reservoir_threshold_nl
        )
        if (
            self._estimate <= threshold
            or self._empty
            or self.alarms.is_active(AlarmKind.LOW_RESERVOIR)
        ):  # otherwise (most steps) _check_reservoir_alarms has nothing to raise or clear
            self._check_reservoir_alarms(now_ms)
        if battery_nah == 0 or now_ms >= self._next_battery_check_ms:
            self._battery_check(now_ms, battery_nah)
        design_eos = self._design_eos_ms
        if (
            design_eos is not None
            and self._eri_ms is None
            and now_ms >= design_eos - self._eri_lead_ms
        ):
            self._elective_replacement(now_ms, battery_nah)  # the design life's ERI (H6)
        if self._eos_ms is not None and now_ms >= self._eos_ms:
            self._reach_end_of_service(now_ms)

    def on_stall_detected(self, now_ms: int) -> None:
        """The sensor saw a commanded stroke fail to turn the rotor (H5, H14)."""
        # Strokes not counted: the engine moved on, the estimate did not (the crossings).
        self._deadline.invalidate()
        if self._stalled:
            return
        self._stalled = True
        self._stall_detected_ms = now_ms
        self._log(now_ms, EventKind.MOTOR_STALL, 0, self._estimate)
        self._raise(AlarmKind.MOTOR_STALL, now_ms)
        self._internal(TherapyInput.STALL_DETECTED, now_ms)

    def on_motor_recovered(self, now_ms: int) -> None:
        """A retry turned the rotor: resume at the programmed rate, no catch-up (H12)."""
        if not self._stalled:
            return
        self._stalled = False
        self._log(now_ms, EventKind.MOTOR_RECOVERED, 0, now_ms - self._stall_detected_ms)
        self._clear_alarm(AlarmKind.MOTOR_STALL, now_ms)
        self._internal(TherapyInput.MOTOR_RECOVERED, now_ms)

    @property
    def memory_fault_pending(self) -> bool:
        """A corrupted record not yet found: it will be at the next record write (H8)."""
        return self._nv_fault is not None and not self._memory_error

    def corrupt_nv(self, blob: bytes) -> None:
        """The non-volatile record now holds ``blob`` (a fault wrote bad bits)."""
        try:
            decode_record(NV_MAGIC, blob)
        except SnapshotError:
            self._nv_fault = blob
            return
        # The corruption happened to leave a valid record (impossible with SHA-256 in
        # practice); nothing is wrong, so nothing is detected.

    # ====================================================================================
    # Commands
    # ====================================================================================

    # Staging and committing a prescription (staging.py), called as methods.
    stage = _command(staging.stage)
    _stage_reviewed = staging.stage_reviewed
    expire_staged = staging.expire
    discard_staged = staging.discard
    commit = _command(staging.commit)

    @_command
    def start(self, now_ms: int, command_id: int | None) -> Accepted | Refused:
        what = TherapyInput.START
        gate = self._gate(what, now_ms, command_id)
        if isinstance(gate, Refused):
            return gate
        rx = self.rx
        if rx is None or rx.mode is InfusionMode.STOPPED:
            return self._refuse(
                Refused(RefusalCode.BAD_STATE, FieldId.MODE), what, now_ms, command_id
            )
        if self._estimate < self._stroke:
            return self._refuse(Refused(RefusalCode.RESERVOIR_EMPTY), what, now_ms, command_id)
        blocked = self._concentration_block(0)
        if blocked is not None:
            return self._refuse(blocked, what, now_ms, command_id)
        self._intent_running = True
        self._transition(gate, now_ms)
        seq = self._log(
            now_ms, EventKind.THERAPY_STARTED, int(rx.mode), self.engine.basal_rate_nl_per_day
        )
        return self._accepted(command_id, now_ms, seq)

    @_command
    def stop(self, now_ms: int, command_id: int | None) -> Accepted | Refused:
        gate = self._gate(TherapyInput.STOP, now_ms, command_id)
        if isinstance(gate, Refused):
            return gate
        change = self._change
        if change is not None and change.bridging:
            # A stop ends the bridge: nothing moves the old drug out while stopped. A
            # prescription committed during it is the committed one now (docs/protocol.md
            # section 10.3, rule 4); a START runs it, as after a commit without a bridge.
            if change.next_rx is not None:
                self._install(change.next_rx)
                self._change = None
            else:
                self._change = replace(change, bridging=False)
        self._intent_running = False
        self._transition(gate, now_ms)
        seq = self._log(now_ms, EventKind.THERAPY_STOPPED, 0, self._estimate)
        return self._accepted(command_id, now_ms, seq)

    clinician_bolus = _command(boluses.clinician)
    """CLINICIAN_BOLUS: a dose over a duration, within the interlocks (boluses.py)."""
    patient_bolus = _command(boluses.patient)
    """PATIENT_BOLUS_REQUEST: the prescription's patient bolus, within its lockout and
    daily count (boluses.py)."""

    @_command
    def prime(
        self, catheter_length_cm: int, now_ms: int, command_id: int | None
    ) -> BolusStarted | Refused:
        """Fill a catheter of this length (its dead volume) at the maximum rate (H3)."""
        p = self.profile
        if not 1 <= catheter_length_cm <= p.catheter_max_length_cm:
            # The limit is in the field's unit (nL): the volume of the shortest or longest
            # catheter the profile allows.
            length = 1 if catheter_length_cm < 1 else p.catheter_max_length_cm
            limit = p.catheter_volume_nl(length)
            refusal = Refused(RefusalCode.INVALID_FIELD, FieldId.CATHETER_VOLUME, limit)
            return self._refuse(refusal, TherapyInput.PRIME, now_ms, command_id)
        return self.prime_volume(p.catheter_volume_nl(catheter_length_cm), now_ms, command_id)

    prime_volume = _command(boluses.prime_volume)
    """Priming bolus of a volume at the maximum rate, basal paused (H3; boluses.py)."""

    @_command
    def cancel_bolus(self, now_ms: int, command_id: int | None) -> Accepted | Refused:
        gate = self._gate(TherapyInput.CANCEL_BOLUS, now_ms, command_id)
        if isinstance(gate, Refused):
            return gate
        seq = self._transition(gate, now_ms)
        return self._accepted(command_id, now_ms, seq if seq else self.log.next_seq - 1)

    # Refills (refill.py), called as methods within the command scope.
    check_refill_begin = _command(refill.check_begin)
    """Would REFILL_BEGIN be accepted? The pump asks before the needle withdraws."""
    refill_begin = _command(refill.begin)
    """Record the predicted residual (after ``check_refill_begin`` passed)."""
    check_refill_complete = _command(refill.check_complete)
    """Would this REFILL_COMPLETE entry be accepted?"""
    refill_complete = _command(refill.complete)
    """Apply a refill (after ``check_refill_complete`` passed)."""

    @_command
    def bridge_bolus(self, now_ms: int, command_id: int | None) -> BolusStarted | Refused:
        """BRIDGE_BOLUS: the old drug still in the path is delivered at the old rates (the
        rates that keep the programmed dose), and a prescription committed meanwhile takes
        effect when it is out of the tip (docs/pump-model.md, "Concentration changes").

        The result's ``ends_ms`` is when the last old drug is predicted out (pump clock),
        ``volume_nl`` the old drug left, rounded up to whole strokes (the stroke that pushes
        the last of it out also starts the new drug)."""
        what = TherapyInput.BRIDGE_BOLUS
        gate = self._gate(what, now_ms, command_id)
        if isinstance(gate, Refused):
            return gate
        if self._refill_predicted is not None:
            return self._refuse(Refused(RefusalCode.REFILL_IN_PROGRESS), what, now_ms, command_id)
        change = self._change
        strokes = 0 if change is None else -(-change.old_in_path_nl // self._stroke)
        end = self.engine.time_of_stroke(strokes) if strokes and self._intent_running else None
        refusal = bridge_refusal(change, end)
        if refusal is not None:
            return self._refuse(refusal, what, now_ms, command_id)
        assert change is not None
        assert end is not None
        self._change = replace(change, bridging=True)
        volume = strokes * self._stroke
        seq = self._log(now_ms, EventKind.BRIDGE_STARTED, 0, change.old_in_path_nl)
        self._note_command(command_id)
        return BolusStarted(
            command_id, self._stamp(now_ms), seq, volume, strokes, self.local_ms(end)
        )

    def _concentration_block(self, volume_nl: int) -> Refused | None:
        return delivery_block(self._change, volume_nl)

    def _check_concentration_change(self, now_ms: int) -> None:
        """At each step: once the old drug is out of the tip, the prescription committed
        during a bridge takes effect, or, with none, delivery is suspended with a critical
        alarm rather than run the new drug at the old volume rates."""
        change = self._change
        action = at_tip(change, self.state in _DELIVERING)
        if change is None or action is TipAction.NOTHING:
            return
        if action is TipAction.TAKE_EFFECT:
            rx = change.next_rx
            assert rx is not None
            self._change = None
            self._install(rx)
            self._intent_running = rx.mode is not InfusionMode.STOPPED
            digest_u64 = int.from_bytes(prescription_digest(rx)[:8], "little")
            self._log(now_ms, EventKind.BRIDGE_COMPLETED, int(rx.mode), digest_u64)
            # Only a delivering pump moves the old drug out (at_tip), so this is the running
            # basal handing over; a bolus on top of it goes on.
            if self.state in _RUNNING:
                self._transition(Go(Target.BASAL), now_ms)
            elif self._basal_applies():
                self._run_schedule()
            return
        self._change = replace(change, suspended=True)
        self._log(now_ms, EventKind.CONCENTRATION_UNPROGRAMMED, 0, change.new_concentration)
        self._raise(AlarmKind.CONCENTRATION_UNPROGRAMMED, now_ms)
        self._internal(TherapyInput.NEW_CONCENTRATION_AT_TIP, now_ms)

    @_command
    def clear_memory_error(self, now_ms: int, command_id: int | None) -> Accepted | Refused:
        """Rewrite the non-volatile record; the pump stays stopped until restarted (H8)."""
        return service.clear_memory_error(self, now_ms, command_id)

    @_command
    def acknowledge_alarm(
        self, kind: AlarmKind, now_ms: int, command_id: int | None
    ) -> Accepted | Refused:
        bad_id = self._check_command_id(command_id)
        if bad_id is not None:
            return bad_id
        if not self.alarms.acknowledge(kind):
            refusal = Refused(RefusalCode.NO_SUCH_ALARM, FieldId.ALARM, 0)
            self._log(
                now_ms, EventKind.COMMAND_REFUSED, int(refusal.code), Opcode.ACKNOWLEDGE_ALARM
            )
            return refusal
        seq = self._log(now_ms, EventKind.ALARM_ACKNOWLEDGED, int(kind))
        return self._accepted(command_id, now_ms, seq)

    @_command
    def alarm_test(self, now_ms: int, command_id: int | None) -> Accepted | Refused:
        """Sound both tones for the clinician; no therapy change."""
        bad_id = self._check_command_id(command_id)
        if bad_id is not None:
            return bad_id
        seq = self._log(now_ms, EventKind.ALARM_TEST)
        return self._accepted(command_id, now_ms, seq)

    @_command
    def set_clock(self, local_ms: int, now_ms: int, command_id: int | None) -> Accepted | Refused:
        """Set the pump clock; flex schedules follow it from now on.

        The CLOCK_SET entry is stamped with the clock before the change (its ``time_ms`` is
        the ACK value) and carries the clock set in ``value_a``, so the log holds both ends
        of the jump; every later stamp is on the new clock, and nothing written before is
        rewritten (docs/protocol.md section 11). The internal timeline does not move.
        """
        bad_id = self._check_command_id(command_id)
        if bad_id is not None:
            return bad_id
        if not 0 <= local_ms <= PUMP_CLOCK_MAX_MS:
            # Beyond it later stamps could overflow the u64 on the wire (protocol.md 8.1).
            limit = 0 if local_ms < 0 else PUMP_CLOCK_MAX_MS
            return Refused(RefusalCode.INVALID_FIELD, FieldId.CLOCK, limit)
        seq = self._log(now_ms, EventKind.CLOCK_SET, 0, local_ms)
        accepted = self._accepted(command_id, now_ms, seq)
        self._clock_offset_ms = local_ms - now_ms
        if self._basal_applies():
            self._run_schedule()  # the boundaries moved with the clock
        return accepted

    def record_event(
        self, now_ms: int, kind: EventKind, detail: int = 0, value_a: int = 0, value_b: int = 0
    ) -> int:
        """Log an event from outside the therapy core (session opened, security event),
        stamped with the pump clock now."""
        return self.log.append(self._stamp(now_ms), kind, detail, value_a, value_b)

    @_command
    def note_flow_valve_reset(self, now_ms: int, command_id: int | None) -> Accepted | Refused:
        """A clinician reset the flow-activated valve (H15); logged like any command.
        Refused NO_FLOW_VALVE on a pump that has none (service.py)."""
        return service.reset_flow_valve(self, now_ms, command_id)

    @_command
    def set_catheter(
        self, length_cm: int, primed: bool, now_ms: int, command_id: int | None
    ) -> Accepted | Refused:
        """Record the catheter the clinician entered (implant, revision; H3)."""
        return service.set_catheter(self, length_cm, primed, now_ms, command_id)

    # ====================================================================================
    # Internals
    # ====================================================================================

    def _check_command_id(self, command_id: int | None) -> Refused | None:
        if command_id is None:
            return None
        if isinstance(command_id, bool) or not isinstance(command_id, int):
            return Refused(RefusalCode.INVALID_FIELD, FieldId.COMMAND_ID, 1)
        if not 1 <= command_id <= U64_MAX:
            return Refused(
                RefusalCode.INVALID_FIELD, FieldId.COMMAND_ID, 1 if command_id < 1 else U64_MAX
            )
        return None

    def _gate(
        self,
        what: TherapyInput,
        now_ms: int,
        command_id: int | None,
        *,
        patient: bool = False,
        delivers: bool = True,
        opcode: Opcode | None = None,
    ) -> Go | Refused:
        """The checks every therapy command passes first: the command id, a memory error
        (H8), the state table, and a detected stall for a transition that would start
        delivery (``delivers``: the request would, if accepted; H5, H12)."""
        if command_id is not None and (
            type(command_id) is not int or not 1 <= command_id <= U64_MAX
        ):  # otherwise (every valid id) _check_command_id finds nothing
            bad_id = self._check_command_id(command_id)
            if bad_id is not None:
                return bad_id
        if self._memory_error and what is not TherapyInput.CLEAR_MEMORY_ERROR:
            # H8: a memory error blocks every update until a clinician clears it.
            return self._refuse(
                Refused(RefusalCode.MEMORY_ERROR),
                what,
                now_ms,
                command_id,
                patient=patient,
                opcode=opcode,
            )
        entry = TABLE[self.state][what]  # lookup, inlined (every command)
        if isinstance(entry, Refuse):
            code = entry.code if entry.code is not None else self._suspension_code()
            return self._refuse(
                Refused(code), what, now_ms, command_id, patient=patient, opcode=opcode
            )
        if entry.starts_delivery and delivers and self._stalled:
            # The rotor is not known to turn: a delivery started now would be counted but
            # not given, then given in full when it frees (H5, H12).
            refusal = Refused(RefusalCode.MOTOR_STALLED)
            return self._refuse(refusal, what, now_ms, command_id, patient=patient)
        return entry

    def _suspension_code(self) -> RefusalCode:
        if self._memory_error:
            return RefusalCode.MEMORY_ERROR
        if self._stalled:
            return RefusalCode.MOTOR_STALLED
        if self._empty:
            return RefusalCode.RESERVOIR_EMPTY
        if self._change is not None and self._change.suspended:
            return RefusalCode.CONCENTRATION_CHANGE_PENDING
        return RefusalCode.BAD_STATE  # pragma: no cover - suspended always has a cause

    def _refuse(
        self,
        refusal: Refused,
        what: TherapyInput,
        now_ms: int,
        command_id: int | None,
        *,
        patient: bool = False,
        opcode: Opcode | None = None,
    ) -> Refused:
        """Log a refusal (every refused request is in the log) and return it; ``opcode``
        names the request when the input alone does not (STAGE_PRESCRIPTION_OVERRIDE)."""
        if patient:
            # The opcode is implied; the NAK's limit (e.g. the lockout's seconds left) is
            # what the patient's refusal is about.
            self._log(now_ms, EventKind.PATIENT_BOLUS_REFUSED, refusal.code, refusal.limit or 0)
        else:
            logged = _OPCODES.get(what, 0) if opcode is None else opcode
            self._log(now_ms, EventKind.COMMAND_REFUSED, refusal.code, logged)
        return refusal

    def _log(
        self, now_ms: int, kind: EventKind, detail: int = 0, value_a: int = 0, value_b: int = 0
    ) -> int:
        """Append an entry stamped with the pump clock at ``now_ms`` (internal); a
        BY_COMMAND kind gets the command id in effect in value_b."""
        # Every transition, alarm, battery and concentration event is logged: any of them
        # may move the next deadline (deadline_cache.py).
        self._deadline.valid = False  # invalidate, as a store: every entry passes here
        if kind in BY_COMMAND:
            assert value_b == 0, f"{kind.name}: value_b is the command id"
            value_b = self._command_in_effect
        stamp = now_ms + self._clock_offset_ms  # _stamp, inlined (every entry)
        return self.log.append(stamp, kind, int(detail), int(value_a), value_b)

    def battery_percent(self, battery_nah: int) -> int:
        """A battery reading in whole percent of capacity, as STATUS reports it."""
        capacity = self.profile.battery_capacity_nah
        return min(100, max(0, battery_nah * 100 // capacity))

    def _note_command(self, command_id: int | None) -> None:
        if command_id is not None:
            self._last_command_id = command_id

    def _accepted(self, command_id: int | None, now_ms: int, seq: int) -> Accepted:
        self._note_command(command_id)
        return Accepted(command_id, self._stamp(now_ms), seq)

    def _install(self, rx: Prescription) -> None:
        self.rx = rx
        self._schedule = Schedule(rx)

    def _basal_state(self) -> TherapyState:
        rx = self.rx
        if rx is None or rx.mode is InfusionMode.STOPPED:
            return TherapyState.STOPPED
        return TherapyState.CONTINUOUS if rx.mode is InfusionMode.CONTINUOUS else TherapyState.FLEX

    def _resolve(self, target: Target) -> TherapyState:
        if target is Target.SAME:
            return self.state
        if target is Target.BASAL:
            return self._basal_state()
        if target is Target.AFTER_BOLUS:  # every bolus end: _basal_state, inlined
            if not self._intent_running:
                return TherapyState.STOPPED
            rx = self.rx
            if rx is None or rx.mode is InfusionMode.STOPPED:
                return TherapyState.STOPPED
            return (
                TherapyState.CONTINUOUS if rx.mode is InfusionMode.CONTINUOUS else TherapyState.FLEX
            )
        if target is Target.RESUME:
            suspended_change = self._change is not None and self._change.suspended
            if self._stalled or self._empty or self._memory_error or suspended_change:
                return self.state
            return self._basal_state() if self._intent_running else TherapyState.STOPPED
        return FIXED_TARGETS[target]

    def _basal_applies(self) -> bool:
        """Whether the schedule's basal runs now: running, or under a bolus on top of it."""
        state = self.state
        if state in _RUNNING:
            return True
        return state in BASAL_UNDER_BOLUS_STATES and self._intent_running

    def _transition(self, go: Go, now_ms: int) -> int:
        """Enter the target state and set the engine to match. Returns a log seq or 0."""
        self._deadline.valid = False  # invalidate: the state and the engine may change
        new = self._resolve(go.target)
        if new in _DELIVERING and self._stalled:
            # Every path into delivery is gated (_gate, Target.RESUME); reaching here is a
            # firmware bug, and going on would count strokes a stalled rotor never gives.
            raise RuntimeError(f"firmware bug: {new.name} entered with a stall detected")
        self.state = new
        seq = 0
        if new not in _BOLUS and self._bolus_end_ms is not None:
            seq = self._drop_bolus(now_ms)
        # _run_schedule(_basal_applies()), inlined: every bolus begins and ends here.
        applies = new in _RUNNING or (new in BASAL_UNDER_BOLUS_STATES and self._intent_running)
        self._plans.run(self.engine, self._schedule, self._clock_offset_ms, applies)
        return seq

    # The bolus life cycle, called as methods (boluses.py).
    _drop_bolus = boluses.drop
    _bolus_delivered = boluses.delivered
    _begin_bolus = boluses.begin
    _complete_bolus = boluses.complete

    def _internal(self, what: TherapyInput, now_ms: int) -> None:
        """An input from the firmware's own sensing. A refusal here is logged, not dropped."""
        entry = TABLE[self.state][what]  # lookup, inlined (every bolus end)
        if isinstance(entry, Refuse):
            code = entry.code if entry.code is not None else self._suspension_code()
            # The firmware's own input has no request opcode: value_a 0, never the enum.
            self._log(now_ms, EventKind.COMMAND_REFUSED, int(code))
            return
        self._transition(entry, now_ms)

    def _raise(self, kind: AlarmKind, now_ms: int) -> None:
        if self.alarms.raise_(kind, self._stamp(now_ms)):
            self._log(now_ms, EventKind.ALARM_RAISED, int(kind))

    def _clear_alarm(self, kind: AlarmKind, now_ms: int) -> None:
        if self.alarms.clear(kind):
            self._log(now_ms, EventKind.ALARM_CLEARED, int(kind))

    def _check_reservoir_alarms(self, now_ms: int) -> None:
        if self._estimate <= self.low_threshold_nl:
            self._raise(AlarmKind.LOW_RESERVOIR, now_ms)
        else:
            self._clear_alarm(AlarmKind.LOW_RESERVOIR, now_ms)
        eos = self.state is TherapyState.END_OF_SERVICE
        if (
            self._empty
            and not eos
            and self.alarms.raise_(AlarmKind.RESERVOIR_EMPTY, self._stamp(now_ms))
        ):
            self._log(now_ms, EventKind.RESERVOIR_EMPTY, 0, self._estimate)
            self._log(now_ms, EventKind.ALARM_RAISED, int(AlarmKind.RESERVOIR_EMPTY))

    def _enter_memory_error(self, now_ms: int) -> None:
        self._memory_error = True
        self._log(now_ms, EventKind.MEMORY_ERROR)
        self._raise(AlarmKind.MEMORY_ERROR, now_ms)
        self._internal(TherapyInput.MEMORY_ERROR, now_ms)

    # The battery's milestones (battery.py), called as methods.
    _battery_check = battery.check
    _elective_replacement = battery.elective_replacement
    _low_battery_reset = battery.low_battery_reset
    _reach_end_of_service = battery.reach_end_of_service

    def _prune(self, now_ms: int) -> None:
        """Forget boluses older than 24 h: the rolling window, bounded memory."""
        horizon = now_ms - MS_PER_DAY
        while self._patient_grants and self._patient_grants[0] <= horizon:
            self._patient_grants.popleft()
        while self._clinician_boluses and self._clinician_boluses[0][0] <= horizon:
            self._clinician_boluses.popleft()

    # ====================================================================================
    # Non-volatile record (H4, H8)
    # ====================================================================================

    def to_record(self) -> dict[str, Any]:
        """The firmware's non-volatile record (emulator/firmware/record.py)."""
        return record_of(self)

    def nv_image(self) -> bytes:
        """The non-volatile record as stored: the corrupted blob if a fault hit it."""
        if self._nv_fault is not None:
            return self._nv_fault
        return encode_record(NV_MAGIC, self.to_record())

    def load_record(self, record: dict[str, Any]) -> None:
        """Restore the persisted fields (SnapshotError if the record is malformed)."""
        load_into(self, record)

    def snapshot_state(self) -> dict[str, Any]:
        """The non-volatile record plus volatile RAM, for saving a simulation exactly."""
        staged = self._staged
        if staged is not None and staged.expired:
            staged = None  # an expired stage can only be refused; a restart drops it anyway
        return {
            "record": self.to_record(),
            "staged": None
            if staged is None
            else [
                prescription_to_json(staged.rx),
                staged.digest.hex(),
                staged.expires_ms,
                staged.overrides_used,
            ],
            "refill_predicted": self._refill_predicted,
            "nv_fault": None if self._nv_fault is None else self._nv_fault.hex(),
        }

    @classmethod
    def from_snapshot_state(
        cls, profile: Profile, engine: Engine, log: EventLog, data: dict[str, Any]
    ) -> Firmware:
        """Rebuild from ``snapshot_state()``; SnapshotError if it is malformed."""
        fw = cls(profile, engine, engine.now_ms, 0, log=log, power_on=False)
        fw.load_record(data["record"])
        try:
            staged = data["staged"]
            if staged is not None:
                rx = prescription_from_json(staged[0])
                if rx is None:
                    raise SnapshotError("staged prescription missing")
                expires = None if staged[2] is None else int(staged[2])
                overrides = int(staged[3]) if len(staged) > 3 else 0
                fw._staged = StagedPrescription(
                    rx, bytes.fromhex(staged[1]), expires, False, overrides
                )
            fw._refill_predicted = data["refill_predicted"]
            fault = data["nv_fault"]
            fw._nv_fault = None if fault is None else bytes.fromhex(fault)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise SnapshotError(f"bad firmware snapshot: {exc}") from exc
        fw._deadline.invalidate()  # fields set after construction
        return fw

    def reboot(self, now_ms: int) -> None:
        """A reset (H4): RAM is lost and rebuilt from the non-volatile record.

        The engine must already be a fresh one at ``now_ms`` (the pump builds it). A bolus
        that was running is dropped, not resumed (no catch-up, H12). If the record does not
        verify, the pump boots into the memory-error safe state (H8).
        """
        self._deadline.invalidate()  # a new engine, state rebuilt from the record
        blob = self.nv_image()
        self._staged = None
        self._refill_predicted = None
        try:
            record = decode_record(NV_MAGIC, blob)
        except SnapshotError:
            record = None
        if record is None:
            self._log(now_ms, EventKind.RESET, 0, self._estimate)
            self.state = TherapyState.STOPPED
            self._intent_running = False
            self._bolus_end_ms = None
            self.engine.set_basal(0)
            if not self._memory_error:
                self._enter_memory_error(now_ms)
            return
        self.load_record(record)
        self._log(now_ms, EventKind.RESET, 1, self._estimate)
        if self.state in _BOLUS:
            # The fresh engine has no bolus to cancel; log what was dropped (the pump's own
            # doing: value_b 0).
            self._bolus_end_ms = None
            self._log(now_ms, EventKind.BOLUS_CANCELLED, 0, self._bolus_delivered())
            self.state = self._resolve(Target.AFTER_BOLUS)
        self._bolus_end_ms = None
        self._run_schedule(self._basal_applies())

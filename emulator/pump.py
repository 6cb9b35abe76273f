"""``Pump``: the emulated implanted pump behind a plain Python API (docs/pump-model.md).

A Pump joins a profile, the plant (physical truth), the firmware (belief and decisions) and
a delivery engine, and plays the hardware between them: it turns plant truth into the
firmware's sensor inputs (a stalled rotor, the battery charge) and the firmware's motor
commands into plant strokes.

Time is event-driven (docs/architecture.md principle 5): ``advance_to`` jumps from one deadline to
the next (bolus ends, low-reservoir and empty crossings, battery checks, end of service, plant
recoveries, stall detection and retries), so a year costs O(events), never O(seconds) or
O(strokes). Flex boundaries are not steps: the engine integrates the schedule across them
in closed form, unless the plant's results would depend on where steps fall
(``_next_event``). No clock is read: the caller says what time it is.

Two timelines (docs/pump-model.md, "Time"): ``now_ms``, ``advance_to``, ``next_deadline`` and
``status().time_ms`` are the *internal* timeline, monotonic and never set; every instant the
pump reports (``status().local_time_ms`` and the other status instants, log stamps, alarms'
``since_ms``, results' ``*_ms``) is on the *pump clock*, which ``set_clock`` sets: exactly
what goes on the wire.

Every command returns a value: ``Accepted``/``Staged``/``BolusStarted``/... or
``Refused(code, field, limit)``. Exceptions are kept for the caller's own mistakes (time going
backwards, a negative physical volume, a corrupt snapshot).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emulator.delivery import DeliveryEngine, EngineState
from emulator.errors import ProfileError, TimeError
from emulator.faults import (
    MAX_FAULT_VOLUME_NL,
    BatteryDrain,
    CapInjection,
    CatheterDisconnect,
    CatheterErosion,
    CatheterKink,
    CatheterLeak,
    CatheterMigration,
    CatheterOcclusion,
    CatheterRepair,
    Fault,
    InflammatoryMass,
    MagnetExposure,
    MechanicalBias,
    MemoryCorruption,
    MotorRepair,
    MotorStall,
    PocketFill,
    PumpFlip,
    PumpReseat,
    Reset,
)
from emulator.firmware.event_log import EventLog
from emulator.firmware.firmware import Engine, Firmware, FirmwareStatus, StatusFigures
from emulator.firmware.nvram import SnapshotError, canonical_json, decode_record, encode_record
from emulator.firmware.readouts import CatheterReadout, DetailReadout, PatientReadout
from emulator.firmware.results import (
    Accepted,
    BolusStarted,
    RefillBegun,
    RefillCompleted,
    Refused,
    Staged,
)
from emulator.plant import (
    DEFAULT_DRUG_CONCENTRATION_UG_PER_ML,
    MAX_CONCENTRATION_UG_PER_ML,
    CapAspirated,
    CapInjected,
    CatheterState,
    Flow,
    MotorState,
    Plant,
    PlantTruth,
)
from emulator.profile import Profile, Range, load_profile, profile_from_fields
from emulator.snapshot_rules import check_pump_record, first_difference
from protocol.device_state import AlarmKind, AlarmRecord, EventKind, LogEntry
from protocol.prescription import Prescription
from protocol.units import MS_PER_S

__all__ = [
    "Accepted",
    "BolusStarted",
    "EngineFactory",
    "Pump",
    "RefillBegun",
    "RefillCompleted",
    "Refused",
    "SnapshotError",
    "Staged",
]

EngineFactory = Callable[[int, int], Engine]
"""Builds an engine from (stroke_nl, start_ms): DeliveryEngine, or a ReferenceStepper for
the benchmark's like-for-like comparison."""

SNAPSHOT_MAGIC = b"PEMU-SS1"


class Pump:
    """One emulated implanted pump. Times are integer ms: the internal timeline for driving
    it (``now_ms``, ``advance_to``), the pump clock for everything it reports."""

    def __init__(
        self,
        profile: str | Path | Profile = "peristaltic-20",
        *,
        start_ms: int = 0,
        reservoir_nl: int | None = None,
        catheter_length_cm: int | None = None,
        catheter_primed: bool = True,
        engine_factory: EngineFactory = DeliveryEngine,
        drug_concentration_ug_per_ml: int = DEFAULT_DRUG_CONCENTRATION_UG_PER_ML,
        stroke_seed: int | None = None,
    ) -> None:
        """A freshly implanted pump at ``start_ms``.

        ``reservoir_nl`` (default: the usable volume) is both what the reservoir holds and
        what the firmware believes it holds. ``catheter_length_cm`` defaults to the
        profile's maximum; ``catheter_primed=False`` leaves its dead volume without drug, so
        the first delivery only fills it (H3). ``drug_concentration_ug_per_ml`` is the
        strength of the drug really in the reservoir, internal path and primed catheter
        (plant truth; default 1,000 ug/mL = 1 mg/mL): the firmware learns a concentration
        only from the prescription programmed into it, which may differ. ``stroke_seed``
        (an int 0..2**64-1) turns on the profile's seeded stroke-to-stroke variation
        (``stroke_spread_ppm``, emulator/stroke_accuracy.py); the same seed gives the same
        strokes, None gives every stroke the same volume.
        """
        self._profile = profile if isinstance(profile, Profile) else load_profile(profile)
        p = self._profile
        if isinstance(start_ms, bool) or not isinstance(start_ms, int) or start_ms < 0:
            raise ValueError("start_ms must be an int >= 0")
        volume = p.reservoir_usable_nl if reservoir_nl is None else reservoir_nl
        if not 0 <= volume <= p.reservoir_usable_nl:
            raise ValueError(f"reservoir_nl must be 0..{p.reservoir_usable_nl}")
        length = p.catheter_max_length_cm if catheter_length_cm is None else catheter_length_cm
        self._now = start_ms
        self._engine_factory = engine_factory
        self._catheter_length_cm = length
        if stroke_seed is not None and (
            isinstance(stroke_seed, bool) or not isinstance(stroke_seed, int)
            or not 0 <= stroke_seed < 1 << 64
        ):  # fmt: skip
            raise ValueError("stroke_seed must be an int 0..2**64-1 or None")
        self._plant = Plant(
            p,
            start_ms,
            volume,
            length,
            catheter_primed=catheter_primed,
            drug_concentration_ug_per_ml=drug_concentration_ug_per_ml,
            stroke_seed=stroke_seed,
        )
        # The firmware is told the catheter as the implanting clinician knows it (H3).
        self._fw = Firmware(
            p,
            engine_factory(p.stroke_nl, start_ms),
            start_ms,
            volume,
            catheter_length_cm=length,
            catheter_primed=catheter_primed,
        )
        self._last_withdrawn = 0
        self._blocked = False  # set by advance_to before any step (_step)

    # ====================================================================================
    # Time
    # ====================================================================================

    @property
    def now_ms(self) -> int:
        """Now on the internal timeline (what ``advance_to`` takes; SET_CLOCK never moves
        it). The pump clock is ``status().local_time_ms``."""
        return self._now

    def clock_ms(self, internal_ms: int) -> int:
        """The pump clock (``status().local_time_ms``) at internal time ``internal_ms``, with
        the clock as it is set now; cheap, for stamping log lines without a status."""
        return self._fw.local_ms(internal_ms)

    @property
    def profile(self) -> Profile:
        return self._profile

    def advance(self, seconds: int) -> None:
        """Let ``seconds`` (an int) of pump time pass."""
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise TypeError(
                "seconds must be an int (integer time: docs/architecture.md principle 4)"
            )
        self.advance_to(self._now + seconds * MS_PER_S)

    def advance_to(self, time_ms: int) -> None:
        """Let internal time reach ``time_ms``, stepping from event to event. To reach a
        pump-clock instant ``t``, advance to ``t - (status.local_time_ms - status.time_ms)``."""
        if type(time_ms) is not int and (isinstance(time_ms, bool) or not isinstance(time_ms, int)):
            raise TypeError("time_ms must be an int")
        if time_ms < self._now:
            raise TimeError(f"time went backwards: {time_ms} < now {self._now}")
        # What the sensors see of the mechanism, found once here and then carried from step
        # to step: only a step (the plant's update) changes it between two commands.
        self._blocked = self._sensed_blocked()
        while True:
            due = self._next_event(self._blocked, time_ms)
            if due is None or due > time_ms:
                break
            self._step(due)
        if time_ms > self._now:
            self._step(time_ms)

    def next_deadline(self) -> int | None:
        """The next internal time anything in the pump changes by itself, or what it would
        accept changes (a lockout or a stage expiring); None if nothing ever will. A flex
        boundary counts (the basal rate changes there), though ``advance_to`` need not
        step there."""
        fw = self._fw
        times = [
            self._next_event(self._sensed_blocked()),
            fw.next_rate_change(self._now),
            *fw.user_deadlines(self._now),
        ]
        future = [t for t in times if t is not None and t > self._now]
        return min(future, default=None)

    def _next_event(self, blocked: bool, until_ms: int | None = None) -> int | None:
        # Once per step: candidates are compared as they come, no list or generator built.
        # ``blocked``: what the sensors see of the mechanism now (``_sensed_blocked``).
        # ``until_ms``: the caller steps only to an event at or before it (advance_to).
        # Here and in _step the firmware's and the plant's flags are read as attributes,
        # not through their properties, as firmware/deadlines.py reads the firmware: this
        # runs at every step, and the property calls were 3 % of a simulated year.
        now = self._now
        fw = self._fw
        due = fw.next_deadline(now)
        if due is not None and due <= now:
            due = None
        t = self._plant.next_event_ms()
        if t is not None and t > now and (due is None or t < due):
            due = t
        if fw._stalled:
            if not blocked:
                t = self._next_retry_ms()
                if t > now and (due is None or t < due):
                    due = t
        elif blocked:
            # The sensor notices at the first stroke the firmware commands.
            stroke = fw.engine.next_stroke_ms()
            if stroke is not None and stroke > now and (due is None or stroke < due):
                due = stroke
        if fw._nv_fault is not None and not fw._memory_error and (due is None or now + 1 < due):
            # The firmware writes its record continually: a corrupted record is found 1 ms
            # after the fault, an instant that never depends on how the caller slices time
            # (H8; the api and wire scenario backends step at different instants).
            due = now + 1
        plan = fw.engine.plan
        if plan is None or plan.constant:
            return due  # the firmware put any flex boundary among its own deadlines
        change = plan.next_change_ms(now)
        if due is not None and change >= due:
            return due
        if until_ms is not None and change > until_ms:
            return change  # no step before until_ms either way: nothing to decide
        # The engine integrates the schedule across flex boundaries; the plant needs a step
        # at one only when its results would depend on where steps fall (a restriction, a
        # mixed concentration, a battery near flat): then it steps there as it always did.
        # The firmware never commands more strokes than its estimate holds: a bound on the
        # battery the step can draw.
        most = fw.reservoir_estimate_nl // self._profile.stroke_nl
        if due is not None and self._plant.steps_may_merge(due, most):
            return due
        return change

    def _next_retry_ms(self) -> int:
        """The firmware retries a stalled motor every stall_retry_interval_s from detection."""
        detected = self._fw.stall_detected_ms
        interval = self._profile.stall_retry_interval_s * MS_PER_S
        return detected + -(-(self._now - detected) // interval) * interval

    def _sensed_blocked(self) -> bool:
        """What the firmware's sensors can see of the mechanism (profile-dependent)."""
        truth = self._plant
        p = self._profile
        motor = p.sensor_motor_stall and truth.motor is not MotorState.OK
        return motor or (p.sensor_flow_valve and truth.truth().valve_closed)

    def _step(self, t: int) -> None:
        """Step to ``t`` (``advance_to`` only). ``_blocked`` is what the sensors see of the
        mechanism over (now, t]: a change due at t (a recovery) applies to later strokes
        only, as in Plant.pump. The step leaves it as they see it after."""
        fw = self._fw
        plant = self._plant
        blocked = self._blocked
        commanded = fw.command_strokes(t)
        plant.pump(commanded.count, t)  # tried, whether or not the rotor turns
        self._now = t
        if commanded.count:
            if blocked:
                # A stroke the sensor sees blocked is never counted as delivered (H5, H12),
                # whether or not the stall was already detected.
                fw.on_stall_detected(t)
            else:
                fw.on_strokes_delivered(commanded)
        # _sensed_blocked, inlined (every step).
        p = self._profile
        self._blocked = blocked = (p.sensor_motor_stall and plant._motor is not MotorState.OK) or (
            p.sensor_flow_valve and plant.truth().valve_closed
        )
        if fw._stalled and not blocked and self._next_retry_ms() == t:
            fw.on_motor_recovered(t)
        fw.after_step(t, plant.battery_nah(t))

    # ====================================================================================
    # Commands (results are values; every one is logged)
    # ====================================================================================

    def stage(
        self, prescription: Prescription, *, expires: bool = True, overrides: int = 0
    ) -> Staged | Refused:
        """Stage for review. ``expires=False`` when the caller times the stage lifetime on
        a timeline of its own and ends it with ``expire_staged`` (the device: link time).
        ``overrides``: the drug library's override flags (``protocol.messages.OVERRIDE_SOFT_
        LIMIT``, ``OVERRIDE_DOSE_CHANGE``; STAGE_PRESCRIPTION_OVERRIDE on the wire)."""
        return self._fw.stage(prescription, self._now, expires=expires, overrides=overrides)

    def expire_staged(self) -> None:
        """The stage lifetime ran out on the caller's timeline: COMMIT refuses STAGE_EXPIRED."""
        self._fw.expire_staged()

    def discard_staged(self) -> None:
        """Forget a staged prescription (a session cut between stage and commit, C5)."""
        self._fw.discard_staged()

    def commit(self, digest: bytes, *, command_id: int | None = None) -> Accepted | Refused:
        return self._fw.commit(digest, self._now, command_id)

    def program(
        self, prescription: Prescription, *, command_id: int | None = None, overrides: int = 0
    ) -> Accepted | Refused:
        """Stage and commit in one call, for scripts that need no review step."""
        staged = self.stage(prescription, overrides=overrides)
        if isinstance(staged, Refused):
            return staged
        return self.commit(staged.digest, command_id=command_id)

    def start(self, *, command_id: int | None = None) -> Accepted | Refused:
        return self._fw.start(self._now, command_id)

    def stop(self, *, command_id: int | None = None) -> Accepted | Refused:
        return self._fw.stop(self._now, command_id)

    def clinician_bolus(
        self, dose_nl: int, duration_s: int, *, command_id: int | None = None
    ) -> BolusStarted | Refused:
        return self._fw.clinician_bolus(dose_nl, duration_s, self._now, command_id)

    def patient_bolus(self, *, command_id: int | None = None) -> BolusStarted | Refused:
        return self._fw.patient_bolus(self._now, command_id)

    def prime(
        self, catheter_length_cm: int | None = None, *, command_id: int | None = None
    ) -> BolusStarted | Refused:
        """Priming bolus of the catheter's dead volume at the maximum rate (H3)."""
        length = self._catheter_length_cm if catheter_length_cm is None else catheter_length_cm
        return self._fw.prime(length, self._now, command_id)

    def prime_volume(
        self, volume_nl: int, *, command_id: int | None = None
    ) -> BolusStarted | Refused:
        """Priming bolus of a given catheter volume at the maximum rate (H3; the wire's
        PRIMING_BOLUS carries a volume)."""
        return self._fw.prime_volume(volume_nl, self._now, command_id)

    def cancel_bolus(self, *, command_id: int | None = None) -> Accepted | Refused:
        return self._fw.cancel_bolus(self._now, command_id)

    def refill_begin(self, *, command_id: int | None = None) -> RefillBegun | Refused:
        """The clinician withdraws the whole residual (plant truth) after the pump agrees."""
        refusal = self._fw.check_refill_begin(self._now, command_id)
        if refusal is not None:
            return refusal
        self._last_withdrawn = self._plant.withdraw_all()
        return self._fw.refill_begin(self._now, self._last_withdrawn, command_id)

    def refill_complete(
        self,
        new_volume_nl: int,
        *,
        withdrawn_nl: int | None = None,
        injected_nl: int | None = None,
        pocket_nl: int = 0,
        new_concentration_ug_per_ml: int | None = None,
        command_id: int | None = None,
        injected_concentration_ug_per_ml: int | None = None,
    ) -> RefillCompleted | Refused:
        """Enter the refill. ``new_volume_nl`` is what the clinician *enters*.

        ``withdrawn_nl`` is the residual the clinician reports (default: what the needle
        really drew at refill_begin); ``injected_nl`` is what really went into the reservoir
        (default: the entered volume; differ for H10); ``pocket_nl`` went into the pocket
        instead (H1). ``new_concentration_ug_per_ml``, if given, is the new drug strength
        entered (belief, checked in mass against the running rates);
        ``injected_concentration_ug_per_ml`` is the strength really injected (plant truth;
        default: the one entered if it is a possible solution, at most 1 g/mL, else the
        drug last put into the reservoir): differ for a wrong-concentration fill. The
        injection mixes with any residual left. Physical volumes and drug are applied only
        if the pump accepts the entry.
        """
        if injected_nl is not None and injected_nl < 0:
            raise ValueError("injected_nl must be >= 0")
        if pocket_nl < 0:
            raise ValueError("pocket_nl must be >= 0")
        real_conc = injected_concentration_ug_per_ml
        if real_conc is not None and (
            isinstance(real_conc, bool)
            or not isinstance(real_conc, int)
            or not 0 <= real_conc <= MAX_CONCENTRATION_UG_PER_ML
        ):
            raise ValueError(f"a concentration is an int 0..{MAX_CONCENTRATION_UG_PER_ML} ug/mL")
        entered = new_concentration_ug_per_ml
        if (
            real_conc is None
            and entered is not None
            and 0 <= entered <= MAX_CONCENTRATION_UG_PER_ML
        ):
            # An entry above 1 g/mL is a unit slip, not a solution anyone can inject: the
            # syringe holds the drug on file (the firmware checks the entry, H9, H11).
            real_conc = entered
        reported = self._last_withdrawn if withdrawn_nl is None else withdrawn_nl
        conc = new_concentration_ug_per_ml
        refusal = self._fw.check_refill_complete(
            new_volume_nl, reported, self._now, command_id, concentration=conc
        )
        if refusal is not None:
            return refusal
        self._plant.inject(
            new_volume_nl if injected_nl is None else injected_nl, pocket_nl, real_conc
        )
        return self._fw.refill_complete(
            new_volume_nl, reported, self._now, command_id, concentration=conc
        )

    def bridge_bolus(self, *, command_id: int | None = None) -> BolusStarted | Refused:
        """After a refill with a new concentration: deliver the old drug still in the path
        at the old rates, and let the prescription committed next take effect when it is
        out (docs/pump-model.md, "Concentration changes")."""
        return self._fw.bridge_bolus(self._now, command_id)

    def acknowledge_alarm(
        self, kind: AlarmKind, *, command_id: int | None = None
    ) -> Accepted | Refused:
        return self._fw.acknowledge_alarm(kind, self._now, command_id)

    def alarm_test(self, *, command_id: int | None = None) -> Accepted | Refused:
        return self._fw.alarm_test(self._now, command_id)

    def set_clock(self, local_ms: int, *, command_id: int | None = None) -> Accepted | Refused:
        """Set the pump clock (ms since 1970-01-01 local); flex steps follow it, and
        everything the pump reports from now on is stamped with it. The internal timeline
        (``now_ms``) does not move, and entries already logged keep their stamps."""
        return self._fw.set_clock(local_ms, self._now, command_id)

    def clear_memory_error(self, *, command_id: int | None = None) -> Accepted | Refused:
        return self._fw.clear_memory_error(self._now, command_id)

    def reset_flow_valve(self, *, command_id: int | None = None) -> Accepted | Refused:
        """Reopen a valve-gated pump's closed flow-activated valve (H15)."""
        result = self._fw.note_flow_valve_reset(self._now, command_id)
        if isinstance(result, Accepted):
            self._plant.reset_flow_valve()
        return result

    def set_catheter(
        self, length_cm: int, *, primed: bool = False, command_id: int | None = None
    ) -> Accepted | Refused:
        """Tell the firmware the catheter now implanted (after a revision: its length, and
        whether it was primed). Belief only: the plant's catheter is what a fault or the
        surgery made it (docs/pump-model.md, "Service procedures")."""
        return self._fw.set_catheter(length_cm, primed, self._now, command_id)

    def record_event(
        self, kind: EventKind, detail: int = 0, value_a: int = 0, value_b: int = 0
    ) -> int:
        """Log an event now, stamped with the pump clock (the wire layer's session and
        security events). Returns its sequence number."""
        return self._fw.record_event(self._now, kind, detail, value_a, value_b)

    def pump_clock_ms(self, internal_ms: int | None = None) -> int:
        """The pump clock, with the clock as it is set now, at internal time ``internal_ms``
        (None: now). What a log entry written now is stamped with."""
        return self._fw.local_ms(self._now if internal_ms is None else internal_ms)

    def telemetry_session(self) -> None:
        """Account one telemetry session's battery draw (the wire layer calls this)."""
        self._plant.telemetry_session()

    # ====================================================================================
    # Reading
    # ====================================================================================

    def status(self) -> FirmwareStatus:
        """Firmware belief now: ``time_ms`` internal, every other instant pump clock."""
        return self._fw.status(self._now)

    def status_figures(self) -> StatusFigures:
        """What STATUS carries, firmware belief now: ``Firmware.status_figures``."""
        return self._fw.status_figures(self._now)

    def status_detail(self) -> DetailReadout:
        """STATUS_DETAIL: forecasts and delivered totals, firmware belief (H7)."""
        return self._fw.detail(self._now)

    def patient_view(self) -> PatientReadout:
        """PATIENT_VIEW: the next patient bolus and the boluses left in 24 h."""
        return self._fw.patient_view(self._now)

    def catheter_info(self) -> CatheterReadout:
        """CATHETER_INFO: the catheter as the firmware was told it."""
        return self._fw.catheter()

    def log(self, since_seq: int = 0) -> tuple[LogEntry, ...]:
        """Entries with ``seq >= since_seq``; each ``time_ms`` is the pump clock as it read
        when the entry was written."""
        return self._fw.log.entries(since_seq)

    @property
    def log_next_seq(self) -> int:
        """The seq the next log entry will get: a cheap way to see whether the log grew."""
        return self._fw.log.next_seq

    def alarms(self) -> tuple[AlarmRecord, ...]:
        """Active alarms; ``since_ms`` is the pump clock as it read when each was raised."""
        return self._fw.alarms.records()

    def plant_truth(self) -> PlantTruth:
        """Physical truth, for oracles and scenarios; the firmware never sees it."""
        return self._plant.truth()

    # ====================================================================================
    # The catheter access port: plant operations the firmware never sees (H2)
    # ====================================================================================

    def cap_aspirate(self, volume_nl: int) -> CapAspirated:
        """A clinician aspirates ``volume_nl`` through the catheter access port now, to check
        patency: CSF returns if the catheter is patent, nothing if it is blocked, fluid
        without CSF if the tip migrated or the catheter is off the pump (plant truth; the
        firmware is not told). Drug solution drawn back leaves the catheter, which refills
        with CSF: the next delivery fills it again (H3)."""
        _need_volume(volume_nl)
        return self._plant.cap_aspirate(volume_nl)

    def cap_inject(self, volume_nl: int, concentration_ug_per_ml: int | None = None) -> CapInjected:
        """Inject ``volume_nl`` through the catheter access port now (H2): straight down the
        catheter, bypassing the reservoir, the mechanism and every limit; the firmware is
        not told. ``concentration_ug_per_ml`` defaults to the drug last put into the
        reservoir (a refill meant for it that went into the wrong port)."""
        _need_volume(volume_nl)
        conc = self._plant.drug_concentration_ug_per_ml
        return self._plant.cap_inject(
            volume_nl, conc if concentration_ug_per_ml is None else concentration_ug_per_ml
        )

    @property
    def engine(self) -> Engine:
        """The delivery engine the firmware drives (read-only use: rates, bolus state)."""
        return self._fw.engine

    # ====================================================================================
    # Faults
    # ====================================================================================

    def inject(self, fault: Fault) -> None:
        """Apply a fault at the current time: it acts on the plant (docs/architecture.md
        principle 3)."""
        plant = self._plant
        match fault:
            case MotorStall(recover_after_s=None):
                plant.stall_motor(None)
            case MotorStall(recover_after_s=seconds):
                assert seconds is not None
                plant.stall_motor(seconds * MS_PER_S)
            case MotorRepair():
                plant.repair_motor()
            case MagnetExposure(scan_s=scan, recovery_s=recovery):
                plant.expose_to_magnet(scan * MS_PER_S, recovery * MS_PER_S)
            case CatheterOcclusion(delivered_ppm=ppm):
                plant.restrict_flow(Flow.PARTIAL, ppm)
            case InflammatoryMass(grow_s=grow, delivered_ppm=ppm):
                plant.restrict_flow(Flow.GROWING, ppm, grow * MS_PER_S)
            case CatheterKink(period_s=period, closed_s=closed):
                plant.restrict_flow(Flow.KINKED, 0, period * MS_PER_S, closed * MS_PER_S)
            case CatheterMigration():
                plant.set_catheter(CatheterState.MIGRATED)
            case CatheterErosion(ppm=ppm):
                plant.erode(ppm)
            case PumpFlip():
                plant.set_flipped(True)
            case PumpReseat():
                plant.set_flipped(False)
            case CapInjection(volume_nl=volume, concentration_ug_per_ml=conc):
                plant.cap_inject(volume, conc)
            case CatheterLeak(ppm=ppm):
                plant.set_catheter(CatheterState.LEAKING, ppm)
            case CatheterDisconnect():
                plant.set_catheter(CatheterState.DISCONNECTED)
            case CatheterRepair():
                plant.set_catheter(CatheterState.OK)
            case BatteryDrain(nah=nah):
                plant.drain_battery(nah)
            case PocketFill(volume_nl=volume, concentration_ug_per_ml=conc):
                plant.inject(0, volume, conc)
            case MechanicalBias(ppm=ppm):
                plant.set_bias(ppm)
            case Reset():
                self._reset()
            case MemoryCorruption(bit=bit):
                blob = bytearray(self._fw.nv_image())
                index = bit % (len(blob) * 8)
                blob[index // 8] ^= 1 << (index % 8)
                self._fw.corrupt_nv(bytes(blob))
            case _:  # pragma: no cover - exhaustive over Fault
                raise TypeError(f"not a fault: {fault!r}")

    def _reset(self) -> None:
        """H4: the processor restarts; only non-volatile state survives (the engine's
        sub-stroke remainder and any running bolus do not)."""
        self._fw.engine = self._engine_factory(self._profile.stroke_nl, self._now)
        self._fw.reboot(self._now)

    # ====================================================================================
    # Snapshots: save and resume a simulation exactly, corruption detected
    # ====================================================================================

    def snapshot(self) -> bytes:
        """Everything needed to resume this pump exactly, checksummed (SHA-256)."""
        return encode_record(SNAPSHOT_MAGIC, self.snapshot_record())

    def snapshot_record(self) -> dict[str, Any]:
        """``snapshot()``'s record before encoding: plain JSON values (ints, bools, strings,
        lists, objects), so a containing record (the device state) can hold it as is."""
        return {
            "version": 1,
            "profile": _profile_to_json(self._profile),
            "now": self._now,
            "catheter_length_cm": self._catheter_length_cm,
            "last_withdrawn": self._last_withdrawn,
            "plant": self._plant.to_dict(),
            "firmware": self._fw.snapshot_state(),
            "engine": dataclasses.asdict(self._fw.engine.state()),
            "log": self._fw.log.to_json(),
        }

    @classmethod
    def restore(cls, blob: bytes) -> Pump:
        """Rebuild a pump from ``snapshot()``; SnapshotError if it is corrupt or malformed.
        The restored pump uses the exact DeliveryEngine."""
        return cls.from_record(decode_record(SNAPSHOT_MAGIC, blob))

    @classmethod
    def from_record(cls, record: object) -> Pump:
        """Rebuild a pump from ``snapshot_record()``, checking every field first
        (emulator/snapshot_rules.py): SnapshotError, never another exception, for a record
        this module could not have written."""
        try:
            return cls._from_checked_record(record)
        except SnapshotError:
            raise
        except Exception as exc:
            # A saved state is outside data: whatever breaks while resuming it (a rule this
            # module lacks), the state is refused with one line, never a traceback at start.
            raise SnapshotError(
                f"snapshot does not describe a pump: {type(exc).__name__}: {exc}"
            ) from exc

    @classmethod
    def _from_checked_record(cls, record: object) -> Pump:
        if not isinstance(record, dict):
            raise SnapshotError("the pump record is not an object")
        if record.get("version") != 1:
            raise SnapshotError(f"unsupported snapshot version {record.get('version')!r:.20}")
        try:
            profile = profile_from_fields(record.get("profile"), "the saved profile")
        except ProfileError as exc:
            raise SnapshotError(str(exc)) from None
        check_pump_record(record, profile)
        engine = DeliveryEngine.from_state(EngineState(**record["engine"]))
        log = EventLog.from_json(record["log"])
        pump = cls.__new__(cls)
        pump._profile = profile
        pump._now = record["now"]
        pump._engine_factory = DeliveryEngine
        pump._catheter_length_cm = record["catheter_length_cm"]
        pump._last_withdrawn = record["last_withdrawn"]
        pump._blocked = False
        pump._plant = Plant.from_dict(profile, record["plant"])
        pump._fw = Firmware.from_snapshot_state(profile, engine, log, record["firmware"])
        if engine.now_ms != pump._now:
            raise SnapshotError("engine time and pump time disagree")
        # A record that does not re-encode to itself held a value the pump would coerce or
        # drop (a bool for an int, an extra field): not what a pump writes, so refused.
        # Compared before status(), which forgets boluses older than 24 h as any read does.
        again = pump.snapshot_record()
        if canonical_json(again) != canonical_json(record):
            raise SnapshotError(
                "the pump record is not in canonical form: "
                f"{first_difference(record, again, 'pump')} was altered"
            )
        # What a resumed pump computes at once must work: a state that breaks it is refused
        # here, not in the serve loop later.
        pump.status()
        pump.next_deadline()
        return pump

    def rollback(self, blob: bytes) -> None:
        """Become the pump ``snapshot()`` saved in ``blob``, in place (the same object):
        undoes a command whose result could not be stored (docs/serve.md, H8)."""
        other = Pump.restore(blob)
        other._engine_factory = self._engine_factory
        self.__dict__.update(other.__dict__)


def _need_volume(volume_nl: object) -> None:
    if (
        isinstance(volume_nl, bool)
        or not isinstance(volume_nl, int)
        or not 0 <= volume_nl <= MAX_FAULT_VOLUME_NL
    ):
        raise ValueError(f"volume_nl must be an int 0..{MAX_FAULT_VOLUME_NL}, got {volume_nl!r}")


def _profile_to_json(profile: Profile) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(profile):
        value = getattr(profile, f.name)
        if isinstance(value, Range):
            value = [value.low, value.high]
        elif f.name == "drug_max_daily_mass_pg":
            value = dict(value)
        out[f.name] = value
    return out

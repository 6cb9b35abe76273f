"""One test (at least) per hazard with a pump-side meaning (docs/domain.md section 3).

Each test drives the public Pump API and checks the behaviour the hazard needs: firmware
belief (status, log, alarms) against plant truth. Expected numbers are worked out in the
comments from the profile files, not read back from the code under test.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from emulator.faults import (
    BatteryDrain,
    CatheterDisconnect,
    CatheterLeak,
    CatheterOcclusion,
    CatheterRepair,
    MagnetExposure,
    MemoryCorruption,
    MotorStall,
    Reset,
)
from emulator.firmware.results import Accepted, BolusStarted, RefillCompleted, Refused, Staged
from emulator.plant import MotorState
from emulator.pump import Pump
from protocol.device_state import AlarmKind, AlarmSeverity, EventKind, TherapyState
from protocol.prescription import (
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)
from protocol.refusal import FieldId, RefusalCode
from protocol.units import MS_PER_DAY, MS_PER_HOUR, S_PER_DAY, S_PER_HOUR

PumpFactory = Callable[..., Pump]
RxFactory = Callable[..., Prescription]

ML = 1_000_000
# peristaltic-20: stroke 200 nL, bias +10_000 ppm, 20 mL usable, catheter 110 cm x 2600 nL.
STROKE = 200


def kinds(pump: Pump) -> list[EventKind]:
    return [e.kind for e in pump.log()]


def active(pump: Pump) -> set[AlarmKind]:
    return {a.kind for a in pump.alarms()}


# -- H1: pocket fill --------------------------------------------------------------------------


@pytest.mark.hazard("H1")
def test_pocket_fill_shows_as_refill_discrepancy(programmed: PumpFactory, rx: RxFactory) -> None:
    pump = programmed(rx(1 * ML), reservoir_nl=4 * ML)
    begun = pump.refill_begin()
    assert begun.ok
    # Entered 20 mL, but 12 mL went under the skin: the reservoir really holds 8 mL.
    done = pump.refill_complete(20 * ML, injected_nl=8 * ML, pocket_nl=12 * ML)
    assert isinstance(done, RefillCompleted)
    assert not done.discrepancy_flagged  # nothing was wrong at this refill's withdrawal
    truth = pump.plant_truth()
    assert truth.reservoir_nl == 8 * ML
    assert truth.pocket_nl == 12 * ML
    assert pump.status().reservoir_estimate_nl == 20 * ML  # the pump believes the entry
    pump.advance(10 * S_PER_DAY)
    # 10 days at 1 mL/day: the pump predicts 10 mL left; truth is 8 - 10.1 -> empty (air).
    assert pump.plant_truth().reservoir_nl == 0
    pump.refill_begin()
    result = pump.refill_complete(20 * ML)
    assert isinstance(result, RefillCompleted)
    assert result.discrepancy_flagged
    assert result.discrepancy_nl == -10 * ML  # withdrew 0, predicted 10 mL
    entry = next(e for e in pump.log() if e.kind is EventKind.REFILL_DISCREPANCY)
    assert (entry.detail, entry.value_a) == (0, 10 * ML)  # detail 0: less than predicted


@pytest.mark.hazard("H1")
def test_small_refill_gap_is_not_flagged(programmed: PumpFactory, rx: RxFactory) -> None:
    pump = programmed(rx(1 * ML))
    pump.advance(S_PER_DAY)
    begun = pump.refill_begin()
    assert begun.ok
    # +1 % bias: 1.01 mL really left the reservoir, the pump counted 1 mL: a 10 uL gap.
    assert begun.predicted_residual_nl - begun.withdrawn_nl == 10_000
    done = pump.refill_complete(20 * ML)
    assert isinstance(done, RefillCompleted)
    assert not done.discrepancy_flagged
    assert EventKind.REFILL_DISCREPANCY not in kinds(pump)


# -- H3: priming ------------------------------------------------------------------------------


@pytest.mark.hazard("H3")
def test_priming_fills_dead_volume_at_max_rate_and_is_logged(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    pump = programmed(rx(500_000), catheter_primed=False)
    pump.stop()
    primed = pump.prime()
    assert isinstance(primed, BolusStarted)
    # 110 cm x 2600 nL = 286_000 nL = 1430 strokes; at 24 mL/day that takes
    # 286_000 * 86_400_000 / 24_000_000 = 1_029_600 ms.
    assert (primed.volume_nl, primed.strokes) == (286_000, 1430)
    assert primed.ends_ms == 1_029_600
    assert pump.status().state is TherapyState.PRIMING
    assert pump.engine.basal_rate_nl_per_day == 0  # priming replaces the basal
    pump.advance(1_030)
    truth = pump.plant_truth()
    assert truth.catheter_nl == truth.catheter_volume_nl == 286_000
    # 1430 strokes moved 288_860 nL (+1 %); the excess 2_860 nL reached the patient.
    assert truth.delivered_nl == 2_860
    assert pump.status().state is TherapyState.STOPPED  # back where it started
    assert EventKind.PRIMING_STARTED in kinds(pump)
    assert EventKind.PRIMING_COMPLETED in kinds(pump)


@pytest.mark.hazard("H3")
def test_unprimed_catheter_delays_arrival(programmed: PumpFactory, rx: RxFactory) -> None:
    pump = programmed(rx(100_000), catheter_primed=False)
    pump.advance(2 * S_PER_DAY)
    truth = pump.plant_truth()
    # 0.1 mL/day for 2 days fills 0.202 mL of the 0.286 mL dead volume: nothing arrived yet.
    assert truth.delivered_nl == 0
    assert truth.catheter_nl == 202_000
    assert pump.status().delivered_nl == 200_000  # yet the firmware counts it as delivered


# -- H4: reset and low-battery reset ---------------------------------------------------------


@pytest.mark.hazard("H4")
def test_reset_restores_nonvolatile_state_and_drops_bolus(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    pb = PatientBolusLimits(dose_nl=10_000, duration_s=600, lockout_s=3_600, max_per_24h=4)
    pump = programmed(rx(1 * ML, patient_bolus=pb))
    pump.advance(2 * S_PER_HOUR)
    assert pump.patient_bolus(command_id=7).ok
    pump.advance(60)
    before = pump.status()
    assert before.state is TherapyState.PATIENT_BOLUS
    pump.inject(Reset())
    after = pump.status()
    assert after.prescription == before.prescription
    assert after.reservoir_estimate_nl == before.reservoir_estimate_nl
    assert after.last_command_id == 7
    assert after.state is TherapyState.CONTINUOUS  # the bolus is dropped, not resumed
    assert after.bolus_strokes_remaining == 0
    assert kinds(pump)[-2:] == [EventKind.RESET, EventKind.BOLUS_CANCELLED]
    # The lockout survives the reset: a reset must not hand out an extra bolus.
    refused = pump.patient_bolus()
    assert isinstance(refused, Refused)
    assert refused.code is RefusalCode.LOCKOUT_ACTIVE
    pump.advance(S_PER_HOUR)
    assert pump.status().delivered_nl > after.delivered_nl  # therapy goes on


@pytest.mark.hazard("H4", "H6")
def test_early_depletion_resets_flow_to_low_rate(programmed: PumpFactory, rx: RxFactory) -> None:
    pump = programmed(rx(2 * ML))
    # A short drains the cell below the 10 mAh low-reset threshold (700 mAh capacity).
    pump.inject(BatteryDrain(695_000_000))
    pump.advance(S_PER_DAY)  # the daily battery check sees it
    status = pump.status()
    assert AlarmKind.LOW_BATTERY_RESET in active(pump)
    assert AlarmKind.ELECTIVE_REPLACEMENT in active(pump)
    assert status.state is TherapyState.CONTINUOUS
    assert status.basal_rate_nl_per_day == 48_000  # the profile's very low rate
    assert status.prescription is not None
    assert status.prescription.patient_bolus is None
    assert AlarmKind.LOW_BATTERY_RESET.severity is AlarmSeverity.CRITICAL


# -- H5: permanent motor stall -----------------------------------------------------------------


@pytest.mark.hazard("H5")
def test_permanent_stall_alarms_and_stops_delivery(programmed: PumpFactory, rx: RxFactory) -> None:
    pump = programmed(rx(288_000))  # one 200 nL stroke every 60 s exactly
    pump.advance(S_PER_HOUR)
    pump.inject(MotorStall())
    pumped = pump.plant_truth().pumped_nl
    counted = pump.status().delivered_nl
    pump.advance(30 * S_PER_DAY)
    status = pump.status()
    assert status.state is TherapyState.SUSPENDED_BY_ALARM
    assert status.motor_stall_detected
    assert AlarmKind.MOTOR_STALL in active(pump)
    assert pump.plant_truth().pumped_nl == pumped
    assert status.delivered_nl == counted  # the failed stroke is not counted
    stall = next(e for e in pump.log() if e.kind is EventKind.MOTOR_STALL)
    assert stall.time_ms == MS_PER_HOUR + 60_000  # at the first stroke after the stall
    refused = pump.clinician_bolus(100_000, 600)
    assert isinstance(refused, Refused)
    assert refused.code is RefusalCode.MOTOR_STALLED
    not_started = pump.start()
    assert isinstance(not_started, Refused)
    assert not_started.code is RefusalCode.MOTOR_STALLED


@pytest.mark.hazard("H5")
def test_pump_without_stall_sensor_does_not_notice(programmed: PumpFactory, rx: RxFactory) -> None:
    pump = programmed(rx(1 * ML), profile="valve-gated-20")
    pump.inject(MotorStall())
    pump.advance(5 * S_PER_DAY)
    assert pump.status().state is TherapyState.CONTINUOUS
    assert pump.status().delivered_nl == 5 * ML  # belief
    assert pump.plant_truth().pumped_nl == 0  # truth


# -- H5/H12: nothing starts delivery while a stall is detected -----------------------------------

PRIME_1CM = 2_600  # 1 cm of catheter = 13 strokes; at 24 mL/day one stroke every 720 ms


def stalled_then_stopped(recover_after_s: int | None = None) -> Pump:
    """A pump whose priming bolus met a stalled rotor, then stopped by the clinician: STOPPED
    with the stall still detected (the repro of the stall-then-commit bug)."""
    pump = Pump("peristaltic-20", reservoir_nl=0)
    assert pump.refill_begin().ok
    assert pump.refill_complete(20 * ML).ok
    pump.inject(MotorStall(recover_after_s))
    assert pump.prime(1).ok
    pump.advance(2)  # the first stroke, at 720 ms, does not turn the rotor
    assert pump.status().state is TherapyState.SUSPENDED_BY_ALARM
    assert pump.stop().ok
    status = pump.status()
    assert status.state is TherapyState.STOPPED
    assert status.motor_stall_detected
    return pump


@pytest.mark.hazard("H5", "H12")
def test_stopped_with_stall_detected_refuses_every_start(rx: RxFactory) -> None:
    pump = stalled_then_stopped()
    staged = pump.stage(rx(144_000))  # staging starts nothing: allowed
    assert isinstance(staged, Staged)
    stalled = Refused(RefusalCode.MOTOR_STALLED)
    # Before the fix the commit was accepted: CONTINUOUS with the rotor stalled, and the
    # firmware counted 200 nL delivered by 180 s while the plant pumped nothing.
    assert pump.commit(staged.digest, command_id=5) == stalled
    assert pump.start() == stalled
    assert pump.clinician_bolus(2_000, 600) == stalled
    assert pump.prime(1) == stalled
    assert pump.prime_volume(PRIME_1CM) == stalled
    last = pump.log()[-1]
    assert (last.kind, last.detail, last.value_b) == (
        EventKind.COMMAND_REFUSED, RefusalCode.MOTOR_STALLED, 0,
    )  # fmt: skip
    refused_commit = next(e for e in pump.log() if e.kind is EventKind.COMMAND_REFUSED)
    assert refused_commit.value_b == 5  # the commit's refusal is logged with its command id
    pump.advance(S_PER_DAY)
    status = pump.status()
    assert status.state is TherapyState.STOPPED
    assert status.prescription is None  # the refused commit installed nothing
    assert status.delivered_nl == 0
    assert pump.plant_truth().pumped_nl == 0


@pytest.mark.hazard("H5")
def test_stall_does_not_block_committing_a_stopped_prescription() -> None:
    pump = stalled_then_stopped()
    stopped = Prescription("morphine", 1_000, InfusionMode.STOPPED, Repeat.DAILY, (), None, 2 * ML)
    result = pump.program(stopped)
    assert isinstance(result, Accepted)  # it starts nothing
    assert pump.status().state is TherapyState.STOPPED
    assert pump.status().motor_stall_detected


@pytest.mark.hazard("H5", "H12")
def test_stall_cleared_while_stopped_needs_an_explicit_restart(rx: RxFactory) -> None:
    pump = stalled_then_stopped(recover_after_s=S_PER_HOUR)
    pump.advance(S_PER_HOUR)
    # Stall seen at 720 ms; retries every 600 s from then; the plant frees at 1 h 0 s ->
    # the retry at 720 ms + 6 x 600 s = 1 h 0.72 s sees it turn.
    pump.advance(1)
    status = pump.status()
    assert not status.motor_stall_detected
    recovered = next(e for e in pump.log() if e.kind is EventKind.MOTOR_RECOVERED)
    assert recovered.time_ms == 720 + 6 * 600_000
    assert status.state is TherapyState.STOPPED  # stopped by the clinician: no auto-restart
    assert AlarmKind.MOTOR_STALL not in active(pump)
    assert pump.plant_truth().pumped_nl == 0
    assert pump.program(rx(288_000)).ok  # now accepted: one stroke a minute from here
    before = pump.status().delivered_nl
    pump.advance(S_PER_HOUR)
    # The programmed 60 strokes in the hour, nothing for the stalled hour (H12).
    assert pump.status().delivered_nl - before == 60 * STROKE


@pytest.mark.hazard("H5", "H12")
def test_blocked_stroke_never_counted_even_if_delivery_runs(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    """Defence in depth: if a firmware bug let delivery run with a stall detected, the strokes
    the sensor sees blocked are still not counted as delivered."""
    pump = programmed(rx(288_000))
    pump.inject(MotorStall())
    pump.advance(S_PER_HOUR)
    assert pump.status().motor_stall_detected
    counted = pump.status().delivered_nl
    pumped = pump.plant_truth().pumped_nl
    fw = pump._fw  # white-box: put the firmware where no command can (the bug's state)
    fw.state = TherapyState.CONTINUOUS
    fw.engine.set_basal(288_000)
    pump.advance(S_PER_HOUR)
    assert pump.plant_truth().strokes_attempted >= 60  # the motor was driven...
    assert pump.plant_truth().pumped_nl == pumped  # ...moved nothing...
    assert pump.status().delivered_nl == counted  # ...and none of it was counted


@pytest.mark.hazard("H14", "H12")
def test_mri_recovery_resumes_programmed_rate_without_catch_up(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    pump = programmed(rx(288_000))  # one stroke a minute
    pump.inject(MagnetExposure(scan_s=S_PER_HOUR, recovery_s=4 * S_PER_HOUR))
    pump.advance(5 * S_PER_HOUR + 60)  # free at 5 h, seen by the retry at 5 h 1 min
    status = pump.status()
    assert status.state is TherapyState.CONTINUOUS
    assert status.delivered_nl == 0  # the stall was seen at the first stroke (60 s)
    assert pump.plant_truth().pumped_nl == 0
    pump.advance(S_PER_HOUR)
    # 60 strokes in the hour after the recovery, none for the 5 h missed (H12).
    assert pump.status().delivered_nl == 60 * STROKE


# -- BOLUS_CANCELLED: value_a delivered before the cancel, value_b the cancelling command id, 0
# when the pump dropped the bolus itself (protocol.md 11). Not delivered = STARTED - value_a. --


def cancelled(pump: Pump) -> list[tuple[int, int, int]]:
    """(detail, value_a, value_b) of every BOLUS_CANCELLED entry."""
    entries = [e for e in pump.log() if e.kind is EventKind.BOLUS_CANCELLED]
    return [(e.detail, e.value_a, e.value_b) for e in entries]


def not_delivered(pump: Pump) -> list[int]:
    """For every cancelled bolus, its STARTED volume less the volume delivered."""
    out, started = [], 0
    for e in pump.log():
        if e.kind in (EventKind.CLINICIAN_BOLUS_STARTED, EventKind.PRIMING_STARTED):
            started = e.value_a
        elif e.kind is EventKind.BOLUS_CANCELLED:
            out.append(started - e.value_a)
    return out


@pytest.mark.hazard("H5", "H12")
def test_bolus_cancelled_by_stall_logs_nothing_delivered() -> None:
    pump = stalled_then_stopped()
    # The first of the 13 strokes stalled: nothing delivered, all 2600 nL not delivered. The
    # pump dropped the bolus itself: value_b 0.
    assert cancelled(pump) == [(0, 0, 0)]
    assert not_delivered(pump) == [PRIME_1CM]


def bolus_running_10_of_60(programmed: PumpFactory, rx: RxFactory) -> Pump:
    """Basal one stroke a minute; a 60-stroke clinician bolus over 1 h (one a minute), 10 min
    in: 10 basal + 10 bolus strokes delivered."""
    pump = programmed(rx(288_000))
    assert pump.clinician_bolus(60 * STROKE, S_PER_HOUR, command_id=3).ok
    pump.advance(600)
    assert pump.status().delivered_nl == 20 * STROKE
    return pump


@pytest.mark.hazard("H12")
def test_bolus_cancelled_by_command_logs_delivered_and_not_delivered(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    pump = bolus_running_10_of_60(programmed, rx)
    result = pump.cancel_bolus(command_id=4)
    assert isinstance(result, Accepted)
    entry = pump.log()[-1]
    assert entry.kind is EventKind.BOLUS_CANCELLED
    assert result.log_seq == entry.seq
    assert cancelled(pump) == [(0, 10 * STROKE, 4)]  # value_b: the cancel's command id
    assert not_delivered(pump) == [50 * STROKE]
    assert pump.status().last_command_id == 4


@pytest.mark.hazard("H12", "H5")
def test_bolus_cancelled_by_stall_counts_only_turned_strokes(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    pump = bolus_running_10_of_60(programmed, rx)
    pump.inject(MotorStall())
    pump.advance(60)  # basal and bolus strokes both due at 660 s: neither turns
    assert pump.status().motor_stall_detected
    assert pump.status().delivered_nl == 20 * STROKE
    assert cancelled(pump) == [(0, 10 * STROKE, 0)]
    assert not_delivered(pump) == [50 * STROKE]


@pytest.mark.hazard("H4", "H12")
def test_bolus_cancelled_by_reset_logs_delivered_and_not_delivered(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    pump = bolus_running_10_of_60(programmed, rx)
    pump.inject(Reset())
    assert cancelled(pump) == [(0, 10 * STROKE, 0)]  # the pump's own doing: value_b 0
    assert not_delivered(pump) == [50 * STROKE]
    kinds = [e.kind for e in pump.log()[-2:]]
    assert kinds == [EventKind.RESET, EventKind.BOLUS_CANCELLED]  # the cause, right before


@pytest.mark.hazard("H12")
def test_completed_bolus_logs_volume_delivered(programmed: PumpFactory, rx: RxFactory) -> None:
    pump = bolus_running_10_of_60(programmed, rx)
    pump.advance(S_PER_HOUR)
    done = next(e for e in pump.log() if e.kind is EventKind.CLINICIAN_BOLUS_COMPLETED)
    assert done.value_a == 60 * STROKE
    assert cancelled(pump) == []


# -- H6: ERI then end of service ----------------------------------------------------------------


@pytest.mark.hazard("H6", "H7")  # H7: the reported ERI and end-of-service dates are exact
def test_eri_then_end_of_service_after_90_days(programmed: PumpFactory, rx: RxFactory) -> None:
    pump = programmed(rx(100_000))  # 0.1 mL/day: the 20 mL last past end of service
    pump.inject(BatteryDrain(655_000_000))  # 45 mAh left, ERI threshold is 40 mAh
    # Idle 240 uAh/day plus 40 nAh x 500 strokes/day = 260 uAh/day: 5 mAh last 19.2 days.
    pump.advance(25 * S_PER_DAY)
    status = pump.status()
    assert status.elective_replacement_ms is not None
    eri = status.elective_replacement_ms
    assert eri == 20 * MS_PER_DAY  # found at the first daily battery check after 19.2 days
    assert status.end_of_service_ms == eri + 90 * MS_PER_DAY
    assert AlarmKind.ELECTIVE_REPLACEMENT in active(pump)
    assert AlarmKind.ELECTIVE_REPLACEMENT.severity is AlarmSeverity.NON_CRITICAL
    assert status.state is TherapyState.CONTINUOUS  # still delivering after ERI
    pump.advance_to(eri + 90 * MS_PER_DAY - 1)
    assert pump.status().state is TherapyState.CONTINUOUS
    pump.advance(1)
    assert pump.status().state is TherapyState.END_OF_SERVICE
    assert AlarmKind.END_OF_SERVICE in active(pump)
    pumped = pump.plant_truth().pumped_nl
    pump.advance(30 * S_PER_DAY)
    assert pump.plant_truth().pumped_nl == pumped
    refused = pump.start()
    assert isinstance(refused, Refused)
    assert refused.code is RefusalCode.END_OF_SERVICE


@pytest.mark.hazard("H6")
def test_natural_battery_life_reaches_eri(programmed: PumpFactory, rx: RxFactory) -> None:
    pump = programmed(rx(500_000))
    refill_every = 30 * S_PER_DAY
    while pump.status().elective_replacement_ms is None:
        pump.advance(refill_every)
        pump.refill_begin()
        pump.refill_complete(20 * ML)
    years = pump.status().elective_replacement_ms // (365 * MS_PER_DAY)  # type: ignore[operator]
    # 660 mAh to ERI at 0.34 mAh/day (+ telemetry none) is about 5.3 years.
    assert years == 5


# -- H8: memory error --------------------------------------------------------------------------


@pytest.mark.hazard("H8")
def test_memory_corruption_blocks_updates_until_cleared(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    pump = programmed(rx(1 * ML))
    pump.advance(S_PER_HOUR)
    pump.inject(MemoryCorruption(bit=77))
    pump.advance(1)  # the next record write fails its check
    status = pump.status()
    assert status.memory_error
    assert status.state is TherapyState.SUSPENDED_BY_ALARM
    assert AlarmKind.MEMORY_ERROR in active(pump)
    staged = pump.stage(rx(500_000))
    assert isinstance(staged, Refused)
    assert staged.code is RefusalCode.MEMORY_ERROR
    bolus = pump.clinician_bolus(100_000, 600)
    assert isinstance(bolus, Refused)
    assert bolus.code is RefusalCode.MEMORY_ERROR
    pumped = pump.plant_truth().pumped_nl
    pump.advance(S_PER_DAY)
    assert pump.plant_truth().pumped_nl == pumped  # safe state: no delivery
    assert isinstance(pump.clear_memory_error(command_id=9), Accepted)
    assert pump.status().state is TherapyState.STOPPED  # restart is explicit
    assert isinstance(pump.start(), Accepted)
    assert pump.status().state is TherapyState.CONTINUOUS


@pytest.mark.hazard("H8", "H4")
def test_reset_with_corrupt_record_boots_into_memory_error(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    pump = programmed(rx(1 * ML))
    pump.inject(MemoryCorruption(bit=1000))
    pump.inject(Reset())
    status = pump.status()
    assert status.memory_error
    assert status.state is TherapyState.SUSPENDED_BY_ALARM
    assert pump.engine.basal_rate_nl_per_day == 0


# -- H9: flex mis-entry, daily mass -------------------------------------------------------------


@pytest.mark.hazard("H9")
def test_flex_misentry_refused_by_daily_mass(programmed: PumpFactory, flex_rx: RxFactory) -> None:
    pump = Pump("peristaltic-20")
    # Ziconotide 100 ug/mL; the limit is 19.2 ug/day = 19_200_000 pg.
    # Meant: 60 nL... say 0.06 mL once each morning = 6 ug: one hour at 1.44 mL/day.
    meant = flex_rx([(0, 0), (8 * 3600, 1_440_000), (9 * 3600, 0)], drug="ziconotide",
                    concentration=100)  # fmt: skip
    staged = pump.stage(meant)
    assert isinstance(staged, Staged)
    assert staged.daily_volume_nl == 60_000
    # Mis-entered: the same dose every hour, 24x: 1.44 mL/day = 144 ug/day.
    wrong = flex_rx([(0, 1_440_000)], drug="ziconotide", concentration=100)
    refused = pump.stage(wrong)
    assert refused == Refused(RefusalCode.DAILY_DOSE_ABOVE_MAX, FieldId.DAILY_DOSE, 19_200_000)
    assert pump.log()[-1].kind is EventKind.COMMAND_REFUSED


@pytest.mark.hazard("H9", "H11")
def test_daily_mass_counts_every_allowed_patient_bolus(rx: RxFactory) -> None:
    pump = Pump("peristaltic-20")
    # Morphine 10 mg/mL = 10_000 ug/mL; limit 15 mg/day. Basal 1 mL/day = 10 mg (+1 stroke).
    ok = PatientBolusLimits(dose_nl=100_000, duration_s=600, lockout_s=3600, max_per_24h=4)
    assert pump.stage(rx(1 * ML, concentration=10_000, patient_bolus=ok)).ok  # 14 mg
    too_many = PatientBolusLimits(dose_nl=100_000, duration_s=600, lockout_s=3600, max_per_24h=6)
    refused = pump.stage(rx(1 * ML, concentration=10_000, patient_bolus=too_many))  # 16 mg
    assert isinstance(refused, Refused)
    assert refused.code is RefusalCode.DAILY_DOSE_ABOVE_MAX


@pytest.mark.hazard("H9", "H11")
def test_daily_mass_is_checked_on_the_dose_as_asked(rx: RxFactory) -> None:
    """Found by the stateful test: 11 patient boluses of 1746 nL of ziconotide 1 mg/mL are
    19.206 ug a day, over the 19.2 ug limit. The pump delivers 8 whole strokes (1600 nL) per
    bolus, 17.6 ug, and used to accept the prescription on that; the limit is on what is
    prescribed and reviewed."""
    pump = Pump("peristaltic-20")
    over = PatientBolusLimits(dose_nl=1_746, duration_s=600, lockout_s=600, max_per_24h=11)
    rx_over = Prescription(
        "ziconotide", 1_000, InfusionMode.FLEX, Repeat.DAILY, (FlexStep(0, 0),), over, 500_000
    )
    assert pump.stage(rx_over) == Refused(
        RefusalCode.DAILY_DOSE_ABOVE_MAX, FieldId.DAILY_DOSE, 19_200_000
    )
    within = PatientBolusLimits(dose_nl=1_745, duration_s=600, lockout_s=600, max_per_24h=11)
    staged = pump.stage(
        Prescription(
            "ziconotide", 1_000, InfusionMode.FLEX, Repeat.DAILY, (FlexStep(0, 0),), within,
            500_000,
        )
    )  # fmt: skip
    assert isinstance(staged, Staged)
    assert staged.daily_mass_pg == 11 * 1_745 * 1_000  # the review shows the dose as asked


# -- H10: wrong refill volume entered -------------------------------------------------------------


@pytest.mark.hazard("H10")
def test_wrong_refill_volume_runs_dry_before_prediction(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    pump = programmed(rx(1 * ML), profile="peristaltic-40", reservoir_nl=5 * ML)
    pump.refill_begin()
    done = pump.refill_complete(40 * ML, injected_nl=20 * ML)  # 20 mL in, 40 mL entered
    assert isinstance(done, RefillCompleted)
    assert done.predicted_empty_ms is not None
    assert done.predicted_empty_ms >= 39 * MS_PER_DAY  # what the programmer shows
    # Truth: 20 mL at 1.01 mL/day is gone after 19.8 days.
    pump.advance(20 * S_PER_DAY)
    truth = pump.plant_truth()
    assert truth.reservoir_nl == 0
    assert truth.dry_nl > 0
    status = pump.status()
    assert status.state is TherapyState.CONTINUOUS  # the pump has no idea
    assert status.reservoir_estimate_nl == 20 * ML


# -- H11: misprogramming limits ------------------------------------------------------------------


@pytest.mark.hazard("H11")
@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        (24_000_001, Refused(RefusalCode.RATE_ABOVE_MAX, FieldId.STEP_RATE, 24_000_000)),
        (47_999, Refused(RefusalCode.RATE_BELOW_MIN, FieldId.STEP_RATE, 48_000)),
    ],
    ids=["above-max", "below-min"],
)
def test_rate_limits_refused(rx: RxFactory, rate: int, expected: Refused) -> None:
    pump = Pump("peristaltic-20")
    assert pump.stage(rx(rate, concentration=1)) == expected
    assert pump.stage(rx(24_000_000, concentration=1)).ok
    assert pump.stage(rx(48_000, concentration=1)).ok


@pytest.mark.hazard("H11")
def test_bolus_limits_refused(programmed: PumpFactory, rx: RxFactory) -> None:
    pump = programmed(rx(500_000))
    assert pump.clinician_bolus(2_000_001, 3600) == Refused(
        RefusalCode.BOLUS_ABOVE_MAX, FieldId.BOLUS_DOSE, 2_000_000
    )
    # 2 mL in 60 s is 2880 mL/day: far above 24 mL/day minus the 0.5 mL/day basal.
    fast = pump.clinician_bolus(2_000_000, 60)
    assert isinstance(fast, Refused)
    assert fast.code is RefusalCode.RATE_ABOVE_MAX
    assert fast.field is FieldId.BOLUS_DURATION
    assert fast.limit == 7_354  # ceil(2 mL * 86400 s / 23.5 mL/day): the shortest allowed
    assert pump.clinician_bolus(2_000_000, 7_354).ok


# -- H12: no catch-up after a stall or stop ------------------------------------------------------


@pytest.mark.hazard("H12")
def test_restart_after_stall_delivers_no_catch_up(programmed: PumpFactory, rx: RxFactory) -> None:
    pump = programmed(rx(288_000))  # one stroke a minute
    pump.advance(S_PER_HOUR)
    pump.inject(MotorStall(recover_after_s=10 * S_PER_HOUR))
    pump.advance(10 * S_PER_HOUR + 600)  # recovery seen at the next 10-minute retry
    assert pump.status().state is TherapyState.CONTINUOUS
    recovered = next(e for e in pump.log() if e.kind is EventKind.MOTOR_RECOVERED)
    # Stall seen at 61 min; retries every 600 s; plant free at 11 h -> seen at 11 h 1 min.
    assert recovered.time_ms == 11 * MS_PER_HOUR + 60_000
    before = pump.status().delivered_nl
    pump.advance(S_PER_HOUR)
    # The next hour holds the programmed 60 strokes, not one more (no catch-up).
    assert pump.status().delivered_nl - before == 60 * STROKE


@pytest.mark.hazard("H12")
def test_stall_drops_running_bolus(programmed: PumpFactory, rx: RxFactory) -> None:
    pump = programmed(rx(288_000))
    assert pump.clinician_bolus(1_000_000, 6 * S_PER_HOUR).ok
    pump.advance(S_PER_HOUR)
    pump.inject(MotorStall(recover_after_s=60))
    pump.advance(S_PER_HOUR)
    assert pump.status().state is TherapyState.CONTINUOUS
    assert pump.status().bolus_strokes_remaining == 0
    assert EventKind.BOLUS_CANCELLED in kinds(pump)


@pytest.mark.hazard("H12")
def test_stop_and_start_deliver_no_catch_up(programmed: PumpFactory, rx: RxFactory) -> None:
    pump = programmed(rx(288_000))
    pump.advance(S_PER_HOUR)
    assert pump.stop().ok
    pump.advance(5 * S_PER_HOUR)
    assert pump.start().ok
    before = pump.status().delivered_nl
    pump.advance(S_PER_HOUR)
    assert pump.status().delivered_nl - before == 60 * STROKE


# -- H13: occlusion ------------------------------------------------------------------------------


@pytest.mark.hazard("H13")
def test_occlusion_pumped_is_not_delivered(programmed: PumpFactory, rx: RxFactory) -> None:
    pump = programmed(rx(1 * ML))
    pump.inject(CatheterOcclusion())
    pump.advance(3 * S_PER_DAY)
    truth = pump.plant_truth()
    assert truth.pumped_nl == 3_030_000
    assert truth.delivered_nl == 0
    assert truth.retained_nl == 3_030_000
    assert pump.status().state is TherapyState.CONTINUOUS  # the pump cannot sense it
    assert pump.alarms() == ()
    pump.inject(CatheterRepair())
    assert pump.plant_truth().delivered_nl == 3_030_000  # released at once on clearing
    assert pump.plant_truth().balance_nl() == 0


# -- H14: MRI ------------------------------------------------------------------------------------


@pytest.mark.hazard("H14")
def test_mri_stalls_then_recovers_after_delay(programmed: PumpFactory, rx: RxFactory) -> None:
    pump = programmed(rx(288_000))
    pump.inject(MagnetExposure(scan_s=S_PER_HOUR, recovery_s=4 * S_PER_HOUR))
    pump.advance(2 * S_PER_HOUR)
    assert pump.plant_truth().motor is MotorState.RECOVERING
    assert pump.status().state is TherapyState.SUSPENDED_BY_ALARM
    pump.advance(4 * S_PER_HOUR)
    assert pump.plant_truth().motor is MotorState.OK
    assert pump.status().state is TherapyState.CONTINUOUS
    events = [e for e in pump.log() if e.kind in (EventKind.MOTOR_STALL, EventKind.MOTOR_RECOVERED)]
    assert [e.kind for e in events] == [EventKind.MOTOR_STALL, EventKind.MOTOR_RECOVERED]
    # Free at 5 h; detected at 60 s; retries at 60 s + k*600 s -> 5 h 1 min.
    assert events[1].time_ms == 5 * MS_PER_HOUR + 60_000


# -- H15: valve-gated pump and a magnet ------------------------------------------------------------


@pytest.mark.hazard("H15")
def test_magnet_opens_valve_up_to_limit_then_closed_until_reset(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    pump = programmed(rx(1 * ML), profile="valve-gated-20")
    pump.inject(MagnetExposure(scan_s=1800))
    truth = pump.plant_truth()
    assert truth.valve_released_nl == 10_000  # 10 uL, at once
    assert truth.delivered_nl == 10_000
    assert truth.valve_closed
    pump.advance(S_PER_DAY)
    assert pump.plant_truth().delivered_nl == 10_000  # closed: nothing more flows
    pump.inject(MagnetExposure(scan_s=1800))
    assert pump.plant_truth().valve_released_nl == 10_000  # a closed valve stays closed
    assert pump.reset_flow_valve(command_id=3).ok
    assert pump.log()[-1].kind is EventKind.FLOW_VALVE_RESET
    pump.advance(S_PER_DAY)
    # 1 mL/day with a -3.2 % bias: 968_000 nL more.
    assert pump.plant_truth().delivered_nl == 10_000 + 968_000


# -- H16: low-reservoir threshold ------------------------------------------------------------------


@pytest.mark.hazard("H16")
@pytest.mark.parametrize("threshold_ml", [2, 4], ids=["2mL", "4mL"])
def test_low_reservoir_alarm_at_settable_threshold(
    programmed: PumpFactory, rx: RxFactory, threshold_ml: int
) -> None:
    pump = programmed(rx(1 * ML, low_nl=threshold_ml * ML), reservoir_nl=10 * ML)
    predicted = pump.status().predicted_low_reservoir_ms
    assert predicted == (10 - threshold_ml) * MS_PER_DAY
    pump.advance_to(predicted - 1)
    assert AlarmKind.LOW_RESERVOIR not in active(pump)
    pump.advance(1)
    assert AlarmKind.LOW_RESERVOIR in active(pump)
    assert pump.status().reservoir_estimate_nl == threshold_ml * ML


@pytest.mark.hazard("H16")
def test_low_reservoir_threshold_outside_profile_range(rx: RxFactory) -> None:
    pump = Pump("peristaltic-20")
    assert pump.stage(rx(1 * ML, low_nl=6_000_001)) == Refused(
        RefusalCode.INVALID_FIELD, FieldId.LOW_RESERVOIR_THRESHOLD, 6_000_000
    )


# -- H17: leak and disconnect ---------------------------------------------------------------------


@pytest.mark.hazard("H17")
def test_leak_and_disconnect(programmed: PumpFactory, rx: RxFactory) -> None:
    pump = programmed(rx(1 * ML))
    pump.inject(CatheterLeak(ppm=250_000))
    pump.advance(S_PER_DAY)
    truth = pump.plant_truth()
    assert truth.leaked_nl == 252_500  # a quarter of 1.01 mL
    assert truth.delivered_nl == 757_500
    pump.inject(CatheterDisconnect())
    pump.advance(S_PER_DAY)
    truth = pump.plant_truth()
    assert truth.delivered_nl == 757_500
    assert truth.leaked_nl == 252_500 + 1_010_000
    assert truth.balance_nl() == 0
    assert pump.status().state is TherapyState.CONTINUOUS


# -- H10: an empty reservoir estimate refuses every command that would start delivery -----------


def run_dry(programmed: PumpFactory, rx: RxFactory) -> Pump:
    """Five strokes in the reservoir, run dry, then stopped by the clinician."""
    pump = programmed(rx(288_000), reservoir_nl=5 * STROKE)
    pump.advance(S_PER_HOUR)
    assert pump.status().state is TherapyState.SUSPENDED_BY_ALARM
    assert pump.stop(command_id=2).ok
    assert pump.status().reservoir_estimate_nl < STROKE
    return pump


@pytest.mark.hazard("H10", "H11")
def test_commit_on_an_empty_reservoir_is_refused_like_start(
    programmed: PumpFactory, rx: RxFactory
) -> None:
    pump = run_dry(programmed, rx)
    assert pump.start(command_id=3) == Refused(RefusalCode.RESERVOIR_EMPTY)
    before = pump.status().prescription
    staged = pump.stage(rx(576_000))
    assert isinstance(staged, Staged)
    # Not accepted-then-suspended: refused, nothing applied, the staged prescription kept.
    assert pump.commit(staged.digest, command_id=4) == Refused(RefusalCode.RESERVOIR_EMPTY)
    status = pump.status()
    assert (status.state, status.prescription) == (TherapyState.STOPPED, before)
    assert status.staged_digest == staged.digest
    last = pump.log()[-1]
    refused = (EventKind.COMMAND_REFUSED, RefusalCode.RESERVOIR_EMPTY, 0x21, 4)
    assert (last.kind, last.detail, last.value_a, last.value_b) == refused
    # A STOPPED prescription starts nothing: it may still be committed.
    stopped = pump.stage(
        Prescription("morphine", 1_000, InfusionMode.STOPPED, Repeat.DAILY, (), None, 2 * ML)
    )
    assert isinstance(stopped, Staged)
    assert pump.commit(stopped.digest, command_id=5).ok
    # After a refill the same commit is accepted and delivers.
    assert pump.refill_begin(command_id=6).ok
    assert pump.refill_complete(10 * ML, command_id=7).ok
    staged = pump.stage(rx(576_000))
    assert isinstance(staged, Staged)
    assert pump.commit(staged.digest, command_id=8).ok
    assert pump.status().state is TherapyState.CONTINUOUS


# -- patient-bolus refusals: limits in their documented units (protocol.md section 12) ----------


@pytest.mark.hazard("H11")
def test_lockout_refusal_gives_whole_seconds_left(programmed: PumpFactory, rx: RxFactory) -> None:
    pb = PatientBolusLimits(dose_nl=20_000, duration_s=600, lockout_s=3_600, max_per_24h=1)
    pump = programmed(rx(288_000, patient_bolus=pb), start_ms=1_767_225_600_000)
    pump.advance_to(pump.now_ms + 1_000_500)  # 1000.5 s after the commit's lockout began
    refused = pump.patient_bolus(command_id=2)
    # 2599.5 s left, rounded up; never the pump time the lockout ends.
    assert refused == Refused(RefusalCode.LOCKOUT_ACTIVE, FieldId.PATIENT_BOLUS_LOCKOUT, 2_600)
    last = pump.log()[-1]
    assert (last.kind, last.detail, last.value_a, last.value_b) == (
        EventKind.PATIENT_BOLUS_REFUSED,
        RefusalCode.LOCKOUT_ACTIVE,
        2_600,
        2,
    )
    pump.advance(2_600)
    assert pump.patient_bolus(command_id=3).ok
    pump.advance(S_PER_HOUR)
    count = Refused(RefusalCode.DAILY_BOLUS_COUNT_REACHED, FieldId.PATIENT_BOLUS_MAX_PER_24H, 1)
    assert pump.patient_bolus(command_id=4) == count  # the prescription's max_per_24h


def test_refusal_limits_are_in_the_fields_unit(programmed: PumpFactory, rx: RxFactory) -> None:
    pump = programmed(rx(288_000))
    # NO_SUCH_ALARM: field ALARM, limit 0 (never an AlarmKind value in a limit).
    refused = Refused(RefusalCode.NO_SUCH_ALARM, FieldId.ALARM, 0)
    assert pump.acknowledge_alarm(AlarmKind.MOTOR_STALL, command_id=2) == refused
    assert pump.clear_memory_error(command_id=3) == refused
    # A catheter length out of range: the limit is a CATHETER_VOLUME, so nL, not cm.
    p = pump.profile
    longest = p.catheter_volume_nl(p.catheter_max_length_cm)
    assert pump.prime(p.catheter_max_length_cm + 1, command_id=4) == Refused(
        RefusalCode.INVALID_FIELD, FieldId.CATHETER_VOLUME, longest
    )

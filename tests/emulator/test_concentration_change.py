"""Concentration changes never change the dose silently (issue 12; docs/protocol.md 10.3).

The issue's case throughout: morphine 10 mg/mL at 400 000 nL/day (4 mg/day) on a
peristaltic-20 pump, refilled with 25 mg/mL. Before, the refill kept the nL/day rates and
the pump gave 10 mg/day. The firmware believes the path holds V = 200 000 nL (profile
``[fluid_path] internal_path_nl``) + 286 000 nL (110 cm of catheter at 2 600 nL/cm, never
re-primed) = 486 000 nL of old drug: 2 430 strokes of 200 nL, which the basal of 400 000
nL/day (one stroke every 43.2 s) pushes out of the tip in 2 430 x 43.2 s = 104 976 s.
"""

from __future__ import annotations

import dataclasses

import pytest

from emulator.faults import BatteryDrain, Reset
from emulator.firmware.results import BolusStarted, Refused
from emulator.pump import Pump, SnapshotError
from protocol.device_state import AlarmKind, EventKind, TherapyState
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat
from protocol.refusal import FieldId, RefusalCode

OLD = Prescription(
    "morphine", 10_000, InfusionMode.CONTINUOUS, Repeat.DAILY, (FlexStep(0, 400_000),), None,
    2_000_000,
)  # fmt: skip
NEW = dataclasses.replace(OLD, concentration_ug_per_ml=25_000, steps=(FlexStep(0, 160_000),))
"""The same 4 mg/day at 25 mg/mL: 160 000 nL/day."""
PATH_NL = 200_000 + 286_000
FLUSHED_S = 104_976
MG = 1_000_000_000


def refilled() -> Pump:
    pump = Pump("peristaltic-20")
    assert pump.program(OLD, command_id=1).ok
    assert pump.refill_begin(command_id=2).ok
    assert pump.refill_complete(20_000_000, new_concentration_ug_per_ml=25_000, command_id=3).ok
    return pump


def daily_mass(rx: Prescription | None) -> int:
    assert rx is not None
    return rx.max_24h_volume_nl() * rx.concentration_ug_per_ml


@pytest.mark.hazard("H9", "H11")
def test_the_old_drug_keeps_its_rates_then_the_pump_suspends_with_an_alarm() -> None:
    """Nobody programs the new strength: 4 mg/day goes on while old drug leaves the tip,
    then the pump stops with the critical alarm instead of giving 10 mg/day."""
    pump = refilled()
    status = pump.status()
    assert status.prescription == OLD
    assert daily_mass(status.prescription) == 4 * MG
    assert (status.pending_concentration_ug_per_ml, status.old_drug_in_path_nl) == (25_000, PATH_NL)
    pump.advance(FLUSHED_S - 1)
    assert pump.status().state is TherapyState.CONTINUOUS
    assert pump.status().old_drug_in_path_nl == 200  # one stroke of old drug left
    pump.advance(1)
    status = pump.status()
    assert status.state is TherapyState.SUSPENDED_BY_ALARM
    assert status.delivered_nl == PATH_NL  # all of it old drug, at 4 mg/day
    assert pump.engine.basal_rate_nl_per_day == 0
    assert [a.kind for a in status.alarms] == [AlarmKind.CONCENTRATION_UNPROGRAMMED]
    entry = next(e for e in pump.log() if e.kind is EventKind.CONCENTRATION_UNPROGRAMMED)
    assert entry.value_a == 25_000
    # Nothing restarts it at the old rates: START (after a STOP too) is refused.
    assert pump.start(command_id=4) == Refused(RefusalCode.CONCENTRATION_CHANGE_PENDING)
    assert pump.stop(command_id=5).ok
    assert pump.start(command_id=6) == Refused(
        RefusalCode.CONCENTRATION_CHANGE_PENDING, FieldId.CONCENTRATION, 25_000
    )
    # A prescription at the new strength, committed, is what runs (a COMMIT of a running
    # prescription starts it, docs/pump-model.md): 160 000 nL/day.
    assert pump.program(NEW, command_id=7).ok
    status = pump.status()
    assert (status.state, pump.engine.basal_rate_nl_per_day) == (TherapyState.CONTINUOUS, 160_000)
    assert status.pending_concentration_ug_per_ml is None
    assert daily_mass(status.prescription) == 4 * MG


@pytest.mark.hazard("H9")
def test_a_commit_resumes_a_suspended_pump_and_clears_the_alarm() -> None:
    pump = refilled()
    pump.advance(FLUSHED_S)
    assert pump.status().state is TherapyState.SUSPENDED_BY_ALARM
    assert pump.program(NEW, command_id=4).ok
    status = pump.status()
    assert status.state is TherapyState.CONTINUOUS
    assert status.alarms == ()
    kinds = [e.kind for e in pump.log()[-3:]]
    assert kinds == [
        EventKind.PRESCRIPTION_STAGED,
        EventKind.ALARM_CLEARED,
        EventKind.PRESCRIPTION_COMMITTED,
    ]


@pytest.mark.hazard("H9")
def test_the_bridge_runs_the_old_drug_out_then_the_new_prescription_takes_effect() -> None:
    pump = refilled()
    started = pump.bridge_bolus(command_id=4)
    assert isinstance(started, BolusStarted)
    assert (started.volume_nl, started.ends_ms) == (PATH_NL, FLUSHED_S * 1_000)
    assert pump.program(NEW, command_id=5).ok
    # Committed, not yet in effect: the tip still gives old drug at the old rates.
    assert pump.status().prescription == OLD
    assert pump.engine.basal_rate_nl_per_day == 400_000
    pump.advance(FLUSHED_S - 1)
    assert pump.status().prescription == OLD
    pump.advance(1)
    status = pump.status()
    assert status.prescription == NEW
    assert (status.state, pump.engine.basal_rate_nl_per_day) == (TherapyState.CONTINUOUS, 160_000)
    assert status.alarms == ()
    done = pump.log()[-1]
    assert (done.kind, done.detail) == (EventKind.BRIDGE_COMPLETED, InfusionMode.CONTINUOUS)
    # 4 mg/day before, during and after: the dose never changed.
    assert daily_mass(status.prescription) == 4 * MG


def test_a_commit_without_a_bridge_takes_effect_at_once() -> None:
    """The clinician's choice, as on real pumps: the old drug left in the path then goes at
    the new rates (documented in docs/protocol.md section 10.3)."""
    pump = refilled()
    assert pump.program(NEW, command_id=4).ok
    status = pump.status()
    assert status.prescription == NEW
    assert pump.engine.basal_rate_nl_per_day == 160_000
    assert status.pending_concentration_ug_per_ml is None


def test_bridge_refusals() -> None:
    pump = Pump("peristaltic-20")
    assert pump.program(OLD, command_id=1).ok
    assert pump.bridge_bolus(command_id=2) == Refused(RefusalCode.NO_CONCENTRATION_CHANGE)
    pump = refilled()
    assert pump.bridge_bolus(command_id=4).ok
    assert pump.bridge_bolus(command_id=5) == Refused(RefusalCode.BAD_STATE)
    pump = refilled()
    assert pump.stop(command_id=4).ok
    assert pump.bridge_bolus(command_id=5) == Refused(RefusalCode.THERAPY_STOPPED)


@pytest.mark.hazard("H9", "H11")
def test_what_would_run_the_new_drug_at_old_doses_is_refused() -> None:
    pump = refilled()
    pending = Refused(RefusalCode.CONCENTRATION_CHANGE_PENDING, FieldId.CONCENTRATION, 25_000)
    # A prescription for another strength than the one in the reservoir.
    assert pump.stage(OLD) == pending
    # A bolus larger than the old drug left: part of it would be new drug.
    assert pump.clinician_bolus(PATH_NL + 200, 3_600, command_id=4) == pending
    assert pump.clinician_bolus(PATH_NL, 3_600, command_id=5).ok
    assert pump.cancel_bolus(command_id=6).ok
    # Priming pushes the whole path out at the maximum rate.
    assert pump.prime_volume(10_000, command_id=7) == Refused(
        RefusalCode.CONCENTRATION_CHANGE_PENDING
    )
    # A refill with yet another strength; the same one again is fine.
    assert pump.refill_begin(command_id=8).ok
    assert pump.refill_complete(
        20_000_000, new_concentration_ug_per_ml=20_000, command_id=9
    ) == Refused(RefusalCode.CONCENTRATION_CHANGE_PENDING, FieldId.NEW_CONCENTRATION, 25_000)
    assert pump.refill_complete(20_000_000, new_concentration_ug_per_ml=25_000, command_id=10).ok


def test_priming_tells_the_firmware_the_catheter_volume() -> None:
    """After priming a 30 cm catheter (78 000 nL) the bridge's volume is 278 000 nL."""
    pump = Pump("peristaltic-20")
    assert pump.program(OLD, command_id=1).ok
    assert pump.prime(30, command_id=2).ok
    pump.advance(3_600)
    assert pump.refill_begin(command_id=3).ok
    assert pump.refill_complete(20_000_000, new_concentration_ug_per_ml=25_000, command_id=4).ok
    assert pump.status().old_drug_in_path_nl == 200_000 + 78_000


@pytest.mark.hazard("H3", "H9")
def test_a_catheter_revision_is_the_bridges_catheter_too() -> None:
    """One catheter belief: SET_CATHETER to 90 cm (90 x 2 600 = 234 000 nL), then a refill
    with a new concentration: the old drug in the path is 200 000 + 234 000 nL, not the
    implanted 110 cm's 286 000."""
    pump = Pump("peristaltic-20")
    assert pump.program(OLD, command_id=1).ok
    assert pump.set_catheter(90, primed=True, command_id=2).ok
    assert pump.refill_begin(command_id=3).ok
    assert pump.refill_complete(20_000_000, new_concentration_ug_per_ml=25_000, command_id=4).ok
    assert pump.status().old_drug_in_path_nl == 200_000 + 234_000


def test_the_change_survives_a_snapshot_and_a_reset() -> None:
    pump = refilled()
    assert pump.bridge_bolus(command_id=4).ok
    assert pump.program(NEW, command_id=5).ok
    pump.advance(50_000)
    twin = Pump.restore(pump.snapshot())
    assert twin.status() == pump.status()
    pump.inject(Reset())  # the non-volatile record holds the bridge and the waiting commit
    status = pump.status()
    assert status.bridging
    assert status.pending_concentration_ug_per_ml == 25_000
    pump.advance(FLUSHED_S)
    assert pump.status().prescription == NEW


@pytest.mark.hazard("H6")
def test_a_low_battery_reset_during_a_bridge_keeps_the_low_rate_after_it() -> None:
    """The prescription waiting for the bridge's end must not undo the low-battery reset."""
    pump = refilled()
    assert pump.bridge_bolus(command_id=4).ok
    assert pump.program(NEW, command_id=5).ok
    p = pump.profile
    pump.inject(BatteryDrain(pump.plant_truth().battery_nah - p.battery_low_reset_threshold_nah))
    pump.advance(p.battery_check_interval_s)
    waiting = pump.status().waiting_prescription
    assert waiting is not None
    assert waiting.steps == (FlexStep(0, p.battery_low_reset_rate_nl_per_day),)
    assert waiting.concentration_ug_per_ml == 25_000
    pump.advance(10 * 86_400)  # the old drug is out within 3 days at the low rate
    status = pump.status()
    assert status.prescription == waiting
    assert status.state is TherapyState.CONTINUOUS
    assert pump.engine.basal_rate_nl_per_day == p.battery_low_reset_rate_nl_per_day


def test_a_state_saved_before_the_bridge_existed_is_refused() -> None:
    """Issue 12 changed the saved record (the fluid path, the catheter, the bridge): an
    older record is refused with one line naming what differs, never half-resumed."""
    pump = Pump("peristaltic-20")
    assert pump.program(OLD, command_id=1).ok
    record = pump.snapshot_record()
    firmware_record = record["firmware"]["record"]
    del firmware_record["concentration_change"], firmware_record["catheter_nl"]
    with pytest.raises(SnapshotError, match="concentration_change"):
        Pump.from_record(record)


def test_a_stop_ends_the_bridge_and_the_committed_prescription_is_in_effect() -> None:
    pump = refilled()
    assert pump.bridge_bolus(command_id=4).ok
    assert pump.program(NEW, command_id=5).ok
    assert pump.stop(command_id=6).ok
    status = pump.status()
    assert (status.prescription, status.bridging) == (NEW, False)
    assert status.pending_concentration_ug_per_ml is None
    assert status.state is TherapyState.STOPPED
    pump.advance(FLUSHED_S)  # nothing moves while stopped; nothing starts by itself
    assert pump.status().state is TherapyState.STOPPED
    assert pump.status().delivered_nl == 0
    assert pump.start(command_id=7).ok
    assert pump.engine.basal_rate_nl_per_day == 160_000


def test_a_stop_during_a_bridge_with_nothing_committed_keeps_the_change_pending() -> None:
    pump = refilled()
    assert pump.bridge_bolus(command_id=4).ok
    assert pump.stop(command_id=5).ok
    status = pump.status()
    assert not status.bridging
    assert status.pending_concentration_ug_per_ml == 25_000
    assert pump.program(NEW, command_id=6).ok  # takes effect at once: no bridge runs
    assert pump.status().prescription == NEW

"""The Pump API: two-phase programming, command ids, event-driven time, snapshots."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.errors import TimeError
from emulator.faults import CatheterOcclusion, MemoryCorruption
from emulator.firmware.nvram import SnapshotError
from emulator.firmware.results import Accepted, Refused, Staged
from emulator.pump import Pump
from protocol.codec import prescription_digest
from protocol.device_state import EventKind, TherapyState
from protocol.prescription import (
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)
from protocol.refusal import FieldId, RefusalCode
from protocol.units import MS_PER_DAY, MS_PER_HOUR, PUMP_CLOCK_MAX_MS, S_PER_DAY

PB = PatientBolusLimits(dose_nl=20_000, duration_s=600, lockout_s=3_600, max_per_24h=6)
FLEX = Prescription(
    "morphine", 1_000, InfusionMode.FLEX, Repeat.DAILY,
    (FlexStep(0, 288_000), FlexStep(8 * 3_600, 576_000), FlexStep(20 * 3_600, 288_000)),
    PB, 2_000_000,
)  # fmt: skip


@pytest.mark.hazard("C5")
def test_stage_reports_review_values_and_commit_applies() -> None:
    pump = Pump("peristaltic-20")
    staged = pump.stage(FLEX)
    assert isinstance(staged, Staged)
    assert staged.digest == prescription_digest(FLEX)
    # 8 h at 0.288 + 12 h at 0.576 + 4 h at 0.288 mL/day = 0.096 + 0.288 + 0.048 = 0.432 mL.
    # The most the prescription allows in any 24 h window: basal + 6 x 20_000 nL boluses.
    assert staged.daily_volume_nl == 432_000 + 120_000
    assert staged.daily_mass_pg == staged.daily_volume_nl * 1_000  # x 1_000 ug/mL, exactly
    assert pump.status().prescription is None  # staging changes nothing
    assert pump.commit(b"\x00" * 16) == Refused(RefusalCode.DIGEST_MISMATCH, FieldId.DIGEST)
    result = pump.commit(staged.digest, command_id=42)
    assert isinstance(result, Accepted)
    status = pump.status()
    assert status.prescription == FLEX
    assert status.state is TherapyState.FLEX
    assert status.last_command_id == 42
    entry = pump.log()[-1]
    assert (entry.kind, entry.value_b) == (EventKind.PRESCRIPTION_COMMITTED, 42)
    assert pump.commit(staged.digest) == Refused(RefusalCode.NOTHING_STAGED)


@pytest.mark.hazard("C5")
def test_stage_expires_and_discard_changes_nothing() -> None:
    pump = Pump("peristaltic-20")
    staged = pump.stage(FLEX)
    assert isinstance(staged, Staged)
    pump.advance_to(staged.expires_ms + 1)
    refused = pump.commit(staged.digest)
    assert isinstance(refused, Refused)
    assert refused.code is RefusalCode.STAGE_EXPIRED
    staged = pump.stage(FLEX)
    assert isinstance(staged, Staged)
    pump.discard_staged()  # a session cut
    assert pump.commit(staged.digest) == Refused(RefusalCode.NOTHING_STAGED)
    assert pump.status().prescription is None


def test_flex_steps_change_the_rate_on_the_local_clock() -> None:
    pump = Pump("peristaltic-20")
    assert pump.program(FLEX).ok
    assert pump.engine.basal_rate_nl_per_day == 288_000
    pump.advance_to(8 * MS_PER_HOUR - 1)
    assert pump.engine.basal_rate_nl_per_day == 288_000
    pump.advance(1)
    assert pump.engine.basal_rate_nl_per_day == 576_000
    assert pump.set_clock(21 * MS_PER_HOUR).ok  # the clinician sets the clock to 21:00
    assert pump.engine.basal_rate_nl_per_day == 288_000
    # One day at these rates is 0.432 mL exactly: 2160 strokes of 200 nL.
    pump2 = Pump("peristaltic-20")
    pump2.program(FLEX)
    pump2.advance(S_PER_DAY)
    assert pump2.status().delivered_nl == 432_000


def test_time_never_goes_backwards_and_is_integer() -> None:
    pump = Pump("peristaltic-20")
    pump.advance(10)
    with pytest.raises(TimeError):
        pump.advance_to(9_999)
    with pytest.raises(TypeError):
        pump.advance(1.5)  # type: ignore[arg-type]


def test_command_id_is_validated() -> None:
    pump = Pump("peristaltic-20")
    assert pump.alarm_test(command_id=0) == Refused(
        RefusalCode.INVALID_FIELD, FieldId.COMMAND_ID, 1
    )
    assert pump.alarm_test(command_id=5).ok
    assert pump.status().last_command_id == 5


def test_advance_is_event_driven() -> None:
    pump = Pump("peristaltic-20")
    pump.program(FLEX)
    steps = 0
    step = pump._step

    def counting(t: int) -> None:
        nonlocal steps
        steps += 1
        step(t)

    pump._step = counting  # type: ignore[method-assign]
    pump.advance(30 * S_PER_DAY)
    # One step a day, the daily battery check at midnight: the flex boundaries at 08:00
    # and 20:00 are integrated by the engine, not stepped (docs/pump-model.md, "Time"),
    # and never one step per stroke (64_800 strokes) or per second.
    assert steps == 30
    assert pump.status().delivered_nl == 30 * 432_000


def test_flex_boundaries_are_stepped_when_the_plant_needs_them() -> None:
    # A partial occlusion makes the fluid path's result depend on where steps fall (the
    # mean flow over each step is rounded), so the pump steps at each boundary as before.
    pump = Pump("peristaltic-20")
    pump.program(FLEX)
    pump.inject(CatheterOcclusion(delivered_ppm=500_000))
    steps = 0
    step = pump._step

    def counting(t: int) -> None:
        nonlocal steps
        steps += 1
        step(t)

    pump._step = counting  # type: ignore[method-assign]
    pump.advance(30 * S_PER_DAY)
    assert steps == 3 * 30
    assert pump.status().delivered_nl == 30 * 432_000


def test_next_deadline_names_the_next_change() -> None:
    pump = Pump("peristaltic-20")
    pump.program(FLEX)
    assert pump.next_deadline() == 3_600_000  # the lockout after programming ends first
    pump.advance_to(3_600_000)
    assert pump.next_deadline() == 8 * MS_PER_HOUR  # then the 08:00 flex step


@given(cuts=st.lists(st.integers(1, 40 * S_PER_DAY), max_size=12))
def test_result_does_not_depend_on_how_time_is_sliced(cuts: list[int]) -> None:
    def run(slices: list[int]) -> tuple[object, ...]:
        pump = Pump("peristaltic-20", reservoir_nl=10_000_000)
        pump.program(FLEX)
        for t in sorted(slices):
            pump.advance_to(t * 1_000)
        pump.advance_to(40 * MS_PER_DAY)
        status = pump.status()
        return (pump.plant_truth(), status.delivered_nl, status.state, pump.log())

    assert run(cuts) == run([])


def test_snapshot_round_trip_and_corruption_detected() -> None:
    pump = Pump("peristaltic-20")
    pump.program(FLEX)
    pump.advance(3 * S_PER_DAY + 123)
    staged = pump.stage(FLEX)
    blob = pump.snapshot()
    twin = Pump.restore(blob)
    assert twin.status() == pump.status()
    assert twin.plant_truth() == pump.plant_truth()
    assert twin.log() == pump.log()
    assert isinstance(staged, Staged)
    assert twin.commit(staged.digest).ok
    pump.commit(staged.digest)
    for p in (pump, twin):
        p.advance(10 * S_PER_DAY)
    assert twin.plant_truth() == pump.plant_truth()
    assert twin.status() == pump.status()
    for index in (0, 20, len(blob) // 2, len(blob) - 1):
        bad = bytearray(blob)
        bad[index] ^= 0x10
        with pytest.raises(SnapshotError):
            Pump.restore(bytes(bad))
    with pytest.raises(SnapshotError):
        Pump.restore(blob[:-1])


def test_snapshot_keeps_a_pending_memory_fault() -> None:
    pump = Pump("peristaltic-20")
    pump.program(FLEX)
    pump.inject(MemoryCorruption(bit=3))
    twin = Pump.restore(pump.snapshot())
    twin.advance(1)
    assert twin.status().memory_error


@pytest.mark.parametrize("clock_ms", [None, 1_767_225_600_000 + 5 * MS_PER_HOUR + 123])
def test_predictions_match_the_crossings(clock_ms: int | None) -> None:
    """Predictions, alarms and log stamps are on the pump clock (status.local_time_ms);
    advance_to takes the internal timeline (status.time_ms): they differ by the offset
    SET_CLOCK made, and the crossings happen when the pump clock says."""
    pump = Pump("peristaltic-20", reservoir_nl=5_000_000)
    pump.advance(7)
    if clock_ms is not None:
        assert pump.set_clock(clock_ms).ok
    pump.program(FLEX)
    status = pump.status()
    offset = status.local_time_ms - status.time_ms
    assert offset == (0 if clock_ms is None else clock_ms - 7_000)
    assert status.predicted_low_reservoir_ms is not None
    assert status.predicted_empty_ms is not None
    pump.advance_to(status.predicted_low_reservoir_ms - offset)
    assert pump.status().reservoir_estimate_nl == 2_000_000
    assert [a.since_ms for a in pump.alarms()] == [status.predicted_low_reservoir_ms]
    pump.advance_to(status.predicted_empty_ms - offset)
    assert pump.status().state is TherapyState.SUSPENDED_BY_ALARM
    assert pump.status().reservoir_estimate_nl == 0
    entry = next(e for e in pump.log() if e.kind is EventKind.RESERVOIR_EMPTY)
    assert entry.time_ms == status.predicted_empty_ms
    pumped = pump.plant_truth().pumped_nl
    pump.advance(S_PER_DAY)
    assert pump.plant_truth().pumped_nl == pumped  # no delivery past an empty estimate


def test_prime_by_volume_and_limits() -> None:
    pump = Pump("peristaltic-20")
    assert pump.prime_volume(286_001) == Refused(
        RefusalCode.INVALID_FIELD, FieldId.CATHETER_VOLUME, 286_000
    )
    started = pump.prime_volume(1_000)
    assert started.ok
    assert pump.status().state is TherapyState.PRIMING


def test_refill_with_new_concentration_never_changes_the_prescription_in_effect() -> None:
    """Issue 12: 4 mg/day at 10 mg/mL silently became 10 mg/day at 25 mg/mL. Now the
    concentration is checked against the drug's range, and the prescription in effect (its
    rates and its concentration) is the old one until a new one is committed."""
    pump = Pump("peristaltic-20")
    rx = Prescription(
        "morphine", 10_000, InfusionMode.CONTINUOUS, Repeat.DAILY, (FlexStep(0, 400_000),),
        None, 2_000_000,
    )  # fmt: skip
    assert pump.program(rx).ok
    assert pump.refill_begin().ok
    # 25 entered for 25 000 ug/mL: below morphine's 500 ug/mL in the library.
    refused = pump.refill_complete(20_000_000, new_concentration_ug_per_ml=25)
    assert refused == Refused(
        RefusalCode.CONCENTRATION_OUT_OF_RANGE, FieldId.NEW_CONCENTRATION, 500
    )
    assert pump.refill_complete(20_000_000, new_concentration_ug_per_ml=25_000).ok
    status = pump.status()
    assert status.prescription == rx  # 4 mg/day: rates and concentration unchanged
    assert status.pending_concentration_ug_per_ml == 25_000
    assert pump.log()[-1].detail == 1  # REFILL_COMPLETED with a concentration change


def test_record_event_logs_at_now() -> None:
    pump = Pump("peristaltic-20")
    pump.advance(5)
    seq = pump.record_event(EventKind.SESSION_OPENED, 1)
    entry = pump.log()[-1]
    assert (entry.seq, entry.time_ms, entry.kind, entry.detail) == (
        seq,
        5_000,
        EventKind.SESSION_OPENED,
        1,
    )


def test_status_and_results_are_on_the_pump_clock_and_history_keeps_its_stamps() -> None:
    pump = Pump("peristaltic-20")
    assert pump.program(FLEX, command_id=1).ok
    pump.advance(2 * 3_600)
    early = pump.log()
    clock = 1_767_225_600_000 + 21 * MS_PER_HOUR  # 21:00 on 2026-01-01
    before = pump.status().local_time_ms
    set_clock = pump.set_clock(clock, command_id=2)
    assert isinstance(set_clock, Accepted)
    assert set_clock.time_ms == before  # the CLOCK_SET entry: stamped with the old clock
    assert pump.log()[: len(early)] == early  # history is not rewritten
    entry = pump.log()[-1]
    assert (entry.kind, entry.time_ms, entry.value_a) == (EventKind.CLOCK_SET, before, clock)
    status = pump.status()
    assert (status.time_ms, status.local_time_ms) == (2 * MS_PER_HOUR, clock)

    bolus = pump.patient_bolus(command_id=3)
    assert bolus.ok
    status = pump.status()
    assert bolus.time_ms == clock == pump.log()[-1].time_ms
    assert bolus.ends_ms == status.bolus_ends_ms == clock + PB.duration_s * 1_000
    assert status.lockout_until_ms == clock + PB.lockout_s * 1_000
    staged = pump.stage(FLEX)
    assert isinstance(staged, Staged)
    assert staged.time_ms == clock
    assert staged.expires_ms == clock + pump.profile.stage_lifetime_s * 1_000
    assert staged.predicted_low_reservoir_ms is not None
    assert staged.predicted_low_reservoir_ms > clock
    pump.advance(PB.duration_s)
    done = pump.log()[-1]
    assert (done.kind, done.time_ms) == (EventKind.PATIENT_BOLUS_COMPLETED, bolus.ends_ms)


def test_set_clock_past_year_9999_is_refused_and_changes_nothing() -> None:
    pump = Pump("peristaltic-20")
    before = pump.status().local_time_ms
    refused = pump.set_clock(PUMP_CLOCK_MAX_MS + 1, command_id=3)
    assert isinstance(refused, Refused)
    assert (refused.code, refused.field, refused.limit) == (
        RefusalCode.INVALID_FIELD,
        FieldId.CLOCK,
        PUMP_CLOCK_MAX_MS,
    )
    assert pump.status().local_time_ms == before
    assert pump.set_clock(PUMP_CLOCK_MAX_MS, command_id=4).ok

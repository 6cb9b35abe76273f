"""The fluid path's kept slicing verdict (emulator/fluid/path.py ``slicing_invariant``;
docs/pump-model.md, "Time"): only a pass-through of the tubes' own strength keeps it, every
other change drops it, and check mode catches a verdict kept wrongly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.cache_checks import CHECK_ALL, CacheCheckError
from emulator.faults import (
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
    PocketFill,
    PumpFlip,
    PumpReseat,
)
from emulator.pump import Pump
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat
from protocol.units import MS_PER_HOUR

FAULTS: list[Fault] = [
    CapInjection(volume_nl=50_000, concentration_ug_per_ml=2_000),
    CatheterLeak(ppm=100_000),
    CatheterRepair(),
    CatheterKink(period_s=3_600, closed_s=600),
    InflammatoryMass(grow_s=86_400),
    CatheterOcclusion(delivered_ppm=500_000),
    CatheterMigration(),
    CatheterDisconnect(),
    CatheterErosion(ppm=50_000),
    PocketFill(volume_nl=20_000, concentration_ug_per_ml=3_000),
    PumpFlip(),
    PumpReseat(),
]

FLEX = Prescription(
    drug_name="morphine",
    concentration_ug_per_ml=5_000,
    mode=InfusionMode.FLEX,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 300_000), FlexStep(30_000, 480_000), FlexStep(60_000, 360_000)),
    patient_bolus=None,
    low_reservoir_threshold_nl=1_000_000,
)


def _pump() -> Pump:
    pump = Pump("peristaltic-40", drug_concentration_ug_per_ml=5_000, stroke_seed=3)
    assert pump.program(FLEX).ok
    return pump


@settings(max_examples=40)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 20 * MS_PER_HOUR),
            st.sampled_from(["fault", "refill", "aspirate", "none"]),
            st.integers(0, len(FAULTS) - 1),
        ),
        max_size=15,
    )
)
def test_the_kept_verdict_always_equals_a_fresh_one(
    moves: list[tuple[int, str, int]],
) -> None:
    pump = _pump()
    fluid = pump._plant._fluid
    for dt, action, which in moves:
        pump.advance_to(pump.now_ms + dt)
        assert fluid.slicing_invariant() == fluid._compute_slicing_invariant()
        if action == "fault":
            pump.inject(FAULTS[which])
        elif action == "refill" and pump.refill_begin().ok:
            pump.refill_complete(20_000_000, new_concentration_ug_per_ml=None)
        elif action == "aspirate":
            pump.cap_aspirate(1_000)
        assert fluid.slicing_invariant() == fluid._compute_slicing_invariant()


def test_a_steady_pump_keeps_its_verdict_and_a_change_drops_it() -> None:
    pump = _pump()
    fluid = pump._plant._fluid
    pump.advance_to(6 * MS_PER_HOUR)
    assert fluid.slicing_invariant()
    pump.advance_to(12 * MS_PER_HOUR)
    kept_before = fluid._steady  # strokes of the tubes' own strength kept it
    pump.inject(CatheterLeak(ppm=100_000))
    kept_after = fluid._steady
    assert (kept_before, kept_after) == (True, False)
    assert not fluid.slicing_invariant()


def test_check_mode_catches_a_verdict_kept_wrongly(monkeypatch: pytest.MonkeyPatch) -> None:
    pump = _pump()
    fluid = pump._plant._fluid
    pump.inject(CatheterLeak(ppm=100_000))
    fluid._steady = True  # a change that forgot to drop it: the bug checked for
    monkeypatch.setattr(CHECK_ALL, "on", True)
    with pytest.raises(CacheCheckError, match="kept steady"):
        fluid.slicing_invariant()


@settings(max_examples=15)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 30 * MS_PER_HOUR),
            st.sampled_from(["fault", "refill", "none"]),
            st.integers(0, len(FAULTS) - 1),
        ),
        max_size=10,
    )
)
def test_the_steady_pass_through_saves_what_the_general_path_saves(
    moves: list[tuple[int, str, int]],
) -> None:
    # Check mode runs the general path (and checks the steady claim); without it a steady
    # path only moves the totals. Both must save the same pump, byte for byte.
    def run(check: bool) -> bytes:
        saved = CHECK_ALL.on
        CHECK_ALL.on = check
        try:
            pump = _pump()
            for dt, action, which in moves:
                pump.advance_to(pump.now_ms + dt)
                if action == "fault":
                    pump.inject(FAULTS[which])
                elif action == "refill" and pump.refill_begin().ok:
                    pump.refill_complete(20_000_000)
            pump.advance_to(pump.now_ms + 3 * MS_PER_HOUR)
            return pump.snapshot()
        finally:
            CHECK_ALL.on = saved

    assert run(check=False) == run(check=True)


def test_check_mode_catches_a_pass_through_that_was_not_steady(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pump = _pump()
    fluid = pump._plant._fluid
    pump.advance_to(2 * MS_PER_HOUR)
    pump.inject(CapInjection(volume_nl=50_000, concentration_ug_per_ml=2_000))
    fluid._steady = True  # wrongly: the catheter now holds two strengths
    monkeypatch.setattr(CHECK_ALL, "on", True)
    with pytest.raises(CacheCheckError):
        pump.advance_to(4 * MS_PER_HOUR)

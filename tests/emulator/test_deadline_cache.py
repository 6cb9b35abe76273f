"""The firmware's kept next deadline (emulator/firmware/deadline_cache.py; docs/pump-model.md,
"Time"): computed once per change, checked against a fresh computation in check mode."""

from __future__ import annotations

import gc
import weakref

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.faults import BatteryDrain, CatheterKink, Fault, MotorStall, Reset
from emulator.firmware.deadline_cache import CHECK_ALL, DeadlineCache, DeadlineCacheError
from emulator.firmware.results import Staged
from emulator.pump import Pump
from protocol.prescription import (
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)
from protocol.units import MS_PER_HOUR


class Counting:
    """A deadline source whose answer the test moves by hand."""

    def __init__(self, value: int | None) -> None:
        self.value = value
        self.calls = 0

    def __call__(self, now_ms: int) -> int | None:
        self.calls += 1
        return self.value


def test_a_kept_deadline_is_computed_once_while_it_lies_ahead() -> None:
    source = Counting(500)
    cache = DeadlineCache()
    assert [cache.get(t, source) for t in (0, 10, 499)] == [500, 500, 500]
    assert source.calls == 1


def test_a_deadline_that_came_is_recomputed() -> None:
    source = Counting(500)
    cache = DeadlineCache()
    cache.get(0, source)
    source.value = 900
    assert cache.get(500, source) == 900
    assert source.calls == 2


def test_none_is_kept_until_invalidated() -> None:
    source = Counting(None)
    cache = DeadlineCache()
    assert cache.get(0, source) is None
    assert cache.get(10**12, source) is None
    assert source.calls == 1
    source.value = 7
    cache.invalidate()
    assert cache.get(5, source) == 7


def test_check_mode_catches_a_missed_invalidation() -> None:
    source = Counting(500)
    cache = DeadlineCache(check=True)
    cache.get(0, source)
    source.value = 300  # moved without an invalidate: the bug check mode exists for
    with pytest.raises(DeadlineCacheError, match="kept next deadline 500 but it is 300"):
        cache.get(1, source)


def test_the_switch_sets_check_mode_for_pumps_built_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(CHECK_ALL, "on", False)
    assert not Pump("peristaltic-40")._fw.deadline_cache.check
    monkeypatch.setattr(CHECK_ALL, "on", True)
    assert Pump("peristaltic-40")._fw.deadline_cache.check


def test_the_suite_builds_every_pump_in_check_mode() -> None:
    # tests/conftest.py sets the switch: the stateful and differential tests rely on it.
    assert Pump("peristaltic-40")._fw.deadline_cache.check


def test_a_second_timer_request_computes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # The serve loop asks advance_to and then get_pump_timer: one computation serves both.
    pump = _running_pump()
    fw = pump._fw
    calls = 0
    compute = fw._compute_next_deadline

    def counted(now_ms: int) -> int | None:
        nonlocal calls
        calls += 1
        return compute(now_ms)

    monkeypatch.setattr(fw, "_compute_next_deadline", counted)
    fw.deadline_cache.check = False
    fw.deadline_cache.invalidate()
    first = pump.next_deadline()
    assert pump.next_deadline() == first
    assert calls == 1


def test_a_replaced_firmware_is_freed_without_the_cyclic_collector() -> None:
    # The cache keeps no bound method of its firmware (memory_decade_vs_year).
    pump = _running_pump()
    pump.next_deadline()
    gc.disable()
    try:
        ref = weakref.ref(pump._fw)
        del pump
        assert ref() is None
    finally:
        gc.enable()


FAULTS: list[Fault] = [
    MotorStall(recover_after_s=3_600),
    MotorStall(recover_after_s=None),
    CatheterKink(period_s=3_600, closed_s=600),
    BatteryDrain(nah=10**8),
    Reset(),
]


def _running_pump() -> Pump:
    pump = Pump("peristaltic-40", reservoir_nl=3_000_000)
    rx = Prescription(
        drug_name="morphine",
        concentration_ug_per_ml=5_000,
        mode=InfusionMode.FLEX,
        repeat=Repeat.DAILY,
        steps=(FlexStep(0, 300_000), FlexStep(43_200, 480_000)),
        patient_bolus=PatientBolusLimits(
            dose_nl=20_000, duration_s=600, lockout_s=3_600, max_per_24h=6
        ),
        low_reservoir_threshold_nl=1_000_000,
    )
    staged = pump.stage(rx)
    assert isinstance(staged, Staged), staged
    assert pump.commit(staged.digest).ok
    return pump


@settings(max_examples=40)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 30 * MS_PER_HOUR),
            st.sampled_from(["bolus", "stop", "start", "fault", "none"]),
            st.integers(0, len(FAULTS) - 1),
        ),
        max_size=25,
    )
)
def test_the_kept_deadline_always_equals_a_fresh_one(
    moves: list[tuple[int, str, int]],
) -> None:
    """Random time jumps, commands and faults, down to an empty reservoir: after each, the
    pump's answer (kept) equals the firmware's fresh computation."""
    pump = _running_pump()
    fw = pump._fw
    fw.deadline_cache.check = True
    for dt, action, fault in moves:
        pump.advance_to(pump.now_ms + dt)
        if action == "bolus":
            pump.patient_bolus()
        elif action == "stop":
            pump.stop()
        elif action == "start":
            pump.start()
        elif action == "fault":
            pump.inject(FAULTS[fault])
        assert fw.next_deadline(pump.now_ms) == fw._compute_next_deadline(pump.now_ms)
        assert pump.next_deadline() == pump.next_deadline()

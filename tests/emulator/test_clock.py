"""The manual clock: the only clock the emulator package ships (real ones are in hil)."""

from __future__ import annotations

import pytest

from emulator.clock import Clock, ManualClock
from emulator.delivery import DeliveryEngine
from emulator.errors import TimeError


def test_manual_clock_moves_only_forward() -> None:
    c = ManualClock(start_ms=1_000)
    assert c.now_ms() == 1_000
    assert c.advance(500) == 1_500
    assert c.advance(0) == 1_500
    c.set(2_000)
    c.set(2_000)  # same instant is allowed
    assert c.now_ms() == 2_000
    with pytest.raises(TimeError):
        c.set(1_999)
    with pytest.raises(TimeError):
        c.advance(-1)
    assert c.now_ms() == 2_000


def test_manual_clock_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="start_ms"):
        ManualClock(start_ms=-1)
    with pytest.raises(TypeError):
        ManualClock().set(1.5)  # type: ignore[arg-type]
    with pytest.raises(TimeError):
        ManualClock().advance(0.5)  # type: ignore[arg-type]


def test_manual_clock_drives_the_engine() -> None:
    # The shell pattern: read the clock, hand `now` to the core. A year at a stroke a minute.
    clock: Clock = ManualClock()
    engine = DeliveryEngine(stroke_nl=100, start_ms=clock.now_ms())
    engine.set_basal(144_000)
    assert isinstance(clock, ManualClock)
    clock.advance(365 * 86_400_000)
    assert engine.advance(clock.now_ms()).count == 365 * 1440

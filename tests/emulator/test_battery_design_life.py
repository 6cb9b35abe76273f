"""The design-life shut-off: end of service at the profile's design life, whatever the rate.

SynchroMed II-class pumps stop for good 7 years (84 months) after they were built, with the
elective replacement indicator 90 days before (docs/pump-model.md, "Battery"; H6, H7). The
firmware holds it as a deadline, so a 7-year advance costs a handful of events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from typing import Any

import pytest

from emulator.errors import ProfileError
from emulator.faults import BatteryDrain
from emulator.firmware.nvram import SnapshotError, decode_record, encode_record
from emulator.profile import load_profile, parse_profile
from emulator.pump import SNAPSHOT_MAGIC, Pump
from protocol.device_state import AlarmKind, EventKind, TherapyState
from protocol.documents import parse_toml
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat
from protocol.units import MS_PER_DAY

DESIGN_LIFE_MS = 2_557 * MS_PER_DAY  # 7 years (84 months), peristaltic-20
ERI_MS = DESIGN_LIFE_MS - 90 * MS_PER_DAY


def continuous(rate_nl_per_day: int) -> Prescription:
    return Prescription(
        "morphine", 1_000, InfusionMode.CONTINUOUS, Repeat.DAILY,
        (FlexStep(0, rate_nl_per_day),), None, 2_000_000,
    )  # fmt: skip


def pump_at_rate(rate: int | None) -> Pump:
    pump = Pump("peristaltic-20")
    if rate is not None:
        assert pump.program(continuous(rate)).ok
    return pump


@pytest.mark.hazard("H6")
@pytest.mark.parametrize(
    "rate", [None, 48_000, 100_000], ids=["stopped", "minimum-rate", "0.1-mL-per-day"]
)
def test_design_life_shuts_the_pump_off_at_seven_years_whatever_the_rate(
    rate: int | None,
) -> None:
    """At these rates the charge alone would last past 7 years: 700 mAh - 40 mAh ERI
    reserve at 10 uA idle (87.6 mAh/year) + 40 nAh per 200 nL stroke (at most 7.3 mAh/year
    at 0.1 mL/day) is about 7 years and 3 months. The design life ends service first."""
    pump = pump_at_rate(rate)
    pump.advance_to(ERI_MS - 1)
    assert pump.status().elective_replacement_ms is None
    pump.advance_to(ERI_MS)
    status = pump.status()
    assert status.elective_replacement_ms == ERI_MS  # the pump clock was never set
    assert status.end_of_service_ms == DESIGN_LIFE_MS
    assert AlarmKind.ELECTIVE_REPLACEMENT in {a.kind for a in pump.alarms()}
    assert pump.plant_truth().battery_nah > pump.profile.battery_eri_threshold_nah
    pump.advance_to(DESIGN_LIFE_MS - 1)
    assert pump.status().state is not TherapyState.END_OF_SERVICE
    pump.advance_to(DESIGN_LIFE_MS)
    assert pump.status().state is TherapyState.END_OF_SERVICE
    kinds = [e.kind for e in pump.log()]
    assert kinds.count(EventKind.ELECTIVE_REPLACEMENT) == 1
    assert kinds.count(EventKind.END_OF_SERVICE) == 1
    delivered = pump.plant_truth().pumped_nl
    pump.advance_to(DESIGN_LIFE_MS + 30 * MS_PER_DAY)
    assert pump.plant_truth().pumped_nl == delivered  # nothing after end of service


@pytest.mark.hazard("H6")
def test_a_battery_that_reaches_eri_by_charge_first_ends_service_90_days_later() -> None:
    """A cell that loses 600 mAh in year 2 (H6) reaches ERI by charge at the next daily
    check, long before the design life; end of service is 90 days after that ERI."""
    pump = pump_at_rate(100_000)
    two_years = 730 * MS_PER_DAY
    pump.advance_to(two_years)
    pump.inject(BatteryDrain(600_000_000))
    pump.advance_to(DESIGN_LIFE_MS + MS_PER_DAY)
    status = pump.status()
    assert status.elective_replacement_ms == two_years + MS_PER_DAY
    assert status.end_of_service_ms == two_years + MS_PER_DAY + 90 * MS_PER_DAY
    assert status.state is TherapyState.END_OF_SERVICE


def test_a_profile_without_design_life_never_shuts_off_by_age() -> None:
    profile = replace(load_profile("peristaltic-20"), battery_design_life_days=0)
    pump = Pump(profile)
    pump.advance_to(DESIGN_LIFE_MS + MS_PER_DAY)
    assert pump.status().state is TherapyState.STOPPED  # charge left, no age limit
    assert pump.status().end_of_service_ms is None


def test_the_design_life_survives_snapshot_and_reset() -> None:
    pump = pump_at_rate(48_000)
    pump.advance_to(365 * MS_PER_DAY)
    again = Pump.restore(pump.snapshot())
    again.advance_to(DESIGN_LIFE_MS)
    assert again.status().state is TherapyState.END_OF_SERVICE
    assert again.status().end_of_service_ms == DESIGN_LIFE_MS


@pytest.mark.parametrize("days", [1, 90], ids=["one-day", "equal-to-eri-to-eos"])
def test_a_design_life_not_longer_than_eri_to_eos_is_refused(days: int) -> None:
    text = resources.files("emulator").joinpath("profiles", "peristaltic-20.toml").read_text()
    document = parse_toml(text)
    document["battery"]["design_life_days"] = days
    with pytest.raises(ProfileError, match="design_life_days"):
        parse_profile(document, "test")


def _refused(pump: Pump, change: Callable[[dict[str, Any]], None]) -> str:
    record = decode_record(SNAPSHOT_MAGIC, pump.snapshot())
    change(record)
    with pytest.raises(SnapshotError) as error:
        Pump.restore(encode_record(SNAPSHOT_MAGIC, record))
    return str(error.value)


@pytest.mark.hazard("H6")
@pytest.mark.parametrize(
    "value",
    [None, DESIGN_LIFE_MS * 100, DESIGN_LIFE_MS - 1, True],
    ids=["dropped", "pushed-past", "moved-earlier", "bool"],
)
def test_a_saved_state_cannot_move_or_drop_the_design_life(value: object) -> None:
    def change(record: dict[str, Any]) -> None:
        record["firmware"]["record"]["design_eos_ms"] = value

    assert "design_eos_ms" in _refused(pump_at_rate(48_000), change)


@pytest.mark.hazard("H7")
def test_the_projected_replacement_dates_include_the_design_life() -> None:
    """Stopped, the charge alone projects ERI after 7 years (about 7 years 2 months of idle
    draw: 660 mAh at 10 uA); the design life's ERI (7 years - 90 days) is earlier, so
    STATUS_DETAIL projects it, and end of service at exactly 7 years."""
    pump = pump_at_rate(None)
    detail = pump.status_detail()
    assert not detail.eri_reached
    assert detail.eri_ms == ERI_MS
    assert detail.end_of_service_ms == DESIGN_LIFE_MS
    # At 1 mL/day the charge projects ERI years earlier: that projection stands.
    busy = pump_at_rate(1_000_000).status_detail()
    assert busy.eri_ms is not None
    assert busy.eri_ms < ERI_MS
    assert busy.end_of_service_ms == busy.eri_ms + 90 * MS_PER_DAY

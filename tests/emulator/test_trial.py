"""The trial and the implant prescription it leads to (emulator/trial.py; H9, H11)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.pump import Pump
from emulator.trial import (
    EIGHT_HOURS_S,
    Trial,
    TrialError,
    TrialKind,
    TrialOutcome,
    TrialRecord,
    implant_daily_dose,
    implant_prescription,
)
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat
from protocol.units import MS_PER_DAY

UG = 1_000_000  # pg
MG = 1_000 * UG


def shot(drug: str, dose_pg: int, effect_s: int | None = 6 * 3_600) -> TrialRecord:
    return TrialRecord(drug, TrialKind.SINGLE_SHOT, dose_pg, TrialOutcome.EFFECTIVE, 0, effect_s)


@pytest.mark.parametrize(
    ("record", "daily_pg"),
    [
        # 50 ug baclofen worked for 6 h: 2 x 50 = 100 ug/day.
        (shot("baclofen", 50 * UG), 100 * UG),
        (shot("Lioresal", 75 * UG), 150 * UG),  # a brand name folds to its generic
        # Its effect lasted 10 h (> 8 h): the screening dose per day, 50 ug/day.
        (shot("baclofen", 50 * UG, 10 * 3_600), 50 * UG),
        (shot("baclofen", 50 * UG, EIGHT_HOURS_S), 100 * UG),  # exactly 8 h is not more
        (shot("morphine", 200 * UG), 200 * UG),  # 1:1 (assumed)
        (shot("Prialt", 5 * UG), 2_400_000),  # ziconotide starts at 2.4 ug/day
        (
            TrialRecord("hydromorphone", TrialKind.CONTINUOUS, 300 * UG, TrialOutcome.EFFECTIVE, 0),
            300 * UG,
        ),
    ],
    ids=[
        "baclofen-50ug-6h",
        "lioresal-75ug",
        "baclofen-over-8h",
        "baclofen-exactly-8h",
        "morphine-shot",
        "prialt-shot",
        "continuous-same-daily-mass",
    ],
)
def test_documented_conversions(record: TrialRecord, daily_pg: int) -> None:
    assert implant_daily_dose(record).daily_mass_pg == daily_pg


def test_an_ineffective_trial_converts_to_nothing() -> None:
    record = TrialRecord("baclofen", TrialKind.SINGLE_SHOT, 100 * UG,
                         TrialOutcome.NOT_EFFECTIVE, 0)  # fmt: skip
    with pytest.raises(TrialError, match="not effective"):
        implant_daily_dose(record)


def test_a_single_shot_of_a_drug_with_no_rule_is_refused_not_guessed() -> None:
    with pytest.raises(TrialError, match="no documented rule"):
        implant_daily_dose(shot("clonidine", 50 * UG))


def test_baclofen_implant_prescription_rate_from_the_implants_concentration() -> None:
    """100 ug/day at 2000 ug/mL is 0.05 mL/day = 50_000 nL/day, and the pump computes the
    same 100 ug/day at stage time."""
    rx, conversion = implant_prescription(shot("baclofen", 50 * UG), 2_000)
    assert rx.steps == (FlexStep(0, 50_000),)
    assert rx.mode is InfusionMode.CONTINUOUS
    assert conversion.daily_mass_pg == 100 * UG
    staged = Pump("peristaltic-20").stage(rx)
    assert staged.ok
    assert staged.daily_mass_pg == 100 * UG


@given(st.integers(1, 10 * MG), st.integers(1, 50_000))
def test_the_rate_never_delivers_more_than_the_converted_dose(dose: int, conc: int) -> None:
    record = TrialRecord("morphine", TrialKind.CONTINUOUS, dose, TrialOutcome.EFFECTIVE, 0)
    try:
        rx, conversion = implant_prescription(record, conc)
    except TrialError:
        assert dose < conc or dose // conc > 0xFFFF_FFFF  # under 1 nL/day, or over u32
        return
    programmed = rx.steps[0].rate_nl_per_day * conc
    assert programmed <= conversion.daily_mass_pg < programmed + conc


def test_a_concentration_far_too_high_is_refused() -> None:
    """50 ug/day of morphine at 25 g/mL (25_000_000 ug/mL, a mg/ug slip) is < 1 nL/day."""
    record = TrialRecord("morphine", TrialKind.CONTINUOUS, 50 * UG, TrialOutcome.EFFECTIVE, 0)
    with pytest.raises(TrialError, match="too high"):
        implant_prescription(record, 25_000_000_000)


def test_single_shot_trial_api_records_the_last_injection() -> None:
    trial = Trial("baclofen")
    trial.inject(0, 50 * UG, 1_000_000)  # no effect
    trial.inject(MS_PER_DAY, 75 * UG, 1_500_000)  # 24 h later, 75 ug
    record = trial.record_single_shot(TrialOutcome.EFFECTIVE, 6 * 3_600)
    assert (record.dose_pg, record.time_ms, record.device) == (
        75 * UG, MS_PER_DAY, "lumbar puncture",
    )  # fmt: skip
    assert implant_daily_dose(record).daily_mass_pg == 150 * UG
    with pytest.raises(TrialError, match="time order"):
        trial.inject(0, 100 * UG, 2_000_000)


def test_continuous_trial_on_the_trial_pump_records_its_daily_mass() -> None:
    """Morphine 1 mg/mL at 0.2 mL/day on the trial pump: 0.2 mg/day; the implant at
    10 mg/mL runs 0.02 mL/day for the same 0.2 mg/day."""
    rx = Prescription("morphine", 1_000, InfusionMode.CONTINUOUS, Repeat.DAILY,
                      (FlexStep(0, 200_000),), None, 1_000_000)  # fmt: skip
    pump = Pump("trial-external")
    assert pump.program(rx).ok
    pump.advance_to(3 * MS_PER_DAY)
    assert pump.plant_truth().pumped_nl == 600_000  # 3 days at 0.2 mL/day, no bias
    running = pump.status().prescription
    assert running is not None
    record = Trial("morphine").record_continuous(
        running, TrialOutcome.EFFECTIVE, pump.now_ms, "trial-external"
    )
    assert record.dose_pg == 200 * UG
    implant, _ = implant_prescription(record, 10_000)
    assert implant.steps[0].rate_nl_per_day == 20_000


def test_a_flex_prescription_is_not_a_continuous_trial() -> None:
    steps = (FlexStep(0, 200_000), FlexStep(3_600, 100_000))
    rx = Prescription("morphine", 1_000, InfusionMode.FLEX, Repeat.DAILY, steps, None, 1_000_000)
    with pytest.raises(TrialError, match="one continuous rate"):
        Trial("morphine").record_continuous(rx, TrialOutcome.EFFECTIVE, 0, "")


def test_a_record_round_trips_and_a_tampered_one_is_refused() -> None:
    record = shot("baclofen", 50 * UG)
    assert TrialRecord.loads(record.dumps()) == record
    data = record.to_json()
    for key, value, match in [
        ("dose_unit", "pg/day", "dose_unit"),
        ("dose_pg", 1.5, "dose_pg"),
        ("dose_pg", True, "dose_pg"),
        ("kind", "weekly", "trial record"),
        ("format", "other/1", "format"),
    ]:
        with pytest.raises(TrialError, match=match):
            TrialRecord.from_json({**data, key: value})
    with pytest.raises(TrialError, match="unknown"):
        TrialRecord.from_json({**data, "extra": 1})
    with pytest.raises(TrialError, match="JSON"):
        TrialRecord.loads("{")


def test_the_trial_profile_is_a_short_lived_external_pump() -> None:
    pump = Pump("trial-external")
    profile = pump.profile
    assert profile.reservoir_usable_nl == 10_000_000
    pump.advance_to(30 * MS_PER_DAY)
    assert pump.status().end_of_service_ms == 30 * MS_PER_DAY  # single use: 30 days


@given(
    st.sampled_from(["baclofen", "Lioresal", "Gablofen", "morphine", "Infumorph", "ziconotide"]),
    st.integers(1, 10 * MG),
    st.none() | st.integers(0, 30 * 86_400),
)
def test_no_single_shot_rule_starts_above_twice_the_trial_dose_or_2_4_ug_for_ziconotide(
    drug: str, dose: int, effect_s: int | None
) -> None:
    """The safety envelope of the table (H11): a starting daily dose is at most twice the
    dose that worked, except ziconotide's fixed 2.4 ug/day labeling start."""
    daily = implant_daily_dose(shot(drug, dose, effect_s)).daily_mass_pg
    if drug == "ziconotide":
        assert daily == 2_400_000
    else:
        assert dose <= daily <= 2 * dose


@pytest.mark.parametrize(
    "drug", ["", "baclofé", "x" * 17, "tab\tbed"], ids=["empty", "non-ascii", "long", "tab"]
)
def test_a_drug_name_a_prescription_cannot_carry_is_refused(drug: str) -> None:
    with pytest.raises(TrialError, match="printable ASCII"):
        Trial(drug)
    with pytest.raises(TrialError, match="printable ASCII"):
        shot(drug, 50 * UG)


def test_an_implant_drug_name_the_wire_cannot_carry_is_a_trial_error() -> None:
    with pytest.raises(TrialError, match="drug_name"):
        implant_prescription(shot("baclofen", 50 * UG), 2_000, drug_name="x" * 17)


def test_the_implant_is_named_by_the_generic_so_the_pump_applies_its_limit() -> None:
    """A Lioresal trial programs "baclofen": peristaltic-20 limits baclofen to 2 mg/day,
    where an unknown name would get the 20 mg/day default (H11)."""
    rx, _ = implant_prescription(shot("Lioresal", 75 * UG), 2_000)
    assert rx.drug_name == "baclofen"
    assert Pump("peristaltic-20").profile.max_daily_mass_for(rx.drug_name) == 2_000 * UG
    named, _ = implant_prescription(shot("Lioresal", 75 * UG), 2_000, drug_name="Gablofen")
    assert named.drug_name == "Gablofen"  # the caller's choice is kept

"""Prescription TOML files: the shipped examples, exact conversion, and errors naming the key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hil.ctl import prescription_file as pf
from hil.errors import UsageError
from protocol.codec import prescription_digest
from protocol.prescription import FlexStep, InfusionMode, PatientBolusLimits, Repeat

EXAMPLES = Path(__file__).resolve().parents[2] / "hil" / "examples"

BASE = """\
format = "pumpemu-prescription/1"
drug = "morphine"
concentration = "25 mg/mL"
mode = "flex"
low_reservoir_threshold = "2 mL"
"""

STEPS = """
[[steps]]
start = "00:00"
rate = "0.2 mL/day"

[[steps]]
start = "08:00"
rate = "0.5 mL/day"
"""


def test_morphine_flex_example() -> None:
    parsed = pf.load(EXAMPLES / "morphine-flex.toml")
    rx = parsed.prescription
    assert rx.drug_name == "morphine"
    assert rx.concentration_ug_per_ml == 10_000
    assert rx.mode is InfusionMode.FLEX
    assert rx.repeat is Repeat.DAILY
    assert rx.steps == (
        FlexStep(0, 300_000),
        FlexStep(6 * 3600, 500_000),
        FlexStep(12 * 3600, 400_000),  # dose = "4 mg/day" at 10 mg/mL
        FlexStep(22 * 3600, 300_000),
    )
    assert rx.patient_bolus == PatientBolusLimits(20_000, 600, 3 * 3600, 4)
    assert rx.low_reservoir_threshold_nl == 2_000_000
    assert parsed.asked_steps[2].amount == "4 mg/day"
    assert parsed.asked_steps[2].by_mass


def test_baclofen_continuous_example() -> None:
    rx = pf.load(EXAMPLES / "baclofen-continuous.toml").prescription
    assert rx.mode is InfusionMode.CONTINUOUS
    assert rx.concentration_ug_per_ml == 2_000
    assert rx.steps == (FlexStep(0, 200_000),)
    assert rx.patient_bolus is None


def test_same_prescription_in_other_units_gives_the_same_digest() -> None:
    a = pf.parse(BASE + STEPS).prescription
    other = BASE.replace('"25 mg/mL"', '"25000 ug/mL"').replace(
        '"2 mL"', '"2000 uL"'
    ) + STEPS.replace('"0.2 mL/day"', '"200000 nL/day"').replace(
        'rate = "0.5 mL/day"', 'dose = "12.5 mg/day"'
    )
    b = pf.parse(other).prescription
    assert a == b
    assert prescription_digest(a) == prescription_digest(b)


def test_weekly_steps_and_mass_bolus() -> None:
    text = BASE.replace('mode = "flex"', 'mode = "flex"\nrepeat = "weekly"') + (
        '[[steps]]\nstart = "Mon 00:00"\nrate = "0.2 mL/day"\n'
        '[[steps]]\nstart = "Wed 12:30"\nrate = "0.3 mL/day"\n'
        '[patient_bolus]\ndose = "0.5 mg"\nduration = "15 min"\nlockout = "1.5h"\nmax_per_24h = 3\n'
    )
    rx = pf.parse(text).prescription
    assert rx.repeat is Repeat.WEEKLY
    assert rx.steps[1].start_s == 2 * 86_400 + 12 * 3600 + 30 * 60
    assert rx.patient_bolus == PatientBolusLimits(20_000, 900, 5_400, 3)  # 0.5 mg / 25 mg/mL


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace('"0.5 mL/day"', '"0.5 mL/dy"'),
            "steps[1].rate: '0.5 mL/dy' is not a rate; write e.g. 0.5 mL/day, 480 uL/day or "
            "480000 nL/day",
        ),
        (
            lambda t: t.replace('"0.5 mL/day"', '"0.0000005 mL/day"'),
            "steps[1].rate: '0.0000005 mL/day' is not a whole number of nL/day",
        ),
        (
            lambda t: t.replace('"08:00"', '"25:00"'),
            "steps[1].start: '25:00' is not a time of day",
        ),
        (
            lambda t: t.replace('start = "08:00"', 'start = "00:00"'),
            "steps[1].start: '00:00' must be later than the step before it (00:00)",
        ),
        (
            lambda t: t.replace('start = "00:00"', 'start = "01:00"'),
            "steps[0].start: the first step must start at '00:00'",
        ),
        (
            lambda t: t.replace('"25 mg/mL"', '"25 mg"'),
            "concentration: '25 mg' is not a concentration",
        ),
        (lambda t: t.replace('"25 mg/mL"', "25"), "concentration: must be a string with its unit"),
        (lambda t: t.replace('"flex"', '"flexible"'), "mode: 'flexible' is not one of"),
        (lambda t: t.replace('drug = "morphine"\n', ""), "drug: missing"),
        (lambda t: t.replace('"morphine"', '"morphine sulfate 25"'), "drug: must be 1..16"),
        (lambda t: t + 'lockot = "3 h"\n', "lockot: unknown key"),
        (lambda t: t.replace('format = "pumpemu-prescription/1"\n', ""), "format: missing"),
        (
            lambda t: t.replace('rate = "0.5 mL/day"', 'rate = "0.5 mL/day"\ndose = "5 mg/day"'),
            "steps[1].rate: give rate (volume per day) or dose (mass per day), not both",
        ),
        (
            lambda t: t.replace('rate = "0.5 mL/day"', 'rate = "12.5 mg/day"'),
            "steps[1].rate: '12.5 mg/day' is a dose by mass; write it as dose",
        ),
        (
            lambda t: t.replace('rate = "0.5 mL/day"', 'dose = "0.001 ug/day"'),
            "steps[1].dose: '0.001 ug/day' at 25 mg/mL is not a whole number of nL/day",
        ),
        (
            lambda t: t + '[patient_bolus]\ndose = "20 uL"\nduration = "10 min"\nlockout = "1 h"\n',
            "patient_bolus.max_per_24h: missing",
        ),
        (
            lambda t: (
                t
                + '[patient_bolus]\ndose = "20 uL"\nduration = "10 min"\nlockout = "1 h"\n'
                + "max_per_24h = 0\n"
            ),
            "patient_bolus.max_per_24h: 0 is below the minimum 1",
        ),
        (
            lambda t: t + '[patient_bolus]\ndose = "20 uL"\nduration = "ten"\n',
            "patient_bolus.duration: 'ten' is not a duration",
        ),
        (lambda t: t.replace("[[steps]]", "[steps]", 1), "not valid TOML"),
    ],
)
def test_errors_name_the_key(edit: Callable[[str], str], message: str) -> None:
    text = edit(BASE + STEPS)
    with pytest.raises(pf.PrescriptionFileError) as info:
        pf.parse(text, "rx.toml")
    assert isinstance(info.value, UsageError)
    assert str(info.value).startswith("rx.toml: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_mode_specific_keys() -> None:
    continuous = BASE.replace('"flex"', '"continuous"')
    with pytest.raises(pf.PrescriptionFileError, match="steps: a continuous prescription"):
        pf.parse(continuous + STEPS)
    with pytest.raises(pf.PrescriptionFileError, match="rate: missing"):
        pf.parse(continuous)
    stopped = BASE.replace('"flex"', '"stopped"')
    assert pf.parse(stopped).prescription.steps == ()
    with pytest.raises(pf.PrescriptionFileError, match="repeat: only a flex prescription"):
        pf.parse(continuous + 'rate = "1 mL/day"\nrepeat = "daily"\n')


def test_load_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(pf.PrescriptionFileError, match="no such file"):
        pf.load(tmp_path / "missing.toml")
    with pytest.raises(pf.PrescriptionFileError, match="is a directory"):
        pf.load(tmp_path)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(pf.PrescriptionFileError, match="not UTF-8"):
        pf.load(binary)

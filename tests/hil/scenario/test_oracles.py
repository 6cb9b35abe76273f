"""The oracles' own arithmetic: the programmed basal is integrated from the prescription
alone (never through the firmware's schedule), exactly, and windows own their first
instant."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hil.scenario.loader import loads
from hil.scenario.oracles import basal_volume_x_ms, fmt_time
from hil.scenario.runner import run
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat
from protocol.units import MS_PER_DAY

DAILY = Prescription(
    "morphine", 10_000, InfusionMode.FLEX, Repeat.DAILY,
    (FlexStep(0, 300_000), FlexStep(6 * 3_600, 500_000), FlexStep(22 * 3_600, 100_000)),
    None, 2_000_000,
)  # fmt: skip
WEEKLY = Prescription(
    "morphine", 10_000, InfusionMode.FLEX, Repeat.WEEKLY,
    (FlexStep(0, 300_000), FlexStep(2 * 86_400 + 3_600, 900_000)),
    None, 2_000_000,
)  # fmt: skip
MONDAY = 1_767_571_200_000  # 2026-01-05T00:00 local: a Monday


def test_one_day_of_a_daily_schedule_is_its_daily_volume() -> None:
    expected = (300_000 * 6 + 500_000 * 16 + 100_000 * 2) * 3_600_000  # nL x ms / day
    for start in (MONDAY, MONDAY + 5 * 3_600_000, MONDAY + 12_345):
        assert basal_volume_x_ms(DAILY, start, MS_PER_DAY) == expected


def test_weekly_schedule_follows_the_monday_convention() -> None:
    # Monday 00:00 to Wednesday 01:00 at the first rate, then the second.
    first = basal_volume_x_ms(WEEKLY, MONDAY, (2 * 24 + 1) * 3_600_000)
    assert first == 300_000 * (2 * 24 + 1) * 3_600_000
    second = basal_volume_x_ms(WEEKLY, MONDAY + (2 * 24 + 1) * 3_600_000, 3_600_000)
    assert second == 900_000 * 3_600_000


@given(
    st.sampled_from([DAILY, WEEKLY]),
    st.integers(0, 10**13),
    st.integers(0, 20 * MS_PER_DAY),
    st.integers(0, 20 * MS_PER_DAY),
)
def test_the_integral_adds_up_over_any_split(
    rx: Prescription, start: int, first: int, second: int
) -> None:
    whole = basal_volume_x_ms(rx, start, first + second)
    parts = basal_volume_x_ms(rx, start, first) + basal_volume_x_ms(rx, start + first, second)
    assert whole == parts


def test_a_bolus_at_a_windows_first_instant_belongs_to_it() -> None:
    (scenario,) = loads(
        'id = "w"\ntitle = "w"\n[setup]\nprescription = { drug = "morphine", '
        'concentration = "10 mg/mL", mode = "continuous", rate = "0.5 mL/day", '
        'low_reservoir_threshold = "2 mL" }\n'
        '[[steps]]\nat = "1d"\ndo = "clinician-bolus"\ndose = "1 mg"\nduration = "30 min"\n'
        '[[oracles]]\ncheck = "dose"\nfrom = "0d"\nto = "2d"\nper = "1d"\npatient = "2%"\n',
        "w.toml",
    )
    result = run(scenario, "api")
    assert result.verdict == "pass"
    first, second = result.figures["oracle1.dose"]
    assert first["programmed_pg"] == 5_000_000_000
    assert second["programmed_pg"] == 6_000_000_000  # the day's basal and the 1 mg bolus


def test_times_are_shown_as_scenario_days() -> None:
    assert fmt_time(0) == "0d 00:00"
    assert fmt_time(2 * MS_PER_DAY + 8 * 3_600_000 + 30_000) == "2d 08:00:30"

"""hil/quantities.py: the one grammar (docs/quantities.md) and the one display style.

Every accepted spelling reaches the exact integer; every wrong one is one line that names
the accepted forms; and whatever is printed reads back to the integer it came from.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil import quantities as q

DAY = 86_400

# -- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("90s", 90, id="90s"),
        pytest.param("90 s", 90, id="90-space-s"),
        pytest.param("90 sec", 90, id="90-sec"),
        pytest.param("2m", 120, id="2m"),
        pytest.param("2 min", 120, id="2-space-min"),
        pytest.param("2min", 120, id="2min"),
        pytest.param("2 minutes", 120, id="2-minutes"),
        pytest.param("1h30m", 5_400, id="1h30m"),
        pytest.param("1h 30m", 5_400, id="1h-space-30m"),
        pytest.param("1 h 30 min", 5_400, id="words-spaced"),
        pytest.param("1.5h", 5_400, id="decimal-hours"),
        pytest.param("3d", 3 * DAY, id="3d"),
        pytest.param("1 day", DAY, id="1-day"),
        pytest.param("2w", 14 * DAY, id="2w"),
        pytest.param("1d12h", 36 * 3_600, id="1d12h"),
        pytest.param("2d 08:00", 2 * DAY + 8 * 3_600, id="days-and-clock"),
        pytest.param("2d 08:00:30", 2 * DAY + 8 * 3_600 + 30, id="days-and-clock-seconds"),
        pytest.param("08:00", 8 * 3_600, id="clock-alone"),
        pytest.param(" 1H 30M ", 5_400, id="upper-case-padded"),
        pytest.param("0s", 0, id="zero"),
        pytest.param("2000ms", 2, id="ms-whole-seconds"),
        pytest.param("30m1h", 5_400, id="terms-add-in-any-order"),
    ],
)
def test_duration_spellings_reach_the_exact_seconds(text: str, seconds: int) -> None:
    assert q.parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        pytest.param("250ms", 250, id="ms"),
        pytest.param("1.5s", 1_500, id="decimal-seconds"),
        pytest.param("0.001s", 1, id="one-ms"),
        pytest.param("1m30s250ms", 90_250, id="compound-ms"),
        pytest.param("2d 08:00:00.250", (2 * DAY + 8 * 3_600) * 1_000 + 250, id="clock-ms"),
    ],
)
def test_duration_ms_spellings_reach_the_exact_milliseconds(text: str, ms: int) -> None:
    assert q.parse_duration_ms(text) == ms


@pytest.mark.parametrize(
    ("text", "why"),
    [
        pytest.param("2 parsecs", "unknown unit 'parsecs'", id="unknown-unit"),
        pytest.param("-5 min", "has no sign", id="negative"),
        pytest.param("+5 min", "has no sign", id="plus"),
        pytest.param("", "empty", id="empty"),
        pytest.param("   ", "empty", id="blank"),
        pytest.param("5", "needs its unit", id="bare"),
        pytest.param("1h 08:00", "follows days or weeks", id="clock-after-hours"),
        pytest.param("2d 25:00", "00:00 to 23:59:59", id="clock-out-of-range"),
        pytest.param("1e3s", "unknown unit 'e'", id="exponent"),
        pytest.param("1,5h", "is not a duration", id="comma-decimal"),
        pytest.param("h", "is not a duration", id="unit-alone"),
        pytest.param("5%%", "is not a duration", id="percent"),
    ],
)
def test_wrong_durations_are_one_line_naming_the_forms(text: str, why: str) -> None:
    with pytest.raises(q.QuantityError) as caught:
        q.parse_duration(text)
    message = str(caught.value)
    assert why in message
    assert "\n" not in message
    assert q.DURATION_FORMS in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("0.5s", "whole number of seconds", id="sub-second"),
        pytest.param("99999999999999999999d", "longer than 100 years", id="overflow"),
        pytest.param("1" * 30 + "s", "too many digits", id="too-many-digits"),
    ],
)
def test_durations_out_of_reach_are_refused_not_rounded(text: str, message: str) -> None:
    with pytest.raises(q.QuantityError, match=message):
        q.parse_duration(text)


def test_a_bare_number_takes_the_callers_unit_only_when_asked() -> None:
    assert q.parse_duration("90", bare="s") == 90
    assert q.parse_duration_ms("90", bare="s") == 90_000
    assert q.parse_duration_ms("90", bare="ms") == 90
    with pytest.raises(q.QuantityError, match="a bare number is seconds"):
        q.parse_duration("ninety", bare="s")


def test_the_longest_duration_is_a_century() -> None:
    assert q.parse_duration(f"{q.MAX_DURATION_S}s") == q.MAX_DURATION_S
    with pytest.raises(q.QuantityError, match="100 years"):
        q.parse_duration(f"{q.MAX_DURATION_S + 1}s")


# -- the other kinds ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        pytest.param(q.parse_volume, "0.05 mL", 50_000, id="volume-ml"),
        pytest.param(q.parse_volume, "50uL", 50_000, id="volume-ul"),
        pytest.param(q.parse_volume, "50 µL", 50_000, id="volume-micro"),
        pytest.param(q.parse_volume, "50000 nL", 50_000, id="volume-nl"),
        pytest.param(q.parse_rate, "0.5 mL/day", 500_000, id="rate-ml-day"),
        pytest.param(q.parse_rate, "480 uL/d", 480_000, id="rate-ul-d"),
        pytest.param(q.parse_mass, "0.5 mg", 500_000_000, id="mass-mg"),
        pytest.param(q.parse_mass, "60 mcg", 60_000_000, id="mass-mcg"),
        pytest.param(q.parse_mass, "60000 ng", 60_000_000, id="mass-ng"),
        pytest.param(q.parse_mass_rate, "12.5 mg/day", 12_500_000_000, id="mass-rate"),
        pytest.param(q.parse_concentration, "25 mg/mL", 25_000, id="conc-mg"),
        pytest.param(q.parse_concentration, "500 mcg/mL", 500, id="conc-mcg"),
        pytest.param(q.parse_fraction, "5%", 50_000, id="percent"),
        pytest.param(q.parse_fraction, "0.5 %", 5_000, id="percent-decimal"),
        pytest.param(q.parse_fraction, "250000 ppm", 250_000, id="ppm"),
    ],
)
def test_every_kind_reaches_its_exact_integer(
    parse: Callable[[str], int], text: str, value: int
) -> None:
    assert parse(text) == value


@pytest.mark.parametrize(
    ("parse", "text", "forms"),
    [
        pytest.param(q.parse_volume, "5 parsecs", q.VOLUME_FORMS, id="volume-unit"),
        pytest.param(q.parse_volume, "-1 mL", q.VOLUME_FORMS, id="volume-negative"),
        pytest.param(q.parse_volume, "5", q.VOLUME_FORMS, id="volume-bare"),
        pytest.param(q.parse_rate, "0.5 mL/h", q.RATE_FORMS, id="rate-per-hour"),
        pytest.param(q.parse_mass, "5 mL", q.MASS_FORMS, id="mass-volume"),
        pytest.param(q.parse_concentration, "5 mg", q.CONCENTRATION_FORMS, id="conc-mass"),
        pytest.param(q.parse_mass_rate, "5 mg", q.MASS_RATE_FORMS, id="mass-rate-no-day"),
        pytest.param(q.parse_fraction, "5%%", q.FRACTION_FORMS, id="double-percent"),
        pytest.param(q.parse_fraction, "0.05", q.FRACTION_FORMS, id="fraction-bare"),
    ],
)
def test_wrong_quantities_are_one_line_naming_the_forms(
    parse: Callable[[str], int], text: str, forms: str
) -> None:
    with pytest.raises(q.QuantityError) as caught:
        parse(text)
    assert forms in str(caught.value)
    assert "\n" not in str(caught.value)


def test_fractions_take_a_bare_number_and_a_sign_where_asked() -> None:
    assert q.parse_fraction("0.05", bare="fraction") == 50_000
    assert q.parse_fraction("250000", bare="ppm") == 250_000
    assert q.parse_fraction("-2%", signed=True) == -20_000
    with pytest.raises(q.QuantityError, match="is negative"):
        q.parse_fraction("-2%")
    with pytest.raises(q.QuantityError, match="whole number of ppm"):
        q.parse_fraction("0.0000001", bare="fraction")


def test_bare_numbers_of_the_other_kinds_take_the_named_unit() -> None:
    assert q.parse_volume("2000000", bare="nl") == 2_000_000
    assert q.parse_concentration("10000", bare="ug/ml") == 10_000


# -- display --------------------------------------------------------------------------------


def test_instants_print_as_iso_pump_clock_and_elapsed_time() -> None:
    assert q.pump_time(1_772_352_000_000) == "2026-03-01T08:00:00"
    assert q.pump_time(1_772_352_000_250) == "2026-03-01T08:00:00.250"
    assert q.elapsed(2 * DAY * 1_000 + 8 * 3_600_000) == "+2d 08:00"
    assert q.elapsed(90_250) == "+0d 00:01:30.250"
    assert q.instant(1_772_352_000_000, 0) == "2026-03-01T08:00:00 (+0d 00:00)"


def test_volumes_print_in_ml_exactly() -> None:
    assert q.volume(19_958_400) == "19.9584 mL"
    assert q.volume(1) == "0.000001 mL"
    assert q.fraction(250_000) == "25%"
    assert q.duration_ms(1_500) == "1500ms"
    assert q.duration_ms(90_000) == "1m30s"


_NL = st.integers(0, 10**12)


@given(_NL)
def test_volume_round_trips(nl: int) -> None:
    assert q.parse_volume(q.volume(nl)) == nl


@given(_NL)
def test_rate_round_trips(nl_per_day: int) -> None:
    assert q.parse_rate(q.rate(nl_per_day)) == nl_per_day


@given(st.integers(0, 10**15))
def test_mass_round_trips(pg: int) -> None:
    assert q.parse_mass(q.mass(pg)) == pg


@given(st.integers(0, 10**15))
def test_mass_rate_round_trips(pg_per_day: int) -> None:
    assert q.parse_mass_rate(q.mass_per_day(pg_per_day)) == pg_per_day


@given(st.integers(0, 10**9))
def test_concentration_round_trips(ug_per_ml: int) -> None:
    assert q.parse_concentration(q.concentration(ug_per_ml)) == ug_per_ml


@given(st.integers(0, q.MAX_DURATION_S))
def test_duration_round_trips(seconds: int) -> None:
    assert q.parse_duration(q.duration(seconds)) == seconds


@given(st.integers(0, q.MAX_DURATION_S * 1_000))
def test_duration_ms_round_trips(ms: int) -> None:
    assert q.parse_duration_ms(q.duration_ms(ms)) == ms


@given(st.integers(0, q.MAX_DURATION_S * 1_000))
def test_elapsed_reads_back_as_a_duration(ms: int) -> None:
    assert q.parse_duration_ms(q.elapsed(ms).removeprefix("+")) == ms


@given(st.integers(-q.PPM, 10 * q.PPM))
def test_fraction_round_trips(ppm: int) -> None:
    assert q.parse_fraction(q.fraction(ppm), signed=True) == ppm


@given(st.integers(0, 253_402_300_799_999))
def test_pump_time_round_trips(ms: int) -> None:
    assert q.parse_pump_time(q.pump_time(ms)) == ms

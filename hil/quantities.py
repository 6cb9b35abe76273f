"""The one grammar for quantities, and the one display style (docs/quantities.md).

Every command, the control API and every file format (prescriptions, scenarios, fault
files) reads durations, volumes, rates, masses, concentrations and fractions here, and
prints them back here.

A clinician types ``0.05mL``, ``25 mg/mL`` or ``0.5 mL/day``. These are parsed as decimal
numerals with integer arithmetic only (digits x unit factor / 10^decimals), never through a
float, into the protocol's base units (protocol/units.py): nL, nL/day, ug/mL, pg, s. A value
that is not an exact integer in the base unit is refused with a clear message, never rounded:
``0.0000005 mL`` is half a nanolitre and no pump can be told that.

Formatting goes the other way, for display only, again exactly: ``12500000 nL/day`` is shown
as ``12.5 mL/day`` and never as ``12.499999``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from fractions import Fraction

from protocol.units import NL_PER_ML, NL_PER_UL, PG_PER_MG, PG_PER_UG, S_PER_DAY

MAX_DIGITS = 24
"""Longest numeral accepted: far beyond any dose, short enough that nothing blows up."""

_NUMBER = re.compile(r"^\s*(\d+)(?:\.(\d+))?\s*([^\s\d.].*?)?\s*$")

VOLUME_UNITS: dict[str, int] = {"ml": NL_PER_ML, "ul": NL_PER_UL, "µl": NL_PER_UL, "nl": 1}
"""Volume units, lower-cased, in nL."""

MASS_UNITS: dict[str, int] = {
    "mg": PG_PER_MG,
    "ug": PG_PER_UG,
    "µg": PG_PER_UG,
    "mcg": PG_PER_UG,
    "ng": 1_000,
    "pg": 1,
}
"""Mass units, lower-cased, in pg."""

CONCENTRATION_UNITS: dict[str, int] = {"mg/ml": 1_000, "ug/ml": 1, "µg/ml": 1, "mcg/ml": 1}
"""Concentration units, lower-cased, in ug/mL."""

RATE_PERIODS: dict[str, int] = {"day": 1, "d": 1}
"""Rate denominators. Only per day: a rate per hour is rarely exact in nL/day, and the pump
is programmed per day (docs/domain.md section 2)."""

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

EPOCH = datetime(1970, 1, 1)  # the pump's clock: local time, no zone


class QuantityError(ValueError):
    """A quantity that cannot be turned into an exact protocol integer; the message says why."""


def _unit(text: str) -> str:
    """A unit as the tables spell it: no spaces, lower case, micro as U+00B5."""
    return text.replace(" ", "").replace("\u03bc", "\u00b5").lower()


def _split(
    text: str, kind: str, example: str, *, text_for_errors: object = None
) -> tuple[str, str, str]:
    """(integer digits, fraction digits, unit) of ``text``, or QuantityError."""
    shown = text if text_for_errors is None else text_for_errors
    if not isinstance(text, str):
        raise QuantityError(f"{shown!r} is not a {kind}; write e.g. {example}")
    if text.strip().startswith("-"):
        raise QuantityError(f"{shown!r} is negative; write a {kind} without a sign, e.g. {example}")
    match = _NUMBER.match(text)
    if match is None:
        raise QuantityError(f"{shown!r} is not a {kind}; write e.g. {example}")
    whole, frac, unit = match.group(1), match.group(2) or "", match.group(3) or ""
    if len(whole) + len(frac) > MAX_DIGITS:
        raise QuantityError(f"{shown!r} has too many digits for a {kind}")
    return whole, frac, _unit(unit)


def _exact(text: str, whole: str, frac: str, factor: int, base: str) -> int:
    """digits x factor / 10^len(frac), refused unless it is a whole number of ``base``."""
    scaled = int(whole + frac) * factor
    divisor: int = 10 ** len(frac)
    if scaled % divisor:
        raise QuantityError(
            f"{text!r} is not a whole number of {base} (the pump's unit); give fewer decimal places"
        )
    return scaled // divisor


VOLUME_FORMS = "0.05 mL, 0.05mL, 50 uL or 50000 nL"
MASS_FORMS = "0.5 mg, 60 mcg, 60 ug or 60000 ng"
CONCENTRATION_FORMS = "25 mg/mL, 500 mcg/mL or 500 ug/mL"
RATE_FORMS = "0.5 mL/day, 480 uL/day or 480000 nL/day"
MASS_RATE_FORMS = "12.5 mg/day, 60 mcg/day or 60 ug/day"


def _in_units(
    text: str, kind: str, forms: str, units: dict[str, int], base: str, *, bare: str | None
) -> int:
    """The exact base-unit integer of ``text`` in one of ``units``; a bare number is in
    ``bare`` (a key of ``units``) where the caller allows one."""
    whole, frac, unit = _split(text, kind, forms)
    if not unit and bare is not None:
        unit = bare
    factor = units.get(unit)
    if factor is None:
        raise QuantityError(f"{text!r} is not a {kind}; write e.g. {forms}")
    return _exact(text, whole, frac, factor, base)


def parse_volume(text: str, *, bare: str | None = None) -> int:
    """``0.05mL``, ``50 uL``, ``50000nL`` -> nanolitres (``bare="nl"``: a plain number is nL)."""
    return _in_units(text, "volume", VOLUME_FORMS, VOLUME_UNITS, "nL", bare=bare)


def parse_mass(text: str, *, bare: str | None = None) -> int:
    """``0.5 mg``, ``60 mcg``, ``60ug`` -> picograms."""
    return _in_units(text, "mass", MASS_FORMS, MASS_UNITS, "pg", bare=bare)


def is_mass(text: str) -> bool:
    """True if ``text`` is written with a mass unit (so a dose is by mass, not volume)."""
    match = _NUMBER.match(text) if isinstance(text, str) else None
    return match is not None and _unit(match.group(3) or "") in MASS_UNITS


def parse_concentration(text: str, *, bare: str | None = None) -> int:
    """``25mg/mL``, ``25000 ug/mL``, ``500 mcg/mL`` -> ug/mL (``bare="ug/ml"``: plain ug/mL)."""
    return _in_units(
        text, "concentration", CONCENTRATION_FORMS, CONCENTRATION_UNITS, "ug/mL", bare=bare
    )


def _per_day(unit: str) -> tuple[str, bool]:
    """Split ``mL/day`` into (``ml``, True); (unit, False) if not per day."""
    if "/" not in unit:
        return unit, False
    numerator, _, period = unit.partition("/")
    return numerator, period in RATE_PERIODS


def _per_day_units(units: dict[str, int]) -> dict[str, int]:
    return {f"{u}/{period}": f for u, f in units.items() for period in RATE_PERIODS}


VOLUME_RATE_UNITS = _per_day_units(VOLUME_UNITS)
MASS_RATE_UNITS = _per_day_units(MASS_UNITS)


def parse_rate(text: str) -> int:
    """``0.5 mL/day``, ``480 uL/day`` -> nL/day."""
    return _in_units(text, "rate", RATE_FORMS, VOLUME_RATE_UNITS, "nL/day", bare=None)


def is_mass_rate(text: str) -> bool:
    """True if ``text`` is a mass per day (``12.5 mg/day``), not a volume rate."""
    match = _NUMBER.match(text) if isinstance(text, str) else None
    if match is None:
        return False
    numerator, per_day = _per_day(_unit(match.group(3) or ""))
    return per_day and numerator in MASS_UNITS


def parse_mass_rate(text: str) -> int:
    """``12.5 mg/day``, ``60 mcg/day`` -> pg/day."""
    return _in_units(text, "daily dose", MASS_RATE_FORMS, MASS_RATE_UNITS, "pg/day", bare=None)


def volume_for_mass(text: str, mass_pg: int, concentration_ug_per_ml: int, base: str) -> int:
    """The volume (nL, or nL/day) holding ``mass_pg`` at this concentration, exactly.

    1 nL x 1 ug/mL = 1 pg, so volume = mass / concentration; refused unless whole.
    """
    volume, rest = divmod(mass_pg, concentration_ug_per_ml)
    if rest:
        raise QuantityError(
            f"{text!r} at {concentration(concentration_ug_per_ml)} is not a whole number of "
            f"{base}; give the volume instead, or a dose that divides exactly"
        )
    return volume


# -- durations -----------------------------------------------------------------------------
#
# One grammar for every duration pumpemu reads (docs/quantities.md): terms of a number and a
# unit that add up (``1h30m``; any order, as the control API's advance always took them),
# optionally ending in a clock time after days (``2d 08:00``). The value is
# computed in exact rationals of milliseconds, never floats, then refused unless it is a
# whole number of the caller's resolution (ms for link faults, s for everything else).

DURATION_UNITS_MS: dict[str, int] = {
    **dict.fromkeys(("ms", "msec"), 1),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1_000),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60_000),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3_600_000),
    **dict.fromkeys(("d", "day", "days"), S_PER_DAY * 1_000),
    **dict.fromkeys(("w", "wk", "week", "weeks"), 7 * S_PER_DAY * 1_000),
}
"""Duration units, lower-cased, in ms. ``m`` is minutes: a duration has no metres."""

MAX_DURATION_S = 3_153_600_000
"""The longest duration accepted: 100 years of 365 days, the fault parameters' bound too."""

DURATION_FORMS = "90s, 90 s, 2m, 2 min, 1h30m, 1h 30m, 1.5h, 3d, 2d 08:00 or 250ms"
"""The accepted spellings, named in every duration error."""

_TERM = re.compile(r"(\d+)(?:\.(\d+))?\s*([a-z]+)")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?")
_BARE = re.compile(r"(\d+)(?:\.(\d+))?")


def _duration_error(text: object, bare: str | None, why: str = "") -> QuantityError:
    bare_note = f"; a bare number is {'seconds' if bare == 's' else 'milliseconds'}" if bare else ""
    reason = f" ({why})" if why else ""
    return QuantityError(
        f"{text!r} is not a duration{reason}; write e.g. {DURATION_FORMS}"
        f" (units ms, s, m or min, h, d, w){bare_note}"
    )


def _duration_fraction_ms(text: object, bare: str | None) -> Fraction:
    """The exact duration in ms of ``text``, as a rational; QuantityError if not a duration."""
    if not isinstance(text, str):
        raise _duration_error(text, bare)
    t = text.strip().lower()
    if not t:
        raise _duration_error(text, bare, "empty")
    if t.startswith(("-", "+")):
        raise _duration_error(text, bare, "a duration has no sign")
    if sum(c.isdigit() for c in t) > MAX_DIGITS:
        raise QuantityError(f"{text!r} has too many digits for a duration")
    match = _BARE.fullmatch(t)
    if match is not None:
        if bare is None:
            raise _duration_error(text, bare, "a number needs its unit")
        whole, frac = match.group(1), match.group(2) or ""
        bare_factor = 1_000 if bare == "s" else 1
        return Fraction(int(whole + frac) * bare_factor, 10 ** len(frac))
    total = Fraction(0)
    pos, last_factor = 0, None
    while pos < len(t):
        while pos < len(t) and t[pos] == " ":
            pos += 1
        clock = _CLOCK.match(t, pos)
        if clock is not None and clock.end() == len(t):
            # A time of day closes the duration: ``2d 08:00`` is day 2 at 08:00 (an offset
            # from the start, as scenario times are), ``08:00`` alone is 8 hours.
            if last_factor is not None and last_factor < DURATION_UNITS_MS["d"]:
                raise _duration_error(text, bare, "a clock time follows days or weeks only")
            h, m, s = int(clock.group(1)), int(clock.group(2)), int(clock.group(3) or 0)
            if h > 23 or m > 59 or s > 59:
                raise _duration_error(text, bare, "a clock time runs 00:00 to 23:59:59")
            millis = int((clock.group(4) or "").ljust(3, "0"))
            total += (h * 3_600 + m * 60 + s) * 1_000 + millis
            pos = len(t)
            break
        term = _TERM.match(t, pos)
        if term is None:
            raise _duration_error(text, bare)
        factor = DURATION_UNITS_MS.get(term.group(3))
        if factor is None:
            raise _duration_error(text, bare, f"unknown unit {term.group(3)!r}")
        whole, frac = term.group(1), term.group(2) or ""
        total += Fraction(int(whole + frac) * factor, 10 ** len(frac))
        last_factor, pos = factor, term.end()
    return total


def _bounded(text: object, ms: Fraction, resolution_ms: int, base: str) -> int:
    if ms.denominator != 1 or ms.numerator % resolution_ms:
        raise QuantityError(
            f"{text!r} is not a whole number of {base} (the resolution here); "
            "give fewer decimal places"
        )
    if ms > MAX_DURATION_S * 1_000:
        raise QuantityError(f"{text!r} is longer than 100 years, the longest duration accepted")
    return ms.numerator // resolution_ms


def parse_duration(text: str, *, bare: str | None = None) -> int:
    """``90s``, ``2 min``, ``1h30m``, ``1.5h``, ``3d``, ``2d 08:00`` -> whole seconds.

    ``bare="s"`` lets a plain number mean seconds where a caller always took one (``pumpemu
    time advance 90``, a fault's ``--scan-s 1800``); elsewhere the unit is required.
    """
    return _bounded(text, _duration_fraction_ms(text, bare), 1_000, "seconds")


def parse_duration_ms(text: str, *, bare: str | None = None) -> int:
    """The same grammar to whole milliseconds: ``250ms``, ``1.5s``, ``2 min``.

    ``bare`` is ``"s"``, ``"ms"`` or None (a unit is required, as in the proxy's windows,
    where a guess off by a thousand turns a glitch into an outage).
    """
    return _bounded(text, _duration_fraction_ms(text, bare), 1, "milliseconds")


# -- fractions -------------------------------------------------------------------------------

PPM = 1_000_000
"""Parts per million in a whole: fractions are exact integers in ppm."""

PPM_PER_PERCENT = 10_000

FRACTION_FORMS = "5%, 0.5 %, 250000 ppm"


def parse_fraction(text: str, *, bare: str | None = None, signed: bool = False) -> int:
    """``5%``, ``0.5 %``, ``250000 ppm`` -> parts per million, exactly.

    ``bare="fraction"`` lets a plain number be a share of one (``0.05`` is 5%, as proxy rates
    always were); ``bare="ppm"`` lets it be ppm (a fault's ``--ppm 250000``). ``signed``
    allows a leading minus (a mechanical bias can be negative).
    """
    forms = FRACTION_FORMS + {"fraction": " or 0.05", "ppm": " or a bare number of ppm"}.get(
        bare or "", ""
    )
    if not isinstance(text, str):
        raise QuantityError(f"{text!r} is not a fraction; write e.g. {forms}")
    body = text.strip()
    sign = 1
    if signed and body.startswith("-"):
        sign, body = -1, body[1:]
    whole, frac, unit = _split(body, "fraction", forms, text_for_errors=text)
    factors = {"%": PPM_PER_PERCENT, "ppm": 1}
    if bare == "fraction":
        factors[""] = PPM
    elif bare == "ppm":
        factors[""] = 1
    factor = factors.get(unit)
    if factor is None:
        raise QuantityError(f"{text!r} is not a fraction; write e.g. {forms}")
    return sign * _exact(text, whole, frac, factor, "ppm")


_TIME = re.compile(r"^\s*(?:([A-Za-z]{3})[a-z]*\s+)?(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$")


def parse_offset(text: str, *, weekly: bool) -> int:
    """A step start as seconds into the period: ``08:00`` (daily), ``Mon 08:00`` (weekly)."""
    example = "Mon 08:00" if weekly else "08:00"
    match = _TIME.match(text) if isinstance(text, str) else None
    if match is None:
        raise QuantityError(f"{text!r} is not a time of day; write e.g. {example!r}")
    day, hours, minutes, seconds = match.group(1), match.group(2), match.group(3), match.group(4)
    h, m, s = int(hours), int(minutes), int(seconds or 0)
    if h > 23 or m > 59 or s > 59:
        raise QuantityError(f"{text!r} is not a time of day (00:00 to 23:59:59)")
    offset = h * 3_600 + m * 60 + s
    if weekly:
        if day is None or day.lower() not in WEEKDAYS:
            raise QuantityError(f"{text!r}: a weekly step starts on a day; write e.g. {example!r}")
        return WEEKDAYS.index(day.lower()) * S_PER_DAY + offset
    if day is not None:
        raise QuantityError(f"{text!r}: a daily step has no day; write e.g. {example!r}")
    return offset


def parse_pump_time(text: str, now: datetime | None = None) -> int:
    """``2026-01-05T08:00:00`` or ``now`` -> pump time (ms since 1970-01-01 local, no zone)."""
    if text.strip().lower() == "now":
        moment = now if now is not None else datetime.now()
    else:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise QuantityError(
                f"{text!r} is not an ISO 8601 time; write e.g. '2026-01-05T08:00:00' or 'now'"
            ) from None
        if moment.tzinfo is not None:
            raise QuantityError(
                f"{text!r} has a zone offset; the pump keeps local time with no zone, "
                "so give the local time without one"
            )
    if moment.microsecond % 1_000:
        moment = moment.replace(microsecond=moment.microsecond - moment.microsecond % 1_000)
    delta = moment - EPOCH
    ms = (delta.days * S_PER_DAY + delta.seconds) * 1_000 + delta.microseconds // 1_000
    if ms < 0:
        raise QuantityError(f"{text!r} is before 1970-01-01, which the pump cannot hold")
    return ms


# -- display --------------------------------------------------------------------------------


def _decimal(value: int, scale: int) -> str:
    """``value / scale`` written exactly in decimal (scale is a power of ten)."""
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), scale)
    digits = len(str(scale)) - 1
    text = f"{whole}.{frac:0{digits}d}".rstrip("0").rstrip(".") if digits else str(whole)
    return sign + text


def volume(nl: int) -> str:
    """nL as mL, exactly: ``0.05 mL``."""
    return f"{_decimal(nl, NL_PER_ML)} mL"


def rate(nl_per_day: int) -> str:
    return f"{_decimal(nl_per_day, NL_PER_ML)} mL/day"


def mass(pg: int) -> str:
    """pg as mg when at least 1 mg, else as µg, exactly (``12.5 mg``, ``60 µg``)."""
    if abs(pg) >= PG_PER_MG:
        return f"{_decimal(pg, PG_PER_MG)} mg"
    return f"{_decimal(pg, PG_PER_UG)} µg"


def mass_per_day(pg_per_day: int) -> str:
    return f"{mass(pg_per_day)}/day"


def concentration(ug_per_ml: int) -> str:
    """ug/mL as mg/mL when a whole number of mg/mL or more, else µg/mL."""
    if ug_per_ml >= 1_000:
        return f"{_decimal(ug_per_ml, 1_000)} mg/mL"
    return f"{ug_per_ml} µg/mL"


def duration(seconds: int) -> str:
    """``5400`` -> ``1 h 30 min``; ``45`` -> ``45 s``."""
    if seconds == 0:
        return "0 s"
    parts = []
    days, rest = divmod(seconds, S_PER_DAY)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    for amount, unit in ((days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")):
        if amount:
            parts.append(f"{amount} {unit}")
    return " ".join(parts)


def offset(start_s: int, *, weekly: bool) -> str:
    """Seconds into the period as ``08:00`` or ``Mon 08:00``."""
    day, rest = divmod(start_s, S_PER_DAY)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")
    if weekly:
        return f"{WEEKDAYS[day % 7].capitalize()} {clock}"
    return clock


def duration_ms(ms: int) -> str:
    """Milliseconds as the compact spelling the grammar reads back: ``1d2h``, ``1m30s``,
    ``1500ms``, ``0s`` (proxy fault specs print this way, so a printed spec can be pasted)."""
    if ms == 0:
        return "0s"
    if ms < 60_000 and ms % 1_000:
        return f"{ms}ms"  # 1500ms reads better than 1s500ms
    parts = []
    rest = ms
    for unit in ("d", "h", "m", "s", "ms"):
        amount, rest = divmod(rest, DURATION_UNITS_MS[unit])
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def fraction(ppm: int) -> str:
    """ppm as a percentage, exactly: ``250000`` -> ``25%``, ``5`` -> ``0.0005%``."""
    return f"{_decimal(ppm, PPM_PER_PERCENT)}%"


def elapsed(ms: int) -> str:
    """Time since the emulator started (its internal timeline) as ``+2d 08:00``, with
    seconds and milliseconds only when there are any (``+0d 00:01:30.250``). Without the
    ``+`` it is a duration the grammar reads back (``2d 08:00``)."""
    seconds, millis = divmod(ms, 1_000)
    days, rest = divmod(seconds, S_PER_DAY)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    text = f"+{days}d {hours:02d}:{minutes:02d}"
    if secs or millis:
        text += f":{secs:02d}"
    if millis:
        text += f".{millis:03d}"
    return text


def pump_time(ms: int) -> str:
    """A pump-clock instant as ISO 8601: ``2026-01-05T08:00:00`` (``.250`` when the
    milliseconds are not zero). No zone: the pump keeps the clinic's local time and has no
    zone to tell (docs/pump-model.md, "Time"), so none is claimed."""
    seconds, millis = divmod(ms, 1_000)
    try:
        moment = datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms (beyond the calendar)"
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{millis:03d}" if millis else text


def instant(pump_clock_ms: int, internal_ms: int) -> str:
    """One instant as every command prints it: the pump clock, then the emulator's elapsed
    time (``2026-03-01T08:00:00 (+2d 08:00)``)."""
    return f"{pump_time(pump_clock_ms)} ({elapsed(internal_ms)})"


__all__ = [
    "QuantityError",
    "concentration",
    "duration",
    "duration_ms",
    "elapsed",
    "fraction",
    "instant",
    "is_mass",
    "is_mass_rate",
    "mass",
    "mass_per_day",
    "offset",
    "parse_concentration",
    "parse_duration",
    "parse_duration_ms",
    "parse_fraction",
    "parse_mass",
    "parse_mass_rate",
    "parse_offset",
    "parse_pump_time",
    "parse_rate",
    "parse_volume",
    "pump_time",
    "rate",
    "volume",
    "volume_for_mass",
]

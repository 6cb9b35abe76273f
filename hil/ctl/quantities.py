"""Human quantities in, exact protocol integers out, and back for display.

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

DURATION_UNITS: dict[str, int] = {
    "s": 1,
    "sec": 1,
    "min": 60,
    "h": 3_600,
    "hr": 3_600,
    "d": S_PER_DAY,
    "day": S_PER_DAY,
    "days": S_PER_DAY,
}
"""Duration units, lower-cased, in seconds."""

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


def _split(text: str, kind: str, example: str) -> tuple[str, str, str]:
    """(integer digits, fraction digits, unit) of ``text``, or QuantityError."""
    if not isinstance(text, str):
        raise QuantityError(f"{text!r} is not a {kind}; write e.g. {example!r}")
    match = _NUMBER.match(text)
    if match is None:
        raise QuantityError(f"{text!r} is not a {kind}; write e.g. {example!r}")
    whole, frac, unit = match.group(1), match.group(2) or "", match.group(3) or ""
    if len(whole) + len(frac) > MAX_DIGITS:
        raise QuantityError(f"{text!r} has too many digits for a {kind}")
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


def parse_volume(text: str, *, example: str = "0.05 mL") -> int:
    """``0.05mL``, ``50 uL``, ``50000nL`` -> nanolitres."""
    whole, frac, unit = _split(text, "volume", example)
    factor = VOLUME_UNITS.get(unit)
    if factor is None:
        raise QuantityError(f"{text!r} is not a volume; write e.g. {example!r} (mL, uL or nL)")
    return _exact(text, whole, frac, factor, "nL")


def parse_mass(text: str, *, example: str = "0.5 mg") -> int:
    """``0.5 mg``, ``60 mcg``, ``60ug`` -> picograms."""
    whole, frac, unit = _split(text, "mass", example)
    factor = MASS_UNITS.get(unit)
    if factor is None:
        raise QuantityError(f"{text!r} is not a mass; write e.g. {example!r} (mg, ug or mcg)")
    return _exact(text, whole, frac, factor, "pg")


def is_mass(text: str) -> bool:
    """True if ``text`` is written with a mass unit (so a dose is by mass, not volume)."""
    match = _NUMBER.match(text) if isinstance(text, str) else None
    return match is not None and _unit(match.group(3) or "") in MASS_UNITS


def parse_concentration(text: str, *, example: str = "25 mg/mL") -> int:
    """``25mg/mL``, ``25000 ug/mL``, ``500 mcg/mL`` -> ug/mL."""
    whole, frac, unit = _split(text, "concentration", example)
    factor = CONCENTRATION_UNITS.get(unit)
    if factor is None:
        raise QuantityError(
            f"{text!r} is not a concentration; write e.g. {example!r} (mg/mL or ug/mL)"
        )
    return _exact(text, whole, frac, factor, "ug/mL")


def _per_day(unit: str) -> tuple[str, bool]:
    """Split ``mL/day`` into (``ml``, True); (unit, False) if not per day."""
    if "/" not in unit:
        return unit, False
    numerator, _, period = unit.partition("/")
    return numerator, period in RATE_PERIODS


def parse_rate(text: str, *, example: str = "0.5 mL/day") -> int:
    """``0.5 mL/day``, ``480 uL/day`` -> nL/day."""
    whole, frac, unit = _split(text, "rate", example)
    numerator, per_day = _per_day(unit)
    factor = VOLUME_UNITS.get(numerator)
    if factor is None or not per_day:
        raise QuantityError(f"{text!r} is not a rate; write e.g. {example!r}")
    return _exact(text, whole, frac, factor, "nL/day")


def is_mass_rate(text: str) -> bool:
    """True if ``text`` is a mass per day (``12.5 mg/day``), not a volume rate."""
    match = _NUMBER.match(text) if isinstance(text, str) else None
    if match is None:
        return False
    numerator, per_day = _per_day(_unit(match.group(3) or ""))
    return per_day and numerator in MASS_UNITS


def parse_mass_rate(text: str, *, example: str = "12.5 mg/day") -> int:
    """``12.5 mg/day``, ``60 mcg/day`` -> pg/day."""
    whole, frac, unit = _split(text, "daily dose", example)
    numerator, per_day = _per_day(unit)
    factor = MASS_UNITS.get(numerator)
    if factor is None or not per_day:
        raise QuantityError(f"{text!r} is not a daily dose; write e.g. {example!r}")
    return _exact(text, whole, frac, factor, "pg/day")


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


def parse_duration(text: str, *, example: str = "10 min") -> int:
    """``600s``, ``10 min``, ``1.5h``, ``1 day`` -> whole seconds."""
    whole, frac, unit = _split(text, "duration", example)
    factor = DURATION_UNITS.get(unit)
    if factor is None:
        raise QuantityError(
            f"{text!r} is not a duration; write e.g. {example!r} (s, min, h or day)"
        )
    return _exact(text, whole, frac, factor, "seconds")


PPM_PER_PERCENT = 10_000


def parse_percent(text: str, *, example: str = "2%") -> int:
    """``2%``, ``0.5 %``, ``110%`` -> parts per million (a tolerance or a share of a dose)."""
    whole, frac, unit = _split(text, "percentage", example)
    if unit != "%":
        raise QuantityError(f"{text!r} is not a percentage; write e.g. {example!r}")
    return _exact(text, whole, frac, PPM_PER_PERCENT, "ppm")


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


def pump_time(ms: int) -> str:
    """A pump time (local, no zone) as ``2026-01-05 08:00:00``."""
    seconds, millis = divmod(ms, 1_000)
    try:
        moment = datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms (beyond the calendar)"
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{millis:03d}" if millis else text


__all__ = [
    "QuantityError",
    "concentration",
    "duration",
    "is_mass",
    "is_mass_rate",
    "mass",
    "mass_per_day",
    "offset",
    "parse_concentration",
    "parse_duration",
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

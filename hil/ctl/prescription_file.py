"""Prescription files: a clinician's prescription in TOML, read into a ``Prescription``.

docs/ctl.md specifies the format with examples; hil/examples/ ships two. In short::

    format = "pumpemu-prescription/1"
    drug = "morphine"
    concentration = "25 mg/mL"
    mode = "flex"                      # stopped | continuous | flex
    repeat = "daily"                   # flex only: daily (default) | weekly
    low_reservoir_threshold = "2 mL"

    [[steps]]                          # flex: 1..N steps; continuous: write rate = ... instead
    start = "00:00"
    rate = "0.4 mL/day"                # or dose = "10 mg/day"

    [patient_bolus]                    # optional
    dose = "0.02 mL"                   # or a mass, e.g. "0.5 mg"
    duration = "10 min"
    lockout = "3 h"
    max_per_24h = 4

Every quantity is a string with its unit, parsed exactly (hil/quantities.py). A dose
given by mass is converted to a volume through the concentration, and refused unless that
volume is a whole number of nanolitres. Unknown keys are refused (a misspelt ``lockot`` must
never be silently ignored), and every error names the key: ``steps[2].rate: "0.5 mL/dy" is
not a rate; write e.g. "0.5 mL/day"``. Only what the wire format allows is checked here; the
pump checks its clinical limits when the prescription is staged, and says which one broke.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hil import quantities as q
from hil.errors import UsageError
from hil.text_files import TextFileError, read_text_file
from protocol.documents import DocumentError, parse_toml
from protocol.errors import FieldValueError
from protocol.prescription import (
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)
from protocol.units import U32_MAX

FORMAT = "pumpemu-prescription/1"
MAX_FILE_BYTES = 256 * 1024
"""A prescription file is well under 4 KB; anything this large is not one."""

_TOP_KEYS = frozenset(
    {
        "format",
        "drug",
        "concentration",
        "mode",
        "repeat",
        "low_reservoir_threshold",
        "rate",
        "dose",
        "steps",
        "patient_bolus",
    }
)
_STEP_KEYS = frozenset({"start", "rate", "dose"})
_BOLUS_KEYS = frozenset({"dose", "duration", "lockout", "max_per_24h"})
_MODES = {
    "stopped": InfusionMode.STOPPED,
    "continuous": InfusionMode.CONTINUOUS,
    "flex": InfusionMode.FLEX,
}
_REPEATS = {"daily": Repeat.DAILY, "weekly": Repeat.WEEKLY}


class PrescriptionFileError(UsageError):
    """A prescription file that cannot be read or is wrong; one line naming file and key."""


class _KeyError(Exception):
    """A bad value at ``key``; ``load`` adds the file name."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")


@dataclass(frozen=True, slots=True)
class AskedStep:
    """One step as written in the file."""

    start: str
    amount: str
    """The ``rate`` (volume per day) or ``dose`` (mass per day) text, as written."""
    by_mass: bool


@dataclass(frozen=True, slots=True)
class PrescriptionFile:
    """A parsed file: the exact prescription, and what was written, for the review."""

    path: str
    prescription: Prescription
    asked: Mapping[str, str]
    """Top-level and patient-bolus values as written (``patient_bolus.dose``, ...)."""
    asked_steps: tuple[AskedStep, ...]


def load(path: str | os.PathLike[str]) -> PrescriptionFile:
    """Read and check a prescription file; ``PrescriptionFileError`` (one line) if bad."""
    name = os.fspath(path)
    try:
        text = read_text_file(path, max_bytes=MAX_FILE_BYTES)
    except TextFileError as exc:
        raise PrescriptionFileError(f"{name}: {exc}") from None
    return parse(text, name)


def parse(text: str, name: str = "<prescription>") -> PrescriptionFile:
    """Parse prescription TOML ``text``; ``name`` is used in error messages."""
    try:
        document = parse_toml(text)
    except DocumentError as exc:
        raise PrescriptionFileError(f"{name}: {exc}") from None
    try:
        return _build(document, name)
    except _KeyError as exc:
        raise PrescriptionFileError(f"{name}: {exc}") from None


def from_table(document: Mapping[str, Any], name: str) -> PrescriptionFile:
    """A prescription given as an already parsed TOML table (a scenario's inline
    ``prescription``, docs/scenarios.md); ``format`` may be left out there. Errors as
    ``parse``'s, each naming the key."""
    table = dict(document)
    table.setdefault("format", FORMAT)
    try:
        return _build(table, name)
    except _KeyError as exc:
        raise PrescriptionFileError(f"{name}: {exc}") from None


# -- building -------------------------------------------------------------------------------


def _check_keys(table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            path = f"{where}.{key}" if where else key
            raise _KeyError(path, f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _text(table: Mapping[str, Any], key: str, where: str, example: str) -> str:
    path = f"{where}.{key}" if where else key
    if key not in table:
        raise _KeyError(path, f"missing; write e.g. {key} = {example!r}")
    value = table[key]
    if not isinstance(value, str):
        raise _KeyError(
            path, f"must be a string with its unit, e.g. {key} = {example!r}, got {value!r}"
        )
    return value


def _quantity(path: str, parse: Any, text: str) -> int:
    try:
        result: int = parse(text)
    except q.QuantityError as exc:
        raise _KeyError(path, str(exc)) from None
    return result


def _build(doc: Mapping[str, Any], name: str) -> PrescriptionFile:
    _check_keys(doc, _TOP_KEYS, "")
    if "format" not in doc:
        raise _KeyError("format", f"missing; the first line must be format = {FORMAT!r}")
    if doc["format"] != FORMAT:
        raise _KeyError("format", f"{doc['format']!r} is not {FORMAT!r}, the format this reads")
    asked: dict[str, str] = {}

    drug = _text(doc, "drug", "", "morphine")
    asked["drug"] = drug
    conc_text = _text(doc, "concentration", "", "25 mg/mL")
    asked["concentration"] = conc_text
    concentration = _quantity("concentration", q.parse_concentration, conc_text)
    if concentration < 1:
        raise _KeyError("concentration", "must be above zero")

    mode_text = _text(doc, "mode", "", "flex")
    asked["mode"] = mode_text
    if mode_text not in _MODES:
        raise _KeyError("mode", f"{mode_text!r} is not one of: stopped, continuous, flex")
    mode = _MODES[mode_text]

    repeat = Repeat.DAILY
    if "repeat" in doc:
        repeat_text = _text(doc, "repeat", "", "daily")
        if mode is not InfusionMode.FLEX:
            raise _KeyError("repeat", "only a flex prescription repeats; remove it")
        if repeat_text not in _REPEATS:
            raise _KeyError("repeat", f"{repeat_text!r} is not one of: daily, weekly")
        repeat = _REPEATS[repeat_text]
        asked["repeat"] = repeat_text

    threshold_text = _text(doc, "low_reservoir_threshold", "", "2 mL")
    asked["low_reservoir_threshold"] = threshold_text
    threshold = _quantity("low_reservoir_threshold", q.parse_volume, threshold_text)

    steps, asked_steps = _steps(doc, mode, repeat, concentration, asked)
    bolus = _patient_bolus(doc, concentration, asked)

    try:
        prescription = Prescription(
            drug_name=drug,
            concentration_ug_per_ml=concentration,
            mode=mode,
            repeat=repeat,
            steps=steps,
            patient_bolus=bolus,
            low_reservoir_threshold_nl=threshold,
        )
    except FieldValueError as exc:
        raise _KeyError(_toml_key(exc.field), exc.message) from None
    return PrescriptionFile(name, prescription, asked, asked_steps)


_FIELD_TO_KEY = {
    "drug_name": "drug",
    "concentration_ug_per_ml": "concentration",
    "low_reservoir_threshold_nl": "low_reservoir_threshold",
    "patient_bolus.dose_nl": "patient_bolus.dose",
    "patient_bolus.duration_s": "patient_bolus.duration",
    "patient_bolus.lockout_s": "patient_bolus.lockout",
}


def _toml_key(field: str) -> str:
    """A Prescription field path as the key the file spells it."""
    if field in _FIELD_TO_KEY:
        return _FIELD_TO_KEY[field]
    return field.replace(".start_s", ".start").replace(".rate_nl_per_day", ".rate")


def _amount(table: Mapping[str, Any], where: str, concentration: int) -> tuple[int, str, bool]:
    """A step's (or continuous prescription's) rate in nL/day from ``rate`` or ``dose``."""
    has_rate, has_dose = "rate" in table, "dose" in table
    prefix = f"{where}." if where else ""
    if has_rate and has_dose:
        raise _KeyError(
            f"{prefix}rate", "give rate (volume per day) or dose (mass per day), not both"
        )
    if has_dose:
        text = _text(table, "dose", where, "10 mg/day")
        pg_per_day = _quantity(f"{prefix}dose", q.parse_mass_rate, text)
        try:
            nl = q.volume_for_mass(text, pg_per_day, concentration, "nL/day")
        except q.QuantityError as exc:
            raise _KeyError(f"{prefix}dose", str(exc)) from None
        return _on_the_wire(f"{prefix}dose", text, nl), text, True
    text = _text(table, "rate", where, "0.5 mL/day")
    if q.is_mass_rate(text):
        raise _KeyError(f"{prefix}rate", f"{text!r} is a dose by mass; write it as dose = {text!r}")
    nl = _quantity(f"{prefix}rate", q.parse_rate, text)
    return _on_the_wire(f"{prefix}rate", text, nl), text, False


def _on_the_wire(key: str, text: str, nl_per_day: int) -> int:
    """A rate the protocol can carry (a u32 of nL/day, docs/protocol.md section 6); the
    pump's own maximum is checked by the pump and shown at review."""
    if nl_per_day > U32_MAX:
        raise _KeyError(
            key,
            f"{text!r} is {q.rate(nl_per_day)}, more than the protocol can carry "
            f"({q.rate(U32_MAX)}); no pump delivers that",
        )
    return nl_per_day


def _steps(
    doc: Mapping[str, Any],
    mode: InfusionMode,
    repeat: Repeat,
    concentration: int,
    asked: dict[str, str],
) -> tuple[tuple[FlexStep, ...], tuple[AskedStep, ...]]:
    if mode is InfusionMode.STOPPED:
        for key in ("steps", "rate", "dose"):
            if key in doc:
                raise _KeyError(key, "a stopped prescription delivers nothing; remove it")
        return (), ()
    if mode is InfusionMode.CONTINUOUS:
        if "steps" in doc:
            raise _KeyError("steps", "a continuous prescription has one rate; write rate = ...")
        nl, text, by_mass = _amount(doc, "", concentration)
        asked["dose" if by_mass else "rate"] = text
        return (FlexStep(0, nl),), (AskedStep("00:00", text, by_mass),)
    for key in ("rate", "dose"):
        if key in doc:
            raise _KeyError(key, "a flex prescription gives its rates in [[steps]]; move it there")
    raw = doc.get("steps")
    if raw is None:
        raise _KeyError("steps", "missing; a flex prescription needs [[steps]] with start and rate")
    if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
        raise _KeyError("steps", "must be an array of tables: [[steps]]")
    if not raw:
        raise _KeyError("steps", "a flex prescription needs at least one step")
    weekly = repeat is Repeat.WEEKLY
    steps: list[FlexStep] = []
    asked_steps: list[AskedStep] = []
    for index, table in enumerate(raw):
        where = f"steps[{index}]"
        _check_keys(table, _STEP_KEYS, where)
        start_text = _text(table, "start", where, "Mon 08:00" if weekly else "08:00")
        try:
            start = q.parse_offset(start_text, weekly=weekly)
        except q.QuantityError as exc:
            raise _KeyError(f"{where}.start", str(exc)) from None
        if steps and start <= steps[-1].start_s:
            raise _KeyError(
                f"{where}.start",
                f"{start_text!r} must be later than the step before it "
                f"({q.offset(steps[-1].start_s, weekly=weekly)})",
            )
        if index == 0 and start != 0:
            first = "Mon 00:00" if weekly else "00:00"
            raise _KeyError(f"{where}.start", f"the first step must start at {first!r}")
        nl, text, by_mass = _amount(table, where, concentration)
        try:
            steps.append(FlexStep(start, nl))
        except FieldValueError as exc:
            raise _KeyError(f"{where}.rate", exc.message) from None
        asked_steps.append(AskedStep(start_text, text, by_mass))
    return tuple(steps), tuple(asked_steps)


def _patient_bolus(
    doc: Mapping[str, Any], concentration: int, asked: dict[str, str]
) -> PatientBolusLimits | None:
    if "patient_bolus" not in doc:
        return None
    table = doc["patient_bolus"]
    where = "patient_bolus"
    if not isinstance(table, dict):
        raise _KeyError(where, "must be a table: [patient_bolus]")
    _check_keys(table, _BOLUS_KEYS, where)
    dose_text = _text(table, "dose", where, "0.02 mL")
    if q.is_mass(dose_text):
        pg = _quantity(f"{where}.dose", q.parse_mass, dose_text)
        try:
            dose = q.volume_for_mass(dose_text, pg, concentration, "nL")
        except q.QuantityError as exc:
            raise _KeyError(f"{where}.dose", str(exc)) from None
    else:
        dose = _quantity(f"{where}.dose", q.parse_volume, dose_text)
    duration_text = _text(table, "duration", where, "10 min")
    duration = _quantity(f"{where}.duration", q.parse_duration, duration_text)
    lockout_text = _text(table, "lockout", where, "3 h")
    lockout = _quantity(f"{where}.lockout", q.parse_duration, lockout_text)
    if "max_per_24h" not in table:
        raise _KeyError(f"{where}.max_per_24h", "missing; write e.g. max_per_24h = 4")
    count = table["max_per_24h"]
    if isinstance(count, bool) or not isinstance(count, int):
        raise _KeyError(f"{where}.max_per_24h", f"must be a whole number, got {count!r}")
    asked.update(
        {
            f"{where}.dose": dose_text,
            f"{where}.duration": duration_text,
            f"{where}.lockout": lockout_text,
            f"{where}.max_per_24h": str(count),
        }
    )
    try:
        return PatientBolusLimits(dose, duration, lockout, count)
    except FieldValueError as exc:
        raise _KeyError(_toml_key(exc.field), exc.message) from None

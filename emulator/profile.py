"""Pump profiles: everything that differs between pump models, as data (TOML files).

A profile is what a real pump's design fixes: reservoir size, stroke volume, rate range,
dose limits, battery, sensors. The firmware and the plant read every number from here, so
no clinical or physical constant lives in code (docs/domain.md: "keep them as profile settings").

Built-in profiles ship as package data in ``emulator/profiles/*.toml`` and are loaded by
name (``load_profile("peristaltic-20")``); any other TOML file is loaded by path. A file that
breaks a rule raises ``ProfileError`` naming the file, the key and the allowed range, so a
test-rig author can fix the file without reading this code.

All values are integers in protocol.units (nL, nL/day, pg, s, ppm) plus a few booleans:
a float in a profile is refused like any other wrong type (docs/architecture.md principle 4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from emulator.cache_checks import CHECK_ALL, CacheCheckError
from emulator.drug_library import default_library
from emulator.errors import ProfileError
from protocol.documents import DocumentError, parse_toml
from protocol.prescription import MAX_STEPS_ON_WIRE
from protocol.units import NL_PER_ML, S_PER_DAY, U32_MAX, U64_MAX

__all__ = [
    "Profile",
    "builtin_profile_names",
    "load_profile",
    "parse_profile",
    "profile_from_fields",
]

_PROFILE_PACKAGE = "emulator"
_PROFILE_DIR = "profiles"


@dataclass(frozen=True, slots=True)
class Range:
    """An inclusive integer range a prescription or command value must fall in."""

    low: int
    high: int

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class Profile:
    """One pump model's fixed numbers. Built by ``parse_profile``; never edited."""

    name: str
    description: str
    mechanism: str
    """``peristaltic`` (a motor-driven rotor) or ``valve-gated`` (an accumulator + valve)."""

    # -- reservoir --------------------------------------------------------------------------
    reservoir_capacity_nl: int
    """What the reservoir physically holds; an injection beyond it overflows (H1)."""
    reservoir_usable_nl: int
    """The largest volume the firmware accepts as a refill entry (VOLUME_ABOVE_CAPACITY)."""
    refill_discrepancy_threshold_nl: int
    """|withdrawn - predicted residual| above this logs REFILL_DISCREPANCY (H1, H10)."""
    low_reservoir_threshold: Range
    low_reservoir_threshold_default_nl: int

    # -- metering ---------------------------------------------------------------------------
    stroke_nl: int
    rate_min_nl_per_day: int
    """The least non-zero basal rate; 0 (stopped) is always allowed."""
    rate_max_nl_per_day: int
    """The most the metering mechanism delivers; basal + bolus never exceeds it (H11)."""
    mechanical_bias_ppm: int
    """Plant truth: each stroke really moves stroke_nl * (1 + bias/1e6) (H10 drift)."""
    stroke_spread_ppm: int
    """Plant truth: seeded stroke-to-stroke variation around the bias, at most this many ppm
    either way (emulator/stroke_accuracy.py); 0: every stroke is the same."""
    flow_activated_valve: bool
    """Valve-gated pumps: a magnet opens the valve (H15)."""
    valve_limit_nl: int
    """Overinfusion before the flow-activated valve closes (10 uL, H15)."""

    # -- dose limits ------------------------------------------------------------------------
    max_clinician_bolus_nl: int
    max_daily_mass_pg: int
    """The daily-mass ceiling DEVICE_INFO reports (``max_daily_dose_pg``). A drug's own hard
    limit comes from the drug library (emulator/drugs.toml, H9, H11); a drug the library
    does not know is refused at stage time (UNKNOWN_DRUG), so this is a last ceiling."""
    drug_max_daily_mass_pg: Mapping[str, int]
    """Legacy ``[drug_limits]``: per-drug hard limits keyed by lower-case name. Each entry is
    resolved through the drug library's names and aliases and can only *tighten* the
    library's hard limit (docs/pump-model.md, "Drug library", migration)."""
    max_flex_steps: int
    patient_bolus_dose: Range
    patient_bolus_duration_s: Range
    patient_bolus_lockout_s: Range
    patient_bolus_max_per_24h: Range

    # -- catheter ---------------------------------------------------------------------------
    catheter_dead_volume_nl_per_cm: int
    catheter_max_length_cm: int

    # -- drug along the fluid path (docs/pump-model.md, "Drug in the fluid path") ----------
    internal_path_nl: int
    """Solution in the pump's own path from the reservoir to the catheter connector: a new
    concentration reaches the catheter only after it. The plant's path holds this much, and
    the firmware counts it in the old drug a concentration change leaves (the bridge,
    docs/pump-model.md): one design figure, known to both."""
    catheter_compliance_nl: int
    """The most solution a closed catheter and the tubing upstream of it take under the
    mechanism's bounded back-pressure; all a repair can release (H13)."""
    priming_dispersion_ppm: int
    """Share of the drug filling a catheter that still holds CSF or sterile water which
    mixes ahead of the front and arrives early (H3)."""

    # -- battery (charge in nAh) ------------------------------------------------------------
    battery_capacity_nah: int
    battery_nah_per_stroke: int
    battery_nah_per_hour_idle: int
    battery_nah_per_session: int
    battery_eri_threshold_nah: int
    """At or below: elective replacement indicator alarm, end of service follows (H6)."""
    battery_low_reset_threshold_nah: int
    """At or below: early depletion; the firmware resets the flow to the safe rate (H4, H6)."""
    battery_low_reset_rate_nl_per_day: int
    days_eri_to_eos: int
    battery_check_interval_s: int
    battery_design_life_days: int
    """The firmware shuts the pump off (end of service) this long after it was built, whatever
    the charge left, with ERI ``days_eri_to_eos`` before (SynchroMed II: 7 years); 0: none."""

    # -- firmware ---------------------------------------------------------------------------
    sensor_motor_stall: bool
    """The firmware senses a stalled motor (H5). Nothing senses a catheter fault (H13, H17)."""
    sensor_flow_valve: bool
    """The firmware senses the flow-activated valve closed (H15)."""
    stall_retry_interval_s: int
    """A stalled motor is retried this often; recovery is seen at the next retry (H14)."""
    stage_lifetime_s: int
    log_capacity: int

    # -- secure sessions (docs/security.md section 6) ---------------------------------------
    session_idle_timeout_s: int
    """An open session with no authentic, fresh frame for this long expires; an unanswered
    challenge is abandoned after the same time."""
    session_max_s: int
    """An open session expires this long after it opened, however busy."""
    session_max_failed_openings: int
    """This many failed openings in a row (N) lock opening out."""
    session_lockout_s: int
    """How long opening stays locked out after the Nth failure (T)."""

    source: str = field(default="", compare=False)
    """Where the profile came from (a built-in name or a file path), for error messages."""

    def max_daily_mass_for(self, drug_name: str) -> int:
        """The hard daily-mass limit for a drug, pg/day: the drug library's (matched by name
        or alias, emulator/drug_library.py), tightened by a legacy ``[drug_limits]`` entry
        for the same drug; the profile's ``max_daily_mass_pg`` for a drug the library does
        not know (such a drug is refused UNKNOWN_DRUG at stage time anyway)."""
        library = default_library()
        drug = library.lookup(drug_name)
        if drug is None:
            own = self.drug_max_daily_mass_pg.get(drug_name.lower())
            return self.max_daily_mass_pg if own is None else min(own, self.max_daily_mass_pg)
        limit = drug.hard_max_daily_pg
        for name, value in self.drug_max_daily_mass_pg.items():
            if library.lookup(name) is drug:
                limit = min(limit, value)
        return limit

    def catheter_volume_nl(self, length_cm: int) -> int:
        return self.catheter_dead_volume_nl_per_cm * length_cm


# -- the schema: (section, key) -> (kind, low, high) ------------------------------------------
# A single table so the loader, the error messages and docs/pump-model.md agree.

_INT = "int"
_BOOL = "bool"
_STR = "str"

_ML = NL_PER_ML
_SCHEMA: dict[tuple[str, str], tuple[str, int, int]] = {
    ("pump", "name"): (_STR, 1, 64),
    ("pump", "description"): (_STR, 0, 400),
    ("pump", "mechanism"): (_STR, 0, 0),  # checked against _MECHANISMS
    ("reservoir", "capacity_nl"): (_INT, 1 * _ML, 100 * _ML),
    ("reservoir", "usable_nl"): (_INT, 1 * _ML, 100 * _ML),
    ("reservoir", "refill_discrepancy_threshold_nl"): (_INT, 0, 10 * _ML),
    ("reservoir", "low_threshold_min_nl"): (_INT, 0, 100 * _ML),
    ("reservoir", "low_threshold_max_nl"): (_INT, 0, 100 * _ML),
    ("reservoir", "low_threshold_default_nl"): (_INT, 0, 100 * _ML),
    ("metering", "stroke_nl"): (_INT, 1, 100_000),
    ("metering", "rate_min_nl_per_day"): (_INT, 0, U32_MAX),
    ("metering", "rate_max_nl_per_day"): (_INT, 1, U32_MAX),
    ("metering", "mechanical_bias_ppm"): (_INT, -500_000, 500_000),
    ("metering", "stroke_spread_ppm"): (_INT, 0, 200_000),
    ("metering", "flow_activated_valve"): (_BOOL, 0, 1),
    ("metering", "valve_limit_nl"): (_INT, 0, 1 * _ML),
    ("limits", "max_clinician_bolus_nl"): (_INT, 1, 100 * _ML),
    ("limits", "max_daily_mass_pg"): (_INT, 1, U64_MAX),
    ("limits", "max_flex_steps"): (_INT, 1, MAX_STEPS_ON_WIRE),
    ("patient_bolus", "dose_min_nl"): (_INT, 1, U32_MAX),
    ("patient_bolus", "dose_max_nl"): (_INT, 1, U32_MAX),
    ("patient_bolus", "duration_min_s"): (_INT, 1, U32_MAX),
    ("patient_bolus", "duration_max_s"): (_INT, 1, U32_MAX),
    ("patient_bolus", "lockout_min_s"): (_INT, 0, U32_MAX),
    ("patient_bolus", "lockout_max_s"): (_INT, 0, U32_MAX),
    ("patient_bolus", "max_per_24h_min"): (_INT, 1, 255),
    ("patient_bolus", "max_per_24h_max"): (_INT, 1, 255),
    ("catheter", "dead_volume_nl_per_cm"): (_INT, 0, 100_000),
    ("catheter", "max_length_cm"): (_INT, 1, 1_000),
    ("fluid_path", "internal_path_nl"): (_INT, 0, 10 * _ML),
    ("fluid_path", "catheter_compliance_nl"): (_INT, 0, 10 * _ML),
    ("fluid_path", "priming_dispersion_ppm"): (_INT, 0, 1_000_000),
    ("battery", "capacity_nah"): (_INT, 1, U64_MAX),
    ("battery", "nah_per_stroke"): (_INT, 0, U32_MAX),
    ("battery", "nah_per_hour_idle"): (_INT, 0, U32_MAX),
    ("battery", "nah_per_session"): (_INT, 0, U32_MAX),
    ("battery", "eri_threshold_nah"): (_INT, 0, U64_MAX),
    ("battery", "low_reset_threshold_nah"): (_INT, 0, U64_MAX),
    ("battery", "low_reset_rate_nl_per_day"): (_INT, 0, U32_MAX),
    ("battery", "days_eri_to_eos"): (_INT, 1, 3_650),
    ("battery", "check_interval_s"): (_INT, 60, S_PER_DAY),
    ("battery", "design_life_days"): (_INT, 0, 36_500),
    ("sensors", "motor_stall"): (_BOOL, 0, 1),
    ("sensors", "flow_valve"): (_BOOL, 0, 1),
    ("firmware", "stall_retry_interval_s"): (_INT, 1, S_PER_DAY),
    ("firmware", "stage_lifetime_s"): (_INT, 1, S_PER_DAY),
    ("firmware", "log_capacity"): (_INT, 16, 1_000_000),
    ("session", "idle_timeout_s"): (_INT, 1, S_PER_DAY),
    ("session", "max_session_s"): (_INT, 1, S_PER_DAY),
    ("session", "max_failed_openings"): (_INT, 1, 255),
    ("session", "lockout_s"): (_INT, 1, S_PER_DAY),
}
_MECHANISMS = ("peristaltic", "valve-gated")
_OPTIONAL_TABLES = {"drug_limits"}


def _where(source: str, section: str, key: str) -> str:
    return f"{source}: [{section}] {key}"


def _value(data: Mapping[str, Any], source: str, section: str, key: str) -> int | bool | str:
    kind, low, high = _SCHEMA[(section, key)]
    table = data.get(section)
    if not isinstance(table, dict):
        raise ProfileError(f"{source}: missing table [{section}] (needs key {key!r})")
    if key not in table:
        raise ProfileError(f"{_where(source, section, key)} is missing")
    value = table[key]
    where = _where(source, section, key)
    if kind == _BOOL:
        if not isinstance(value, bool):
            raise ProfileError(f"{where} must be true or false, got {value!r}")
        return value
    if kind == _STR:
        if not isinstance(value, str):
            raise ProfileError(f"{where} must be a string, got {value!r}")
        if key == "mechanism":
            if value not in _MECHANISMS:
                raise ProfileError(f"{where} = {value!r}: allowed {', '.join(_MECHANISMS)}")
        elif not low <= len(value) <= high:
            raise ProfileError(f"{where} must be {low}..{high} characters long")
        return value
    # A float (or a bool, which TOML keeps distinct but Python makes an int) is refused:
    # profile numbers feed dose arithmetic, which is integer-only (principle 4).
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProfileError(f"{where} must be an integer (allowed {low}..{high}), got {value!r}")
    if not low <= value <= high:
        raise ProfileError(f"{where} = {value} is out of range (allowed {low}..{high})")
    return value


def _int(data: Mapping[str, Any], source: str, section: str, key: str) -> int:
    value = _value(data, source, section, key)
    assert isinstance(value, int)
    return value


def _bool(data: Mapping[str, Any], source: str, section: str, key: str) -> bool:
    value = _value(data, source, section, key)
    assert isinstance(value, bool)
    return value


def _str(data: Mapping[str, Any], source: str, section: str, key: str) -> str:
    value = _value(data, source, section, key)
    assert isinstance(value, str)
    return value


def _require(ok: bool, source: str, section: str, key: str, rule: str) -> None:
    if not ok:
        raise ProfileError(f"{_where(source, section, key)}: {rule}")


def _range(
    data: Mapping[str, Any], source: str, section: str, low_key: str, high_key: str
) -> Range:
    low = _int(data, source, section, low_key)
    high = _int(data, source, section, high_key)
    _require(low <= high, source, section, high_key, f"must be >= {low_key} ({low}), got {high}")
    return Range(low, high)


def _drug_limits(data: Mapping[str, Any], source: str) -> dict[str, int]:
    table = data.get("drug_limits", {})
    if not isinstance(table, dict):
        raise ProfileError(f"{source}: [drug_limits] must be a table of drug = max pg/day")
    limits: dict[str, int] = {}
    for drug, value in table.items():
        where = _where(source, "drug_limits", drug)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= U64_MAX:
            raise ProfileError(
                f"{where} must be an integer daily mass in pg (allowed 1..{U64_MAX}), got {value!r}"
            )
        limits[drug.lower()] = value
    return limits


def parse_profile(data: Mapping[str, Any], source: str = "<profile>") -> Profile:
    """Check a decoded TOML document against the schema and build a Profile."""
    known_sections = {section for section, _ in _SCHEMA} | _OPTIONAL_TABLES
    for section, table in data.items():
        if section not in known_sections:
            raise ProfileError(
                f"{source}: unknown table [{section}] "
                f"(allowed: {', '.join(sorted(known_sections))})"
            )
        if section in _OPTIONAL_TABLES:
            continue
        if not isinstance(table, dict):
            raise ProfileError(f"{source}: [{section}] must be a table")
        for key in table:
            if (section, key) not in _SCHEMA:
                raise ProfileError(f"{_where(source, section, key)} is not a known key")

    d, s = data, source
    capacity = _int(d, s, "reservoir", "capacity_nl")
    usable = _int(d, s, "reservoir", "usable_nl")
    _require(
        usable <= capacity, s, "reservoir", "usable_nl", f"must be <= capacity_nl ({capacity})"
    )
    low_range = _range(d, s, "reservoir", "low_threshold_min_nl", "low_threshold_max_nl")
    _require(
        low_range.high < usable, s, "reservoir", "low_threshold_max_nl",
        f"must be below usable_nl ({usable})",
    )  # fmt: skip
    low_default = _int(d, s, "reservoir", "low_threshold_default_nl")
    _require(
        low_default in low_range, s, "reservoir", "low_threshold_default_nl",
        f"{low_default} is out of range (allowed {low_range.low}..{low_range.high})",
    )  # fmt: skip
    rate_min = _int(d, s, "metering", "rate_min_nl_per_day")
    rate_max = _int(d, s, "metering", "rate_max_nl_per_day")
    _require(
        rate_min <= rate_max, s, "metering", "rate_max_nl_per_day",
        f"must be >= rate_min_nl_per_day ({rate_min})",
    )  # fmt: skip
    eri = _int(d, s, "battery", "eri_threshold_nah")
    battery = _int(d, s, "battery", "capacity_nah")
    _require(
        eri < battery, s, "battery", "eri_threshold_nah", f"must be below capacity_nah ({battery})"
    )
    low_reset = _int(d, s, "battery", "low_reset_threshold_nah")
    _require(
        low_reset < eri, s, "battery", "low_reset_threshold_nah",
        f"must be below eri_threshold_nah ({eri})",
    )  # fmt: skip
    low_reset_rate = _int(d, s, "battery", "low_reset_rate_nl_per_day")
    _require(
        rate_min <= low_reset_rate <= rate_max, s, "battery", "low_reset_rate_nl_per_day",
        f"{low_reset_rate} is out of range (allowed {rate_min}..{rate_max}, the rate range)",
    )  # fmt: skip
    design_life = _int(d, s, "battery", "design_life_days")
    days_to_eos = _int(d, s, "battery", "days_eri_to_eos")
    _require(
        design_life == 0 or design_life > days_to_eos, s, "battery", "design_life_days",
        f"must be 0 (none) or longer than days_eri_to_eos ({days_to_eos}): ERI comes first",
    )  # fmt: skip
    dose = _range(d, s, "patient_bolus", "dose_min_nl", "dose_max_nl")
    stroke = _int(d, s, "metering", "stroke_nl")
    _require(
        dose.low >= stroke, s, "patient_bolus", "dose_min_nl",
        f"must be at least one stroke (>= {stroke} nL): the pump delivers whole strokes",
    )  # fmt: skip
    max_bolus = _int(d, s, "limits", "max_clinician_bolus_nl")
    _require(
        max_bolus >= stroke, s, "limits", "max_clinician_bolus_nl",
        f"must be at least one stroke (>= {stroke} nL)",
    )  # fmt: skip
    idle_timeout = _int(d, s, "session", "idle_timeout_s")
    max_session = _int(d, s, "session", "max_session_s")
    _require(
        max_session >= idle_timeout, s, "session", "max_session_s",
        f"must be >= idle_timeout_s ({idle_timeout})",
    )  # fmt: skip
    return Profile(
        name=_str(d, s, "pump", "name"),
        description=_str(d, s, "pump", "description"),
        mechanism=_str(d, s, "pump", "mechanism"),
        reservoir_capacity_nl=capacity,
        reservoir_usable_nl=usable,
        refill_discrepancy_threshold_nl=_int(d, s, "reservoir", "refill_discrepancy_threshold_nl"),
        low_reservoir_threshold=low_range,
        low_reservoir_threshold_default_nl=low_default,
        stroke_nl=stroke,
        rate_min_nl_per_day=rate_min,
        rate_max_nl_per_day=rate_max,
        mechanical_bias_ppm=_int(d, s, "metering", "mechanical_bias_ppm"),
        stroke_spread_ppm=_int(d, s, "metering", "stroke_spread_ppm"),
        flow_activated_valve=_bool(d, s, "metering", "flow_activated_valve"),
        valve_limit_nl=_int(d, s, "metering", "valve_limit_nl"),
        max_clinician_bolus_nl=max_bolus,
        max_daily_mass_pg=_int(d, s, "limits", "max_daily_mass_pg"),
        drug_max_daily_mass_pg=_drug_limits(d, s),
        max_flex_steps=_int(d, s, "limits", "max_flex_steps"),
        patient_bolus_dose=dose,
        patient_bolus_duration_s=_range(d, s, "patient_bolus", "duration_min_s", "duration_max_s"),
        patient_bolus_lockout_s=_range(d, s, "patient_bolus", "lockout_min_s", "lockout_max_s"),
        patient_bolus_max_per_24h=_range(
            d, s, "patient_bolus", "max_per_24h_min", "max_per_24h_max"
        ),
        catheter_dead_volume_nl_per_cm=_int(d, s, "catheter", "dead_volume_nl_per_cm"),
        catheter_max_length_cm=_int(d, s, "catheter", "max_length_cm"),
        internal_path_nl=_int(d, s, "fluid_path", "internal_path_nl"),
        catheter_compliance_nl=_int(d, s, "fluid_path", "catheter_compliance_nl"),
        priming_dispersion_ppm=_int(d, s, "fluid_path", "priming_dispersion_ppm"),
        battery_capacity_nah=battery,
        battery_nah_per_stroke=_int(d, s, "battery", "nah_per_stroke"),
        battery_nah_per_hour_idle=_int(d, s, "battery", "nah_per_hour_idle"),
        battery_nah_per_session=_int(d, s, "battery", "nah_per_session"),
        battery_eri_threshold_nah=eri,
        battery_low_reset_threshold_nah=low_reset,
        battery_low_reset_rate_nl_per_day=low_reset_rate,
        days_eri_to_eos=days_to_eos,
        battery_check_interval_s=_int(d, s, "battery", "check_interval_s"),
        battery_design_life_days=design_life,
        sensor_motor_stall=_bool(d, s, "sensors", "motor_stall"),
        sensor_flow_valve=_bool(d, s, "sensors", "flow_valve"),
        stall_retry_interval_s=_int(d, s, "firmware", "stall_retry_interval_s"),
        stage_lifetime_s=_int(d, s, "firmware", "stage_lifetime_s"),
        log_capacity=_int(d, s, "firmware", "log_capacity"),
        session_idle_timeout_s=idle_timeout,
        session_max_s=max_session,
        session_max_failed_openings=_int(d, s, "session", "max_failed_openings"),
        session_lockout_s=_int(d, s, "session", "lockout_s"),
        source=source,
    )


# Profile field -> its (section, key) in a profile file; a Range field -> (section, low key,
# high key). ``profile_from_fields`` rebuilds the file's document from these, so a profile
# read back from a saved state passes every rule a profile file does.
_FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "name": ("pump", "name"),
    "description": ("pump", "description"),
    "mechanism": ("pump", "mechanism"),
    "reservoir_capacity_nl": ("reservoir", "capacity_nl"),
    "reservoir_usable_nl": ("reservoir", "usable_nl"),
    "refill_discrepancy_threshold_nl": ("reservoir", "refill_discrepancy_threshold_nl"),
    "low_reservoir_threshold": ("reservoir", "low_threshold_min_nl", "low_threshold_max_nl"),
    "low_reservoir_threshold_default_nl": ("reservoir", "low_threshold_default_nl"),
    "stroke_nl": ("metering", "stroke_nl"),
    "rate_min_nl_per_day": ("metering", "rate_min_nl_per_day"),
    "rate_max_nl_per_day": ("metering", "rate_max_nl_per_day"),
    "mechanical_bias_ppm": ("metering", "mechanical_bias_ppm"),
    "stroke_spread_ppm": ("metering", "stroke_spread_ppm"),
    "flow_activated_valve": ("metering", "flow_activated_valve"),
    "valve_limit_nl": ("metering", "valve_limit_nl"),
    "max_clinician_bolus_nl": ("limits", "max_clinician_bolus_nl"),
    "max_daily_mass_pg": ("limits", "max_daily_mass_pg"),
    "max_flex_steps": ("limits", "max_flex_steps"),
    "patient_bolus_dose": ("patient_bolus", "dose_min_nl", "dose_max_nl"),
    "patient_bolus_duration_s": ("patient_bolus", "duration_min_s", "duration_max_s"),
    "patient_bolus_lockout_s": ("patient_bolus", "lockout_min_s", "lockout_max_s"),
    "patient_bolus_max_per_24h": ("patient_bolus", "max_per_24h_min", "max_per_24h_max"),
    "catheter_dead_volume_nl_per_cm": ("catheter", "dead_volume_nl_per_cm"),
    "catheter_max_length_cm": ("catheter", "max_length_cm"),
    "internal_path_nl": ("fluid_path", "internal_path_nl"),
    "catheter_compliance_nl": ("fluid_path", "catheter_compliance_nl"),
    "priming_dispersion_ppm": ("fluid_path", "priming_dispersion_ppm"),
    "battery_capacity_nah": ("battery", "capacity_nah"),
    "battery_nah_per_stroke": ("battery", "nah_per_stroke"),
    "battery_nah_per_hour_idle": ("battery", "nah_per_hour_idle"),
    "battery_nah_per_session": ("battery", "nah_per_session"),
    "battery_eri_threshold_nah": ("battery", "eri_threshold_nah"),
    "battery_low_reset_threshold_nah": ("battery", "low_reset_threshold_nah"),
    "battery_low_reset_rate_nl_per_day": ("battery", "low_reset_rate_nl_per_day"),
    "days_eri_to_eos": ("battery", "days_eri_to_eos"),
    "battery_check_interval_s": ("battery", "check_interval_s"),
    "battery_design_life_days": ("battery", "design_life_days"),
    "sensor_motor_stall": ("sensors", "motor_stall"),
    "sensor_flow_valve": ("sensors", "flow_valve"),
    "stall_retry_interval_s": ("firmware", "stall_retry_interval_s"),
    "stage_lifetime_s": ("firmware", "stage_lifetime_s"),
    "log_capacity": ("firmware", "log_capacity"),
    "session_idle_timeout_s": ("session", "idle_timeout_s"),
    "session_max_s": ("session", "max_session_s"),
    "session_max_failed_openings": ("session", "max_failed_openings"),
    "session_lockout_s": ("session", "lockout_s"),
}


def profile_from_fields(fields: object, source: str) -> Profile:
    """A profile from its fields as plain values (a Range as ``[low, high]``, the drug
    limits as an object), checked by every rule a profile file must pass (``parse_profile``).

    ProfileError for a missing, unknown or mistyped field, or one a profile file could not
    hold: a saved state cannot smuggle in a profile that ``load_profile`` would refuse."""
    if not isinstance(fields, Mapping):
        raise ProfileError(f"{source}: the profile is not an object")
    expected = set(_FIELD_KEYS) | {"drug_max_daily_mass_pg", "source"}
    if set(fields) != expected:
        raise ProfileError(
            f"{source}: profile fields differ: missing {sorted(expected - set(fields))}, "
            f"unknown {sorted(set(fields) - expected)}"
        )
    document: dict[str, dict[str, Any]] = {}
    for name, keys in _FIELD_KEYS.items():
        value = fields[name]
        table = document.setdefault(keys[0], {})
        if len(keys) == 3:
            if not isinstance(value, list) or len(value) != 2:
                raise ProfileError(f"{source}: profile field {name} must be [low, high]")
            table[keys[1]], table[keys[2]] = value
        else:
            table[keys[1]] = value
    drugs = fields["drug_max_daily_mass_pg"]
    if not isinstance(drugs, Mapping):
        raise ProfileError(f"{source}: drug_max_daily_mass_pg must be an object")
    if any(not isinstance(drug, str) or drug != drug.lower() for drug in drugs):
        raise ProfileError(f"{source}: drug names in drug_max_daily_mass_pg must be lower case")
    document["drug_limits"] = dict(drugs)
    saved_source = fields["source"]
    if not isinstance(saved_source, str) or len(saved_source) > 4096:
        raise ProfileError(f"{source}: the profile's source must be a string")
    profile = parse_profile(document, source)
    return replace(profile, source=saved_source)


@cache
def builtin_profile_names() -> tuple[str, ...]:
    """The profiles shipped with pumpemu, by name (the file stem)."""
    # Package data: fixed for the life of the process, so listed once.
    folder = resources.files(_PROFILE_PACKAGE).joinpath(_PROFILE_DIR)
    return tuple(
        sorted(
            entry.name.removesuffix(".toml")
            for entry in folder.iterdir()
            if entry.name.endswith(".toml")
        )
    )


@cache
def _builtin_text(name: str) -> str:
    # Package data, like the names: read once per process.
    resource = resources.files(_PROFILE_PACKAGE).joinpath(_PROFILE_DIR, f"{name}.toml")
    return resource.read_text(encoding="utf-8")


_PARSED_LIMIT = 32
"""How many parsed profiles ``load_profile`` keeps (by source and exact text)."""
_parsed: dict[tuple[str, str], Profile] = {}


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a built-in profile by name, or any profile file by path.

    A file given by path is read on every call (a built-in, package data, once per
    process); a text already parsed under the same source gives the same (frozen) Profile
    again, so implanting many pumps parses each profile once (the TOML parse was most of
    an implant's cost, benchmarks/delivery.py). An edited file is a new text, parsed and
    checked afresh."""
    if isinstance(name_or_path, str) and name_or_path in builtin_profile_names():
        text = _builtin_text(name_or_path)
        source = f"built-in profile {name_or_path}"
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ProfileError(
                f"no profile {str(name_or_path)!r}: not a built-in "
                f"({', '.join(builtin_profile_names())}) and not a file"
            )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(f"{path}: cannot read profile: {exc}") from exc
        source = str(path)
    key = (source, text)
    profile = _parsed.get(key)
    if profile is not None and not CHECK_ALL.on:
        return profile
    kept = profile
    try:
        data = parse_toml(text)
    except DocumentError as exc:
        raise ProfileError(f"{source}: {exc}") from None
    profile = parse_profile(data, source)
    if kept is not None:  # check mode (emulator/cache_checks.py): the kept one must match
        if kept != profile:
            raise CacheCheckError(f"{source}: the kept parse differs from a fresh one")
        return kept
    if len(_parsed) >= _PARSED_LIMIT:
        _parsed.clear()  # bounded: a long campaign over many profile files stays small
    _parsed[key] = profile
    return profile

"""Profiles: the built-ins load, and every kind of bad file gets an error naming the key."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from importlib import resources
from pathlib import Path

import pytest

from emulator import profile as profile_module
from emulator.cache_checks import CHECK_ALL, CacheCheckError
from emulator.errors import ProfileError
from emulator.profile import (
    builtin_profile_names,
    load_profile,
    parse_profile,
    profile_from_fields,
)
from emulator.pump import Pump

BASE = resources.files("emulator").joinpath("profiles", "peristaltic-20.toml").read_text()


def test_builtins_are_shipped() -> None:
    assert builtin_profile_names() == (
        "peristaltic-20", "peristaltic-40", "trial-external", "valve-gated-20",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "usable", "threshold", "valve"),
    [
        ("peristaltic-20", 20_000_000, 1_000_000, False),
        ("peristaltic-40", 40_000_000, 2_000_000, False),
        ("valve-gated-20", 20_000_000, 1_000_000, True),
    ],
    ids=["peristaltic-20", "peristaltic-40", "valve-gated-20"],
)
def test_builtin_numbers(name: str, usable: int, threshold: int, valve: bool) -> None:
    p = load_profile(name)
    assert p.name == name
    assert p.reservoir_usable_nl == usable
    assert p.refill_discrepancy_threshold_nl == threshold
    assert p.flow_activated_valve is valve
    assert p.days_eri_to_eos == 90
    # SynchroMed II-class pumps shut off at 7 years (84 months); no such limit is published
    # for the valve-gated class.
    assert p.battery_design_life_days == (0 if valve else 2_557)
    assert p.catheter_dead_volume_nl_per_cm == 2_600
    # From the drug library, by any name (issue 12: "Prialt" got the generic 20 mg/day).
    assert p.max_daily_mass_for("Ziconotide") == 19_200_000
    assert p.max_daily_mass_for("PRIALT") == 19_200_000
    assert p.max_daily_mass_for("clonidine") == 2_000_000_000
    assert p.max_daily_mass_for("unheard-of") == p.max_daily_mass_pg
    # The internal path: the peristaltic tubing, or a valve-gated pump's accumulator and valves.
    assert p.internal_path_nl == (50_000 if valve else 200_000)


def test_legacy_drug_limits_resolve_aliases_and_only_tighten(tmp_path: Path) -> None:
    """docs/pump-model.md, "Drug library" migration: a profile's [drug_limits] entry is
    matched through the library's names and can lower, never raise, the library's limit."""
    text = resources.files("emulator").joinpath("profiles", "peristaltic-20.toml").read_text()
    path = tmp_path / "legacy.toml"
    path.write_text(text + "\n[drug_limits]\nprialt = 10_000_000\nmorphine = 99_000_000_000\n")
    p = load_profile(path)
    assert p.max_daily_mass_for("Ziconotide") == 10_000_000  # tightened, through the alias
    assert p.max_daily_mass_for("Infumorph") == 20_000_000_000  # never raised


def test_assumed_numbers_are_marked_in_the_files() -> None:
    for name in builtin_profile_names():
        text = resources.files("emulator").joinpath("profiles", f"{name}.toml").read_text()
        assert text.count("assumed") >= 10


def test_user_file_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(BASE.replace('name = "peristaltic-20"', 'name = "mine"'))
    assert load_profile(path).name == "mine"
    assert load_profile(str(path)).source == str(path)


def test_a_profile_text_is_parsed_once() -> None:
    # Implanting many pumps parses the profile once (benchmarks/delivery.py): the same
    # text under the same source gives the same frozen Profile.
    assert load_profile("peristaltic-40") is load_profile("peristaltic-40")
    assert load_profile("peristaltic-40") is not load_profile("peristaltic-20")


def test_an_edited_file_is_read_and_checked_again(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(BASE.replace('name = "peristaltic-20"', 'name = "mine"'))
    first = load_profile(path)
    path.write_text(BASE.replace('name = "peristaltic-20"', 'name = "mine-2"'))
    assert load_profile(path).name == "mine-2"
    path.write_text(BASE.replace("stroke_nl = 200 ", "stroke_nl = 200.5 "))
    with pytest.raises(ProfileError, match="stroke_nl must be an integer"):
        load_profile(path)
    path.write_text(BASE.replace('name = "peristaltic-20"', 'name = "mine"'))
    assert load_profile(path) == first


def test_check_mode_catches_a_wrong_kept_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CHECK_ALL, "on", True)
    kept = load_profile("peristaltic-40")
    assert load_profile("peristaltic-40") is kept  # checked, and the same
    (key,) = [k for k, v in profile_module._parsed.items() if v is kept]
    monkeypatch.setitem(profile_module._parsed, key, replace(kept, stroke_nl=1))
    with pytest.raises(CacheCheckError, match="kept parse differs"):
        load_profile("peristaltic-40")


def edit(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new)


BAD = [
    ("missing-key", edit("stroke_nl = 200 ", "# "), r"\[metering\] stroke_nl is missing"),
    ("float", edit("stroke_nl = 200 ", "stroke_nl = 200.5 "),
     r"\[metering\] stroke_nl must be an integer \(allowed 1\.\.100000\)"),
    ("out-of-range", edit("rate_max_nl_per_day = 24_000_000", "rate_max_nl_per_day = 0"),
     r"\[metering\] rate_max_nl_per_day = 0 is out of range \(allowed 1\.\."),
    ("bool-as-int", edit("max_flex_steps = 10", "max_flex_steps = true"),
     r"\[limits\] max_flex_steps must be an integer"),
    ("int-as-bool", edit("motor_stall = true", "motor_stall = 1"),
     r"\[sensors\] motor_stall must be true or false"),
    ("unknown-key", edit("[sensors]", "[sensors]\nlevel = true"),
     r"\[sensors\] level is not a known key"),
    ("unknown-table", BASE + "\n[extras]\nx = 1\n", r"unknown table \[extras\]"),
    ("usable-above-capacity", edit("usable_nl = 20_000_000", "usable_nl = 30_000_000"),
     r"\[reservoir\] usable_nl: must be <= capacity_nl \(20600000\)"),
    ("default-outside-range",
     edit("low_threshold_default_nl = 2_000_000", "low_threshold_default_nl = 7_000_000"),
     r"low_threshold_default_nl: 7000000 is out of range \(allowed 500000\.\.6000000\)"),
    ("min-above-max", edit("rate_min_nl_per_day = 48_000", "rate_min_nl_per_day = 25_000_000"),
     r"rate_max_nl_per_day: must be >= rate_min_nl_per_day"),
    ("eri-below-reset", edit("low_reset_threshold_nah = 10_000_000",
                             "low_reset_threshold_nah = 50_000_000"),
     r"low_reset_threshold_nah: must be below eri_threshold_nah"),
    ("dose-below-stroke", edit("dose_min_nl = 200 ", "dose_min_nl = 100 "),
     r"dose_min_nl: must be at least one stroke"),
    ("bad-mechanism", edit('mechanism = "peristaltic"', 'mechanism = "piezo"'),
     r"mechanism = 'piezo': allowed peristaltic, valve-gated"),
    ("bad-drug-limit", edit("[battery]", "[drug_limits]\nmorphine = -1\n[battery]"),
     r"\[drug_limits\] morphine must be an integer daily mass"),
    ("bad-internal-path", edit("internal_path_nl = 200_000", "internal_path_nl = -5"),
     r"\[fluid_path\] internal_path_nl"),
    ("not-toml", "this is = = not toml", r"not valid TOML"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_profile_names_key_and_range(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=message) as info:
        load_profile(path)
    assert str(path) in str(info.value)  # the file is named too


def test_missing_file_names_builtins() -> None:
    with pytest.raises(ProfileError, match="not a built-in"):
        load_profile("no-such-pump")


def test_parse_without_file() -> None:
    data = tomllib.loads(BASE)
    del data["battery"]
    with pytest.raises(ProfileError, match=r"missing table \[battery\]"):
        parse_profile(data, "inline")


def test_a_profile_saved_without_the_internal_path_is_refused() -> None:
    """A state file written before issue 12 has no ``internal_path_nl`` in its profile: it
    is refused with the field named (docs/state-file.md), never loaded as if it were 0."""
    pump = Pump("peristaltic-20")
    fields = pump.snapshot_record()["profile"]
    assert fields["internal_path_nl"] == 200_000
    del fields["internal_path_nl"]
    with pytest.raises(ProfileError, match="internal_path_nl"):
        profile_from_fields(fields, "old state")

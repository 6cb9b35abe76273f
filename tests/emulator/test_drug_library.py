"""The drug library as data (emulator/drugs.toml, emulator/drug_library.py; issue 12)."""

from __future__ import annotations

import dataclasses
import re
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.drug_library import (
    DrugLibraryError,
    default_library,
    load_library,
    normalise,
    parse_library,
)
from emulator.firmware.drug_checks import check_identity, check_soft_limits
from emulator.firmware.results import Refused
from protocol.messages import OVERRIDE_DOSE_CHANGE, OVERRIDE_SOFT_LIMIT
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat
from protocol.refusal import FieldId, RefusalCode

LIB = default_library()
CANONICAL = (
    "morphine",
    "hydromorphone",
    "ziconotide",
    "baclofen",
    "bupivacaine",
    "clonidine",
    "fentanyl",
    "sufentanil",
)


def test_every_canonical_drug_is_there() -> None:
    assert {d.name for d in LIB.drugs} == set(CANONICAL)


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("Prialt", "ziconotide"),
        ("PRIALT", "ziconotide"),
        ("Lioresal", "baclofen"),
        ("Gablofen", "baclofen"),
        ("Infumorph", "morphine"),
        ("Infu-Morph", "morphine"),
        ("Duramorph", "morphine"),
        ("morphine sulfate", "morphine"),
        ("Morphine_Sulfate", "morphine"),
        ("Dilaudid", "hydromorphone"),
        ("Dilaudid-HP", "hydromorphone"),
        ("Sufenta", "sufentanil"),
        ("Duraclon", "clonidine"),
        ("Marcaine", "bupivacaine"),
        ("  fentanyl ", "fentanyl"),
    ],
    ids=str,
)
def test_aliases_and_brand_names_resolve(name: str, canonical: str) -> None:
    drug = LIB.lookup(name)
    assert drug is not None
    assert drug.name == canonical


@pytest.mark.parametrize("name", ["aspirin", "morphin", "", "zico"], ids=repr)
def test_unknown_names_resolve_to_nothing(name: str) -> None:
    assert LIB.lookup(name) is None
    assert name not in LIB


def test_normalise_removes_case_spaces_hyphens_underscores() -> None:
    assert normalise(" Infu-Morph_ X ") == "infumorphx"


def test_every_number_is_sourced_or_marked_assumed() -> None:
    """Issue 12: each number carries its source or says it is assumed."""
    text = resources.files("emulator").joinpath("drugs.toml").read_text()
    numbers = [line for line in text.splitlines() if re.match(r"^[a-z_]+ = [0-9]", line)]
    assert len(numbers) == 5 * len(CANONICAL)
    for line in numbers:
        comment = line.partition("#")[2].strip()
        assert comment, f"unsourced: {line}"
        sourced = re.search(r"PACC|Prialt|labeling|Lioresal|Infumorph|Duramorph|range", comment)
        assert sourced or "assumed" in comment, line


def test_prialt_labeling_figures() -> None:
    drug = LIB.lookup("Prialt")
    assert drug is not None
    assert drug.hard_max_daily_pg == 19_200_000  # 19.2 mcg/day
    assert drug.concentration_max_ug_per_ml == 100


def test_change_bounds_round_inwards() -> None:
    drug = LIB.lookup("baclofen")
    assert drug is not None
    assert drug.max_change_percent == 40
    assert drug.change_bounds_pg(400_000_001) == (240_000_001, 560_000_001)


RX = Prescription(
    "Lioresal", 2_000, InfusionMode.CONTINUOUS, Repeat.DAILY, (FlexStep(0, 200_000),), None,
    2_000_000,
)  # fmt: skip
"""Baclofen 2000 ug/mL, 400 ug/day."""


def rx(rate: int) -> Prescription:
    return dataclasses.replace(RX, steps=(FlexStep(0, rate),))


@pytest.mark.hazard("H9")
def test_the_flex_mis_entry_needs_the_soft_limit_override() -> None:
    """60 mcg each morning entered as every hour on 400 ug/day: 1 840 ug/day."""
    drug = LIB.lookup("baclofen")
    assert drug is not None
    every_hour = rx(920_000)
    assert check_soft_limits(LIB, drug, every_hour, None, 0) == Refused(
        RefusalCode.SOFT_LIMIT_NEEDS_OVERRIDE, FieldId.DAILY_DOSE, 1_000_000_000
    )
    # Against the running 400 ug/day, the soft override alone is not enough: it is also a
    # change of +360 %.
    assert check_soft_limits(LIB, drug, every_hour, RX, OVERRIDE_SOFT_LIMIT) == Refused(
        RefusalCode.DOSE_CHANGE_NEEDS_OVERRIDE, FieldId.DAILY_DOSE, 560_000_000
    )
    review = check_soft_limits(LIB, drug, every_hour, RX, OVERRIDE_SOFT_LIMIT | 2)
    assert not isinstance(review, Refused)
    assert (review.overrides_used, review.reference_daily_mass_pg) == (3, 400_000_000)


@pytest.mark.hazard("H9")
def test_a_large_decrease_needs_the_override_too() -> None:
    """An abrupt fall of intrathecal baclofen is dangerous in itself (withdrawal)."""
    drug = LIB.lookup("baclofen")
    assert drug is not None
    assert check_soft_limits(LIB, drug, rx(100_000), RX, 0) == Refused(
        RefusalCode.DOSE_CHANGE_NEEDS_OVERRIDE, FieldId.DAILY_DOSE, 240_000_000
    )
    review = check_soft_limits(LIB, drug, rx(100_000), RX, OVERRIDE_DOSE_CHANGE)
    assert not isinstance(review, Refused)
    assert review.overrides_used == OVERRIDE_DOSE_CHANGE
    # Within 40 %, no override is needed (and none is reported as used if one was sent).
    review = check_soft_limits(LIB, drug, rx(270_000), RX, 3)
    assert not isinstance(review, Refused)
    assert review.overrides_used == 0


def test_another_drug_or_a_stopped_one_is_no_reference() -> None:
    morphine = LIB.lookup("morphine")
    assert morphine is not None
    other = Prescription(
        "morphine", 1_000, InfusionMode.CONTINUOUS, Repeat.DAILY, (FlexStep(0, 1_000_000),),
        None, 2_000_000,
    )  # fmt: skip
    review = check_soft_limits(LIB, morphine, other, RX, 0)
    assert not isinstance(review, Refused)
    assert review.reference_daily_mass_pg == 0


@pytest.mark.hazard("H11")
def test_identity_refusals() -> None:
    assert check_identity(LIB, dataclasses.replace(RX, drug_name="aspirin")) == Refused(
        RefusalCode.UNKNOWN_DRUG, FieldId.DRUG_NAME, 0
    )
    assert check_identity(LIB, dataclasses.replace(RX, concentration_ug_per_ml=2_001)) == Refused(
        RefusalCode.CONCENTRATION_OUT_OF_RANGE, FieldId.CONCENTRATION, 2_000
    )
    drug = check_identity(LIB, RX)
    assert not isinstance(drug, Refused)
    assert drug.name == "baclofen"


BAD = [
    ("no-drug", "x = 1\n", r"unknown table"),
    ("empty", "", r"at least one"),
    ("missing-key", "[drug.a]\naliases = []\nconcentration_min_ug_per_ml = 1\n", r"missing"),
    (
        "soft-above-hard",
        "[drug.a]\nconcentration_min_ug_per_ml = 1\nconcentration_max_ug_per_ml = 2\n"
        "soft_max_daily_pg = 9\nhard_max_daily_pg = 8\nmax_change_percent = 30\n",
        r"soft_max_daily_pg is above",
    ),
    (
        "duplicate-alias",
        "[drug.a]\nconcentration_min_ug_per_ml = 1\nconcentration_max_ug_per_ml = 2\n"
        "soft_max_daily_pg = 8\nhard_max_daily_pg = 8\nmax_change_percent = 30\n"
        '[drug.b]\naliases = ["A"]\nconcentration_min_ug_per_ml = 1\n'
        "concentration_max_ug_per_ml = 2\nsoft_max_daily_pg = 8\nhard_max_daily_pg = 8\n"
        "max_change_percent = 30\n",
        r"already 'a'",
    ),
    (
        "float",
        "[drug.a]\nconcentration_min_ug_per_ml = 1.5\nconcentration_max_ug_per_ml = 2\n"
        "soft_max_daily_pg = 8\nhard_max_daily_pg = 8\nmax_change_percent = 30\n",
        r"must be an integer",
    ),
    ("not-toml", "[[[", r"not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_library_file_names_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "drugs.toml"
    path.write_text(text)
    with pytest.raises(DrugLibraryError, match=message):
        load_library(path)


def test_the_shipped_file_loads_the_same_through_load_library() -> None:
    path = Path(str(resources.files("emulator").joinpath("drugs.toml")))
    assert load_library(path).drugs == LIB.drugs
    keys = {
        "concentration_min_ug_per_ml": 1,
        "concentration_max_ug_per_ml": 2,
        "soft_max_daily_pg": 8,
        "hard_max_daily_pg": 8,
        "max_change_percent": 30,
    }
    with pytest.raises(DrugLibraryError, match=r"cannot travel in a 1\.\.16 text"):
        parse_library({"drug": {"a" * 17: keys}}, "x")


@given(
    running=st.integers(48_000, 2_000_000),
    new=st.integers(48_000, 2_000_000),
    pct=st.integers(1, 200),
)
def test_the_relative_limit_is_exactly_the_documented_bounds(
    running: int, new: int, pct: int
) -> None:
    """docs/protocol.md section 10.3 rule 6: refused exactly outside
    [ceil(R(100-p)/100), floor(R(100+p)/100)], the NAK's limit the bound broken, and the
    override lets it through and says so."""
    baclofen = LIB.lookup("baclofen")
    assert baclofen is not None
    drug = dataclasses.replace(
        baclofen,
        max_change_percent=pct,
        soft_max_daily_pg=10**18,
        hard_max_daily_pg=10**18,
    )
    r_mass, n_mass = running * 2_000, new * 2_000
    low = -(-r_mass * max(100 - pct, 0) // 100)
    high = r_mass * (100 + pct) // 100
    result = check_soft_limits(LIB, drug, rx(new), rx(running), 0)
    if low <= n_mass <= high:
        assert not isinstance(result, Refused)
        assert result.overrides_used == 0
    else:
        bound = high if n_mass > high else low
        assert result == Refused(RefusalCode.DOSE_CHANGE_NEEDS_OVERRIDE, FieldId.DAILY_DOSE, bound)
        allowed = check_soft_limits(LIB, drug, rx(new), rx(running), OVERRIDE_DOSE_CHANGE)
        assert not isinstance(allowed, Refused)
        assert allowed.overrides_used == OVERRIDE_DOSE_CHANGE

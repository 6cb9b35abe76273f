"""The drug library: canonical drugs, their names, concentration ranges and dose limits.

A mis-entry is caught only if the pump knows what a sane entry looks like for *that* drug
(H9, H11): "Prialt" must get ziconotide's 19.2 ug/day, a concentration of 25 sent for
25000 ug/mL must be refused, and a flex step entered "every hour" for "each morning" must at
least need a clinician's explicit override. The numbers live in emulator/drugs.toml with
their sources; this module reads that file (through protocol/documents.py's bounded parser,
like the profiles) and answers lookups. Pure data: no clock, no state.

Names are matched case-insensitively after spaces, hyphens and underscores are removed
(``normalise``), so "Infu-Morph", "INFUMORPH" and "infumorph" are one name; every alias of a
drug, and its canonical name, resolve to the same ``Drug``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from protocol.documents import DocumentError, parse_toml
from protocol.units import U32_MAX, U64_MAX

__all__ = [
    "Drug",
    "DrugLibrary",
    "DrugLibraryError",
    "default_library",
    "load_library",
    "normalise",
    "parse_library",
]

_KEYS: dict[str, tuple[int, int]] = {
    "concentration_min_ug_per_ml": (1, U32_MAX),
    "concentration_max_ug_per_ml": (1, U32_MAX),
    "soft_max_daily_pg": (1, U64_MAX),
    "hard_max_daily_pg": (1, U64_MAX),
    "max_change_percent": (1, 1_000),
}


class DrugLibraryError(ValueError):
    """A drug library file broke a rule; the message names the file, drug and key."""


@dataclass(frozen=True, slots=True)
class Drug:
    """One canonical drug and its limits (units: docs/protocol.md section 1)."""

    name: str
    aliases: tuple[str, ...]
    concentration_min_ug_per_ml: int
    concentration_max_ug_per_ml: int
    soft_max_daily_pg: int
    """Above this daily mass a stage needs the SOFT_LIMIT override."""
    hard_max_daily_pg: int
    """Above this daily mass a stage is refused DAILY_DOSE_ABOVE_MAX, override or not."""
    max_change_percent: int
    """A daily mass further than this from the running prescription's needs DOSE_CHANGE."""

    def change_bounds_pg(self, running_pg: int) -> tuple[int, int]:
        """(lowest, highest) daily mass reachable from ``running_pg`` without the DOSE_CHANGE
        override, rounded inwards so the bounds are themselves allowed (integers only)."""
        pct = self.max_change_percent
        high = running_pg * (100 + pct) // 100
        low = -(-running_pg * max(100 - pct, 0) // 100)
        return low, high


def normalise(name: str) -> str:
    """The key a name is matched by: lower case, without spaces, hyphens or underscores."""
    return "".join(ch for ch in name.lower() if ch not in " -_\t")


@dataclass(frozen=True, slots=True)
class DrugLibrary:
    drugs: tuple[Drug, ...]
    index: Mapping[str, Drug]
    """Normalised name or alias -> drug."""
    source: str = ""

    def lookup(self, name: str) -> Drug | None:
        """The drug a prescription names, by canonical name or alias; None if unknown."""
        return self.index.get(normalise(name))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.lookup(name) is not None


def _int(table: Mapping[str, Any], key: str, where: str) -> int:
    low, high = _KEYS[key]
    if key not in table:
        raise DrugLibraryError(f"{where} {key} is missing")
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DrugLibraryError(f"{where} {key} must be an integer {low}..{high}, got {value!r}")
    return value


def parse_library(data: Mapping[str, Any], source: str = "<drug library>") -> DrugLibrary:
    """Check a decoded TOML document and build the library (DrugLibraryError if bad)."""
    unknown = set(data) - {"drug"}
    if unknown:
        raise DrugLibraryError(f"{source}: unknown table(s) {sorted(unknown)} (allowed: drug)")
    tables = data.get("drug")
    if not isinstance(tables, dict) or not tables:
        raise DrugLibraryError(f"{source}: needs at least one [drug.NAME] table")
    drugs: list[Drug] = []
    index: dict[str, Drug] = {}
    for name, table in tables.items():
        where = f"{source}: [drug.{name}]"
        if not isinstance(table, dict):
            raise DrugLibraryError(f"{where} must be a table")
        extra = set(table) - set(_KEYS) - {"aliases"}
        if extra:
            raise DrugLibraryError(f"{where} unknown key(s) {sorted(extra)}")
        aliases = table.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
            raise DrugLibraryError(f"{where} aliases must be a list of names")
        values = {key: _int(table, key, where) for key in _KEYS}
        if values["concentration_min_ug_per_ml"] > values["concentration_max_ug_per_ml"]:
            raise DrugLibraryError(f"{where} concentration_min_ug_per_ml is above the max")
        if values["soft_max_daily_pg"] > values["hard_max_daily_pg"]:
            raise DrugLibraryError(f"{where} soft_max_daily_pg is above hard_max_daily_pg")
        drug = Drug(name=name, aliases=tuple(aliases), **values)
        for key in (name, *aliases):
            norm = normalise(key)
            if not norm or len(norm) > 16:
                raise DrugLibraryError(f"{where} name {key!r} cannot travel in a 1..16 text")
            if norm in index:
                raise DrugLibraryError(
                    f"{where} name {key!r} is already {index[norm].name!r}'s: names are unique"
                )
            index[norm] = drug
        drugs.append(drug)
    return DrugLibrary(tuple(drugs), index, source)


def load_library(path: str | Path) -> DrugLibrary:
    """A drug library file (TOML, bounded like every document pumpemu reads)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = parse_toml(text)
    except (OSError, UnicodeDecodeError, DocumentError) as exc:
        raise DrugLibraryError(f"{path}: {exc}") from None
    return parse_library(data, str(path))


@functools.cache
def default_library() -> DrugLibrary:
    """The built-in library, emulator/drugs.toml (read once)."""
    text = resources.files("emulator").joinpath("drugs.toml").read_text(encoding="utf-8")
    try:
        data = parse_toml(text)
    except DocumentError as exc:  # pragma: no cover - the shipped file is tested
        raise DrugLibraryError(f"built-in drug library: {exc}") from None
    return parse_library(data, "built-in drug library")

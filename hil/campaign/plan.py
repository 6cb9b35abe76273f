"""What a campaign runs: one ``RunSpec`` per scenario run, from files and their sweeps.

A spec names its run by the file and the run's index in it, not by the parsed scenario, so
it is small and plain to send to another process or another machine, which loads the file
itself (every worker sees the same files: the campaign's working directory, or a shared
file system on a cluster).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.errors import UsageError

__all__ = ["RunSpec", "expand"]


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One run of a campaign."""

    id: str
    """The scenario's id, with its sweep point: unique in the campaign."""
    file: str
    """The scenario file, as an absolute path."""
    index: int
    """Which of the file's runs (a sweep expands one file into many)."""
    seed: int
    sweep: tuple[tuple[str, Any], ...]
    """The sweep values of this run, sorted by key (empty without a sweep)."""
    hazards: tuple[str, ...]


def expand(files: Sequence[Path]) -> list[RunSpec]:
    """Every run the files describe, in file order; a duplicate id is a usage error (a
    campaign resumes and reruns by id, so an id must name one run)."""
    from hil.scenario import loader  # noqa: PLC0415 (the loader is heavy; load on use)

    specs: list[RunSpec] = []
    seen: dict[str, str] = {}
    for file in files:
        for index, scenario in enumerate(loader.load(file)):
            where = f"{file} run {index + 1}"
            if scenario.id in seen:
                raise UsageError(
                    f"{where}: id {scenario.id!r} is also {seen[scenario.id]}: a campaign "
                    "names each run by its id (give each file or sweep point its own)"
                )
            seen[scenario.id] = where
            specs.append(
                RunSpec(
                    id=scenario.id,
                    file=str(Path(file).resolve()),
                    index=index,
                    seed=scenario.seed,
                    sweep=tuple(sorted(scenario.sweep.items())),
                    hazards=tuple(scenario.hazards),
                )
            )
    if not specs:
        raise UsageError("the files describe no run")
    return specs

"""Plant faults by name: each fault's texts (hil/control_catalogue.py) paired with how its
parameters become the emulator's ``Fault`` (emulator/faults.py). One table for the control
API, scenario and fault files, the pytest plugin and replay. It imports the emulator's
faults and nothing of the control server, so a campaign worker that builds faults in
process loads no socket server (hil/campaign/)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from emulator.faults import (
    BatteryDrain,
    CapInjection,
    CatheterDisconnect,
    CatheterErosion,
    CatheterKink,
    CatheterLeak,
    CatheterMigration,
    CatheterOcclusion,
    CatheterRepair,
    Fault,
    InflammatoryMass,
    MagnetExposure,
    MechanicalBias,
    MemoryCorruption,
    MotorRepair,
    MotorStall,
    PocketFill,
    PumpFlip,
    PumpReseat,
    Reset,
)
from hil.control_catalogue import FAULT_TEXTS, parse_fault_param

__all__ = [
    "FAULTS",
    "FAULT_ALIASES",
    "FaultSpec",
    "build_fault",
    "int_param",
    "optional_int_param",
]


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One fault name: what it does, its parameters (name -> (required, help)), its builder."""

    summary: str
    params: Mapping[str, tuple[bool, str]]
    build: Callable[[Mapping[str, Any]], Fault]
    signed: frozenset[str] = frozenset()
    """The parameters that may be written with a minus sign (``-2%``); the rest may not."""


def int_param(
    params: Mapping[str, Any], name: str, default: int | None = None, *, signed: bool = False
) -> int:
    """``params[name]`` (or ``default``) as an integer in the one grammar; ValueError naming
    the parameter if it is missing or not one."""
    value = params.get(name, default)
    if value is None:
        raise ValueError(f"missing parameter {name!r}")
    try:
        return parse_fault_param(name, value, signed=signed)
    except ValueError as exc:
        raise ValueError(f"parameter {name!r}: {exc}") from None


def optional_int_param(params: Mapping[str, Any], name: str) -> int | None:
    """``int_param`` for a parameter that may be left out (None)."""
    return None if params.get(name) is None else int_param(params, name)


def _repair(params: Mapping[str, Any]) -> Fault:
    part = params.get("part")
    if part == "motor":
        return MotorRepair()
    if part == "catheter":
        return CatheterRepair()
    raise ValueError(f"parameter 'part' must be 'motor' or 'catheter', got {part!r}")


_BUILDERS: dict[str, Callable[[Mapping[str, Any]], Fault]] = {
    "stall": lambda p: MotorStall(optional_int_param(p, "recover_after_s")),
    "occlusion": lambda p: CatheterOcclusion(int_param(p, "delivered_ppm", 0)),
    "inflammatory-mass": lambda p: InflammatoryMass(
        int_param(p, "grow_s"), int_param(p, "delivered_ppm", 0)
    ),
    "kink": lambda p: CatheterKink(int_param(p, "period_s"), int_param(p, "closed_s")),
    "migration": lambda _params: CatheterMigration(),
    "erosion": lambda p: CatheterErosion(int_param(p, "ppm")),
    "flip": lambda _params: PumpFlip(),
    "reseat": lambda _params: PumpReseat(),
    "cap-inject": lambda p: CapInjection(
        int_param(p, "volume_nl"), int_param(p, "concentration_ug_per_ml")
    ),
    "leak": lambda p: CatheterLeak(int_param(p, "ppm")),
    "disconnect": lambda _params: CatheterDisconnect(),
    "repair": _repair,
    "magnet": lambda p: MagnetExposure(int_param(p, "scan_s"), int_param(p, "recovery_s", 0)),
    "battery-drain": lambda p: BatteryDrain(int_param(p, "nah")),
    "pocket-fill": lambda p: PocketFill(
        int_param(p, "volume_nl"), optional_int_param(p, "concentration_ug_per_ml")
    ),
    "bias": lambda p: MechanicalBias(int_param(p, "ppm", signed=True)),
    "reset": lambda _params: Reset(),
    "memory-corruption": lambda p: MemoryCorruption(int_param(p, "bit", 0)),
}
"""Fault name -> how its parameters become the emulator's ``Fault``."""

if set(_BUILDERS) != set(FAULT_TEXTS):  # pragma: no cover - a broken edit, caught at import
    raise RuntimeError(
        f"hil.control_catalogue.FAULT_TEXTS and the builders differ: "
        f"{sorted(set(_BUILDERS) ^ set(FAULT_TEXTS))}"
    )

FAULTS: dict[str, FaultSpec] = {
    name: FaultSpec(text.summary, text.params, _BUILDERS[name], text.signed)
    for name, text in FAULT_TEXTS.items()
}
"""Fault name -> its texts (hil/control_catalogue.py) and its builder."""
FAULT_ALIASES = {"mri": "magnet"}


def build_fault(name: str, params: Mapping[str, Any]) -> Fault:
    """The ``Fault`` for a fault name and its parameters; ``ValueError`` with a clear message."""
    key = FAULT_ALIASES.get(name, name)
    spec = FAULTS.get(key)
    if spec is None:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        allowed = ", ".join(spec.params) or "none"
        raise ValueError(f"fault {key!r} takes no parameter {unknown[0]!r} (allowed: {allowed})")
    try:
        return spec.build(params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"fault {key!r}: {exc}") from None

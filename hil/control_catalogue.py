"""What the control API's commands declare without importing the emulator: the default
address, the CAP bound, each plant fault's name, summary and parameters, and how a parameter
written with its unit is read, so ``pumpemu fault``, ``time``, ``truth``, ``serve`` and
``replay`` build their options and --help from this module alone (docs/architecture.md,
"Layers and imports").

This is the one home of those texts: hil/fault_builders.py's ``FAULTS`` pairs each with the
builder that needs the emulator, and refuses to load if the two tables name different faults.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hil import quantities as q

__all__ = [
    "CONTROL_ENV",
    "DEFAULT_CONTROL",
    "FAULT_TEXTS",
    "MAX_CAP_NL",
    "TOKEN_FILE_ENV",
    "FaultText",
    "parse_fault_param",
]

DEFAULT_CONTROL = "default"
"""The address that means the default Unix socket, ``control.sock`` in
hil/control.py's ``control_dir()``."""

CONTROL_ENV = "PUMPEMU_CONTROL"
"""The environment variable that gives ``--control`` wherever pumpemu reaches a control API."""

TOKEN_FILE_ENV = "PUMPEMU_CONTROL_TOKEN_FILE"  # noqa: S105 (a variable name, no secret)
"""The environment variable that gives ``--control-token``."""

MAX_CAP_NL = 100_000_000
"""The most one CAP operation moves, nL."""


@dataclass(frozen=True, slots=True)
class FaultText:
    """One fault as a user meets it: what it does and its parameters (name -> (required,
    help))."""

    summary: str
    params: Mapping[str, tuple[bool, str]]
    signed: frozenset[str] = field(default_factory=frozenset)
    """The parameters that may be written with a minus sign (``-2%``); the rest may not."""


def _fault_param_parser(name: str, *, signed: bool) -> Callable[[str], int] | None:
    """How a fault parameter written with its unit is read (docs/quantities.md): the name's
    suffix is the unit a bare number keeps, so ``3600`` and ``1h`` mean the same to
    ``recover_after_s``. None for a plain count (``nah``, ``bit``)."""
    if name.endswith("_s"):
        return lambda text: q.parse_duration(text, bare="s")
    if name == "ppm" or name.endswith("_ppm"):
        return lambda text: q.parse_fraction(text, bare="ppm", signed=signed)
    if name.endswith("_nl"):
        return lambda text: q.parse_volume(text, bare="nl")
    if name.endswith("_ug_per_ml"):
        return lambda text: q.parse_concentration(text, bare="ug/ml")
    return None


def parse_fault_param(name: str, value: Any, *, signed: bool = False) -> int:
    """One fault parameter as the integer the fault takes: an int as it is (in the unit its
    name ends with), or a string in the one grammar (``"1h"``, ``"5%"``, ``"2 mL"``);
    ``signed`` lets a string carry a minus sign (a bias)."""
    if isinstance(value, bool):
        raise ValueError(f"parameter {name!r} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    parser = _fault_param_parser(name, signed=signed)
    if isinstance(value, str):
        if parser is not None:
            return parser(value)
        digits = value.strip().removeprefix("-") if signed else value.strip()
        if digits.isdigit() and len(digits) <= q.MAX_DIGITS:
            return int(value.strip())
    units = " or a string with its unit" if parser is not None else ""
    raise ValueError(f"must be an integer{units}, got {value!r}")


FAULT_TEXTS: dict[str, FaultText] = {
    "stall": FaultText(
        "the motor stops: for good, or until recover_after_s have passed (H5, H14)",
        {
            "recover_after_s": (
                False,
                "seconds until the rotor frees itself, 1..3153600000; omit for good",
            ),
        },
    ),
    "occlusion": FaultText(
        "the catheter is blocked, in full or in part: the drug stays in the reservoir (H13)",
        {
            "delivered_ppm": (False, "share of the flow that still passes, ppm (default 0: full)"),
        },
    ),
    "inflammatory-mass": FaultText(
        "a mass grows at the catheter tip: the delivered share falls over grow_s (H13)",
        {
            "grow_s": (True, "seconds until fully grown (weeks: 3628800 is 6 weeks)"),
            "delivered_ppm": (False, "share of the flow that passes when grown (default 0)"),
        },
    ),
    "kink": FaultText(
        "the catheter kinks on and off: closed closed_s of every period_s (H17)",
        {
            "period_s": (True, "seconds in one closed-then-open cycle"),
            "closed_s": (True, "seconds closed at the start of each cycle"),
        },
    ),
    "migration": FaultText(
        "the catheter tip leaves the intrathecal space: drug goes elsewhere (H13, H17)",
        {},
    ),
    "erosion": FaultText(
        "the device erodes through the skin: exposed, and the catheter leaks (H17)",
        {
            "ppm": (True, "leaked fraction in parts per million, 1..1000000"),
        },
    ),
    "flip": FaultText(
        "the pump flips in its pocket: a refill needle misses the septum (H1)",
        {},
    ),
    "reseat": FaultText(
        "a flipped pump is turned back: its septa are reachable again",
        {},
    ),
    "cap-inject": FaultText(
        "an injection into the catheter access port: bypasses the pump and its limits (H2)",
        {
            "volume_nl": (True, "volume injected, nL"),
            "concentration_ug_per_ml": (True, "drug strength injected, ug/mL"),
        },
    ),
    "leak": FaultText(
        "a fraction of the flow leaks into tissue (H17)",
        {
            "ppm": (True, "leaked fraction in parts per million, 1..1000000"),
        },
    ),
    "disconnect": FaultText(
        "the catheter comes off the pump: everything pumped goes into tissue (H17)",
        {},
    ),
    "repair": FaultText(
        "the motor turns again, or the catheter is whole again (held drug is released)",
        {
            "part": (True, "'motor' or 'catheter'"),
        },
    ),
    "magnet": FaultText(
        "an MRI scan or strong magnet: the rotor stops for scan_s + recovery_s (H14, H15)",
        {
            "scan_s": (True, "scan duration, seconds, 0..3153600000"),
            "recovery_s": (False, "seconds after the scan before the rotor turns, 0..3153600000"),
        },
    ),
    "battery-drain": FaultText(
        "a sudden loss of battery charge (H4, H6)",
        {
            "nah": (True, "charge lost, nAh, 0..1000000000000"),
        },
    ),
    "pocket-fill": FaultText(
        "drug injected into the pump pocket instead of the reservoir (H1)",
        {
            "volume_nl": (True, "volume injected into the pocket, nL, 0..1000000000"),
            "concentration_ug_per_ml": (False, "drug strength, ug/mL (default: the pump's)"),
        },
    ),
    "bias": FaultText(
        "mechanical bias: each stroke moves stroke_nl x (1 + ppm/1e6) from now on (H10)",
        {
            "ppm": (True, "bias in ppm, -999999..1000000"),
        },
        signed=frozenset({"ppm"}),
    ),
    "reset": FaultText(
        "a processor reset: RAM lost, restart from non-volatile memory (H4)",
        {},
    ),
    "memory-corruption": FaultText(
        "one bit of the non-volatile record flips (H8)",
        {
            "bit": (False, "which bit, 0..4294967295 (default 0)"),
        },
    ),
}
"""Fault name -> what it does and its parameters, in the order ``pumpemu fault list`` shows."""

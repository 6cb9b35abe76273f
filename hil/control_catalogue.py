"""What the control API's commands declare without importing the emulator: the default
address, the CAP bound, and each plant fault's name, summary and parameters, so ``pumpemu
fault``, ``time``, ``truth``, ``serve`` and ``replay`` build their options and --help from
this module alone (docs/architecture.md, "Layers and imports").

Copies of ``hil.control``'s values (``FAULTS`` holds builders that need the emulator);
tests/hil/test_cli_lazy_imports.py checks that the two agree, so a fault added there and
not here fails the suite.
"""

from __future__ import annotations

__all__ = ["DEFAULT_CONTROL", "FAULT_TEXTS", "MAX_CAP_NL"]

DEFAULT_CONTROL = "default"
"""hil.control.DEFAULT_CONTROL: the address that means the default Unix socket."""

MAX_CAP_NL = 100_000_000
"""hil.control.MAX_CAP_NL: the most one CAP operation moves, nL."""

FAULT_TEXTS: dict[str, tuple[str, dict[str, tuple[bool, str]]]] = {
    "stall": (
        "the motor stops: for good, or until recover_after_s have passed (H5, H14)",
        {
            "recover_after_s": (
                False,
                "seconds until the rotor frees itself, 1..3153600000; omit for good",
            ),
        },
    ),
    "occlusion": (
        "the catheter is blocked, in full or in part: the drug stays in the reservoir (H13)",
        {
            "delivered_ppm": (False, "share of the flow that still passes, ppm (default 0: full)"),
        },
    ),
    "inflammatory-mass": (
        "a mass grows at the catheter tip: the delivered share falls over grow_s (H13)",
        {
            "grow_s": (True, "seconds until fully grown (weeks: 3628800 is 6 weeks)"),
            "delivered_ppm": (False, "share of the flow that passes when grown (default 0)"),
        },
    ),
    "kink": (
        "the catheter kinks on and off: closed closed_s of every period_s (H17)",
        {
            "period_s": (True, "seconds in one closed-then-open cycle"),
            "closed_s": (True, "seconds closed at the start of each cycle"),
        },
    ),
    "migration": (
        "the catheter tip leaves the intrathecal space: drug goes elsewhere (H13, H17)",
        {},
    ),
    "erosion": (
        "the device erodes through the skin: exposed, and the catheter leaks (H17)",
        {
            "ppm": (True, "leaked fraction in parts per million, 1..1000000"),
        },
    ),
    "flip": (
        "the pump flips in its pocket: a refill needle misses the septum (H1)",
        {},
    ),
    "reseat": (
        "a flipped pump is turned back: its septa are reachable again",
        {},
    ),
    "cap-inject": (
        "an injection into the catheter access port: bypasses the pump and its limits (H2)",
        {
            "volume_nl": (True, "volume injected, nL"),
            "concentration_ug_per_ml": (True, "drug strength injected, ug/mL"),
        },
    ),
    "leak": (
        "a fraction of the flow leaks into tissue (H17)",
        {
            "ppm": (True, "leaked fraction in parts per million, 1..1000000"),
        },
    ),
    "disconnect": (
        "the catheter comes off the pump: everything pumped goes into tissue (H17)",
        {},
    ),
    "repair": (
        "the motor turns again, or the catheter is whole again (held drug is released)",
        {
            "part": (True, "'motor' or 'catheter'"),
        },
    ),
    "magnet": (
        "an MRI scan or strong magnet: the rotor stops for scan_s + recovery_s (H14, H15)",
        {
            "scan_s": (True, "scan duration, seconds, 0..3153600000"),
            "recovery_s": (False, "seconds after the scan before the rotor turns, 0..3153600000"),
        },
    ),
    "battery-drain": (
        "a sudden loss of battery charge (H4, H6)",
        {
            "nah": (True, "charge lost, nAh, 0..1000000000000"),
        },
    ),
    "pocket-fill": (
        "drug injected into the pump pocket instead of the reservoir (H1)",
        {
            "volume_nl": (True, "volume injected into the pocket, nL, 0..1000000000"),
            "concentration_ug_per_ml": (False, "drug strength, ug/mL (default: the pump's)"),
        },
    ),
    "bias": (
        "mechanical bias: each stroke moves stroke_nl x (1 + ppm/1e6) from now on (H10)",
        {
            "ppm": (True, "bias in ppm, -999999..1000000"),
        },
    ),
    "reset": (
        "a processor reset: RAM lost, restart from non-volatile memory (H4)",
        {},
    ),
    "memory-corruption": (
        "one bit of the non-volatile record flips (H8)",
        {
            "bit": (False, "which bit, 0..4294967295 (default 0)"),
        },
    ),
}
"""Fault name -> (summary, {parameter: (required, help)}), in ``FAULTS`` order."""

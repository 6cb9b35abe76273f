"""Plant faults: what can go wrong with the physical pump, as immutable values.

``Pump.inject(fault)`` applies one at the pump's current time. Faults act on the plant (or,
for Reset and MemoryCorruption, on the hardware under the firmware); the firmware learns of
them only through its sensors (docs/architecture.md principle 3). Each names the hazard it makes
testable. Values are integers: seconds, nL, nAh, ppm.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BatteryDrain",
    "CatheterDisconnect",
    "CatheterLeak",
    "CatheterOcclusion",
    "CatheterRepair",
    "Fault",
    "MagnetExposure",
    "MechanicalBias",
    "MemoryCorruption",
    "MotorRepair",
    "MotorStall",
    "PocketFill",
    "Reset",
]


MAX_FAULT_S = 100 * 365 * 86_400
"""The longest duration a fault takes, in seconds: a century, the longest time a control
``advance`` moves (docs/serve.md). Anything longer is never reached and could not be saved."""

MAX_DRAIN_NAH = 10**12
"""The largest charge a BatteryDrain takes, 1,000 Ah: far beyond any implant's battery."""

MAX_POCKET_NL = 10**9
"""The largest pocket fill, 1 L."""

MAX_NV_BIT = 2**32 - 1
"""The largest bit index a MemoryCorruption takes (taken modulo the record's size)."""


def _check(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low or value > high:
        raise ValueError(f"{name} must be {low}..{high}, got {value}")


@dataclass(frozen=True, slots=True)
class MotorStall:
    """The rotor stops: for good (H5: shaft wear, corrosion, particles) or, with
    ``recover_after_s``, until it frees itself (H14-like intermittent stall)."""

    recover_after_s: int | None = None

    def __post_init__(self) -> None:
        if self.recover_after_s is not None:
            _check("recover_after_s", self.recover_after_s, 1, MAX_FAULT_S)


@dataclass(frozen=True, slots=True)
class MotorRepair:
    """The rotor turns again from now (a permanent stall cleared by the test author)."""


@dataclass(frozen=True, slots=True)
class MagnetExposure:
    """An MRI scan (or a strong magnet) of ``scan_s``, then ``recovery_s`` before the rotor
    turns again (2-24 h in practice, H14). On a valve-gated pump the magnet opens the valve
    instead: up to the valve limit flows, then the valve closes until reset (H15)."""

    scan_s: int
    recovery_s: int = 0

    def __post_init__(self) -> None:
        _check("scan_s", self.scan_s, 0, MAX_FAULT_S)
        _check("recovery_s", self.recovery_s, 0, MAX_FAULT_S)


@dataclass(frozen=True, slots=True)
class CatheterOcclusion:
    """Kink or inflammatory mass: pumped drug is held back, none reaches the patient (H13)."""


@dataclass(frozen=True, slots=True)
class CatheterLeak:
    """A fraction ``ppm`` of the flow leaks into tissue (H17)."""

    ppm: int

    def __post_init__(self) -> None:
        _check("ppm", self.ppm, 1, 1_000_000)


@dataclass(frozen=True, slots=True)
class CatheterDisconnect:
    """The catheter comes off the pump: everything pumped goes into tissue (H17)."""


@dataclass(frozen=True, slots=True)
class CatheterRepair:
    """The catheter is whole again; drug held behind an occlusion reaches the patient at
    once (the bolus on clearing, H13)."""


@dataclass(frozen=True, slots=True)
class BatteryDrain:
    """A sudden loss of ``nah`` of charge (feedthrough short, cell defect: H4, H6)."""

    nah: int

    def __post_init__(self) -> None:
        _check("nah", self.nah, 0, MAX_DRAIN_NAH)


@dataclass(frozen=True, slots=True)
class PocketFill:
    """``volume_nl`` injected into the pump pocket, not the reservoir (H1). For a pocket fill
    during a refill, pass ``pocket_nl`` to ``Pump.refill_complete`` instead."""

    volume_nl: int

    def __post_init__(self) -> None:
        _check("volume_nl", self.volume_nl, 0, MAX_POCKET_NL)


@dataclass(frozen=True, slots=True)
class MechanicalBias:
    """From now on each stroke moves stroke_nl x (1 + ppm/1e6) (wear; H10 drift)."""

    ppm: int

    def __post_init__(self) -> None:
        _check("ppm", self.ppm, -999_999, 1_000_000)


@dataclass(frozen=True, slots=True)
class Reset:
    """A processor reset (feedthrough short, H4): RAM lost, rebuilt from non-volatile memory."""


@dataclass(frozen=True, slots=True)
class MemoryCorruption:
    """Bit ``bit`` of the non-volatile record flips (H8). The firmware finds out at its next
    record write (its next step or command) and goes to its safe state."""

    bit: int = 0

    def __post_init__(self) -> None:
        _check("bit", self.bit, 0, MAX_NV_BIT)


Fault = (
    MotorStall
    | MotorRepair
    | MagnetExposure
    | CatheterOcclusion
    | CatheterLeak
    | CatheterDisconnect
    | CatheterRepair
    | BatteryDrain
    | PocketFill
    | MechanicalBias
    | Reset
    | MemoryCorruption
)

"""Plant faults: what can go wrong with the physical pump, as immutable values.

``Pump.inject(fault)`` applies one at the pump's current time. Faults act on the plant (or,
for Reset and MemoryCorruption, on the hardware under the firmware); the firmware learns of
them only through its sensors (docs/architecture.md principle 3). Each names the hazard it makes
testable. Values are integers: seconds, nL, nAh, ppm, ug/mL.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "MAX_CONCENTRATION_UG_PER_ML",
    "MAX_FAULT_SPAN_S",
    "MAX_FAULT_VOLUME_NL",
    "BatteryDrain",
    "CapInjection",
    "CatheterDisconnect",
    "CatheterErosion",
    "CatheterKink",
    "CatheterLeak",
    "CatheterMigration",
    "CatheterOcclusion",
    "CatheterRepair",
    "Fault",
    "InflammatoryMass",
    "MagnetExposure",
    "MechanicalBias",
    "MemoryCorruption",
    "MotorRepair",
    "MotorStall",
    "PocketFill",
    "PumpFlip",
    "PumpReseat",
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

MAX_CONCENTRATION_UG_PER_ML = 1_000_000
"""The strongest solution a fault may carry: 1 g/mL, above any intrathecal drug."""
MAX_FAULT_VOLUME_NL = 100_000_000
"""The most one injection fault moves: 100 mL, above any syringe."""
MAX_FAULT_SPAN_S = 10 * 365 * 86_400
"""The longest a mass may grow or a kink's cycle last: 10 years (a pump's life)."""
MAX_CONCENTRATION = MAX_CONCENTRATION_UG_PER_ML


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
    """The catheter is blocked (H13): only ``delivered_ppm`` of what the mechanism pushes
    flows past it, the rest stays in the reservoir. 0 (the default) is a full occlusion:
    the mechanism fills the catheter's compliance (at most ``catheter_compliance_nl``) and
    then moves nothing, so the next refill's residual is above the prediction."""

    delivered_ppm: int = 0

    def __post_init__(self) -> None:
        _check("delivered_ppm", self.delivered_ppm, 0, 999_999)


@dataclass(frozen=True, slots=True)
class InflammatoryMass:
    """An inflammatory mass (granuloma) grows at the catheter tip (H13): the delivered
    fraction falls linearly from all of the flow now to ``delivered_ppm`` after
    ``grow_s`` seconds (weeks in practice) and stays there. The firmware senses nothing;
    the dose reaching the patient falls while the residual at refill rises."""

    grow_s: int
    delivered_ppm: int = 0

    def __post_init__(self) -> None:
        _check("grow_s", self.grow_s, 1, MAX_FAULT_SPAN_S)
        _check("delivered_ppm", self.delivered_ppm, 0, 999_999)


@dataclass(frozen=True, slots=True)
class CatheterKink:
    """A kink that closes on and off (H17): closed for ``closed_s`` at the start of every
    ``period_s`` (posture), open the rest of the time."""

    period_s: int
    closed_s: int

    def __post_init__(self) -> None:
        _check("period_s", self.period_s, 1, MAX_FAULT_SPAN_S)
        _check("closed_s", self.closed_s, 0, self.period_s)


@dataclass(frozen=True, slots=True)
class CatheterMigration:
    """The catheter tip leaves the intrathecal space (H13, H17): everything that leaves it
    goes elsewhere (epidural, subcutaneous) and is absorbed systemically."""


@dataclass(frozen=True, slots=True)
class CatheterErosion:
    """The pump or catheter erodes through the skin (H17): the device is exposed and the
    catheter leaks ``ppm`` of the flow into tissue."""

    ppm: int

    def __post_init__(self) -> None:
        _check("ppm", self.ppm, 1, 1_000_000)


@dataclass(frozen=True, slots=True)
class PumpFlip:
    """The pump flips in its pocket (H1): a refill needle misses the septum, draws nothing
    and puts the whole refill into the pocket (a systemic dose)."""


@dataclass(frozen=True, slots=True)
class PumpReseat:
    """A flipped pump is turned back (surgical revision): its septa are reachable again
    (ends the H1 pocket-fill risk of ``PumpFlip``)."""


@dataclass(frozen=True, slots=True)
class CapInjection:
    """``volume_nl`` of ``concentration_ug_per_ml`` injected into the catheter access port
    (H2), e.g. a refill meant for the reservoir: it bypasses the pump and every limit, and
    the firmware never knows. Same as ``Pump.cap_inject``."""

    volume_nl: int
    concentration_ug_per_ml: int

    def __post_init__(self) -> None:
        _check("volume_nl", self.volume_nl, 0, MAX_FAULT_VOLUME_NL)
        _check("concentration_ug_per_ml", self.concentration_ug_per_ml, 0, MAX_CONCENTRATION)


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
    """The catheter is whole again (any occlusion, kink, mass, leak, erosion, migration or
    disconnection cleared); the solution pressed into its compliance behind a block reaches
    the patient at once, at most ``catheter_compliance_nl`` (the bolus on clearing, H13)."""


@dataclass(frozen=True, slots=True)
class BatteryDrain:
    """A sudden loss of ``nah`` of charge (feedthrough short, cell defect: H4, H6)."""

    nah: int

    def __post_init__(self) -> None:
        _check("nah", self.nah, 0, MAX_DRAIN_NAH)


@dataclass(frozen=True, slots=True)
class PocketFill:
    """``volume_nl`` injected into the pump pocket, not the reservoir (H1), at
    ``concentration_ug_per_ml`` (default: the drug last put into the reservoir). For a
    pocket fill during a refill, pass ``pocket_nl`` to ``Pump.refill_complete`` instead."""

    volume_nl: int
    concentration_ug_per_ml: int | None = None

    def __post_init__(self) -> None:
        _check("volume_nl", self.volume_nl, 0, MAX_POCKET_NL)
        if self.concentration_ug_per_ml is not None:
            _check("concentration_ug_per_ml", self.concentration_ug_per_ml, 0, MAX_CONCENTRATION)


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
    record write, 1 ms later, and goes to its safe state."""

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
    | InflammatoryMass
    | CatheterKink
    | CatheterMigration
    | CatheterErosion
    | PumpFlip
    | PumpReseat
    | CapInjection
    | BatteryDrain
    | PocketFill
    | MechanicalBias
    | Reset
    | MemoryCorruption
)

"""The plant: the pump's physical truth (docs/architecture.md principle 3).

The plant holds what really is: the drug solution in the reservoir, the pump's internal path
and the catheter (volume *and* drug mass), the catheter's state, the motor's health, the
battery's charge, the flow-activated valve. Faults act here. The firmware never reads these
numbers directly; it learns only what its sensors report (a stalled motor, if the profile
has the sensor; the battery voltage), so a scenario can compare belief with truth (H1, H2,
H3, H10, H13, H17).

This module is the mechanism (motor, valve, bias, battery) and the one ``PlantTruth``; the
drug it moves, from the reservoir to the catheter's tip, is a ``FluidPath``
(emulator/fluid/path.py, built from emulator/fluid/slugs.py, reservoir.py, catheter.py).

Every volume is an integer in nL and every drug mass an integer in pg (1 ug/mL is 1 pg/nL:
``mass_pg = volume_nl x concentration_ug_per_ml``). Volumes are computed from cumulative
totals (strokes in a bias segment, flow in a leak segment), never from per-call rounding, so
nothing drifts however the caller slices time. Fluid and drug are conserved exactly, each::

    initial + injected + cap_injected == reservoir + path + catheter + retained
                                         + delivered + misplaced + leaked + pocket
                                         + withdrawn + aspirated

- ``initial``: the reservoir, internal path and catheter drug at construction;
- ``injected``: everything pushed through the refill needle, pocket fills included;
- ``cap_injected``: solution injected through the catheter access port (H2);
- ``path``: solution in the pump's internal path (always full: ``internal_path_nl``);
- ``catheter``: solution inside the catheter's dead volume, an ordered series of slugs
  (emulator/fluid/slugs.py); the rest of the dead volume holds CSF or sterile water, which
  solution fills before any reaches the patient (H3 delay), mixing as it goes (H3 early
  arrival, ``priming_dispersion_ppm``);
- ``retained``: solution pushed into the compliance upstream of a closed catheter (H13): at
  most ``catheter_compliance_nl``; the mechanism moves nothing more, so the rest of the drug
  stays in the reservoir (the residual is *above* the prediction at refill);
- ``delivered``: reached the intrathecal space; ``misplaced``: left a migrated tip outside it;
- ``leaked``: lost through a leak, an erosion or a disconnection into tissue (H17);
- ``pocket``: injected into the pump pocket instead of the reservoir (H1, a flipped pump),
  including overflow beyond the reservoir's capacity;
- ``withdrawn``: residual drawn out at refills; ``aspirated``: solution drawn back through
  the catheter access port.

Drug in the pocket, leaked into tissue or misplaced by a migrated tip is a *systemic* dose
(``PlantTruth.systemic_pg``), not a lost one. Pumping from an empty reservoir moves air: the
reservoir never goes negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from emulator.fluid.catheter import (
    PPM,
    AspirationResult,
    CapAspirated,
    CapInjected,
    CatheterState,
    Flow,
    Restriction,
)
from emulator.fluid.path import MAX_CONCENTRATION_UG_PER_ML, FluidPath, FluidValue
from emulator.profile import Profile
from emulator.stroke_accuracy import jitter_volume_nl
from protocol.units import MS_PER_HOUR

__all__ = [
    "DEFAULT_DRUG_CONCENTRATION_UG_PER_ML",
    "MAX_CONCENTRATION_UG_PER_ML",
    "AspirationResult",
    "CapAspirated",
    "CapInjected",
    "CatheterState",
    "Flow",
    "MotorState",
    "Plant",
    "PlantTruth",
]

DEFAULT_DRUG_CONCENTRATION_UG_PER_ML = 1_000
"""The drug strength a new pump holds when none is given: 1 mg/mL, the strength of the
test suite's default prescription (docs/pump-model.md, "Drug in the fluid path")."""


class MotorState(IntEnum):
    OK = 0
    STALLED = 1
    """Not turning: permanently (H5) or until a recovery time (H14)."""
    RECOVERING = 2
    """After an MRI scan the rotor stays stopped for a recovery delay (H14)."""


@dataclass(frozen=True, slots=True)
class PlantTruth:
    """A read-only picture of the plant at one instant (nL, pg, nAh, ppm)."""

    time_ms: int
    initial_nl: int
    injected_nl: int
    reservoir_nl: int
    catheter_nl: int
    catheter_volume_nl: int
    retained_nl: int
    delivered_nl: int
    leaked_nl: int
    pocket_nl: int
    withdrawn_nl: int
    pumped_nl: int
    """Everything the mechanism moved out of the reservoir (valve releases included)."""
    dry_nl: int
    """Volume the mechanism tried to move from an empty reservoir (air)."""
    valve_released_nl: int
    strokes_attempted: int
    battery_nah: int
    motor: MotorState
    motor_resume_ms: int | None
    catheter: CatheterState
    leak_ppm: int
    bias_ppm: int
    valve_closed: bool
    magnet_exposures: int
    # -- drug along the fluid path (pg; docs/pump-model.md, "Drug in the fluid path") -----
    path_nl: int = 0
    """Solution in the pump's internal path (always its full volume)."""
    misplaced_nl: int = 0
    """Solution that left a migrated tip outside the intrathecal space."""
    cap_injected_nl: int = 0
    aspirated_nl: int = 0
    csf_aspirated_nl: int = 0
    """CSF drawn through the catheter access port (not drug solution: not in the balance)."""
    initial_pg: int = 0
    injected_pg: int = 0
    cap_injected_pg: int = 0
    reservoir_pg: int = 0
    path_pg: int = 0
    catheter_pg: int = 0
    retained_pg: int = 0
    delivered_pg: int = 0
    """Drug that reached the intrathecal space."""
    misplaced_pg: int = 0
    leaked_pg: int = 0
    pocket_pg: int = 0
    withdrawn_pg: int = 0
    aspirated_pg: int = 0
    catheter_slugs: tuple[tuple[int, int], ...] = ()
    """The catheter's solution as (nL, pg) slugs, the one nearest the tip first."""
    flow: Flow = Flow.OPEN
    delivered_fraction_ppm: int = PPM
    """The share of what the mechanism pushes that flows past the catheter now (H13)."""
    exposed: bool = False
    """An erosion has exposed the pump or catheter through the skin."""
    flipped: bool = False
    """The pump has flipped in its pocket: a needle misses its septum (H1)."""
    drug_concentration_ug_per_ml: int = 0
    """The strength of the drug last put into the reservoir (plant truth, not the entry)."""

    @property
    def lost_nl(self) -> int:
        """Solution that left the system without reaching the patient's spinal fluid."""
        return self.leaked_nl + self.pocket_nl

    @property
    def systemic_nl(self) -> int:
        """Solution absorbed systemically: pocket, tissue (leaks) and a migrated tip."""
        return self.pocket_nl + self.leaked_nl + self.misplaced_nl

    @property
    def systemic_pg(self) -> int:
        """Drug absorbed systemically (pocket fill, leak, erosion, disconnection, migration):
        a dose the patient receives, by another route (H1, H17)."""
        return self.pocket_pg + self.leaked_pg + self.misplaced_pg

    @property
    def intrathecal_pg(self) -> int:
        """Drug that reached the intrathecal space (``delivered_pg``)."""
        return self.delivered_pg

    def balance_nl(self) -> int:
        """In minus out: exactly 0 for a plant that conserves fluid."""
        inside = self.reservoir_nl + self.path_nl + self.catheter_nl + self.retained_nl
        out = (
            self.delivered_nl + self.misplaced_nl + self.leaked_nl + self.pocket_nl
            + self.withdrawn_nl + self.aspirated_nl
        )  # fmt: skip
        return self.initial_nl + self.injected_nl + self.cap_injected_nl - inside - out

    def balance_pg(self) -> int:
        """In minus out, in drug mass: exactly 0 for a plant that conserves drug."""
        inside = self.reservoir_pg + self.path_pg + self.catheter_pg + self.retained_pg
        out = (
            self.delivered_pg + self.misplaced_pg + self.leaked_pg + self.pocket_pg
            + self.withdrawn_pg + self.aspirated_pg
        )  # fmt: skip
        return self.initial_pg + self.injected_pg + self.cap_injected_pg - inside - out


class Plant:
    """Physical truth of one implanted pump. Times are integer ms; ``now`` is an argument.

    The mechanism (motor, valve, bias, battery) lives here; the drug it moves, from the
    reservoir to the tip, is a ``FluidPath`` (emulator/fluid/path.py)."""

    __slots__ = (
        "_bias_base",
        "_bias_ppm",
        "_bias_strokes",
        "_drained_nah",
        "_fluid",
        "_magnet_exposures",
        "_motor",
        "_motor_after_change",
        "_motor_change_ms",
        "_motor_resume_ms",
        "_now",
        "_profile",
        "_sessions",
        "_spread_ppm",
        "_start_ms",
        "_stroke_nl",
        "_stroke_seed",
        "_strokes_attempted",
        "_valve_closed",
        "_valve_released",
    )

    def __init__(
        self,
        profile: Profile,
        start_ms: int,
        reservoir_nl: int,
        catheter_length_cm: int,
        *,
        catheter_primed: bool = True,
        drug_concentration_ug_per_ml: int = DEFAULT_DRUG_CONCENTRATION_UG_PER_ML,
        stroke_seed: int | None = None,
    ) -> None:
        if not 0 <= reservoir_nl <= profile.reservoir_capacity_nl:
            raise ValueError(
                f"reservoir_nl {reservoir_nl} outside 0..{profile.reservoir_capacity_nl}"
            )
        if not 0 <= catheter_length_cm <= profile.catheter_max_length_cm:
            raise ValueError(
                f"catheter_length_cm {catheter_length_cm} outside "
                f"0..{profile.catheter_max_length_cm}"
            )
        self._profile = profile
        self._start_ms = start_ms
        self._now = start_ms
        self._stroke_nl = profile.stroke_nl
        # Seeded stroke-to-stroke jitter (emulator/stroke_accuracy.py): on only with a seed.
        self._stroke_seed = stroke_seed
        self._spread_ppm = 0 if stroke_seed is None else profile.stroke_spread_ppm
        self._fluid = FluidPath(
            profile,
            start_ms,
            reservoir_nl,
            profile.catheter_volume_nl(catheter_length_cm),
            catheter_primed=catheter_primed,
            concentration_ug_per_ml=drug_concentration_ug_per_ml,
        )
        self._valve_released = 0
        self._strokes_attempted = 0
        # Bias segment: volume moved is base + f(strokes since the bias last changed).
        self._bias_ppm = profile.mechanical_bias_ppm
        self._bias_base = 0
        self._bias_strokes = 0
        self._motor = MotorState.OK
        self._motor_change_ms: int | None = None
        self._motor_after_change = MotorState.OK
        self._motor_resume_ms: int | None = None
        self._valve_closed = False
        self._magnet_exposures = 0
        self._drained_nah = 0
        self._sessions = 0

    # -- observation -----------------------------------------------------------------------

    @property
    def now_ms(self) -> int:
        return self._now

    @property
    def catheter_volume_nl(self) -> int:
        return self._fluid.catheter_volume_nl

    @property
    def motor(self) -> MotorState:
        return self._motor

    @property
    def reservoir_nl(self) -> int:
        return self._fluid.reservoir_nl

    @property
    def reservoir_pg(self) -> int:
        return self._fluid.reservoir_pg

    @property
    def drug_concentration_ug_per_ml(self) -> int:
        """The strength of the drug last put into the reservoir (plant truth)."""
        return self._fluid.concentration_ug_per_ml

    def battery_nah(self, now_ms: int | None = None) -> int:
        """Charge left at ``now_ms`` (default: the plant's now), floored at 0."""
        t = self._now if now_ms is None else now_ms
        p = self._profile
        left = p.battery_capacity_nah - (
            p.battery_nah_per_hour_idle * (t - self._start_ms) // MS_PER_HOUR
            + p.battery_nah_per_stroke * self._strokes_attempted
            + p.battery_nah_per_session * self._sessions
            + self._drained_nah
        )
        return left if left > 0 else 0  # several times a step: no max() call

    def can_move(self) -> bool:
        """Would a commanded stroke move fluid now? (The firmware may only sense part of it.)"""
        return self._motor is MotorState.OK and not self._valve_closed and self.battery_nah() > 0

    def next_event_ms(self) -> int | None:
        """The next time the plant changes by itself (a motor recovery; an inflammatory mass
        closing the catheter for good), or None."""
        motor = self._motor_change_ms
        fluid = self._fluid.next_event_ms(self._now)
        if motor is None:
            return fluid
        return motor if fluid is None or motor < fluid else fluid

    def steps_may_merge(self, until_ms: int, strokes: int) -> bool:
        """Whether ``strokes`` pumped over (now, until_ms] in one call end exactly as the
        same strokes pumped in several calls, sliced anywhere: each slice then pushes a
        positive volume (bias and stroke-to-stroke spread are additive closed forms), the
        battery still has charge at until_ms so every slice moves (``can_move``), and the
        fluid path splits no mass by rounding (``FluidPath.slicing_invariant``). The pump
        then skips the steps flex boundaries would make (docs/pump-model.md, "Time")."""
        if (PPM + self._bias_ppm - self._spread_ppm) * self._stroke_nl <= 2 * PPM:
            return False
        p = self._profile
        left = p.battery_capacity_nah - (  # battery_nah(until_ms), inlined (unfloored)
            p.battery_nah_per_hour_idle * (until_ms - self._start_ms) // MS_PER_HOUR
            + p.battery_nah_per_stroke * self._strokes_attempted
            + p.battery_nah_per_session * self._sessions
            + self._drained_nah
        )
        if left <= p.battery_nah_per_stroke * strokes:
            return False
        return self._fluid.slicing_invariant()

    def restriction(self) -> Restriction:
        """The catheter's flow restriction now (emulator/fluid/catheter.py)."""
        return self._fluid.restriction()

    def delivered_fraction_ppm(self, at_ms: int | None = None) -> int:
        """The share of pushed flow that passes the catheter at ``at_ms`` (default now)."""
        return self._fluid.delivered_fraction_ppm(self._now if at_ms is None else at_ms)

    def truth(self) -> PlantTruth:
        return PlantTruth(
            time_ms=self._now,
            valve_released_nl=self._valve_released,
            strokes_attempted=self._strokes_attempted,
            battery_nah=self.battery_nah(),
            motor=self._motor,
            motor_resume_ms=self._motor_resume_ms,
            bias_ppm=self._bias_ppm,
            valve_closed=self._valve_closed,
            magnet_exposures=self._magnet_exposures,
            **self._fluid.truth_fields(self._now),
        )

    # -- time ------------------------------------------------------------------------------

    def update(self, now_ms: int) -> None:
        """Move the plant's clock to ``now_ms``, applying a motor change that falls due.

        The caller (the pump) steps to ``next_event_ms()`` exactly, so a change never falls
        strictly inside an interval whose strokes were already pumped.
        """
        if now_ms < self._now:
            raise ValueError(f"plant time went backwards: {now_ms} < {self._now}")
        self._now = now_ms
        while self._motor_change_ms is not None and self._motor_change_ms <= now_ms:
            self._motor = self._motor_after_change
            if self._motor is MotorState.RECOVERING:
                # MRI: the scan ended; the rotor stays still for the recovery delay (H14).
                assert self._motor_resume_ms is not None
                self._motor_change_ms = self._motor_resume_ms
                self._motor_after_change = MotorState.OK
            else:
                self._motor_change_ms = None
                self._motor_resume_ms = None

    def pump(self, strokes: int, now_ms: int) -> int:
        """The firmware commanded ``strokes`` strokes in (plant now, now_ms]; move what is real.

        Returns the volume that left the reservoir. A stalled motor, a closed valve or a
        flat battery moves nothing; an empty reservoir moves only what it holds (the rest is
        air, counted in ``dry_nl``); a blocked catheter lets through only its delivered
        fraction (the rest stays in the reservoir, H13).
        """
        if now_ms < self._now:
            raise ValueError(f"plant time went backwards: {now_ms} < {self._now}")
        # The strokes fell in (now, now_ms], under the state the plant had since now: a
        # change due at now_ms (a recovery) applies to later strokes only.
        moved = 0
        if strokes > 0:
            # The move, inline (once per pump step). can_move, inlined: the battery only
            # when the rest would move.
            first = self._strokes_attempted
            moving = self._motor is MotorState.OK and not self._valve_closed
            if moving:  # battery_nah() > 0, inlined (every stroke step)
                p = self._profile
                moving = p.battery_capacity_nah > (
                    p.battery_nah_per_hour_idle * (self._now - self._start_ms) // MS_PER_HOUR
                    + p.battery_nah_per_stroke * first
                    + p.battery_nah_per_session * self._sessions
                    + self._drained_nah
                )
            self._strokes_attempted = first + strokes
            if moving:
                # _bias_volume(after) - _bias_volume(before), inlined; the base cancels.
                stroke_nl = self._stroke_nl
                bias_ppm = self._bias_ppm
                nominal = self._bias_strokes * stroke_nl
                self._bias_strokes += strokes
                total = self._bias_strokes * stroke_nl
                wanted = total + total * bias_ppm // PPM - nominal - nominal * bias_ppm // PPM
                if self._stroke_seed is not None:  # a closed form over the stroke indices
                    wanted += jitter_volume_nl(
                        self._stroke_seed, self._spread_ppm, stroke_nl, first, first + strokes
                    )
                moved = self._fluid.displace(wanted if wanted > 0 else 0, self._now, now_ms)
        change = self._motor_change_ms
        if change is not None and change <= now_ms:
            self.update(now_ms)
        else:
            self._now = now_ms  # update's whole effect when no motor change falls due
        return moved

    def _bias_volume(self, strokes: int) -> int:
        nominal = strokes * self._stroke_nl
        return self._bias_base + nominal + nominal * self._bias_ppm // PPM

    # -- faults (they act on the plant only; docs/architecture.md principle 3)
    # -------------------------

    def stall_motor(self, recover_after_ms: int | None = None) -> None:
        """Stall the rotor now: permanently (None, H5) or for ``recover_after_ms`` ms."""
        self._motor = MotorState.STALLED
        if recover_after_ms is None:
            self._motor_change_ms = None
            self._motor_resume_ms = None
        else:
            if recover_after_ms < 1:
                raise ValueError("recover_after_ms must be >= 1")
            self._motor_change_ms = self._now + recover_after_ms
            self._motor_resume_ms = self._motor_change_ms
            self._motor_after_change = MotorState.OK

    def repair_motor(self) -> None:
        """The motor turns again from now (a fault cleared by the test author)."""
        self._motor = MotorState.OK
        self._motor_change_ms = None
        self._motor_resume_ms = None

    def expose_to_magnet(self, scan_ms: int, recovery_ms: int) -> int:
        """An MRI scan or a strong magnet, starting now. Returns the volume it released.

        Peristaltic: the rotor stops for the scan, then stays stopped for the recovery
        delay (2-24 h in practice, H14). Valve-gated: the magnet opens the metering valves;
        the flow-activated valve lets through at most its limit (less against a blocked
        catheter), then closes and stays closed until reset (H15).
        """
        if scan_ms < 0 or recovery_ms < 0:
            raise ValueError("scan_ms and recovery_ms must be >= 0")
        self._magnet_exposures += 1
        if self._profile.flow_activated_valve:
            if self._valve_closed:
                return 0
            fluid = self._fluid
            released = fluid.displace(
                min(self._profile.valve_limit_nl, fluid.reservoir_nl), self._now, self._now
            )
            self._valve_released += released
            self._valve_closed = True
            return released
        if scan_ms == 0 and recovery_ms == 0:
            return 0
        self._motor = MotorState.STALLED
        self._motor_resume_ms = self._now + scan_ms + recovery_ms
        if scan_ms:
            self._motor_change_ms = self._now + scan_ms
            self._motor_after_change = MotorState.RECOVERING
        else:
            self._motor = MotorState.RECOVERING
            self._motor_change_ms = self._motor_resume_ms
            self._motor_after_change = MotorState.OK
        return 0

    def reset_flow_valve(self) -> bool:
        """Reopen a closed flow-activated valve (a clinician's reset). True if it was closed."""
        was_closed = self._valve_closed
        self._valve_closed = False
        return was_closed

    def set_catheter(self, state: CatheterState, leak_ppm: int = 0) -> int:
        """Change the catheter's state now. Returns the retained volume released, if any.

        ``OCCLUDED`` here is a full occlusion (``restrict_flow`` sets a partial, growing or
        intermittent one). Anything else releases the solution pressed into the compliance
        behind a block: at most ``catheter_compliance_nl``, never the drug that stayed in
        the reservoir (H13).
        """
        return self._fluid.set_catheter(state, self._now, leak_ppm)

    def restrict_flow(self, kind: Flow, ppm: int, span_ms: int = 0, closed_ms: int = 0) -> int:
        """Occlude the catheter from now (H13, H17 kink): ``PARTIAL`` lets ``ppm`` through
        (0: a full occlusion); ``GROWING`` falls from fully open to ``ppm`` over
        ``span_ms``; ``KINKED`` is closed ``closed_ms`` of every ``span_ms``. Returns the
        retained volume released (a restriction that is not a lasting block lets it go)."""
        return self._fluid.restrict_flow(kind, ppm, self._now, span_ms, closed_ms)

    def erode(self, leak_ppm: int) -> None:
        """Erosion through the skin: the device is exposed and the catheter leaks (H17)."""
        self._fluid.erode(leak_ppm, self._now)

    def set_flipped(self, flipped: bool) -> None:
        """The pump flips in its pocket (or is put back): a needle aimed at its septa
        misses them, so a refill goes into the pocket (H1)."""
        self._fluid.set_flipped(flipped)

    def set_bias(self, bias_ppm: int) -> None:
        """Change the mechanism's bias from now on (wear, H10 drift)."""
        if not -PPM < bias_ppm <= PPM:
            raise ValueError("bias_ppm must be in (-1_000_000, 1_000_000]")
        self._bias_base = self._bias_volume(self._bias_strokes)
        self._bias_strokes = 0
        self._bias_ppm = bias_ppm

    def drain_battery(self, nah: int) -> None:
        """A sudden loss of charge (feedthrough short, cell defect: H4, H6)."""
        if nah < 0:
            raise ValueError("nah must be >= 0")
        self._drained_nah += nah

    def telemetry_session(self) -> None:
        """A telemetry session drew its charge."""
        self._sessions += 1

    # -- the catheter access port (CAP) and the refill needle ---------------------------------

    def cap_aspirate(self, volume_nl: int) -> CapAspirated:
        """Aspirate ``volume_nl`` through the catheter access port now (emulator/fluid/path.py)."""
        return self._fluid.cap_aspirate(volume_nl, self._now)

    def cap_inject(self, volume_nl: int, concentration_ug_per_ml: int) -> CapInjected:
        """Inject through the catheter access port now (H2; emulator/fluid/path.py)."""
        return self._fluid.cap_inject(volume_nl, concentration_ug_per_ml, self._now)

    def withdraw_all(self) -> int:
        """Draw the whole residual out of the reservoir; return its volume (truth). A
        flipped pump's septum is missed: nothing comes back."""
        return self._fluid.withdraw_all()

    def inject(
        self, volume_nl: int, pocket_nl: int = 0, concentration_ug_per_ml: int | None = None
    ) -> int:
        """Inject ``volume_nl`` into the reservoir and ``pocket_nl`` into the pocket (H1), at
        ``concentration_ug_per_ml`` (default: the drug last put in); it mixes with the
        residual. Overflow, or everything on a flipped pump, goes into the pocket. Returns
        the volume that reached the reservoir."""
        return self._fluid.inject(volume_nl, pocket_nl, concentration_ug_per_ml)

    # -- persistence -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, PlantValue]:
        """Every field as plain JSON values, for Pump.snapshot(); the fluid path nested."""
        out: dict[str, PlantValue] = {}
        for name in _PLANT_FIELDS:
            value = getattr(self, name)
            out[name] = value.to_dict() if isinstance(value, FluidPath) else _plain(value)
        return out

    @classmethod
    def from_dict(cls, profile: Profile, data: dict[str, Any]) -> Plant:
        """Rebuild a plant; ValueError if a field is missing, unknown or mistyped."""
        if set(data) != set(_PLANT_FIELDS):
            raise ValueError(
                f"plant fields differ: missing {sorted(set(_PLANT_FIELDS) - set(data))}, "
                f"unknown {sorted(set(data) - set(_PLANT_FIELDS))}"
            )
        plant = cls.__new__(cls)
        plant._profile = profile
        for name in _PLANT_FIELDS:
            value = data[name]
            if name == "_fluid":
                plant._fluid = FluidPath.from_dict(profile, value)
                continue
            if value is not None and not isinstance(value, int):
                raise ValueError(f"plant field {name} must be an integer, got {value!r}")
            object.__setattr__(plant, name, value)
        plant._motor = MotorState(plant._motor)
        plant._motor_after_change = MotorState(plant._motor_after_change)
        return plant


PlantValue = int | bool | None | dict[str, FluidValue]
"""A plant field in a snapshot: an integer, a flag, nothing, or the fluid path's fields."""


def _plain(value: object) -> int | bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    raise TypeError(f"unexpected plant field value {value!r}")


_PLANT_FIELDS: tuple[str, ...] = tuple(n for n in Plant.__slots__ if n != "_profile")

"""The plant: the pump's physical truth (docs/architecture.md principle 3).

The plant holds what really is: the drug solution in the reservoir, the pump's internal path
and the catheter (volume *and* drug mass), the catheter's state, the motor's health, the
battery's charge, the flow-activated valve. Faults act here. The firmware never reads these
numbers directly; it learns only what its sensors report (a stalled motor, if the profile
has the sensor; the battery voltage), so a scenario can compare belief with truth (H1, H2,
H3, H10, H13, H17).

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

from emulator.fluid.catheter import PPM, AspirationResult, Flow, Restriction
from emulator.fluid.reservoir import mass_left
from emulator.fluid.slugs import MAX_SLUGS, SlugSeries
from emulator.profile import Profile
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


class CatheterState(IntEnum):
    OK = 0
    OCCLUDED = 1
    """Blocked in full or in part, for good, growing or on and off (``Flow``; H13)."""
    LEAKING = 2
    """A fraction (ppm) of the flow leaks into tissue (H17; an erosion too)."""
    DISCONNECTED = 3
    """Everything pumped goes into the tissue at the pump (H17)."""
    MIGRATED = 4
    """The tip has left the intrathecal space: everything goes elsewhere (systemic)."""


class MotorState(IntEnum):
    OK = 0
    STALLED = 1
    """Not turning: permanently (H5) or until a recovery time (H14)."""
    RECOVERING = 2
    """After an MRI scan the rotor stays stopped for a recovery delay (H14)."""


@dataclass(frozen=True, slots=True)
class CapAspirated:
    """What an aspiration through the catheter access port returned (plant truth)."""

    result: AspirationResult
    drug_nl: int
    """Drug solution drawn back out of the catheter."""
    drug_pg: int
    csf_nl: int
    """CSF drawn after the catheter's contents (only if the catheter is patent)."""


@dataclass(frozen=True, slots=True)
class CapInjected:
    """What became of a catheter access port injection (H2): the pump is bypassed."""

    volume_nl: int
    """Solution that went in (0: the catheter is blocked, the syringe meets resistance)."""
    mass_pg: int
    into_pocket: bool
    """The needle missed the port (a flipped pump): the injection is a pocket dose."""


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
    """Physical truth of one implanted pump. Times are integer ms; ``now`` is an argument."""

    __slots__ = (
        "_aspirated",
        "_aspirated_pg",
        "_bias_base",
        "_bias_ppm",
        "_bias_strokes",
        "_cap_injected",
        "_cap_injected_pg",
        "_catheter",
        "_catheter_state",
        "_catheter_volume",
        "_conc",
        "_csf_aspirated",
        "_delivered",
        "_delivered_pg",
        "_drained_nah",
        "_dry",
        "_exposed",
        "_flipped",
        "_flow_closed_ms",
        "_flow_kind",
        "_flow_ppm",
        "_flow_span_ms",
        "_flow_start_ms",
        "_initial",
        "_initial_pg",
        "_injected",
        "_injected_pg",
        "_leak_flow",
        "_leak_ppm",
        "_leaked",
        "_leaked_pg",
        "_magnet_exposures",
        "_misplaced",
        "_misplaced_pg",
        "_motor",
        "_motor_after_change",
        "_motor_change_ms",
        "_motor_resume_ms",
        "_now",
        "_path",
        "_pocket",
        "_pocket_pg",
        "_profile",
        "_pumped",
        "_res_segment_nl",
        "_res_segment_pg",
        "_reservoir",
        "_retained",
        "_retained_pg",
        "_sessions",
        "_start_ms",
        "_stroke_nl",
        "_strokes_attempted",
        "_valve_closed",
        "_valve_released",
        "_withdrawn",
        "_withdrawn_pg",
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
        self._catheter_volume = profile.catheter_volume_nl(catheter_length_cm)
        self._init_fluid(reservoir_nl, catheter_primed, drug_concentration_ug_per_ml)
        self._pumped = 0
        self._dry = 0
        self._valve_released = 0
        self._strokes_attempted = 0
        # Bias segment: volume moved is base + f(strokes since the bias last changed).
        self._bias_ppm = profile.mechanical_bias_ppm
        self._bias_base = 0
        self._bias_strokes = 0
        # Leak segment: the loss is recomputed from the flow since the leak last changed.
        self._catheter_state = CatheterState.OK
        self._leak_ppm = 0
        self._leak_flow = 0
        self._motor = MotorState.OK
        self._motor_change_ms: int | None = None
        self._motor_after_change = MotorState.OK
        self._motor_resume_ms: int | None = None
        self._valve_closed = False
        self._magnet_exposures = 0
        self._drained_nah = 0
        self._sessions = 0

    def _init_fluid(self, reservoir_nl: int, catheter_primed: bool, conc_ug_per_ml: int) -> None:
        """Drug along the fluid path at implant, every total at 0."""
        conc = _concentration(conc_ug_per_ml)
        self._conc = conc
        self._reservoir = reservoir_nl
        self._res_segment_nl = reservoir_nl
        self._res_segment_pg = reservoir_nl * conc
        # The internal path is full of drug from the pump's own priming before implant.
        path = self._profile.internal_path_nl
        self._path = SlugSeries([[path, path * conc]] if path else None)
        catheter = self._catheter_volume if catheter_primed else 0
        self._catheter = SlugSeries([[catheter, catheter * conc]] if catheter else None)
        self._initial = reservoir_nl + path + catheter
        self._initial_pg = self._initial * conc
        self._injected = self._injected_pg = 0
        self._cap_injected = self._cap_injected_pg = 0
        self._retained = self._retained_pg = 0
        self._delivered = self._delivered_pg = 0
        self._misplaced = self._misplaced_pg = 0
        self._leaked = self._leaked_pg = 0
        self._pocket = self._pocket_pg = 0
        self._withdrawn = self._withdrawn_pg = 0
        self._aspirated = self._aspirated_pg = 0
        self._csf_aspirated = 0
        # Flow restriction (emulator/fluid/catheter.py): OPEN unless occluded.
        self._flow_kind = Flow.OPEN
        self._flow_ppm = PPM
        self._flow_start_ms = self._start_ms
        self._flow_span_ms = 0
        self._flow_closed_ms = 0
        self._exposed = False
        self._flipped = False

    # -- observation -----------------------------------------------------------------------

    @property
    def now_ms(self) -> int:
        return self._now

    @property
    def catheter_volume_nl(self) -> int:
        return self._catheter_volume

    @property
    def motor(self) -> MotorState:
        return self._motor

    @property
    def reservoir_nl(self) -> int:
        return self._reservoir

    @property
    def reservoir_pg(self) -> int:
        return mass_left(self._reservoir, self._res_segment_nl, self._res_segment_pg)

    @property
    def drug_concentration_ug_per_ml(self) -> int:
        """The strength of the drug last put into the reservoir (plant truth)."""
        return self._conc

    def battery_nah(self, now_ms: int | None = None) -> int:
        """Charge left at ``now_ms`` (default: the plant's now), floored at 0."""
        t = self._now if now_ms is None else now_ms
        p = self._profile
        used = (
            p.battery_nah_per_hour_idle * (t - self._start_ms) // MS_PER_HOUR
            + p.battery_nah_per_stroke * self._strokes_attempted
            + p.battery_nah_per_session * self._sessions
            + self._drained_nah
        )
        return max(0, p.battery_capacity_nah - used)

    def can_move(self) -> bool:
        """Would a commanded stroke move fluid now? (The firmware may only sense part of it.)"""
        return self._motor is MotorState.OK and not self._valve_closed and self.battery_nah() > 0

    def next_event_ms(self) -> int | None:
        """The next time the plant changes by itself (a motor recovery; an inflammatory mass
        closing the catheter for good), or None."""
        times = [self._motor_change_ms]
        if self._flow_kind is Flow.GROWING:
            grown = self._flow_start_ms + self._flow_span_ms
            if grown > self._now:
                times.append(grown)
        return min((t for t in times if t is not None), default=None)

    def restriction(self) -> Restriction:
        """The catheter's flow restriction now (emulator/fluid/catheter.py)."""
        return Restriction(
            self._flow_kind,
            self._flow_ppm,
            self._flow_start_ms,
            self._flow_span_ms,
            self._flow_closed_ms,
        )

    def delivered_fraction_ppm(self, at_ms: int | None = None) -> int:
        """The share of pushed flow that passes the catheter at ``at_ms`` (default now)."""
        return self.restriction().at(self._now if at_ms is None else at_ms)

    def truth(self) -> PlantTruth:
        tip_first = tuple((v, m) for v, m in self._catheter.slugs())
        return PlantTruth(
            time_ms=self._now,
            initial_nl=self._initial,
            injected_nl=self._injected,
            reservoir_nl=self._reservoir,
            catheter_nl=self._catheter.volume_nl,
            catheter_volume_nl=self._catheter_volume,
            retained_nl=self._retained,
            delivered_nl=self._delivered,
            leaked_nl=self._leaked,
            pocket_nl=self._pocket,
            withdrawn_nl=self._withdrawn,
            pumped_nl=self._pumped,
            dry_nl=self._dry,
            valve_released_nl=self._valve_released,
            strokes_attempted=self._strokes_attempted,
            battery_nah=self.battery_nah(),
            motor=self._motor,
            motor_resume_ms=self._motor_resume_ms,
            catheter=self._catheter_state,
            leak_ppm=self._leak_ppm,
            bias_ppm=self._bias_ppm,
            valve_closed=self._valve_closed,
            magnet_exposures=self._magnet_exposures,
            path_nl=self._path.volume_nl,
            misplaced_nl=self._misplaced,
            cap_injected_nl=self._cap_injected,
            aspirated_nl=self._aspirated,
            csf_aspirated_nl=self._csf_aspirated,
            initial_pg=self._initial_pg,
            injected_pg=self._injected_pg,
            cap_injected_pg=self._cap_injected_pg,
            reservoir_pg=self.reservoir_pg,
            path_pg=self._path.mass_pg,
            catheter_pg=self._catheter.mass_pg,
            retained_pg=self._retained_pg,
            delivered_pg=self._delivered_pg,
            misplaced_pg=self._misplaced_pg,
            leaked_pg=self._leaked_pg,
            pocket_pg=self._pocket_pg,
            withdrawn_pg=self._withdrawn_pg,
            aspirated_pg=self._aspirated_pg,
            catheter_slugs=tip_first,
            flow=self._flow_kind,
            delivered_fraction_ppm=self.delivered_fraction_ppm(),
            exposed=self._exposed,
            flipped=self._flipped,
            drug_concentration_ug_per_ml=self._conc,
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
        moved = self._move(strokes, now_ms) if strokes > 0 else 0
        self.update(now_ms)
        return moved

    def _move(self, strokes: int, until_ms: int | None = None) -> int:
        moving = self.can_move()
        self._strokes_attempted += strokes
        if not moving:
            return 0
        before = self._bias_volume(self._bias_strokes)
        self._bias_strokes += strokes
        wanted = self._bias_volume(self._bias_strokes) - before
        end = self._now if until_ms is None else until_ms
        return self._displace(max(wanted, 0), self._now, end)

    def _bias_volume(self, strokes: int) -> int:
        nominal = strokes * self._stroke_nl
        return self._bias_base + nominal + nominal * self._bias_ppm // PPM

    def _displace(self, wanted: int, t0: int, t1: int) -> int:
        """The mechanism pushes ``wanted`` nL over (t0, t1]: what really leaves the reservoir.

        Against a restriction only its delivered fraction flows (mean over the interval,
        emulator/fluid/catheter.py). Against a closed catheter the mechanism first fills
        the compliance upstream of the block (at most ``catheter_compliance_nl``), then
        moves nothing: the back-pressure is bounded and the drug stays in the reservoir
        (H13: a peristaltic rotor or a valve-gated accumulator cannot push a closed tube).
        Returns the volume that left the reservoir.
        """
        if wanted <= 0:
            return 0
        kind = self._flow_kind
        stored = 0
        if kind is Flow.OPEN:
            through = wanted
        else:
            restriction = self.restriction()
            if t1 > t0:
                num, den = restriction.integral(t0, t1)
                through = wanted * num // (den * PPM * (t1 - t0))
            else:
                through = wanted * restriction.at(t0) // PPM
            # A kink's compliance fills and empties within each cycle: only a lasting
            # block keeps drug pressed upstream (released at a repair).
            if kind is not Flow.KINKED and restriction.at(t1) == 0:
                room = max(self._profile.catheter_compliance_nl - self._retained, 0)
                stored = min(wanted - through, room)
        through_out = min(through, self._reservoir)
        stored_out = min(stored, self._reservoir - through_out)
        moved = through_out + stored_out
        self._dry += through + stored - moved
        if not moved:
            return 0
        mass = self._draw(moved)
        stored_pg = mass * stored_out // moved
        self._retained += stored_out
        self._retained_pg += stored_pg
        self._pumped += moved
        self._route(through_out, mass - stored_pg)
        return moved

    def _draw(self, volume: int) -> int:
        """Take ``volume`` out of the well-mixed reservoir; returns its drug mass."""
        before = self.reservoir_pg
        self._reservoir -= volume
        return before - self.reservoir_pg

    def _route(self, volume: int, mass: int) -> None:
        """Solution that left the reservoir goes through the internal path (first in, first
        out), then down the catheter."""
        if volume <= 0:
            return
        if not self._path.volume_nl:
            self._to_catheter(volume, mass)
            return
        self._path.push(volume, mass)
        for piece, piece_pg in self._path.pop_pieces(volume):
            self._to_catheter(piece, piece_pg)

    def _to_catheter(self, volume: int, mass: int) -> None:
        """Solution at the catheter's connector (from the path, a repair, or the CAP)."""
        if volume <= 0:
            return
        if self._catheter_state is CatheterState.DISCONNECTED:
            self._leaked += volume
            self._leaked_pg += mass
            return
        lost = 0
        lost_pg = 0
        if self._leak_ppm:
            before = self._leak_flow * self._leak_ppm // PPM
            self._leak_flow += volume
            lost = self._leak_flow * self._leak_ppm // PPM - before
            lost_pg = mass * lost // volume
            self._leaked += lost
            self._leaked_pg += lost_pg
        self._into_catheter(volume - lost, mass - lost_pg)

    def _into_catheter(self, volume: int, mass: int) -> None:
        """Solution enters the catheter; what it pushes out of the tip arrives.

        Where the catheter still holds CSF or sterile water (not primed, after a CAP
        aspiration), the solution fills it first; mixing at the front (H3, the
        priming-bolus labeling update) carries ``priming_dispersion_ppm`` of the drug that
        fills it ahead with the fluid it displaces, so drug arrives before the catheter is
        full and the filled column holds less: a period of lower concentration follows.
        """
        if volume <= 0:
            if mass:
                self._arrive(0, mass)
            return
        catheter = self._catheter
        room = self._catheter_volume - catheter.volume_nl
        if room > 0:
            fill = min(volume, room)
            fill_pg = mass * fill // volume
            early = fill_pg * self._profile.priming_dispersion_ppm // PPM
            catheter.push(fill, fill_pg - early)
            if early:
                self._arrive(0, early)
            volume -= fill
            mass -= fill_pg
        if volume:
            catheter.push(volume, mass)
            self._arrive(volume, catheter.pop(volume))

    def _arrive(self, volume: int, mass: int) -> None:
        """Solution leaves the catheter's tip: into the CSF, or elsewhere if it migrated."""
        if self._catheter_state is CatheterState.MIGRATED:
            self._misplaced += volume
            self._misplaced_pg += mass
        else:
            self._delivered += volume
            self._delivered_pg += mass

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
            released = self._displace(
                min(self._profile.valve_limit_nl, self._reservoir), self._now, self._now
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
        if state is CatheterState.LEAKING:
            if not 1 <= leak_ppm <= PPM:
                raise ValueError("a leaking catheter needs 1 <= leak_ppm <= 1_000_000")
        elif leak_ppm:
            raise ValueError("leak_ppm applies only to CatheterState.LEAKING")
        if state is CatheterState.OCCLUDED:
            return self.restrict_flow(Flow.PARTIAL, 0)
        # Close the leak segment so the new fraction applies only to flow from now on.
        self._leak_flow = 0
        self._leak_ppm = leak_ppm
        self._catheter_state = state
        self._exposed = False
        self._set_flow(Flow.OPEN, PPM, 0, 0)
        return self._release()

    def restrict_flow(self, kind: Flow, ppm: int, span_ms: int = 0, closed_ms: int = 0) -> int:
        """Occlude the catheter from now (H13, H17 kink): ``PARTIAL`` lets ``ppm`` through
        (0: a full occlusion); ``GROWING`` falls from fully open to ``ppm`` over
        ``span_ms``; ``KINKED`` is closed ``closed_ms`` of every ``span_ms``. Returns the
        retained volume released (a restriction that is not a lasting block lets it go)."""
        if kind is Flow.OPEN:
            raise ValueError("restrict_flow needs PARTIAL, GROWING or KINKED")
        if not 0 <= ppm <= PPM:
            raise ValueError("ppm must be 0..1_000_000")
        if kind is Flow.GROWING and span_ms < 1:
            raise ValueError("a growing mass needs span_ms >= 1")
        if span_ms < 0 or (kind is Flow.KINKED and not 0 <= closed_ms <= span_ms):
            raise ValueError("a kink needs 0 <= closed_ms <= span_ms")
        if kind is Flow.KINKED and span_ms < 1:
            raise ValueError("a kink needs span_ms >= 1")
        self._leak_flow = 0
        self._leak_ppm = 0
        self._catheter_state = CatheterState.OCCLUDED
        self._exposed = False
        self._set_flow(kind, ppm, span_ms, closed_ms)
        # A lasting block keeps what it holds; anything that lets flow through releases it.
        lasting = kind is Flow.PARTIAL and ppm == 0
        return 0 if lasting else self._release()

    def _set_flow(self, kind: Flow, ppm: int, span_ms: int, closed_ms: int) -> None:
        self._flow_kind = kind
        self._flow_ppm = ppm
        self._flow_start_ms = self._now
        self._flow_span_ms = span_ms
        self._flow_closed_ms = closed_ms

    def _release(self) -> int:
        released, self._retained = self._retained, 0
        released_pg, self._retained_pg = self._retained_pg, 0
        self._to_catheter(released, released_pg)
        return released

    def erode(self, leak_ppm: int) -> None:
        """Erosion through the skin: the device is exposed and the catheter leaks."""
        self.set_catheter(CatheterState.LEAKING, leak_ppm)
        self._exposed = True

    def set_flipped(self, flipped: bool) -> None:
        """The pump flips in its pocket (or is put back): a needle aimed at its septa
        misses them, so a refill goes into the pocket (H1)."""
        self._flipped = flipped

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

    # -- the catheter access port (CAP) -----------------------------------------------------

    def cap_aspirate(self, volume_nl: int) -> CapAspirated:
        """Aspirate ``volume_nl`` through the catheter access port now (a patency check).

        Patent catheter: its solution comes back first (newest first), then CSF; the
        catheter refills with CSF, so the next flow must fill it again (H3). Blocked
        (occlusion, closed kink, grown mass) or a flipped pump: nothing. Migrated tip: the
        catheter's solution, then nothing (no CSF). Disconnected: no CSF, and the catheter's
        contents are not reached (docs/pump-model.md, "Catheter faults").
        """
        if volume_nl < 0:
            raise ValueError("volume_nl must be >= 0")
        state = self._catheter_state
        blocked = state is CatheterState.OCCLUDED and self.delivered_fraction_ppm() == 0
        if self._flipped or blocked:
            return CapAspirated(AspirationResult.NO_FLOW, 0, 0, 0)
        if state is CatheterState.DISCONNECTED:
            return CapAspirated(AspirationResult.NO_CSF, 0, 0, 0)
        drug = min(volume_nl, self._catheter.volume_nl)
        drug_pg = self._catheter.pop_newest(drug)
        self._aspirated += drug
        self._aspirated_pg += drug_pg
        if state is CatheterState.MIGRATED:
            return CapAspirated(AspirationResult.NO_CSF, drug, drug_pg, 0)
        csf = volume_nl - drug
        self._csf_aspirated += csf
        return CapAspirated(AspirationResult.CSF, drug, drug_pg, csf)

    def cap_inject(self, volume_nl: int, concentration_ug_per_ml: int) -> CapInjected:
        """Inject solution through the catheter access port now (H2): it bypasses the
        reservoir, the mechanism and every limit, and pushes the catheter's contents out
        of the tip ahead of it. A blocked catheter takes nothing; a flipped pump's port is
        missed and the injection goes into the pocket."""
        if volume_nl < 0:
            raise ValueError("volume_nl must be >= 0")
        conc = _concentration(concentration_ug_per_ml)
        mass = volume_nl * conc
        if self._flipped:
            self._cap_injected += volume_nl
            self._cap_injected_pg += mass
            self._pocket += volume_nl
            self._pocket_pg += mass
            return CapInjected(volume_nl, mass, True)
        state = self._catheter_state
        if state is CatheterState.OCCLUDED and self.delivered_fraction_ppm() == 0:
            return CapInjected(0, 0, False)
        self._cap_injected += volume_nl
        self._cap_injected_pg += mass
        self._to_catheter(volume_nl, mass)
        return CapInjected(volume_nl, mass, False)

    # -- refill (the clinician's needle) -----------------------------------------------------

    def withdraw_all(self) -> int:
        """Draw the whole residual out of the reservoir; return its volume (truth). A
        flipped pump's septum is missed: nothing comes back."""
        if self._flipped:
            return 0
        mass = self.reservoir_pg
        volume, self._reservoir = self._reservoir, 0
        self._withdrawn += volume
        self._withdrawn_pg += mass
        return volume

    def inject(
        self, volume_nl: int, pocket_nl: int = 0, concentration_ug_per_ml: int | None = None
    ) -> int:
        """Inject ``volume_nl`` into the reservoir and ``pocket_nl`` into the pocket (H1), at
        ``concentration_ug_per_ml`` (default: the drug last put in). The new solution mixes
        with the residual (well mixed).

        What does not fit in the reservoir's capacity overflows into the pocket too; on a
        flipped pump all of it does. Returns the volume that reached the reservoir.
        """
        if volume_nl < 0 or pocket_nl < 0:
            raise ValueError("volumes must be >= 0")
        conc = self._conc if concentration_ug_per_ml is None else concentration_ug_per_ml
        conc = _concentration(conc)
        room = 0 if self._flipped else self._profile.reservoir_capacity_nl - self._reservoir
        into = min(volume_nl, room)
        outside = pocket_nl + (volume_nl - into)
        if into:
            mixed = self.reservoir_pg + into * conc
            self._reservoir += into
            self._res_segment_nl = self._reservoir
            self._res_segment_pg = mixed
        self._pocket += outside
        self._pocket_pg += outside * conc
        self._injected += volume_nl + pocket_nl
        self._injected_pg += (volume_nl + pocket_nl) * conc
        self._conc = conc
        return into

    # -- persistence -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, PlantValue]:
        """Every field as plain JSON values, for Pump.snapshot()."""
        return {name: _plain(getattr(self, name)) for name in _PLANT_FIELDS}

    @classmethod
    def from_dict(cls, profile: Profile, data: dict[str, PlantValue]) -> Plant:
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
            if name in _SERIES_FIELDS:
                object.__setattr__(plant, name, _series(name, value))
                continue
            if value is not None and not isinstance(value, int):
                raise ValueError(f"plant field {name} must be an integer, got {value!r}")
            object.__setattr__(plant, name, value)
        plant._catheter_state = CatheterState(plant._catheter_state)
        plant._motor = MotorState(plant._motor)
        plant._motor_after_change = MotorState(plant._motor_after_change)
        plant._flow_kind = Flow(plant._flow_kind)
        return plant


PlantValue = int | bool | None | list[list[int]]
"""A plant field in a snapshot: an integer, a flag, nothing, or slugs ``[[nL, pg], ...]``."""

_SERIES_FIELDS = frozenset({"_path", "_catheter"})


MAX_CONCENTRATION_UG_PER_ML = 1_000_000
"""1 g/mL: no solution is stronger; it keeps every cumulative mass far inside u64 (a
snapshot's bound) for centuries of refills."""


def _concentration(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"a concentration is an int in ug/mL, got {value!r}")
    if not 0 <= value <= MAX_CONCENTRATION_UG_PER_ML:
        raise ValueError(f"a concentration is 0..{MAX_CONCENTRATION_UG_PER_ML} ug/mL, got {value}")
    return value


def _series(name: str, value: object) -> SlugSeries:
    if not isinstance(value, list) or len(value) > MAX_SLUGS:
        raise ValueError(f"plant field {name} must be a list of at most {MAX_SLUGS} slugs")
    slugs: list[list[int]] = []
    for slug in value:
        if (
            not isinstance(slug, list)
            or len(slug) != 2
            or any(isinstance(x, bool) or not isinstance(x, int) for x in slug)
            or slug[0] < 1
            or slug[1] < 0
        ):
            raise ValueError(f"plant field {name}: a slug is [volume_nl >= 1, mass_pg >= 0]")
        slugs.append([slug[0], slug[1]])
    return SlugSeries.restore(slugs)


def _plain(value: object) -> PlantValue:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, SlugSeries):
        return value.slugs()
    raise TypeError(f"unexpected plant field value {value!r}")


_PLANT_FIELDS: tuple[str, ...] = tuple(n for n in Plant.__slots__ if n != "_profile")

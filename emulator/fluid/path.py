"""Drug solution from the reservoir to the catheter's tip, exact in nL and pg.

``FluidPath`` is the part of the plant (emulator/plant.py) that holds the drug: the
well-mixed reservoir (emulator/fluid/reservoir.py), the pump's internal path and the
catheter as ordered series of slugs (emulator/fluid/slugs.py), the catheter's state and
flow restriction (emulator/fluid/catheter.py), and every cumulative total in and out. The
plant's mechanism says how much it pushes (``displace``); this module says where it goes.
Times are arguments (``now_ms``), never read.

Conserved exactly, in volume and in mass (docs/pump-model.md, "Drug in the fluid path")::

    initial + injected + cap_injected == reservoir + path + catheter + retained
                                         + delivered + misplaced + leaked + pocket
                                         + withdrawn + aspirated
"""

from __future__ import annotations

from typing import Any

from emulator.cache_checks import CHECK_ALL, CacheCheckError
from emulator.fluid.catheter import (
    PPM,
    AspirationResult,
    CapAspirated,
    CapInjected,
    CatheterState,
    Flow,
    Restriction,
)
from emulator.fluid.reservoir import mass_left
from emulator.fluid.slugs import MAX_SLUGS, SlugSeries
from emulator.profile import Profile

__all__ = ["FLUID_FIELDS", "MAX_CONCENTRATION_UG_PER_ML", "FluidPath", "FluidValue"]

FluidValue = int | bool | list[list[int]]
"""A fluid-path field in a snapshot: an integer, a flag, or slugs ``[[nL, pg], ...]``."""


class FluidPath:
    """Where the drug is, from the reservoir to the tip (and elsewhere)."""

    __slots__ = (
        "_aspirated",
        "_aspirated_pg",
        "_cap_injected",
        "_cap_injected_pg",
        "_catheter",
        "_catheter_state",
        "_catheter_volume",
        "_conc",
        "_csf_aspirated",
        "_delivered",
        "_delivered_pg",
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
        "_misplaced",
        "_misplaced_pg",
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
        "_steady",
        "_withdrawn",
        "_withdrawn_pg",
    )

    def __init__(
        self,
        profile: Profile,
        start_ms: int,
        reservoir_nl: int,
        catheter_volume_nl: int,
        *,
        catheter_primed: bool,
        concentration_ug_per_ml: int,
    ) -> None:
        """Drug along the fluid path at implant, every total at 0."""
        self._profile = profile
        self._catheter_volume = catheter_volume_nl
        self._pumped = 0
        self._dry = 0
        self._catheter_state = CatheterState.OK
        self._leak_ppm = 0
        self._leak_flow = 0
        conc = _concentration(concentration_ug_per_ml)
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
        self._flow_start_ms = start_ms
        self._flow_span_ms = 0
        self._flow_closed_ms = 0
        self._exposed = False
        self._flipped = False
        self._steady = False  # slicing_invariant's last answer still holds (not saved)

    # -- observation -----------------------------------------------------------------------

    @property
    def reservoir_nl(self) -> int:
        return self._reservoir

    @property
    def reservoir_pg(self) -> int:
        return mass_left(self._reservoir, self._res_segment_nl, self._res_segment_pg)

    @property
    def catheter_volume_nl(self) -> int:
        return self._catheter_volume

    @property
    def concentration_ug_per_ml(self) -> int:
        """The strength of the drug last put into the reservoir (plant truth)."""
        return self._conc

    def restriction(self) -> Restriction:
        """The catheter's flow restriction now (emulator/fluid/catheter.py)."""
        return Restriction(
            self._flow_kind,
            self._flow_ppm,
            self._flow_start_ms,
            self._flow_span_ms,
            self._flow_closed_ms,
        )

    def delivered_fraction_ppm(self, at_ms: int) -> int:
        """The share of pushed flow that passes the catheter at ``at_ms``."""
        return self.restriction().at(at_ms)

    def next_event_ms(self, now_ms: int) -> int | None:
        """When a growing mass closes the catheter for good, if that is still to come."""
        if self._flow_kind is Flow.GROWING:
            grown = self._flow_start_ms + self._flow_span_ms
            if grown > now_ms:
                return grown
        return None

    def truth_fields(self, now_ms: int) -> dict[str, Any]:
        """The fluid path's ``PlantTruth`` fields (emulator/plant.py)."""
        return {
            "initial_nl": self._initial,
            "injected_nl": self._injected,
            "reservoir_nl": self._reservoir,
            "catheter_nl": self._catheter.volume_nl,
            "catheter_volume_nl": self._catheter_volume,
            "retained_nl": self._retained,
            "delivered_nl": self._delivered,
            "leaked_nl": self._leaked,
            "pocket_nl": self._pocket,
            "withdrawn_nl": self._withdrawn,
            "pumped_nl": self._pumped,
            "dry_nl": self._dry,
            "catheter": self._catheter_state,
            "leak_ppm": self._leak_ppm,
            "path_nl": self._path.volume_nl,
            "misplaced_nl": self._misplaced,
            "cap_injected_nl": self._cap_injected,
            "aspirated_nl": self._aspirated,
            "csf_aspirated_nl": self._csf_aspirated,
            "initial_pg": self._initial_pg,
            "injected_pg": self._injected_pg,
            "cap_injected_pg": self._cap_injected_pg,
            "reservoir_pg": self.reservoir_pg,
            "path_pg": self._path.mass_pg,
            "catheter_pg": self._catheter.mass_pg,
            "retained_pg": self._retained_pg,
            "delivered_pg": self._delivered_pg,
            "misplaced_pg": self._misplaced_pg,
            "leaked_pg": self._leaked_pg,
            "pocket_pg": self._pocket_pg,
            "withdrawn_pg": self._withdrawn_pg,
            "aspirated_pg": self._aspirated_pg,
            "catheter_slugs": tuple((v, m) for v, m in self._catheter.slugs()),
            "flow": self._flow_kind,
            "delivered_fraction_ppm": self.delivered_fraction_ppm(now_ms),
            "exposed": self._exposed,
            "flipped": self._flipped,
            "drug_concentration_ug_per_ml": self._conc,
        }

    # -- the mechanism pushes; the solution goes where the catheter lets it ----------------

    def slicing_invariant(self) -> bool:
        """Whether pushing volumes v1, v2, ... one call each ends exactly as pushing their
        sum in one call: open flow, no leak, a full catheter, and one integer strength (pg
        per nL) in the reservoir mixture, the internal path and the catheter, each tube one
        slug. Then every mass split (``_draw``, ``SlugSeries.through``) is exact, so no
        rounding depends on how time was sliced into steps, and the pump may skip the
        steps a flex boundary would otherwise make (docs/pump-model.md, "Time")."""
        if self._steady:
            # Known from the last answer: only solution of the tubes' own strength passed
            # since (``displace``), and every other change cleared it.
            if CHECK_ALL.on and not self._compute_slicing_invariant():
                raise CacheCheckError("the fluid path was kept steady but no longer is")
            return True
        steady = self._steady = self._compute_slicing_invariant()
        return steady

    def _compute_slicing_invariant(self) -> bool:
        if self._flow_kind is not Flow.OPEN or self._leak_ppm:
            return False
        if self._catheter_state not in (CatheterState.OK, CatheterState.MIGRATED):
            return False
        catheter = self._catheter
        if catheter.volume_nl < self._catheter_volume or len(catheter) != 1:
            return False
        if catheter.mass_pg % catheter.volume_nl:
            return False
        strength = catheter.mass_pg // catheter.volume_nl
        path = self._path
        if len(path) > 1 or path.mass_pg != strength * path.volume_nl:
            return False
        return self._res_segment_pg == strength * self._res_segment_nl

    def displace(self, wanted: int, t0: int, t1: int) -> int:
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
        steady = self._steady
        if steady and not CHECK_ALL.on:
            # Steady (slicing_invariant holds): open flow, no leak, a full catheter, and
            # the reservoir, the internal path and the catheter each one slug of one whole
            # strength. Solution of that strength passing through leaves both tubes exactly
            # as they were (SlugSeries.through gives out what went in, to the picogram), so
            # only the totals move. In check mode the general path below runs instead and
            # checks that it did just this.
            reservoir = self._reservoir
            moved = wanted if wanted < reservoir else reservoir
            self._dry += wanted - moved
            if moved:
                self._pumped += moved
                # _draw, inlined: the reservoir holds one whole strength (steady), so the
                # mass drawn is the segment's share of what left, exactly as _draw gives.
                segment_nl = self._res_segment_nl
                self._reservoir = left = reservoir - moved
                if segment_nl <= 0:
                    mass = 0
                else:
                    segment_pg = self._res_segment_pg
                    after = segment_pg * left // segment_nl if left > 0 else 0
                    mass = segment_pg * reservoir // segment_nl - after
                if self._catheter_state is CatheterState.MIGRATED:
                    self._misplaced += moved
                    self._misplaced_pg += mass
                else:
                    self._delivered += moved
                    self._delivered_pg += mass
            return moved
        self._steady = False  # kept below only where the slugs stay as they were
        if self._flow_kind is Flow.OPEN:
            # The common case, every pump step: no restriction, nothing held back.
            reservoir = self._reservoir
            moved = wanted if wanted < reservoir else reservoir
            self._dry += wanted - moved
            if moved:
                self._pumped += moved
                drawn = mass = self._draw(moved)
                tubes = (self._path.slugs(), self._catheter.slugs()) if steady else None
                # _route's common case, inlined: a steady internal path passes it through.
                path = self._path
                if path.volume_nl:
                    out = path.through(moved, mass)
                    if out is None:  # a slug boundary in the path: nothing was done
                        self._route(moved, mass)
                        return moved
                    mass = out
                if self._to_catheter(moved, mass):
                    # Solution of the tubes' own strength passed through both as one slug
                    # each, drawn from a reservoir of that strength: slicing_invariant's
                    # answer is unchanged (a whole-strength slug stays whole, exactly).
                    self._steady = steady
                if tubes is not None and (
                    mass != drawn or tubes != (self._path.slugs(), self._catheter.slugs())
                ):  # check mode (steady, above): the fast path's claim, checked
                    raise CacheCheckError("a steady fluid path changed as solution passed")
            else:
                self._steady = steady  # nothing moved
            return moved
        return self._displace_restricted(wanted, t0, t1)

    def _displace_restricted(self, wanted: int, t0: int, t1: int) -> int:
        """``displace`` against a flow restriction (any flow but OPEN)."""
        kind = self._flow_kind
        stored = 0
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
        # mass_left before and after, inlined (every pump step).
        segment_nl = self._res_segment_nl
        reservoir = self._reservoir
        self._reservoir = left = reservoir - volume
        if reservoir <= 0 or segment_nl <= 0:
            return 0  # nothing was left before (left <= reservoir), nothing is now
        segment_pg = self._res_segment_pg
        after = segment_pg * left // segment_nl if left > 0 else 0
        return segment_pg * reservoir // segment_nl - after

    def _route(self, volume: int, mass: int) -> None:
        """Solution that left the reservoir goes through the internal path (first in, first
        out), then down the catheter."""
        if volume <= 0:
            return
        path = self._path
        if not path.volume_nl:
            self._to_catheter(volume, mass)
            return
        out = path.through(volume, mass)
        if out is not None:
            self._to_catheter(volume, out)
            return
        path.push(volume, mass)
        pieces = path.pop_pieces(volume)
        if len(pieces) == 1:
            self._to_catheter(volume, pieces[0][1])
            return
        for piece, piece_pg in pieces:
            self._to_catheter(piece, piece_pg)

    def _to_catheter(self, volume: int, mass: int) -> bool:
        """Solution at the catheter's connector (from the path, a repair, or the CAP).
        True when it passed a full, whole catheter of its own strength as one slug
        (``SlugSeries.through``): the catheter's slugs are as they were."""
        if volume <= 0:
            return False
        state = self._catheter_state
        if state is CatheterState.DISCONNECTED:
            self._leaked += volume
            self._leaked_pg += mass
            return False
        catheter = self._catheter
        if not self._leak_ppm and catheter.volume_nl >= self._catheter_volume:
            # The common case, every pump step: a full, whole catheter pushes out what
            # goes in.
            out = catheter.through(volume, mass)
            passed = out is not None
            if out is None:
                catheter.push(volume, mass)
                out = catheter.pop(volume)
            if state is CatheterState.MIGRATED:
                self._misplaced += volume
                self._misplaced_pg += out
            else:
                self._delivered += volume
                self._delivered_pg += out
            return passed
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
        return False

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

    # -- catheter faults (docs/pump-model.md, "Catheter and pocket physics") ------------

    def set_catheter(self, state: CatheterState, now_ms: int, leak_ppm: int = 0) -> int:
        """Change the catheter's state now. Returns the retained volume released, if any.

        ``OCCLUDED`` here is a full occlusion (``restrict_flow`` sets a partial, growing or
        intermittent one). Anything else releases the solution pressed into the compliance
        behind a block: at most ``catheter_compliance_nl``, never the drug that stayed in
        the reservoir (H13).
        """
        self._steady = False  # any change but a pass-through (slicing_invariant)
        if state is CatheterState.LEAKING:
            if not 1 <= leak_ppm <= PPM:
                raise ValueError("a leaking catheter needs 1 <= leak_ppm <= 1_000_000")
        elif leak_ppm:
            raise ValueError("leak_ppm applies only to CatheterState.LEAKING")
        if state is CatheterState.OCCLUDED:
            return self.restrict_flow(Flow.PARTIAL, 0, now_ms)
        # Close the leak segment so the new fraction applies only to flow from now on.
        self._leak_flow = 0
        self._leak_ppm = leak_ppm
        self._catheter_state = state
        self._exposed = False
        self._set_flow(Flow.OPEN, PPM, 0, 0, now_ms)
        return self._release()

    def restrict_flow(
        self, kind: Flow, ppm: int, now_ms: int, span_ms: int = 0, closed_ms: int = 0
    ) -> int:
        """Occlude the catheter from now (H13, H17 kink): ``PARTIAL`` lets ``ppm`` through
        (0: a full occlusion); ``GROWING`` falls from fully open to ``ppm`` over
        ``span_ms``; ``KINKED`` is closed ``closed_ms`` of every ``span_ms``. Returns the
        retained volume released (a restriction that is not a lasting block lets it go)."""
        self._steady = False  # any change but a pass-through (slicing_invariant)
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
        self._set_flow(kind, ppm, span_ms, closed_ms, now_ms)
        # A lasting block keeps what it holds; anything that lets flow through releases it.
        lasting = kind is Flow.PARTIAL and ppm == 0
        return 0 if lasting else self._release()

    def _set_flow(self, kind: Flow, ppm: int, span_ms: int, closed_ms: int, now_ms: int) -> None:
        self._flow_kind = kind
        self._flow_ppm = ppm
        self._flow_start_ms = now_ms
        self._flow_span_ms = span_ms
        self._flow_closed_ms = closed_ms

    def _release(self) -> int:
        released, self._retained = self._retained, 0
        released_pg, self._retained_pg = self._retained_pg, 0
        self._to_catheter(released, released_pg)
        return released

    def erode(self, leak_ppm: int, now_ms: int) -> None:
        """Erosion through the skin: the device is exposed and the catheter leaks."""
        self._steady = False  # any change but a pass-through (slicing_invariant)
        self.set_catheter(CatheterState.LEAKING, now_ms, leak_ppm)
        self._exposed = True

    def set_flipped(self, flipped: bool) -> None:
        """The pump flips in its pocket (or is put back): a needle aimed at its septa
        misses them, so a refill goes into the pocket (H1)."""
        self._steady = False  # any change but a pass-through (slicing_invariant)
        self._flipped = flipped

    # -- the catheter access port (CAP) -----------------------------------------------------

    def cap_aspirate(self, volume_nl: int, now_ms: int) -> CapAspirated:
        """Aspirate ``volume_nl`` through the catheter access port now (a patency check).

        Patent catheter: its solution comes back first (newest first), then CSF; the
        catheter refills with CSF, so the next flow must fill it again (H3). Blocked
        (occlusion, closed kink, grown mass) or a flipped pump: nothing. Migrated tip: the
        catheter's solution, then nothing (no CSF). Disconnected: no CSF, and the catheter's
        contents are not reached (docs/pump-model.md, "Catheter faults").
        """
        self._steady = False  # any change but a pass-through (slicing_invariant)
        if volume_nl < 0:
            raise ValueError("volume_nl must be >= 0")
        state = self._catheter_state
        blocked = state is CatheterState.OCCLUDED and self.delivered_fraction_ppm(now_ms) == 0
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

    def cap_inject(self, volume_nl: int, concentration_ug_per_ml: int, now_ms: int) -> CapInjected:
        """Inject solution through the catheter access port now (H2): it bypasses the
        reservoir, the mechanism and every limit, and pushes the catheter's contents out
        of the tip ahead of it. A blocked catheter takes nothing; a flipped pump's port is
        missed and the injection goes into the pocket."""
        self._steady = False  # any change but a pass-through (slicing_invariant)
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
        if state is CatheterState.OCCLUDED and self.delivered_fraction_ppm(now_ms) == 0:
            return CapInjected(0, 0, False)
        self._cap_injected += volume_nl
        self._cap_injected_pg += mass
        self._to_catheter(volume_nl, mass)
        return CapInjected(volume_nl, mass, False)

    # -- refill (the clinician's needle) -----------------------------------------------------

    def withdraw_all(self) -> int:
        """Draw the whole residual out of the reservoir; return its volume (truth). A
        flipped pump's septum is missed: nothing comes back."""
        self._steady = False  # any change but a pass-through (slicing_invariant)
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
        self._steady = False  # any change but a pass-through (slicing_invariant)
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

    def to_dict(self) -> dict[str, FluidValue]:
        """Every field as plain JSON values (the plant's ``_fluid`` in a snapshot)."""
        out: dict[str, FluidValue] = {}
        for name in FLUID_FIELDS:
            value = getattr(self, name)
            if isinstance(value, SlugSeries):
                out[name] = value.slugs()
            else:  # a flag stays a flag; an enum is saved as its plain integer
                out[name] = value if isinstance(value, bool) else int(value)
        return out

    @classmethod
    def from_dict(cls, profile: Profile, data: object) -> FluidPath:
        """Rebuild a fluid path; ValueError if a field is missing, unknown or mistyped."""
        if not isinstance(data, dict) or set(data) != set(FLUID_FIELDS):
            raise ValueError("the fluid path's fields differ from what a plant writes")
        fluid = cls.__new__(cls)
        fluid._profile = profile
        for name in FLUID_FIELDS:
            value = data[name]
            if name in ("_path", "_catheter"):
                object.__setattr__(fluid, name, _series(name, value))
                continue
            if not isinstance(value, int):
                raise ValueError(f"fluid field {name} must be an integer, got {value!r}")
            object.__setattr__(fluid, name, value)
        fluid._catheter_state = CatheterState(fluid._catheter_state)
        fluid._flow_kind = Flow(fluid._flow_kind)
        fluid._steady = False
        return fluid


FLUID_FIELDS: tuple[str, ...] = tuple(
    n for n in FluidPath.__slots__ if n not in ("_profile", "_steady")
)
"""The saved fields: every slot but the profile and ``_steady`` (a kept answer, not state)."""


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

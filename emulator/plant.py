"""The plant: the pump's physical truth (docs/architecture.md principle 3).

The plant holds what really is: the fluid in the reservoir, the catheter's integrity and
contents, the motor's health, the battery's charge, the flow-activated valve. Faults act here.
The firmware never reads these numbers directly; it learns only what its sensors report (a
stalled motor, if the profile has the sensor; the battery voltage), so a scenario can compare
belief with truth (H1, H10, H13, H17).

Every volume is an integer in nL, and every derived volume is computed from cumulative
totals (strokes in a bias segment, flow in a leak segment), never from per-call rounding, so
nothing drifts however the caller slices time. Fluid is conserved exactly::

    initial_nl + injected_nl == reservoir_nl + catheter_nl + retained_nl
                                + delivered_nl + leaked_nl + pocket_nl + withdrawn_nl

- ``initial_nl``: the reservoir and catheter drug at construction;
- ``injected_nl``: everything pushed through the refill needle, pocket fills included;
- ``catheter_nl``: drug inside the catheter's dead volume (it fills before any reaches the
  patient: H3 early arrival / delay);
- ``retained_nl``: drug pumped against an occlusion, held upstream of it (H13). It is
  released to the patient as a bolus when the occlusion clears, which is the real hazard of
  a cleared kink;
- ``leaked_nl``: drug lost through a leak or a disconnection (H17);
- ``pocket_nl``: drug injected into the pump pocket instead of the reservoir (H1), including
  overflow of an injection beyond the reservoir's capacity;
- ``withdrawn_nl``: residual drawn out at refills.

Pumping from an empty reservoir moves air: the reservoir never goes negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from emulator.profile import Profile
from emulator.stroke_accuracy import jitter_volume_nl
from protocol.units import MS_PER_HOUR

__all__ = ["CatheterState", "MotorState", "Plant", "PlantTruth"]

PPM = 1_000_000


class CatheterState(IntEnum):
    OK = 0
    OCCLUDED = 1
    """Kink or inflammatory mass: nothing reaches the patient (H13)."""
    LEAKING = 2
    """A fraction (ppm) of the flow leaks into tissue (H17)."""
    DISCONNECTED = 3
    """Everything pumped goes into the tissue at the pump (H17)."""


class MotorState(IntEnum):
    OK = 0
    STALLED = 1
    """Not turning: permanently (H5) or until a recovery time (H14)."""
    RECOVERING = 2
    """After an MRI scan the rotor stays stopped for a recovery delay (H14)."""


@dataclass(frozen=True, slots=True)
class PlantTruth:
    """A read-only picture of the plant at one instant (nL, nAh, ppm)."""

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

    @property
    def lost_nl(self) -> int:
        """Drug that left the system without reaching the patient's spinal fluid."""
        return self.leaked_nl + self.pocket_nl

    def balance_nl(self) -> int:
        """In minus out: exactly 0 for a plant that conserves fluid."""
        inside = self.reservoir_nl + self.catheter_nl + self.retained_nl
        out = self.delivered_nl + self.leaked_nl + self.pocket_nl + self.withdrawn_nl
        return self.initial_nl + self.injected_nl - inside - out


class Plant:
    """Physical truth of one implanted pump. Times are integer ms; ``now`` is an argument."""

    __slots__ = (
        "_bias_base",
        "_bias_ppm",
        "_bias_strokes",
        "_catheter_nl",
        "_catheter_state",
        "_catheter_volume",
        "_delivered",
        "_drained_nah",
        "_dry",
        "_initial",
        "_injected",
        "_leak_flow",
        "_leak_ppm",
        "_leaked",
        "_magnet_exposures",
        "_motor",
        "_motor_after_change",
        "_motor_change_ms",
        "_motor_resume_ms",
        "_now",
        "_pocket",
        "_profile",
        "_pumped",
        "_reservoir",
        "_retained",
        "_sessions",
        "_spread_ppm",
        "_start_ms",
        "_stroke_nl",
        "_stroke_seed",
        "_strokes_attempted",
        "_valve_closed",
        "_valve_released",
        "_withdrawn",
    )

    def __init__(
        self,
        profile: Profile,
        start_ms: int,
        reservoir_nl: int,
        catheter_length_cm: int,
        *,
        catheter_primed: bool = True,
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
        self._catheter_volume = profile.catheter_volume_nl(catheter_length_cm)
        self._catheter_nl = self._catheter_volume if catheter_primed else 0
        self._initial = reservoir_nl + self._catheter_nl
        self._reservoir = reservoir_nl
        self._injected = 0
        self._retained = 0
        self._delivered = 0
        self._leaked = 0
        self._pocket = 0
        self._withdrawn = 0
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
        """The next time the plant changes by itself (motor recovery), or None."""
        return self._motor_change_ms

    def truth(self) -> PlantTruth:
        return PlantTruth(
            time_ms=self._now,
            initial_nl=self._initial,
            injected_nl=self._injected,
            reservoir_nl=self._reservoir,
            catheter_nl=self._catheter_nl,
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
        air, counted in ``dry_nl``).
        """
        if now_ms < self._now:
            raise ValueError(f"plant time went backwards: {now_ms} < {self._now}")
        # The strokes fell in (now, now_ms], under the state the plant had since now: a
        # change due at now_ms (a recovery) applies to later strokes only.
        moved = self._move(strokes) if strokes > 0 else 0
        self.update(now_ms)
        return moved

    def _move(self, strokes: int) -> int:
        moving = self.can_move()
        first = self._strokes_attempted
        self._strokes_attempted += strokes
        if not moving:
            return 0
        before = self._bias_volume(self._bias_strokes)
        self._bias_strokes += strokes
        wanted = self._bias_volume(self._bias_strokes) - before
        if self._stroke_seed is not None:  # a closed form over the stroke indices: O(1)
            wanted += jitter_volume_nl(
                self._stroke_seed, self._spread_ppm, self._stroke_nl, first, first + strokes
            )
        moved = min(max(wanted, 0), self._reservoir)
        self._dry += max(wanted, 0) - moved
        self._reservoir -= moved
        self._pumped += moved
        self._route(moved)
        return moved

    def _bias_volume(self, strokes: int) -> int:
        nominal = strokes * self._stroke_nl
        return self._bias_base + nominal + nominal * self._bias_ppm // PPM

    def _route(self, volume: int) -> None:
        """Send volume that left the reservoir down the catheter (or out of a fault)."""
        if volume <= 0:
            return
        if self._catheter_state is CatheterState.DISCONNECTED:
            self._leaked += volume
            return
        if self._catheter_state is CatheterState.OCCLUDED:
            self._retained += volume
            return
        lost = 0
        if self._leak_ppm:
            before = self._leak_flow * self._leak_ppm // PPM
            self._leak_flow += volume
            lost = self._leak_flow * self._leak_ppm // PPM - before
            self._leaked += lost
        rest = volume - lost
        fill = min(rest, self._catheter_volume - self._catheter_nl)
        self._catheter_nl += fill
        self._delivered += rest - fill

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
        the flow-activated valve lets through at most its limit, then closes and stays
        closed until reset (H15).
        """
        if scan_ms < 0 or recovery_ms < 0:
            raise ValueError("scan_ms and recovery_ms must be >= 0")
        self._magnet_exposures += 1
        if self._profile.flow_activated_valve:
            if self._valve_closed:
                return 0
            released = min(self._profile.valve_limit_nl, self._reservoir)
            self._reservoir -= released
            self._pumped += released
            self._valve_released += released
            self._route(released)
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

        Clearing an occlusion releases the drug held behind it to the patient at once: the
        bolus-on-clearing that makes a cleared kink dangerous (H13).
        """
        if state is CatheterState.LEAKING:
            if not 1 <= leak_ppm <= PPM:
                raise ValueError("a leaking catheter needs 1 <= leak_ppm <= 1_000_000")
        elif leak_ppm:
            raise ValueError("leak_ppm applies only to CatheterState.LEAKING")
        # Close the leak segment so the new fraction applies only to flow from now on.
        self._leak_flow = 0
        self._leak_ppm = leak_ppm
        self._catheter_state = state
        released = 0
        if state is not CatheterState.OCCLUDED and self._retained:
            released, self._retained = self._retained, 0
            self._route(released)
        return released

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

    # -- refill (the clinician's needle) -----------------------------------------------------

    def withdraw_all(self) -> int:
        """Draw the whole residual out of the reservoir; return its volume (truth)."""
        volume, self._reservoir = self._reservoir, 0
        self._withdrawn += volume
        return volume

    def inject(self, volume_nl: int, pocket_nl: int = 0) -> int:
        """Inject ``volume_nl`` into the reservoir and ``pocket_nl`` into the pocket (H1).

        What does not fit in the reservoir's capacity overflows into the pocket too.
        Returns the volume that reached the reservoir.
        """
        if volume_nl < 0 or pocket_nl < 0:
            raise ValueError("volumes must be >= 0")
        room = self._profile.reservoir_capacity_nl - self._reservoir
        into = min(volume_nl, room)
        self._reservoir += into
        self._pocket += pocket_nl + (volume_nl - into)
        self._injected += volume_nl + pocket_nl
        return into

    # -- persistence -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, int | bool | None]:
        """Every field as plain JSON values, for Pump.snapshot()."""
        return {name: _plain(getattr(self, name)) for name in _PLANT_FIELDS}

    @classmethod
    def from_dict(cls, profile: Profile, data: dict[str, int | bool | None]) -> Plant:
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
            if value is not None and not isinstance(value, int):
                raise ValueError(f"plant field {name} must be an integer, got {value!r}")
            object.__setattr__(plant, name, value)
        plant._catheter_state = CatheterState(plant._catheter_state)
        plant._motor = MotorState(plant._motor)
        plant._motor_after_change = MotorState(plant._motor_after_change)
        return plant


def _plain(value: object) -> int | bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    raise TypeError(f"unexpected plant field value {value!r}")


_PLANT_FIELDS: tuple[str, ...] = tuple(n for n in Plant.__slots__ if n != "_profile")

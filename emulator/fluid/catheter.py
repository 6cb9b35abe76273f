"""How much of what the mechanism pushes flows past the catheter, in closed form.

A restriction is a delivered fraction (ppm of the flow the mechanism would move) as a
function of time. Three shapes, each integrated exactly over an interval so a year costs
one evaluation per pump step, never a loop over seconds (docs/architecture.md principle 5):

- ``PARTIAL``: a constant fraction (``CatheterOcclusion``; 0 is a full occlusion, H13);
- ``GROWING``: an inflammatory mass, the fraction falling linearly from 1 (fully open) at
  ``start_ms`` to ``ppm`` at ``start_ms + span_ms`` and staying there (H13);
- ``KINKED``: a kink that closes for ``closed_ms`` at the start of every ``span_ms`` period
  from ``start_ms`` (an intermittent occlusion, H17).

The pump's strokes in one step are spread evenly over it (the step's rates are constant),
so the volume that flows in a step is ``wanted x mean fraction over the step``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "PPM",
    "AspirationResult",
    "CapAspirated",
    "CapInjected",
    "CatheterState",
    "Flow",
    "Restriction",
]

PPM = 1_000_000


class Flow(IntEnum):
    OPEN = 0
    PARTIAL = 1
    GROWING = 2
    KINKED = 3


class AspirationResult(IntEnum):
    """What a clinician sees at the syringe when aspirating through the catheter access
    port (docs/pump-model.md, "Catheter faults, as the clinic sees them")."""

    CSF = 0
    """The catheter is patent to the intrathecal space: its contents, then CSF."""
    NO_FLOW = 1
    """Nothing can be drawn: the catheter is blocked (occlusion, closed kink, a grown mass)
    or the needle is not in the port (a flipped pump)."""
    NO_CSF = 2
    """Fluid but no CSF: the tip has left the intrathecal space (migration) or the
    catheter is off the pump (disconnection)."""


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


def _ramp_integral(a: int, b: int, start: int, span: int, end_ppm: int) -> tuple[int, int]:
    """Integral of the GROWING fraction over [a, b] as (numerator, denominator)."""
    # Pieces: before start (PPM), the ramp [start, start+span], after (end_ppm).
    den = 2 * span if span > 0 else 1
    num = 0
    stop = start + span
    lo, hi = a, min(b, start)
    if hi > lo:
        num += PPM * (hi - lo) * den
    lo, hi = max(a, start), min(b, stop)
    if hi > lo and span > 0:
        # f(t) = PPM + (end - PPM)(t - start)/span: the integral of (t - start) is
        # ((hi-start)^2 - (lo-start)^2)/2.
        num += PPM * (hi - lo) * den
        num += (end_ppm - PPM) * ((hi - start) ** 2 - (lo - start) ** 2)
    lo, hi = max(a, stop), b
    if hi > lo:
        num += end_ppm * (hi - lo) * den
    return num, den


def _closed_time(x: int, start: int, period: int, closed: int) -> int:
    """Time the kink spent closed in [start, x]."""
    if x <= start:
        return 0
    since = x - start
    return (since // period) * closed + min(since % period, closed)


@dataclass(frozen=True, slots=True)
class Restriction:
    """One restriction: its shape, its fraction (PARTIAL: constant; GROWING: when grown),
    when it began, its span (GROWING: the growth; KINKED: the period) and a kink's closed
    time per period."""

    kind: Flow
    ppm: int = PPM
    start_ms: int = 0
    span_ms: int = 0
    closed_ms: int = 0

    def integral(self, a: int, b: int) -> tuple[int, int]:
        """The delivered fraction integrated over [a, b] (ppm x ms) as (numerator,
        denominator): the mean fraction is numerator / (denominator x (b - a))."""
        kind = self.kind
        if kind is Flow.OPEN:
            return PPM * (b - a), 1
        if kind is Flow.PARTIAL:
            return self.ppm * (b - a), 1
        if kind is Flow.GROWING:
            return _ramp_integral(a, b, self.start_ms, self.span_ms, self.ppm)
        start, period, closed = self.start_ms, self.span_ms, self.closed_ms
        shut = _closed_time(b, start, period, closed) - _closed_time(a, start, period, closed)
        return PPM * (b - a - shut), 1

    def at(self, t: int) -> int:
        """The delivered fraction (ppm) at instant ``t`` (the state just after ``t``)."""
        kind = self.kind
        if kind is Flow.OPEN:
            return PPM
        if kind is Flow.PARTIAL:
            return self.ppm
        start, span = self.start_ms, self.span_ms
        if kind is Flow.GROWING:
            if t <= start:
                return PPM
            if t >= start + span:
                return self.ppm
            return PPM + (self.ppm - PPM) * (t - start) // span
        if t < start:
            return PPM
        return 0 if (t - start) % span < self.closed_ms else PPM

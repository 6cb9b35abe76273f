"""Delivery accuracy as IEC 60601-2-24 measures it: the trumpet curve, from a simulated run
(docs/pump-model.md, "Accuracy: the trumpet curve"; ``pumpemu accuracy``).

The standard's method (docs/domain.md section 5): weigh the delivered fluid every
``sample_interval`` (0.5 min) for ``duration`` (120 min); from the start of the analysis
period (the second hour) compute, for each observation window ``P`` (2, 5, 11, 19 and
31 min), the largest and smallest percentage flow error of every window of that length
placed on the sample grid, and the overall error ``A`` of the whole analysis period. Drawn
against ``P`` the maxima and minima open like a trumpet: short windows see the pulsation of
the mechanism, long ones converge on the overall error.

Here the "balance" is plant truth (``delivered_nl``: what reached the spinal fluid, never
the firmware's belief), sampled on the internal timeline, and every time of the method is
multiplied by ``scale``. IEC's minutes suit an infusion pump at mL/h; an intrathecal pump
at 0.5 mL/day moves one 200 nL stroke every ~35 s, so a 2-minute window holds 3 or 4 strokes
and measures the stroke clock, not the accuracy. The default ``scale`` of 30 keeps the
method's shape and puts 100 strokes in the shortest window at 0.5 mL/day: samples every
15 min over 60 h, analysis from hour 30, windows of 1, 2.5, 5.5, 9.5 and 15.5 h.

Errors are integer ppm of the programmed rate, floored (principle 4); only the report turns
them into percentages.
"""

from __future__ import annotations

from dataclasses import dataclass

from emulator.profile import Profile, load_profile
from emulator.pump import Pump, Refused
from protocol.messages import OVERRIDE_DOSE_CHANGE, OVERRIDE_SOFT_LIMIT
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat
from protocol.units import MS_PER_S, S_PER_DAY

__all__ = [
    "IEC_DURATION_S",
    "IEC_SAMPLE_INTERVAL_S",
    "IEC_WINDOWS_S",
    "TrumpetPoint",
    "TrumpetRun",
    "run_trumpet",
    "trumpet",
]

PPM = 1_000_000
IEC_SAMPLE_INTERVAL_S = 30
"""IEC 60601-2-24: a sample every 0.5 min."""
IEC_DURATION_S = 120 * 60
"""IEC 60601-2-24: 120 min, the second hour analysed."""
IEC_WINDOWS_S = (2 * 60, 5 * 60, 11 * 60, 19 * 60, 31 * 60)
"""IEC 60601-2-24's observation windows: 2, 5, 11, 19 and 31 min."""
DEFAULT_SCALE = 30
TEST_DRUG = "clonidine"
TEST_CONCENTRATION_UG_PER_ML = 50
"""The run's solution: only its volume matters here, so a library drug at its weakest
strength (emulator/drugs.toml), whose hard limit (2 mg/day) no rate of the profiles reaches
at 50 ug/mL; its soft limit is overridden, as a bench test of flow accuracy would."""


@dataclass(frozen=True, slots=True)
class TrumpetPoint:
    """One observation window: the largest and smallest flow error over it (ppm)."""

    window_s: int
    max_error_ppm: int
    min_error_ppm: int
    windows: int
    """How many windows of this length were placed on the sample grid."""


@dataclass(frozen=True, slots=True)
class TrumpetRun:
    """A simulated accuracy run and its trumpet curve."""

    profile: str
    rate_nl_per_day: int
    seed: int | None
    scale: int
    sample_interval_s: int
    duration_s: int
    analysis_start_s: int
    samples_nl: tuple[int, ...]
    """Cumulative volume delivered to the patient at each sample, from 0 s (plant truth)."""
    overall_error_ppm: int
    """A: the flow error over the whole analysis period."""
    points: tuple[TrumpetPoint, ...]


def _error_ppm(volume_nl: int, seconds: int, rate_nl_per_day: int) -> int:
    """(measured flow - programmed) / programmed, in ppm, floored: exact integers."""
    expected_scaled = rate_nl_per_day * seconds  # nL x (s/day)
    return (volume_nl * S_PER_DAY - expected_scaled) * PPM // expected_scaled


def trumpet(
    samples_nl: tuple[int, ...] | list[int],
    rate_nl_per_day: int,
    sample_interval_s: int,
    analysis_start_index: int,
    windows_s: tuple[int, ...],
) -> tuple[int, tuple[TrumpetPoint, ...]]:
    """(A, the trumpet points) from cumulative samples, by IEC 60601-2-24's method.

    Each window of ``P`` s spans ``P / sample_interval`` sample intervals and slides one
    interval at a time over the analysis period ``[analysis_start_index, last sample]``.
    """
    if rate_nl_per_day <= 0:
        raise ValueError("rate_nl_per_day must be > 0")
    last = len(samples_nl) - 1
    period = last - analysis_start_index
    if period < 1:
        raise ValueError("the analysis period holds no sample interval")
    overall = _error_ppm(
        samples_nl[last] - samples_nl[analysis_start_index],
        period * sample_interval_s,
        rate_nl_per_day,
    )
    points = []
    for window_s in windows_s:
        span, rest = divmod(window_s, sample_interval_s)
        if rest or span < 1:
            raise ValueError(f"window {window_s} s is not a whole number of sample intervals")
        if span > period:
            raise ValueError(f"window {window_s} s is longer than the analysis period")
        errors = [
            _error_ppm(samples_nl[j + span] - samples_nl[j], window_s, rate_nl_per_day)
            for j in range(analysis_start_index, last - span + 1)
        ]
        points.append(TrumpetPoint(window_s, max(errors), min(errors), len(errors)))
    return overall, tuple(points)


def run_trumpet(
    profile: str | Profile = "peristaltic-20",
    rate_nl_per_day: int = 500_000,
    *,
    seed: int | None = 1,
    scale: int = DEFAULT_SCALE,
) -> TrumpetRun:
    """Run a continuous delivery at ``rate_nl_per_day`` on a fresh pump (catheter primed,
    seeded stroke variation on unless ``seed`` is None) and measure its trumpet curve with
    IEC 60601-2-24's times multiplied by ``scale``."""
    if not 1 <= scale <= 10_000:
        raise ValueError("scale must be 1..10000")
    chosen = profile if isinstance(profile, Profile) else load_profile(profile)
    interval = IEC_SAMPLE_INTERVAL_S * scale
    duration = IEC_DURATION_S * scale
    needed = rate_nl_per_day * duration // S_PER_DAY + chosen.stroke_nl
    if needed > chosen.reservoir_usable_nl:
        raise ValueError(
            f"{rate_nl_per_day} nL/day for {duration} s needs {needed} nL, more than the "
            f"reservoir's {chosen.reservoir_usable_nl} nL: lower the rate or the scale"
        )
    pump = Pump(chosen, stroke_seed=seed)
    rx = Prescription(
        TEST_DRUG, TEST_CONCENTRATION_UG_PER_ML, InfusionMode.CONTINUOUS, Repeat.DAILY,
        (FlexStep(0, rate_nl_per_day),), None, chosen.low_reservoir_threshold.low,
    )  # fmt: skip
    staged = pump.stage(rx, overrides=OVERRIDE_SOFT_LIMIT | OVERRIDE_DOSE_CHANGE)
    result = staged if isinstance(staged, Refused) else pump.commit(staged.digest)
    if not result.ok:
        raise ValueError(f"the pump refuses {rate_nl_per_day} nL/day: {result}")
    start = pump.now_ms
    base = pump.plant_truth().delivered_nl
    samples = [0]
    for k in range(1, duration // interval + 1):
        pump.advance_to(start + k * interval * MS_PER_S)
        samples.append(pump.plant_truth().delivered_nl - base)
    analysis_start = (duration // 2) // interval
    windows = tuple(w * scale for w in IEC_WINDOWS_S)
    overall, points = trumpet(samples, rate_nl_per_day, interval, analysis_start, windows)
    return TrumpetRun(
        profile=chosen.name,
        rate_nl_per_day=rate_nl_per_day,
        seed=seed,
        scale=scale,
        sample_interval_s=interval,
        duration_s=duration,
        analysis_start_s=analysis_start * interval,
        samples_nl=tuple(samples),
        overall_error_ppm=overall,
        points=points,
    )

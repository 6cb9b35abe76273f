"""The IEC 60601-2-24 trumpet curve from plant truth (emulator/accuracy.py)."""

from __future__ import annotations

import pytest

from emulator.accuracy import TrumpetPoint, run_trumpet, trumpet


def test_trumpet_by_hand() -> None:
    """Rate 86_400 nL/day = 1 nL/s; samples every 10 s. Increments after the start index 1:
    10, 12, 8, 10 nL. A = (40 - 40) / 40 = 0. Windows of 10 s: errors 0, +20 %, -20 %, 0.
    Windows of 20 s: 22/20 -> +10 %, 20/20 -> 0, 18/20 -> -10 %."""
    samples = [0, 10, 20, 32, 40, 50]
    overall, points = trumpet(samples, 86_400, 10, 1, (10, 20))
    assert overall == 0
    assert points == (
        TrumpetPoint(10, 200_000, -200_000, 4),
        TrumpetPoint(20, 100_000, -100_000, 3),
    )


@pytest.mark.parametrize(
    ("windows", "message"),
    [((15,), "whole number"), ((60,), "longer than the analysis period")],
    ids=["off-grid", "too-long"],
)
def test_bad_windows_are_refused(windows: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        trumpet([0, 10, 20, 30, 40, 50], 86_400, 10, 1, windows)


def test_unseeded_run_shows_the_bias_and_the_stroke_quantization() -> None:
    """peristaltic-20 at 0.5 mL/day: 2_500 strokes a day, one every 34.56 s, each 202 nL
    (+1 % bias). The 30 h analysis period holds exactly 3_125 strokes: A = +1 % exactly.
    A 1 h window holds 104 or 105 strokes (104.17 on average), so its error swings about
    one stroke (~1 %) around A; the 15.5 h windows hold ~1_615 strokes, within 0.1 %."""
    run = run_trumpet("peristaltic-20", 500_000, seed=None)
    assert (run.sample_interval_s, run.duration_s, run.analysis_start_s) == (900, 216_000, 108_000)
    assert run.overall_error_ppm == 10_000
    shortest, longest = run.points[0], run.points[-1]
    assert shortest.window_s == 3_600
    assert shortest.max_error_ppm - shortest.min_error_ppm > 9_000  # about one stroke
    assert longest.window_s == 55_800
    assert 9_000 < longest.min_error_ppm <= longest.max_error_ppm < 11_000
    spreads = [p.max_error_ppm - p.min_error_ppm for p in run.points]
    assert spreads[0] > spreads[-1]  # the trumpet opens toward short windows


def test_the_seed_changes_the_curve_deterministically() -> None:
    a = run_trumpet("trial-external", 200_000, seed=3)
    assert a == run_trumpet("trial-external", 200_000, seed=3)
    b = run_trumpet("trial-external", 200_000, seed=4)
    assert a.samples_nl != b.samples_nl
    plain = run_trumpet("trial-external", 200_000, seed=None)
    assert a.samples_nl != plain.samples_nl
    # The jitter of any run of strokes is bounded by one stroke's spread (+/-5 % of 50 nL,
    # plus rounding): the seeded and unseeded totals differ by at most 3 nL.
    assert abs(a.samples_nl[-1] - plain.samples_nl[-1]) <= 3


def test_a_run_the_reservoir_cannot_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="more than the reservoir"):
        run_trumpet("peristaltic-20", 24_000_000)

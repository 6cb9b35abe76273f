"""Seeded stroke-to-stroke variation: exact, deterministic for a seed, O(1) per query
(emulator/stroke_accuracy.py; H10)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator import stroke_accuracy
from emulator.cache_checks import CHECK_ALL, CacheCheckError
from emulator.firmware.nvram import SnapshotError, decode_record, encode_record
from emulator.plant import Plant
from emulator.profile import load_profile
from emulator.pump import SNAPSHOT_MAGIC, Pump
from emulator.stroke_accuracy import jitter_level_nl, jitter_volume_nl, stroke_volumes_nl
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat
from protocol.units import MS_PER_DAY

seeds = st.integers(0, (1 << 64) - 1)
spreads = st.integers(0, 200_000)
strokes = st.integers(1, 100_000)
indices = st.integers(0, 1 << 40)


@given(seeds, spreads, strokes, indices, st.integers(0, 300))
def test_a_run_of_strokes_is_the_sum_of_its_strokes(
    seed: int, spread: int, stroke: int, first: int, count: int
) -> None:
    each = stroke_volumes_nl(seed, spread, stroke, first, count)
    assert sum(each) - stroke * count == jitter_volume_nl(
        seed, spread, stroke, first, first + count
    )


@given(seeds, spreads, strokes, indices)
def test_each_stroke_stays_within_the_spread(
    seed: int, spread: int, stroke: int, index: int
) -> None:
    (volume,) = stroke_volumes_nl(seed, spread, stroke, index, 1)
    # floor() on each level adds at most one nL either way.
    assert abs(volume - stroke) <= stroke * spread // 1_000_000 + 1


@given(seeds, spreads, strokes, indices, st.integers(0, 1 << 40))
def test_the_jitter_of_any_run_is_bounded_by_one_strokes_spread(
    seed: int, spread: int, stroke: int, first: int, length: int
) -> None:
    jitter = jitter_volume_nl(seed, spread, stroke, first, first + length)
    assert abs(jitter) <= stroke * spread // 1_000_000 + 1


def test_the_same_seed_gives_the_same_strokes_and_another_seed_others() -> None:
    a = stroke_volumes_nl(7, 20_000, 200, 0, 200)
    assert a == stroke_volumes_nl(7, 20_000, 200, 0, 200)
    assert a != stroke_volumes_nl(8, 20_000, 200, 0, 200)
    assert len(set(a)) > 3  # the strokes really vary: 200 nL +/- 4 nL
    assert min(a) >= 196
    assert max(a) <= 204


def test_no_spread_means_no_jitter() -> None:
    assert stroke_volumes_nl(7, 0, 200, 0, 50) == [200] * 50
    assert stroke_volumes_nl(7, 1, 200, 0, 50) == [200] * 50  # half of 1 ppm rounds to 0


def test_a_run_that_ends_before_it_starts_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="end"):
        jitter_volume_nl(1, 20_000, 200, 10, 9)


@given(seeds, st.lists(st.integers(0, 50), min_size=1, max_size=30))
def test_the_plant_moves_the_same_volume_however_the_strokes_are_sliced(
    seed: int, chunks: list[int]
) -> None:
    """Plant truth from cumulative totals: one call of N strokes or N calls of 1 agree."""
    profile = load_profile("peristaltic-20")
    whole = Plant(profile, 0, 20_000_000, 10, stroke_seed=seed)
    sliced = Plant(profile, 0, 20_000_000, 10, stroke_seed=seed)
    total = sum(chunks)
    whole.pump(total, 1)
    for t, n in enumerate(chunks, start=1):
        sliced.pump(n, t)
    assert whole.truth().pumped_nl == sliced.truth().pumped_nl
    bias = profile.mechanical_bias_ppm
    expected = total * 200 + total * 200 * bias // 1_000_000
    expected += jitter_volume_nl(seed, profile.stroke_spread_ppm, 200, 0, total)
    assert whole.truth().pumped_nl == expected
    assert whole.truth().balance_nl() == 0


def rx(rate: int) -> Prescription:
    return Prescription(
        "morphine", 1_000, InfusionMode.CONTINUOUS, Repeat.DAILY,
        (FlexStep(0, rate),), None, 2_000_000,
    )  # fmt: skip


def test_a_seeded_pump_is_deterministic_varies_by_seed_and_survives_a_snapshot() -> None:
    def run(seed: int | None) -> Pump:
        pump = Pump("peristaltic-20", stroke_seed=seed)
        assert pump.program(rx(500_000)).ok
        pump.advance_to(3 * MS_PER_DAY + 12_345)
        return pump

    a, b, other, plain = run(1), run(1), run(2), run(None)
    assert a.plant_truth() == b.plant_truth()
    assert a.plant_truth().pumped_nl != other.plant_truth().pumped_nl
    # The firmware counts whole nominal strokes and never sees the jitter (principle 3).
    assert a.status() == plain.status()
    resumed = Pump.restore(a.snapshot())
    a.advance_to(5 * MS_PER_DAY)
    resumed.advance_to(5 * MS_PER_DAY)
    assert resumed.plant_truth() == a.plant_truth()


@pytest.mark.parametrize("seed", [-1, 1 << 64, True], ids=["negative", "too-big", "bool"])
def test_a_bad_seed_is_refused(seed: int) -> None:
    with pytest.raises(ValueError, match="stroke_seed"):
        Pump("peristaltic-20", stroke_seed=seed)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"_spread_ppm": 0}, "_spread_ppm"),  # a seeded pump whose jitter was switched off
        ({"_stroke_seed": None}, "_spread_ppm"),  # the seed dropped, the spread kept
        ({"_stroke_seed": -1}, "_stroke_seed"),
        ({"_stroke_seed": True}, "_stroke_seed"),
    ],
    ids=["spread-zeroed", "seed-dropped", "negative-seed", "bool-seed"],
)
def test_a_saved_state_cannot_alter_the_stroke_variation(
    changes: dict[str, object], field: str
) -> None:
    pump = Pump("peristaltic-20", stroke_seed=9)
    record = decode_record(SNAPSHOT_MAGIC, pump.snapshot())
    record["plant"].update(changes)
    with pytest.raises(SnapshotError, match=field):
        Pump.restore(encode_record(SNAPSHOT_MAGIC, record))


@given(seeds, spreads, strokes, indices, st.integers(0, 1 << 20))
def test_the_run_is_the_difference_of_its_two_levels(
    seed: int, spread: int, stroke: int, first: int, length: int
) -> None:
    end = first + length
    assert jitter_volume_nl(seed, spread, stroke, first, end) == jitter_level_nl(
        seed, spread, stroke, end
    ) - jitter_level_nl(seed, spread, stroke, first)


@given(
    st.lists(st.tuples(seeds, spreads, strokes), min_size=1, max_size=3),
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 50)), max_size=40),
)
def test_interleaved_walks_keep_their_own_levels(
    walkers: list[tuple[int, int, int]], moves: list[tuple[int, int]]
) -> None:
    # The plant asks [m, n) then [n, p): the last level is remembered (one memo for the
    # process). Pumps with other seeds, spreads or strokes asking in between, and runs that
    # do not start where the last one ended, still get exactly J(end) - J(first).
    at = [0] * len(walkers)
    for pick, length in moves:
        which = pick % len(walkers)
        seed, spread, stroke = walkers[which]
        first = at[which] if length % 3 else at[which] + 1  # sometimes a gap
        end = first + length
        expected = jitter_level_nl(seed, spread, stroke, end) - jitter_level_nl(
            seed, spread, stroke, first
        )
        assert jitter_volume_nl(seed, spread, stroke, first, end) == expected
        at[which] = end


def test_check_mode_catches_a_stale_jitter_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CHECK_ALL, "on", True)
    jitter_volume_nl(7, 20_000, 200, 0, 10)
    seed, half, stroke, index, level, key = stroke_accuracy._last[0]
    stroke_accuracy._last[0] = (seed, half, stroke, index, level + 1, key)  # kept wrong
    try:
        with pytest.raises(CacheCheckError, match="kept jitter level"):
            jitter_volume_nl(7, 20_000, 200, 10, 20)
    finally:
        stroke_accuracy._last[0] = (seed, half, stroke, index, level, key)  # the true one

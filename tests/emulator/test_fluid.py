"""The fluid path's pieces (emulator/fluid/): slugs, the well-mixed reservoir, restrictions.

Properties, checked with hypothesis against obviously correct references: a slug series
never creates or loses a picogram, a restriction's closed-form integral equals the sum of
its instantaneous fraction millisecond by millisecond, and the whole plant delivers the
same drug mass however the caller slices time when nothing rounds.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.faults import CatheterLeak
from emulator.fluid.catheter import PPM, Flow, Restriction
from emulator.fluid.reservoir import mass_left
from emulator.fluid.slugs import MAX_SLUGS, SlugSeries
from emulator.plant import Plant
from emulator.profile import load_profile
from emulator.pump import Pump
from tests.emulator.conftest import continuous

operations = st.lists(
    st.tuples(
        st.sampled_from(["push", "pop", "pop_newest", "pop_pieces"]),
        st.integers(1, 50_000),
        st.integers(0, 50_000),
    ),
    max_size=200,
)


@given(ops=operations)
def test_a_slug_series_conserves_volume_and_mass(ops: list[tuple[str, int, int]]) -> None:
    series = SlugSeries()
    volume = mass = 0
    for op, v, conc in ops:
        if op == "push":
            series.push(v, v * conc)
            volume += v
            mass += v * conc
            continue
        take = min(v, series.volume_nl)
        if op == "pop_pieces":
            pieces = series.pop_pieces(take)
            assert sum(p for p, _ in pieces) == take
            taken = sum(m for _, m in pieces)
        else:
            taken = getattr(series, op)(take)
        volume -= take
        mass -= taken
        assert taken >= 0
        assert (series.volume_nl, series.mass_pg) == (volume, mass)
        slugs = series.slugs()
        assert sum(s[0] for s in slugs) == volume
        assert sum(s[1] for s in slugs) == mass
        assert all(s[0] >= 1 and s[1] >= 0 for s in slugs)
        assert len(slugs) <= MAX_SLUGS
    assert SlugSeries.restore(series.slugs()).slugs() == series.slugs()


def test_slugs_keep_concentrations_apart_and_merge_rounding() -> None:
    """Two strengths stay two slugs (the boundary matters: H3, a bridge bolus); a slug
    whose strength differs by rounding merges with the last one."""
    series = SlugSeries()
    series.push(1_000, 1_000_000)  # 1,000 pg/nL
    series.push(1_000, 2_000_000)  # 2,000 pg/nL
    series.push(3, 6_001)  # 2,000.33 pg/nL: rounding of one pg
    assert series.slugs() == [[1_000, 1_000_000], [1_003, 2_006_001]]
    # 1,000 nL of the first, then 500 of [1,003, 2,006,001]: 2,006,001 x 500 // 1,003.
    assert series.pop(1_500) == 1_000_000 + 1_000_000
    assert series.slugs() == [[503, 1_006_001]]
    assert series.pop_newest(3) == 6_000  # 1,006,001 x 3 // 503, the rest stays
    assert series.slugs() == [[500, 1_000_001]]
    with pytest.raises(ValueError, match="cannot take"):
        series.pop(10**9)
    with pytest.raises(ValueError, match="needs a volume"):
        series.push(0, 5)


@given(
    volume=st.integers(0, 40_000_000),
    segment=st.integers(1, 40_000_000),
    conc=st.integers(0, 100_000),
)
def test_the_reservoir_mass_is_exact_at_the_segment_and_monotone(
    volume: int, segment: int, conc: int
) -> None:
    volume = min(volume, segment)
    assert mass_left(segment, segment, segment * conc) == segment * conc
    assert mass_left(0, segment, segment * conc) == 0
    assert mass_left(volume, segment, segment * conc) == volume * conc
    assert mass_left(volume, segment, segment * conc + 7) >= volume * conc


restrictions = st.one_of(
    st.builds(Restriction, st.just(Flow.OPEN)),
    st.builds(Restriction, st.just(Flow.PARTIAL), st.integers(0, PPM)),
    st.builds(
        Restriction,
        st.just(Flow.GROWING),
        st.integers(0, PPM),
        st.integers(0, 500),
        st.integers(1, 500),
    ),
    st.integers(1, 300).flatmap(
        lambda period: st.builds(
            Restriction,
            st.just(Flow.KINKED),
            st.just(0),
            st.integers(0, 500),
            st.just(period),
            st.integers(0, period),
        )
    ),
)


@given(restriction=restrictions, a=st.integers(0, 1_000), length=st.integers(0, 1_000))
def test_a_restriction_integral_is_the_sum_of_its_fraction(
    restriction: Restriction, a: int, length: int
) -> None:
    """Reference: the fraction millisecond by millisecond. Exact for the piecewise-constant
    shapes; within one ppm per ms of the linear fall (its sampled values are floored)."""
    b = a + length
    num, den = restriction.integral(a, b)
    reference = sum(restriction.at(t) for t in range(a, b))
    if restriction.kind is Flow.GROWING:
        # Each sample is the fraction at the start of its ms, floored: off by at most half
        # a millisecond's fall plus one ppm, per ms.
        tolerance = length * (PPM // (2 * restriction.span_ms) + 2)
        assert abs(num - reference * den) <= tolerance * den
        assert 0 <= num // den <= PPM * length
    else:
        assert num // den == reference
    assert all(0 <= restriction.at(t) <= PPM for t in range(a, b + 1))


@given(
    cuts=st.lists(st.integers(1, 20 * 86_400), max_size=12),
    conc=st.sampled_from([1, 1_000, 20_000]),
)
def test_delivered_mass_is_slicing_independent_at_one_strength(cuts: list[int], conc: int) -> None:
    """One strength everywhere and an open or leaking catheter: every division is exact,
    so advancing in any slices delivers the same picograms as one advance."""
    pumps = [Pump("peristaltic-20", drug_concentration_ug_per_ml=conc) for _ in range(2)]
    for pump in pumps:
        assert pump.program(continuous(700_000, concentration=conc), command_id=1).ok
        pump.inject(CatheterLeak(ppm=123_457))
    end = 20 * 86_400_000
    for t in sorted(cuts):
        pumps[0].advance_to(t * 1_000)
    for pump in pumps:
        pump.advance_to(end)
    one, other = (p.plant_truth() for p in pumps)
    assert one.delivered_pg == other.delivered_pg == one.delivered_nl * conc
    assert one.leaked_pg == other.leaked_pg == one.leaked_nl * conc


def test_a_refill_mixes_with_the_residual_exactly() -> None:
    """4 mL of 1 mg/mL left, 16 mL of 2 mg/mL injected on top (no withdrawal): the
    reservoir holds 4,000,000,000 + 32,000,000,000 = 36,000,000,000 pg in 20 mL, 1.8 mg/mL
    well mixed; the next 1 mL drawn carries 1,800,000,000 pg, and 7 nL carry 12,600 pg."""
    plant = Plant(load_profile("peristaltic-20"), 0, 4_000_000, 110)
    assert plant.inject(16_000_000, concentration_ug_per_ml=2_000) == 16_000_000
    assert plant.reservoir_pg == 36_000_000_000
    before = plant.reservoir_pg
    plant.set_bias(0)
    plant.pump(5_000, 86_400_000)  # 5,000 strokes x 200 nL = 1 mL
    assert before - plant.reservoir_pg == 1_800_000_000
    assert plant.truth().balance_pg() == 0
    before = plant.reservoir_pg
    plant.restrict_flow(Flow.PARTIAL, 35_000)  # 3.5 % of 200 nL = 7 nL pass
    plant.pump(1, 86_400_001)
    assert before - plant.reservoir_pg == 12_600  # 7 nL x 1,800 pg/nL: no compliance fill


@given(
    held=st.integers(1, 500_000),
    conc=st.integers(0, 50_000),
    volume=st.integers(1, 500_000),
    jitter=st.integers(-3, 3),
)
def test_through_is_push_then_pop(held: int, conc: int, volume: int, jitter: int) -> None:
    """The steady-state shortcut gives exactly what ``push`` then ``pop`` give."""
    mass = max(volume * conc + jitter, 0)
    fast, slow = SlugSeries([[held, held * conc]]), SlugSeries([[held, held * conc]])
    out = fast.through(volume, mass)
    slow.push(volume, mass)
    expected = slow.pop(volume)
    if out is not None:
        assert out == expected
        assert fast.slugs() == slow.slugs()
        assert (fast.volume_nl, fast.mass_pg) == (slow.volume_nl, slow.mass_pg)

"""Seeded stroke-to-stroke variation of the metering mechanism (plant truth; H10).

A real rotor step or valve pulse does not move exactly the same volume every time: labeled
accuracy is a band around the programmed volume (docs/domain.md section 2), and an accuracy
test (the IEC 60601-2-24 trumpet curve, ``pumpemu accuracy``) must see that variance. The
mechanism's *bias* (a steady offset, ``mechanical_bias_ppm``) stays in the plant; this
module adds the *jitter* around it.

The model, chosen so it stays exact and costs O(1) however many strokes are asked about
(docs/architecture.md principles 4 and 5):

- each stroke index ``i`` (counted from the pump's build) gets a level
  ``J(i) = floor(stroke_nl * u(i) / 1e6)`` nL, where ``u(i)`` is an integer in
  ``[-spread/2, +spread/2]`` ppm drawn by a counter-based hash (SplitMix64) of the seed and
  ``i``: no state, no sequence to replay;
- stroke ``i`` moves ``J(i + 1) - J(i)`` nL on top of its biased volume, so it lies within
  ``spread_ppm`` of the stroke volume (plus one nL of rounding) either way;
- the jitter of strokes ``[m, n)`` is ``J(n) - J(m)``: a closed form (it telescopes), so
  the plant computes any run of strokes from two hashes, never stroke by stroke.

A consequence, documented in docs/pump-model.md ("Stroke-to-stroke variation"): the jitter of
any run of strokes is bounded by one stroke's spread, so short observation windows show the
variation and long ones converge on the bias, the trumpet shape. Slow drift is the bias's
job (``MechanicalBias``), not this module's.
"""

from __future__ import annotations

from functools import lru_cache

from emulator.cache_checks import CHECK_ALL, CacheCheckError

__all__ = ["jitter_level_nl", "jitter_volume_nl", "stroke_volumes_nl"]

PPM = 1_000_000
_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _splitmix64(x: int) -> int:
    """SplitMix64's finalizer: a well-mixed 64-bit value for each 64-bit input."""
    z = (x + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _level(key: int, half: int, stroke_nl: int, index: int) -> int:
    # _splitmix64(key ^ index), inlined: one new level every pump step.
    z = ((key ^ (index & _MASK)) + _GOLDEN) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    draw = z ^ (z >> 31)
    return stroke_nl * (draw % (2 * half + 1) - half) // PPM


@lru_cache(maxsize=16)
def _key(seed: int) -> int:
    return _splitmix64(seed & _MASK)


def jitter_level_nl(seed: int, spread_ppm: int, stroke_nl: int, index: int) -> int:
    """``J(index)``: the cumulative jitter level before stroke ``index``, in whole nL."""
    half = spread_ppm // 2
    if half == 0:
        return 0
    return _level(_key(seed), half, stroke_nl, index)


_last: list[tuple[int, int, int, int, int, int]] = [
    (-1, 1, 1, 0, _level(_key(-1), 1, 1, 0), _key(-1))  # a true entry, as every one is
]
"""The level computed last, as (seed, half, stroke_nl, index, level, the seed's key): the
plant asks for [m, n) then [n, p), so J(n) is hashed once, not twice, and the seed's key is
not looked up again (pure functions of their arguments: the memo changes the cost, never a
result). One tuple, read and replaced whole, so two threads driving two pumps can only miss
it, never mix one's level into the other's (a one-item list: the tuple is swapped, never
edited)."""


def jitter_volume_nl(seed: int, spread_ppm: int, stroke_nl: int, first: int, end: int) -> int:
    """The jitter, in nL, of strokes ``[first, end)``: ``J(end) - J(first)``, exactly."""
    if end < first:
        raise ValueError(f"end {end} < first {first}")
    half = spread_ppm // 2
    if end == first or half == 0:
        return 0
    last = _last[0]
    if last[0] == seed:
        key = last[5]
        if last[3] == first and last[1] == half and last[2] == stroke_nl:
            low = last[4]
            if CHECK_ALL.on and (key != _key(seed) or low != _level(key, half, stroke_nl, first)):
                raise CacheCheckError(f"kept jitter level {low} at stroke {first} is stale")
        else:
            low = _level(key, half, stroke_nl, first)
    else:
        key = _key(seed)
        low = _level(key, half, stroke_nl, first)
    high = _level(key, half, stroke_nl, end)
    _last[0] = (seed, half, stroke_nl, end, high, key)
    return high - low


def stroke_volumes_nl(
    seed: int, spread_ppm: int, stroke_nl: int, first: int, count: int
) -> list[int]:
    """Each stroke's own volume (nominal + jitter, no bias) for ``count`` strokes from
    ``first``: for tests and reports; the plant never needs strokes one by one."""
    return [
        stroke_nl + jitter_volume_nl(seed, spread_ppm, stroke_nl, i, i + 1)
        for i in range(first, first + count)
    ]

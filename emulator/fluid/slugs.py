"""An ordered series of slugs of drug solution (first in, first out), exact in nL and pg.

The pump's internal path and the catheter's dead volume hold drug solution in the order it
left the reservoir: a new concentration reaches the patient only after the old solution
ahead of it (the reason for a bridge bolus), and a priming front carries less drug than the
solution behind it (H3). A slug is ``[volume_nl, mass_pg]``.

Masses are integers: taking part of a slug takes ``mass * part // volume`` (rounded down,
the rest stays in the slug), so the series conserves mass exactly, whatever the slicing;
where a picogram lands may differ by one between two slicings, the total never does.

Neighbouring slugs whose concentrations differ by less than one picogram over the slug
(rounding, not a change of drug) are merged, so a year of strokes keeps a handful of slugs;
a series never holds more than ``MAX_SLUGS`` (the two oldest merge: they are mixed, as
fluid in a tube does over time).
"""

from __future__ import annotations

from collections import deque

__all__ = ["MAX_SLUGS", "SlugSeries"]

MAX_SLUGS = 64
"""The most slugs one series keeps (memory stays flat over a decade of refills)."""


class SlugSeries:
    """Drug solution in a tube, oldest (nearest the outlet) first."""

    __slots__ = ("_slugs", "mass_pg", "volume_nl")

    def __init__(self, slugs: list[list[int]] | None = None) -> None:
        self._slugs: deque[list[int]] = deque()
        self.volume_nl = 0
        self.mass_pg = 0
        for volume, mass in slugs or ():
            self.push(volume, mass)

    @classmethod
    def restore(cls, slugs: list[list[int]]) -> SlugSeries:
        """The series exactly as saved (``slugs()``), with no merging."""
        series = cls()
        for volume, mass in slugs:
            if volume < 1 or mass < 0:
                raise ValueError("a slug is [volume_nl >= 1, mass_pg >= 0]")
            series._slugs.append([volume, mass])
            series.volume_nl += volume
            series.mass_pg += mass
        return series

    def push(self, volume_nl: int, mass_pg: int) -> None:
        """Solution enters at the inlet (the newest end)."""
        if volume_nl <= 0:
            if mass_pg:
                raise ValueError("drug mass needs a volume to carry it")
            return
        self.volume_nl += volume_nl
        self.mass_pg += mass_pg
        slugs = self._slugs
        if slugs:
            last = slugs[-1]
            # Same concentration within one picogram of rounding: one slug.
            if abs(mass_pg * last[0] - last[1] * volume_nl) <= max(last[0], volume_nl):
                last[0] += volume_nl
                last[1] += mass_pg
                return
        slugs.append([volume_nl, mass_pg])
        if len(slugs) > MAX_SLUGS:
            first = slugs.popleft()
            slugs[0][0] += first[0]
            slugs[0][1] += first[1]

    def through(self, volume_nl: int, mass_pg: int) -> int | None:
        """Push at the inlet and take as much from the outlet, when the tube holds one slug
        of the same strength (every pump step in a steady state): the mass out, exactly
        as ``push`` then ``pop``. None (nothing done) in any other case."""
        slugs = self._slugs
        if len(slugs) != 1 or volume_nl <= 0:
            return None
        only = slugs[0]
        held, held_pg = only
        # Every pump step: the same test as push's, without abs() and max() calls.
        diff = mass_pg * held - held_pg * volume_nl
        if diff < 0:
            diff = -diff
        if diff > held and diff > volume_nl:
            return None
        total_pg = held_pg + mass_pg
        out = total_pg * volume_nl // (held + volume_nl)
        only[1] = total_pg - out
        self.mass_pg += mass_pg - out
        return out

    def pop(self, volume_nl: int) -> int:
        """Take ``volume_nl`` from the outlet (the oldest end); returns its drug mass."""
        slugs = self._slugs
        if slugs and 0 <= volume_nl < slugs[0][0]:
            return self._take_within_oldest(volume_nl)
        return sum(mass for _, mass in self._take(volume_nl, oldest=True))

    def pop_pieces(self, volume_nl: int) -> list[tuple[int, int]]:
        """Take ``volume_nl`` from the outlet as the slugs it spans, oldest first, so a
        boundary between two concentrations survives the move into the next tube."""
        slugs = self._slugs
        if slugs and 0 <= volume_nl < slugs[0][0]:
            return [(volume_nl, self._take_within_oldest(volume_nl))]
        return self._take(volume_nl, oldest=True)

    def _take_within_oldest(self, volume_nl: int) -> int:
        """The common case, every pump step: the take ends inside the oldest slug."""
        first = self._slugs[0]
        part = first[1] * volume_nl // first[0]
        first[0] -= volume_nl
        first[1] -= part
        self.volume_nl -= volume_nl
        self.mass_pg -= part
        return part

    def pop_newest(self, volume_nl: int) -> int:
        """Take ``volume_nl`` back through the inlet (aspiration); returns its drug mass."""
        return sum(mass for _, mass in self._take(volume_nl, oldest=False))

    def _take(self, volume_nl: int, *, oldest: bool) -> list[tuple[int, int]]:
        if not 0 <= volume_nl <= self.volume_nl:
            raise ValueError(f"cannot take {volume_nl} nL from {self.volume_nl} nL")
        slugs = self._slugs
        left = volume_nl
        pieces: list[tuple[int, int]] = []
        while left:
            slug = slugs[0] if oldest else slugs[-1]
            if slug[0] <= left:
                left -= slug[0]
                pieces.append((slug[0], slug[1]))
                if oldest:
                    slugs.popleft()
                else:
                    slugs.pop()
                continue
            part = slug[1] * left // slug[0]
            slug[0] -= left
            slug[1] -= part
            pieces.append((left, part))
            left = 0
        self.volume_nl -= volume_nl
        self.mass_pg -= sum(mass for _, mass in pieces)
        return pieces

    def slugs(self) -> list[list[int]]:
        """Copies of the slugs, oldest first (plain JSON for a snapshot)."""
        return [[volume, mass] for volume, mass in self._slugs]

    def __len__(self) -> int:
        return len(self._slugs)

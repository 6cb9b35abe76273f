"""The reservoir's drug mass: well mixed, exact from cumulative totals.

Between two injections the reservoir's concentration does not change (drawing solution out
of a well-mixed chamber takes drug and water in the same ratio). So the mass left is a
function of the volume left alone: ``segment_pg * volume_nl // segment_nl``, where the
segment is what the chamber held just after the last injection (the residual mixed with
what was injected, H1, H10). Every draw's mass is the difference of two such values, so the
reservoir never drifts, however finely the pump slices time.
"""

from __future__ import annotations

__all__ = ["mass_left"]


def mass_left(volume_nl: int, segment_nl: int, segment_pg: int) -> int:
    """Drug mass in ``volume_nl`` of the reservoir's present mixture (pg)."""
    if volume_nl <= 0 or segment_nl <= 0:
        return 0
    return segment_pg * volume_nl // segment_nl

"""The demo's picture: reservoir (firmware estimate vs plant truth) and cumulative dose.

matplotlib draws it headless (the Agg backend), to PNG or SVG by the file's suffix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hil.demo.recorder import Marker, Sample
from protocol.units import MS_PER_DAY, NL_PER_ML, PG_PER_MG


def write_plot(
    samples: Sequence[Sample], markers: Sequence[Marker], path: Path, title: str
) -> Path:
    """Draw the two panels and save them; returns the path written."""
    if not samples:
        raise ValueError("nothing to plot: no samples")
    import matplotlib  # noqa: PLC0415 - slow to import; only the demo needs it

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # noqa: PLC0415

    # Division to floats happens here only, for drawing: the samples themselves are exact.
    start = samples[0].time_ms
    days = [(s.time_ms - start) / MS_PER_DAY for s in samples]
    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 6.5))
    top.step(
        days,
        [s.reservoir_estimate_nl / NL_PER_ML for s in samples],
        where="post",
        label="firmware estimate",
        color="tab:blue",
    )
    top.step(
        days,
        [s.reservoir_truth_nl / NL_PER_ML for s in samples],
        where="post",
        label="plant truth",
        color="tab:orange",
        linestyle="--",
    )
    top.set_ylabel("reservoir (mL)")
    top.legend(loc="upper right")
    top.grid(alpha=0.3)
    bottom.plot(
        days,
        [s.dose_belief_pg / PG_PER_MG for s in samples],
        label="delivered, as the firmware counts it",
        color="tab:blue",
    )
    bottom.plot(
        days,
        [s.dose_truth_pg / PG_PER_MG for s in samples],
        label="reached the patient (truth)",
        color="tab:orange",
        linestyle="--",
    )
    bottom.set_ylabel("cumulative dose (mg)")
    bottom.set_xlabel("days since the visit")
    bottom.legend(loc="upper left")
    bottom.grid(alpha=0.3)
    for marker in markers:
        x = (marker.time_ms - start) / MS_PER_DAY
        for axis in (top, bottom):
            axis.axvline(x, color="grey", linewidth=0.8, alpha=0.6)
        top.annotate(
            marker.label,
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=7,
            color="dimgrey",
        )
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

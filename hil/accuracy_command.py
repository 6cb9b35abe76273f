"""``pumpemu accuracy``: the IEC 60601-2-24 trumpet curve of a simulated continuous delivery
(emulator/accuracy.py; docs/pump-model.md, "Accuracy: the trumpet curve").

A table on stdout (or ``--json``) and, with ``--plot FILE.svg|.png``, the curve drawn by
matplotlib (headless, Agg). Rates are parsed by hil's one quantity parser (hil/quantities.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hil import quantities as q
from hil.errors import UsageError

if TYPE_CHECKING:
    from emulator.accuracy import TrumpetRun

# The emulator loads in the callback, so --help imports none of it (docs/architecture.md,
# "Layers and imports"); tests/hil/test_cli_lazy_imports.py checks this copy.
DEFAULT_SCALE = 30
"""emulator.accuracy.DEFAULT_SCALE, as --scale's default."""

__all__ = ["accuracy", "percent", "write_trumpet_plot"]


def percent(ppm: int) -> str:
    """ppm as a signed percentage with two decimals, truncated toward zero (no float)."""
    hundredths = abs(ppm) // 100
    sign = "" if hundredths == 0 else "-" if ppm < 0 else "+"
    return f"{sign}{hundredths // 100}.{hundredths % 100:02d} %"


def _hours(seconds: int) -> str:
    return q.duration(seconds)


def run_json(run: TrumpetRun) -> dict[str, Any]:
    return {
        "profile": run.profile,
        "rate_nl_per_day": run.rate_nl_per_day,
        "seed": run.seed,
        "scale": run.scale,
        "sample_interval_s": run.sample_interval_s,
        "duration_s": run.duration_s,
        "analysis_start_s": run.analysis_start_s,
        "overall_error_ppm": run.overall_error_ppm,
        "points": [
            {
                "window_s": p.window_s,
                "max_error_ppm": p.max_error_ppm,
                "min_error_ppm": p.min_error_ppm,
                "windows": p.windows,
            }
            for p in run.points
        ],
        "samples_nl": list(run.samples_nl),
    }


def write_trumpet_plot(run: TrumpetRun, path: Path) -> Path:
    """Draw the trumpet (max and min error against the window) and A; PNG or SVG by suffix."""
    try:
        import matplotlib  # noqa: PLC0415 - slow to import; only --plot needs it
    except ImportError:  # pragma: no cover - matplotlib is a dependency; kept for trimmed installs
        raise UsageError(
            "--plot needs matplotlib, which is not installed: pip install matplotlib"
        ) from None
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # noqa: PLC0415

    # Floats only for drawing: the errors themselves are exact ppm.
    hours = [p.window_s / 3_600 for p in run.points]
    figure, axis = plt.subplots(figsize=(7, 4.5))
    axis.plot(hours, [p.max_error_ppm / 10_000 for p in run.points], "o-", label="max E(P)")
    axis.plot(hours, [p.min_error_ppm / 10_000 for p in run.points], "o-", label="min E(P)")
    axis.axhline(run.overall_error_ppm / 10_000, color="grey", linestyle="--", label="A")
    axis.axhline(0, color="black", linewidth=0.6)
    axis.set_xlabel("observation window P (h)")
    axis.set_ylabel("flow error (% of programmed)")
    axis.set_title(
        f"Trumpet curve: {run.profile}, {q.rate(run.rate_nl_per_day)}, "
        f"IEC 60601-2-24 times x{run.scale}"
    )
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


@click.command(
    epilog="""\b
Examples:
  pumpemu accuracy                                   peristaltic-20 at 0.5 mL/day, seed 1
  pumpemu accuracy --rate 0.048mL/day --scale 60     the minimum rate, longer windows
  pumpemu accuracy --profile trial-external --rate 0.2mL/day --plot trumpet.svg
  pumpemu accuracy --json --no-seed                  every stroke the same volume
"""
)
@click.option(
    "--profile",
    default="peristaltic-20",
    show_default=True,
    help="A built-in profile or a profile file.",
)
@click.option(
    "--rate", default="0.5 mL/day", show_default=True, help="The programmed continuous rate."
)
@click.option(
    "--seed",
    type=click.IntRange(0, (1 << 64) - 1),
    default=1,
    show_default=True,
    help="The stroke-variation seed (the profile's stroke_spread_ppm).",
)
@click.option("--no-seed", is_flag=True, help="No stroke-to-stroke variation (bias only).")
@click.option(
    "--scale",
    type=click.IntRange(1, 10_000),
    default=DEFAULT_SCALE,
    show_default=True,
    help="Multiply IEC 60601-2-24's times by this: 30 gives samples every 15 min over 60 h "
    "and windows of 1, 2.5, 5.5, 9.5 and 15.5 h.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (samples included).")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw the curve to FILE (.svg or .png).",
)
def accuracy(  # noqa: PLR0917 (click passes every option as an argument)
    profile: str,
    rate: str,
    seed: int,
    no_seed: bool,
    scale: int,
    as_json: bool,
    plot: Path | None,
) -> None:
    """Draw the IEC 60601-2-24 trumpet curve of a simulated continuous delivery.

    Runs a continuous delivery on the emulated pump and prints, from plant truth, the
    largest and smallest flow error over each observation window and the overall error A,
    with the standard's times scaled to intrathecal rates (--scale)."""
    from emulator.accuracy import run_trumpet  # noqa: PLC0415 (heavy: on use)
    from emulator.errors import ProfileError  # noqa: PLC0415

    try:
        rate_nl = q.parse_rate(rate)
    except q.QuantityError as exc:
        raise UsageError(f"--rate: {exc}") from None
    if plot is not None and plot.suffix.lower() not in (".svg", ".png"):
        raise UsageError(f"--plot {plot}: write a .svg or .png file")
    try:
        run = run_trumpet(profile, rate_nl, seed=None if no_seed else seed, scale=scale)
    except (ProfileError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if plot is not None:
        write_trumpet_plot(run, plot)
    if as_json:
        click.echo(json.dumps(run_json(run)))
        return
    click.echo(
        f"trumpet curve (IEC 60601-2-24 x{run.scale}): {run.profile}, "
        f"{q.rate(run.rate_nl_per_day)}, seed {run.seed if run.seed is not None else 'none'}"
    )
    click.echo(
        f"samples every {_hours(run.sample_interval_s)} over {_hours(run.duration_s)}, "
        f"analysis from {_hours(run.analysis_start_s)}; plant truth (delivered to the patient)"
    )
    click.echo(f"{'window P':>12}  {'max E(P)':>10}  {'min E(P)':>10}  {'windows':>7}")
    for point in run.points:
        click.echo(
            f"{_hours(point.window_s):>12}  {percent(point.max_error_ppm):>10}  "
            f"{percent(point.min_error_ppm):>10}  {point.windows:>7}"
        )
    click.echo(f"overall error A over the analysis period: {percent(run.overall_error_ppm)}")
    if plot is not None:
        click.echo(f"plot written to {plot}")

"""The page shell and inline-SVG plots of pumpemu's HTML reports (``pumpemu scenario run
--report``, ``pumpemu campaign run --report``; docs/scenarios.md "Reports", docs/campaigns.md
"Report").

No network and no script: the styles are inline and the plots are SVG drawn here, so a page
opens anywhere and can be archived with the CI job. Values come in as integers in their own
units (nL, pg, ms, ppm) with a function that labels one; a float appears only as a pixel
coordinate.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

WIDTH, HEIGHT, PAD = 720, 180, 40
COLOURS = {"belief": "#1f6fb2", "truth": "#c0392b", "programmed": "#555555"}
BAR_COLOUR = "#1f6fb2"
STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
.pass { color: #1a7f37; } .fail, .error { color: #c0392b; font-weight: bold; }
.skip { color: #9a6700; } .held { color: #1a7f37; } .failed { color: #c0392b; }
.skipped { color: #9a6700; } svg { background: #fafafa; border: 1px solid #ddd; }
section { border-top: 2px solid #ddd; margin-top: 2em; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""

Label = Callable[[int], str]


def e(text: object) -> str:
    """``text`` escaped for HTML: a scenario's own strings are never markup."""
    return html.escape(str(text))


def page(title: str, body: str) -> str:
    """A whole self-contained HTML document."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


def _svg(cls: str, title: str, inner: str) -> str:
    return (
        f'<figure><svg class="{cls}" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{e(title)}">{inner}</svg>'
        "</figure>"
    )


def _y(value: int, low: int, high: int) -> float:
    span = (high - low) or 1
    return HEIGHT - PAD - (HEIGHT - 2 * PAD) * (value - low) / span


def _x(value: int, low: int, high: int) -> float:
    span = (high - low) or 1
    return PAD + (WIDTH - 2 * PAD) * (value - low) / span


def line_chart(
    title: str,
    end: int,
    series: list[tuple[str, list[tuple[int, int]]]],
    label: Label,
    *,
    end_label: str,
    start_label: str = "0d 00:00",
) -> str:
    """Series of (time, value) on one time axis from 0 to ``end``, one ``polyline`` each
    (``data-series`` names it; its colour from COLOURS)."""
    top = max((v for _, points in series for _, v in points), default=0) or 1
    lines = []
    for name, points in series:
        coords = " ".join(f"{_x(t, 0, end):.1f},{_y(v, 0, top):.1f}" for t, v in points)
        lines.append(
            f'<polyline class="series" data-series="{name}" fill="none" stroke-width="1.5" '
            f'stroke="{COLOURS[name]}" points="{coords}"/>'
        )
    legend = " · ".join(name for name, _ in series)
    return _svg(
        "plot",
        title,
        f'<text x="{PAD}" y="14" font-size="12">{e(title)}: {e(legend)}</text>'
        f'<text x="2" y="{PAD}" font-size="10">{e(label(top))}</text>'
        f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="10">{e(start_label)}</text>'
        f'<text x="{WIDTH - PAD - 60}" y="{HEIGHT - 8}" font-size="10">{e(end_label)}</text>'
        f"{''.join(lines)}",
    )


def bins(values: Sequence[int], count: int = 20) -> list[tuple[int, int, int]]:
    """``values`` counted in at most ``count`` equal integer bins: (low, high, n), each bin
    [low, high) but the last, which holds its high end. One value: one bin."""
    low, high = min(values), max(values)
    if low == high:
        return [(low, high, len(values))]
    width = -(-(high - low + 1) // count)  # ceiling: every value lands in a bin
    edges = list(range(low, high + 1, width))
    counts = [0] * len(edges)
    for value in values:
        counts[min((value - low) // width, len(edges) - 1)] += 1
    return [(edge, min(edge + width, high), n) for edge, n in zip(edges, counts, strict=True)]


def histogram(title: str, values: Sequence[int], label: Label) -> str:
    """The distribution of ``values``: one ``rect class="bar"`` per bin (``data-count``:
    the runs in it; ``data-low``/``data-high``: its edges), the range labelled below."""
    groups = bins(values)
    tallest = max(n for _, _, n in groups)
    slot = (WIDTH - 2 * PAD) / len(groups)
    bars = []
    for i, (low, high, n) in enumerate(groups):
        top = _y(n, 0, tallest)
        bars.append(
            f'<rect class="bar" data-count="{n}" data-low="{low}" data-high="{high}" '
            f'x="{PAD + i * slot + 1:.1f}" y="{top:.1f}" width="{max(slot - 2, 1):.1f}" '
            f'height="{HEIGHT - PAD - top:.1f}" fill="{BAR_COLOUR}">'
            f"<title>{e(label(low))} to {e(label(high))}: {n} run(s)</title></rect>"
        )
    return _svg(
        "plot histogram",
        title,
        f'<text x="{PAD}" y="14" font-size="12">{e(title)} ({len(values)} runs)</text>'
        f'<text x="2" y="{PAD}" font-size="10">{tallest}</text>'
        f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="10">{e(label(groups[0][0]))}</text>'
        f'<text x="{WIDTH - PAD - 80}" y="{HEIGHT - 8}" font-size="10">'
        f"{e(label(groups[-1][1]))}</text>{''.join(bars)}",
    )


def scatter(
    title: str,
    points: Sequence[tuple[int, int]],
    x_name: str,
    x_label: Label,
    y_label: Label,
) -> str:
    """One ``circle class="point"`` per (x, y) (``data-x``/``data-y``: the values)."""
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    x_low, x_high = min(xs), max(xs)
    y_low, y_high = min(0, *ys), max(0, *ys)
    dots = "".join(
        f'<circle class="point" data-x="{x}" data-y="{y}" cx="{_x(x, x_low, x_high):.1f}" '
        f'cy="{_y(y, y_low, y_high):.1f}" r="3" fill="{BAR_COLOUR}">'
        f"<title>{e(x_name)} {e(x_label(x))}: {e(y_label(y))}</title></circle>"
        for x, y in points
    )
    return _svg(
        "plot scatter",
        title,
        f'<text x="{PAD}" y="14" font-size="12">{e(title)} against {e(x_name)}</text>'
        f'<text x="2" y="{PAD}" font-size="10">{e(y_label(y_high))}</text>'
        f'<text x="2" y="{HEIGHT - PAD}" font-size="10">{e(y_label(y_low))}</text>'
        f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="10">{e(x_label(x_low))}</text>'
        f'<text x="{WIDTH - PAD - 80}" y="{HEIGHT - 8}" font-size="10">'
        f"{e(x_label(x_high))}</text>{dots}",
    )

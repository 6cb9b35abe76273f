"""``pumpemu campaign run --report DIR``: one self-contained HTML page of a campaign's
results (docs/campaigns.md, "Report").

The page is drawn from the result lines alone (the JSONL of docs/campaigns.md "Results"),
so a resumed campaign's report covers every run in its file. It holds the summary (runs,
verdict counts, time), then per scenario file with two runs or more (a sweep) the
distribution of each oracle figure across its runs as a histogram, and, where the file's
runs vary one parameter besides the seed, each figure against that parameter; last, every
run that did not pass with its ``--rerun`` command. The page shell and plots are
hil/html_page.py's (the same as the scenario report's): no network, no script.

Each figure is an integer in its own unit: a dose oracle's windows are summed and the
error of delivered (plant truth) and of believed (firmware) against programmed dose is in
ppm of the programmed dose (H17, H13: the patient's dose is what the firmware cannot see).
"""

from __future__ import annotations

import shlex
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil import quantities as q
from hil.html_page import e, histogram, page, scatter

REPORT_NAME = "index.html"
VERDICTS = ("pass", "fail", "skip", "error")


@dataclass(frozen=True, slots=True)
class Metric:
    """One number a run's oracle gives, named for the page."""

    key: str
    """``oracle2.dose: delivered vs programmed``: the oracle's key in ``figures`` and what."""
    label: Callable[[int], str]


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    """What the page says of the campaign beyond its result lines."""

    results_path: str
    backend: str
    seconds: int | None = None
    """Wall time of this invocation in whole seconds (None: not measured)."""
    resumed: int = 0
    lost: tuple[str, ...] = ()
    interrupted: bool = False


def percent(ppm: int) -> str:
    """ppm as a signed percentage, exactly to 0.0001 % (``+1.2 %``, ``-50 %``)."""
    sign = "-" if ppm < 0 else "+"
    whole, frac = divmod(abs(ppm), 10_000)
    return sign + f"{whole}.{frac:04d}".rstrip("0").rstrip(".") + " %"


def _ms(ms: int) -> str:
    if ms < 1_000:
        return f"{ms} ms"
    return q.duration(ms // 1_000)


def _count(n: int) -> str:
    return str(n)


def _error_ppm(actual: int, programmed: int) -> int | None:
    if programmed <= 0:
        return None  # nothing was programmed: no error to speak of (a stopped window)
    return (actual - programmed) * 1_000_000 // programmed


def metrics(line: Mapping[str, Any]) -> dict[str, tuple[Metric, int | None]]:
    """Every figure of a result line as integers: {key: (metric, value)}. A value of None
    is a figure the run reports as absent (an alarm that never came)."""
    out: dict[str, tuple[Metric, int | None]] = {}
    figures = line.get("figures") or {}
    for key, figs in figures.items():
        check = key.split(".", 1)[-1]
        if check == "dose" and isinstance(figs, list):
            programmed = sum(w.get("programmed_pg", 0) for w in figs)
            for what, field in (("delivered", "patient_pg"), ("believed", "believed_pg")):
                name = f"{key}: {what} vs programmed dose error"
                actual = sum(w.get(field, 0) for w in figs)
                out[name] = (Metric(name, percent), _error_ppm(actual, programmed))
            continue
        if not isinstance(figs, dict):
            continue
        for field, value in figs.items():
            if isinstance(value, bool) or not (value is None or isinstance(value, int)):
                continue
            name, label = _named(key, check, field)
            out[name] = (Metric(name, label), value)
    return out


def _named(key: str, check: str, field: str) -> tuple[str, Callable[[int], str]]:
    if check == "alarm-latency" and field == "latency_ms":
        return f"{key}: time to first alarm", _ms
    if field.endswith("_nl"):
        what = {"discrepancy_nl": "refill discrepancy", "largest_gap_nl": "largest gap"}
        return f"{key}: {what.get(field, field)}", q.volume
    if field.endswith("_ms"):
        return f"{key}: {field}", _ms
    return f"{key}: {field}", _count


def swept_parameter(lines: Sequence[Mapping[str, Any]]) -> str | None:
    """The one parameter besides the seed whose value differs across ``lines``, if one."""
    varying = []
    keys = {k for line in lines for k in (line.get("parameters") or {})}
    for key in sorted(keys - {"seed"}):
        values = {repr((line.get("parameters") or {}).get(key)) for line in lines}
        if len(values) > 1:
            varying.append(key)
    return varying[0] if len(varying) == 1 else None


def write_report(lines: Sequence[Mapping[str, Any]], info: CampaignInfo, directory: Path) -> Path:
    """Write ``DIR/index.html`` and return its path (the directory is created)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / REPORT_NAME
    path.write_text(render(lines, info), encoding="utf-8")
    return path


def render(lines: Sequence[Mapping[str, Any]], info: CampaignInfo) -> str:
    ordered = sorted(lines, key=lambda line: str(line["id"]))
    by_file: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for line in ordered:
        by_file[str(line.get("file", ""))].append(line)
    body = [
        "<h1>Campaign report</h1>",
        _summary(ordered, info),
        *(_distributions(i, file, runs) for i, (file, runs) in enumerate(by_file.items())),
        _not_passed(ordered, info),
    ]
    return page("pumpemu campaign report", "".join(body))


def _summary(lines: Sequence[Mapping[str, Any]], info: CampaignInfo) -> str:
    counts = Counter(str(line.get("verdict")) for line in lines)
    cells = "".join(
        f'<tr><td class="{v}">{v}</td><td data-verdict="{v}">{counts.get(v, 0)}</td></tr>'
        for v in VERDICTS
    )
    facts = [
        f"{len(lines)} runs in {e(info.results_path)}",
        f"backend {e(info.backend)}",
    ]
    if info.seconds is not None:
        facts.append(f"this invocation took {e(q.duration(info.seconds))}")
    if info.resumed:
        facts.append(f"{info.resumed} resumed from an earlier invocation")
    if info.lost:
        facts.append(f"{len(info.lost)} lost with their worker: {e(', '.join(info.lost))}")
    if info.interrupted:
        facts.append("interrupted: run the same command again to finish it")
    summary = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts.get(v))
    return (
        f'<p id="summary">{e(summary or "no run finished")}</p>'
        f'<p id="facts">{" · ".join(facts)}</p>'
        f'<table id="verdicts"><tr><th>verdict</th><th>runs</th></tr>{cells}</table>'
    )


def _distributions(index: int, file: str, runs: Sequence[Mapping[str, Any]]) -> str:
    if len(runs) < 2:
        return ""  # one run has no distribution: its figures are in the JSONL and --rerun
    per_run = [metrics(line) for line in runs]
    names: dict[str, Metric] = {}
    for found in per_run:
        for name, (metric, _value) in found.items():
            names.setdefault(name, metric)
    parameter = swept_parameter(runs)
    parts = [
        f'<section class="file" id="file-{index}"><h2>{e(Path(file).name)}</h2>'
        f"<p>{len(runs)} runs of {e(file)}"
        + (f"; swept: <code>{e(parameter)}</code>" if parameter else "")
        + "</p>"
    ]
    for name, metric in names.items():
        values = [found[name][1] for found in per_run if name in found]
        present = [v for v in values if v is not None]
        absent = len(values) - len(present)
        parts.append(f'<h3 class="metric">{e(name)}</h3>')
        if absent:
            parts.append(f'<p class="absent">{absent} run(s) without this figure (none came)</p>')
        if not present:
            continue
        parts.append(histogram(name, present, metric.label))
        if parameter is not None:
            parts.append(_against(name, metric, parameter, runs, per_run))
    parts.append("</section>")
    return "".join(parts)


def _against(
    name: str,
    metric: Metric,
    parameter: str,
    runs: Sequence[Mapping[str, Any]],
    per_run: Sequence[dict[str, tuple[Metric, int | None]]],
) -> str:
    raw = [(line.get("parameters") or {}).get(parameter) for line in runs]
    numeric = all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
    # A swept value that is not an integer ("10 mg/mL") is placed by its rank among the
    # values, in the order the sweep first gives them, and labelled with itself.
    order = list(dict.fromkeys(repr(v) for v in raw))
    shown = {repr(v): str(v) for v in raw}
    points = []
    for value, found in zip(raw, per_run, strict=True):
        figure = found.get(name, (metric, None))[1]
        if figure is None:
            continue
        x = value if numeric and isinstance(value, int) else order.index(repr(value))
        points.append((x, figure))
    if not points:
        return ""

    def x_label(x: int) -> str:
        return str(x) if numeric else shown[order[x]]

    short = parameter.rsplit(".", 1)[-1]
    return scatter(name, points, short, x_label, metric.label)


def rerun_command(line: Mapping[str, Any], info: CampaignInfo) -> str:
    """The command that runs ``line``'s run again and compares it with its line."""
    return shlex.join(
        [
            "pumpemu",
            "campaign",
            "run",
            str(line.get("file", "")),
            "--backend",
            str(line.get("backend", info.backend)),
            "--out",
            info.results_path,
            "--rerun",
            str(line["id"]),
        ]
    )


def _not_passed(lines: Sequence[Mapping[str, Any]], info: CampaignInfo) -> str:
    rows = []
    for line in lines:
        verdict = str(line.get("verdict"))
        if verdict == "pass":
            continue
        why = "; ".join(
            f"{f.get('where')}: {f.get('what')}: expected {f.get('expected')}, "
            f"happened {f.get('happened')}"
            for f in line.get("failed") or []
        )
        rows.append(
            f'<tr class="not-passed"><td class="{e(verdict)}">{e(verdict.upper())}</td>'
            f"<td>{e(line['id'])}</td><td>{e(line.get('error') or why)}</td>"
            f'<td><code class="rerun">{e(rerun_command(line, info))}</code></td></tr>'
        )
    if not rows:
        return '<section id="not-passed"><h2>Runs that did not pass</h2><p>none</p></section>'
    return (
        '<section id="not-passed"><h2>Runs that did not pass</h2>'
        "<table><tr><th>verdict</th><th>run</th><th>why</th><th>run it again</th></tr>"
        f"{''.join(rows)}</table></section>"
    )

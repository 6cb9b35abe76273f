"""``--report DIR``: one self-contained HTML page per run of ``pumpemu scenario run``
(docs/scenarios.md, "Reports").

No network and no script: the page shell and the plots are hil/html_page.py's, drawn from
the run's samples, so the page opens anywhere and can be archived with the CI job. Per
scenario: its verdict, its timeline, each expectation's and oracle's verdict with the
evidence, and three plots on the scenario's time axis: reservoir belief vs truth;
cumulative dose programmed, believed and delivered to the patient; alarms raised and
faults applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hil import quantities as q
from hil.html_page import HEIGHT, PAD, WIDTH, line_chart, page
from hil.html_page import e as _e
from hil.scenario.oracles import Sample, fmt_time
from hil.scenario.runner import RunResult
from protocol.device_state import AlarmKind, EventKind

REPORT_NAME = "index.html"


def write_report(results: Sequence[RunResult], directory: str | Path) -> Path:
    """Write ``DIR/index.html`` and return its path (the directory is created)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / REPORT_NAME
    path.write_text(render(results), encoding="utf-8")
    return path


def render(results: Sequence[RunResult]) -> str:
    counts = {v: sum(r.verdict == v for r in results) for v in ("pass", "fail", "skip", "error")}
    rows = "".join(
        f'<tr><td class="{r.verdict}">{r.verdict.upper()}</td>'
        f'<td><a href="#run-{i}">{_e(r.scenario.id)}</a></td>'
        f"<td>{_e(' '.join(r.scenario.hazards))}</td><td>{_e(r.backend)}</td></tr>"
        for i, r in enumerate(results)
    )
    summary = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    body = "".join(_run(i, r) for i, r in enumerate(results))
    return page(
        "pumpemu scenario report",
        f'<h1>Scenario report</h1><p id="summary">{_e(summary)}</p>'
        f'<table id="verdicts"><tr><th>verdict</th><th>scenario</th><th>hazards</th>'
        f"<th>backend</th></tr>{rows}</table>{body}",
    )


def _run(index: int, r: RunResult) -> str:
    sc = r.scenario
    parts = [
        f'<section id="run-{index}" class="run"><h2>{_e(sc.id)} '
        f'<span class="{r.verdict}">{r.verdict.upper()}</span></h2>',
        f"<p>{_e(sc.title)}</p><p>{_e(sc.path)} · backend {_e(r.backend)} · seed {sc.seed}"
        f" · hazards {_e(' '.join(sc.hazards))}</p>",
    ]
    if r.error:
        parts.append(f'<p class="error">{_e(r.error)}</p>')
    steps = "".join(
        f"<tr><td>{_e(fmt_time(rec.step.at_ms))}</td><td>{_e(rec.step.name)}</td>"
        f"<td>{_e(rec.step.do)}</td>"
        f"<td>{_e(rec.result.skipped or rec.result.outcome) if rec.result else ''}"
        f"{' ' + _e(rec.result.refusal) if rec.result and rec.result.refusal else ''}</td>"
        f"<td>{_e(rec.state_after)}</td></tr>"
        for rec in r.records
    )
    parts.append(
        '<h3>Timeline</h3><table class="timeline"><tr><th>at</th><th>step</th><th>do</th>'
        f"<th>outcome</th><th>state after</th></tr>{steps}</table>"
    )
    checks = "".join(
        f'<tr class="check"><td class="{_verdict(f.ok)}">{_verdict(f.ok)}</td>'
        f"<td>{_e(f.where)}</td><td>{_e(f.what)}</td><td>{_e(f.expected)}</td>"
        f"<td>{_e(f.happened)}</td><td>{_e(f.at.describe()) if f.at else ''}</td></tr>"
        for f in r.findings
    )
    parts.append(
        '<h3>Expectations and oracles</h3><table class="checks"><tr><th>verdict</th>'
        "<th>where</th><th>what</th><th>expected</th><th>happened</th>"
        f"<th>belief beside truth</th></tr>{checks}</table>"
    )
    if r.samples:
        parts.append("<h3>Plots</h3>" + _plots(r))
    parts.append("</section>")
    return "".join(parts)


def _verdict(ok: bool | None) -> str:
    return {True: "held", False: "failed", None: "skipped"}[ok]


def _plots(r: RunResult) -> str:
    samples = r.samples
    end = max(r.scenario.end_ms, 1)
    # A backend without plant truth (url without --control) draws belief alone.
    truth = all(s.truth_read for s in samples)
    reservoir = line_chart(
        "reservoir: belief vs truth (mL)" if truth else "reservoir: belief (mL)",
        end,
        [
            ("belief", [(s.t_ms, s.reservoir_belief_nl) for s in samples]),
            *([("truth", [(s.t_ms, s.reservoir_truth_nl) for s in samples])] if truth else []),
        ],
        q.volume,
        end_label=fmt_time(end),
    )
    dose = line_chart(
        "cumulative dose: programmed, believed, to the patient (mass)",
        end,
        [
            ("programmed", [(s.t_ms, s.programmed_pg) for s in samples]),
            ("belief", [(s.t_ms, s.believed_pg) for s in samples]),
            *([("truth", [(s.t_ms, s.patient_pg) for s in samples])] if truth else []),
        ],
        q.mass,
        end_label=fmt_time(end),
    )
    return reservoir + dose + _events(r, end)


def _x(t_ms: int, end: int) -> float:
    return PAD + (WIDTH - 2 * PAD) * t_ms / end


def _events(r: RunResult, end: int) -> str:
    origin = _origin(r.samples)
    marks = []
    for rec in r.records:
        if rec.step.do in ("fault", "link-fault"):
            x = _x(rec.step.at_ms, end)
            marks.append(
                f'<line class="fault" x1="{x:.1f}" x2="{x:.1f}" y1="20" y2="{HEIGHT / 2:.0f}" '
                f'stroke="#9a6700"><title>{_e(rec.step.name)}</title></line>'
            )
    for entry in r.log:
        if entry.kind is not EventKind.ALARM_RAISED or origin is None:
            continue
        t = entry.time_ms - origin
        if 0 <= t <= end:
            x = _x(t, end)
            name = AlarmKind(entry.detail).name
            marks.append(
                f'<line class="alarm" x1="{x:.1f}" x2="{x:.1f}" y1="{HEIGHT / 2:.0f}" '
                f'y2="{HEIGHT - PAD}" stroke="#c0392b"><title>{_e(name)}</title></line>'
            )
    return (
        f'<figure><svg class="plot events" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="alarms and faults">'
        f'<text x="{PAD}" y="14" font-size="12">faults (top, amber) and alarms raised '
        f"(bottom, red)</text>{''.join(marks)}</svg></figure>"
    )


def _origin(samples: Sequence[Sample]) -> int | None:
    """The pump clock at 0d 00:00 (log stamps are on the pump clock)."""
    first = samples[0] if samples else None
    return None if first is None else first.local_ms - first.t_ms

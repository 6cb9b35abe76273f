"""Judging a run: each step's expectations, then the oracles over the whole run
(docs/scenarios.md, "Expectations" and "Oracles").

Oracles compare plant truth (``Pump.plant_truth()``) with firmware belief (``status()``)
and with what the clinician programmed, which is integrated here from the prescription
itself (``basal_volume_x_ms``), never through the firmware's schedule code: an oracle that
shared the code it judges would agree with its bugs. Masses are integer pg.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hil import quantities as q
from hil.scenario.backends import PumpView
from hil.scenario.model import Scenario, Step
from protocol.device_state import AlarmKind, EventKind, LogEntry
from protocol.prescription import WEEK_OFFSET_OF_EPOCH_S, InfusionMode, Prescription, Repeat

PPM = 1_000_000
SLACK_STROKES = 2
"""Whole-stroke quantisation: a window's edges can each cut one stroke, so dose figures are
compared with a slack of two strokes of drug on top of the tolerance."""

PRIMARY_KIND: dict[str, tuple[EventKind, ...]] = {
    "program": (EventKind.PRESCRIPTION_COMMITTED,),
    "clinician-bolus": (EventKind.CLINICIAN_BOLUS_STARTED,),
    "patient-bolus": (EventKind.PATIENT_BOLUS_GRANTED,),
    "cancel-bolus": (EventKind.BOLUS_CANCELLED,),
    "prime": (EventKind.PRIMING_STARTED,),
    "refill": (EventKind.REFILL_BEGUN, EventKind.REFILL_COMPLETED),
    "start": (EventKind.THERAPY_STARTED,),
    "stop": (EventKind.THERAPY_STOPPED,),
    "acknowledge": (EventKind.ALARM_ACKNOWLEDGED,),
    "alarm-test": (EventKind.ALARM_TEST,),
    "set-clock": (EventKind.CLOCK_SET,),
    "clear-memory-error": (EventKind.ALARM_CLEARED,),
    "reset-flow-valve": (EventKind.FLOW_VALVE_RESET,),
}
"""The log entry that shows each command applied, per command id (docs/protocol.md
section 11: ``value_b`` is the command id)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """Belief beside truth at scenario time ``t_ms``. Cumulative figures run from 0d 00:00."""

    t_ms: int
    local_ms: int
    log_next_seq: int = field(compare=False)
    """The log position (backends differ: the wire writes session entries)."""
    state: str
    reservoir_belief_nl: int
    reservoir_truth_nl: int
    believed_nl: int
    patient_nl: int
    programmed_pg: int
    believed_pg: int
    patient_pg: int
    truth_read: bool = field(default=True, compare=False)
    """False on a backend that cannot read plant truth: the truth fields are 0, not read."""

    def describe(self) -> str:
        if not self.truth_read:
            return (
                f"at {fmt_time(self.t_ms)}: reservoir belief "
                f"{q.volume(self.reservoir_belief_nl)}; plant truth not readable here"
            )
        return (
            f"at {fmt_time(self.t_ms)}: reservoir belief {q.volume(self.reservoir_belief_nl)}"
            f" vs truth {q.volume(self.reservoir_truth_nl)}; delivered belief "
            f"{q.volume(self.believed_nl)} vs to the patient {q.volume(self.patient_nl)}"
        )


@dataclass(frozen=True, slots=True)
class Finding:
    """One judged expectation or oracle."""

    where: str
    what: str
    ok: bool | None
    """True held, False failed, None skipped (with the reason in ``happened``)."""
    expected: str = ""
    happened: str = ""
    at: Sample | None = None


def fmt_time(ms: int) -> str:
    """A scenario time (ms from the start) as the file writes one, ``2d 08:00``: the elapsed
    time of the one display style without its ``+`` (docs/quantities.md, "Display"), which
    reads back through the duration grammar."""
    return q.elapsed(ms).removeprefix("+")


def basal_volume_x_ms(rx: Prescription, local_ms: int, span_ms: int) -> int:
    """The basal volume ``rx`` asks for over ``span_ms`` from pump-clock ``local_ms``, in
    nL x ms / day (exact), by the schedule convention of protocol/prescription.py."""
    if rx.mode is InfusionMode.STOPPED or not rx.steps or span_ms <= 0:
        return 0
    period = rx.repeat.period_s * 1_000
    origin = WEEK_OFFSET_OF_EPOCH_S * 1_000 if rx.repeat is Repeat.WEEKLY else 0
    starts = [s.start_s * 1_000 for s in rx.steps]
    rates = [s.rate_nl_per_day for s in rx.steps]
    ends = [*starts[1:], period]
    whole, rest = divmod(span_ms, period)
    total = whole * sum(r * (e - s) for r, s, e in zip(rates, starts, ends, strict=True))
    t = local_ms
    while rest > 0:
        offset = (t + origin) % period
        index = bisect_right(starts, offset) - 1
        chunk = min(ends[index] - offset, rest)
        total += rates[index] * chunk
        t += chunk
        rest -= chunk
    return total


def _at_start(samples: Sequence[Sample], t_ms: int) -> Sample | None:
    """The state as ``t_ms`` begins: the first sample at ``t_ms`` (taken before the steps
    at that instant), else the last before it. A bolus given at a window's first instant
    belongs to that window."""
    best = None
    for sample in samples:
        if sample.t_ms >= t_ms:
            return sample if sample.t_ms == t_ms else best
        best = sample
    return best


def _entries(log: Sequence[LogEntry], start: int, end: int) -> list[LogEntry]:
    return [e for e in log if start <= e.seq < end]


def _step_where(scenario: Scenario, step: Step) -> str:
    when = fmt_time(step.at_ms)
    return f"{scenario.path}:{step.line}: step {step.index + 1} {step.name!r} ({step.do} at {when})"


def judge(
    scenario: Scenario,
    records: Sequence[Any],
    samples: Sequence[Sample],
    log: Sequence[LogEntry],
    pump: PumpView,
    *,
    no_truth: str | None = None,
) -> tuple[list[Finding], dict[str, Any]]:
    """Every expectation and oracle of ``scenario``, and the oracles' figures. An oracle
    that needs plant truth on a backend that cannot read it (``no_truth``: the reason), or
    whose step was not run, is skipped with the reason: never passed, and no figure."""
    findings: list[Finding] = []
    figures: dict[str, Any] = {}
    for record in records:
        findings.extend(_expectations(scenario, record, log))
    stroke_nl = pump.profile.stroke_nl
    by_name = {r.step.name: r for r in records}
    for oracle in scenario.oracles:
        where = f"{scenario.path}:{oracle.line}: oracle {oracle.index + 1} ({oracle.check})"
        p = oracle.params
        key = f"oracle{oracle.index + 1}.{oracle.check}"
        skip = _oracle_skip(oracle.check, p, by_name, no_truth)
        if skip is not None:
            findings.append(Finding(where, oracle.check, None, "judged", f"skipped: {skip}"))
            continue
        if oracle.check == "dose":
            found, figs = _dose(where, p, samples, scenario.end_ms, stroke_nl, records)
        elif oracle.check == "reservoir":
            found, figs = _reservoir(where, p, samples, scenario.end_ms)
        elif oracle.check == "refill-discrepancy":
            found, figs = _refill(where, p, by_name[p["step"]], log)
        elif oracle.check == "alarm-latency":
            found, figs = _latency(where, p, by_name[p["fault"]], log)
        else:
            found, figs = _exactly_once(where, scenario, records, log)
        findings.extend(found)
        figures[key] = figs
    return findings, figures


TRUTH_CHECKS = frozenset({"dose", "reservoir"})
"""Oracles that compare belief with plant truth (the drug that reached the patient, the
fluid really in the reservoir): they cannot be judged without it (H1, H10, H13, H17)."""


def _oracle_skip(
    check: str, p: Mapping[str, Any], by_name: Mapping[str, Any], no_truth: str | None
) -> str | None:
    if check in TRUTH_CHECKS and no_truth is not None:
        return no_truth
    name = p.get("step") if check == "refill-discrepancy" else p.get("fault")
    if (
        check in ("refill-discrepancy", "alarm-latency")
        and isinstance(name, str)
        and name in by_name
    ):
        result = by_name[name].result
        if result is not None and result.skipped:
            return f"its step {name!r} was skipped ({result.skipped})"
    return None


# -- expectations ---------------------------------------------------------------------------


def _expectations(scenario: Scenario, record: Any, log: Sequence[LogEntry]) -> list[Finding]:
    step: Step = record.step
    result = record.result
    where = _step_where(scenario, step)
    if result is not None and result.skipped:
        return [Finding(where, "step", None, "run", f"skipped: {result.skipped}", record.sample)]
    exp = step.expect
    if exp is None or result is None:
        return []
    out: list[Finding] = []
    at = record.sample

    def check(what: str, expected: Any, happened: Any) -> None:
        ok = expected == happened
        out.append(Finding(where, what, ok, str(expected), str(happened), at))

    if exp.outcome is not None:
        check("outcome", exp.outcome, result.outcome)
    if exp.refusal is not None:
        check("refusal", exp.refusal, result.refusal)
    if exp.field is not None:
        check("field", exp.field, result.field)
    if exp.limit is not None:
        check("limit", exp.limit, result.limit)
    if exp.state is not None:
        check("state", exp.state, record.state_after)
    span = _entries(log, record.log_from, record.log_to)
    if exp.alarms is not None:
        raised = sorted(
            {AlarmKind(e.detail).name for e in span if e.kind is EventKind.ALARM_RAISED}
        )
        check("alarms raised", sorted(exp.alarms), raised)
    kinds = {e.kind.name for e in span}
    if exp.log is not None:
        missing = [k for k in exp.log if k not in kinds]
        out.append(
            Finding(
                where,
                "log written",
                not missing,
                f"includes {list(exp.log)}",
                f"missing {missing}; written {sorted(kinds)}" if missing else "all written",
                at,
            )
        )
    if exp.no_log is not None:
        present = [k for k in exp.no_log if k in kinds]
        out.append(
            Finding(
                where,
                "log not written",
                not present,
                f"none of {list(exp.no_log)}",
                f"written {present}" if present else "none written",
                at,
            )
        )
    if exp.discrepancy is not None:
        flagged = _discrepancy_flagged(result, log)
        check("refill discrepancy", exp.discrepancy, "flagged" if flagged else "none")
    return out


def _discrepancy_flagged(result: Any, log: Sequence[LogEntry]) -> bool:
    if len(result.command_ids) < 2:
        return False
    cid = result.command_ids[1]
    return any(e.kind is EventKind.REFILL_DISCREPANCY and e.value_b == cid for e in log)


# -- oracles --------------------------------------------------------------------------------


def _windows(p: Mapping[str, Any], end_ms: int) -> list[tuple[int, int]]:
    start = p["from_ms"]
    stop = p["to_ms"] if p["to_ms"] is not None else end_ms
    per = p.get("per_ms")
    if not per:
        return [(start, stop)]
    return [(t, min(t + per, stop)) for t in range(start, stop, per)]


def _pct(ppm: int) -> str:
    whole, frac = divmod(ppm, 10_000)
    return f"{whole}.{frac:04d}".rstrip("0").rstrip(".") + "%"


def _dose(  # noqa: PLR0917 (one oracle's inputs, called from one place)
    where: str,
    p: Mapping[str, Any],
    samples: Sequence[Sample],
    end_ms: int,
    stroke_nl: int,
    records: Sequence[Any],
) -> tuple[list[Finding], Any]:
    out: list[Finding] = []
    rows = []
    slack = SLACK_STROKES * stroke_nl * _concentration(records)
    for lo, hi in _windows(p, end_ms):
        # A window is [lo, hi): what a step does at hi belongs to the next window.
        a, b = (
            _at_start(samples, lo),
            _at_start(samples, hi),
        )
        if a is None or b is None:
            continue
        programmed = b.programmed_pg - a.programmed_pg
        believed = b.believed_pg - a.believed_pg
        patient = b.patient_pg - a.patient_pg
        rows.append(
            {
                "from": fmt_time(lo),
                "to": fmt_time(hi),
                "programmed_pg": programmed,
                "believed_pg": believed,
                "patient_pg": patient,
            }
        )
        window = f"window {fmt_time(lo)}..{fmt_time(hi)}{_steps_near(records, lo, hi)}"
        figures = (
            f"programmed {q.mass(programmed)}, believed {q.mass(believed)}, "
            f"to the patient {q.mass(patient)}"
        )
        tests: list[tuple[str, bool, str]] = []
        if p["believed"] is not None:
            tol = programmed * p["believed"] // PPM + slack
            tests.append(
                (
                    "believed vs programmed",
                    abs(believed - programmed) <= tol,
                    f"believed within {_pct(p['believed'])} of programmed",
                )
            )
        if p["patient"] is not None:
            tol = programmed * p["patient"] // PPM + slack
            tests.append(
                (
                    "patient vs programmed",
                    abs(patient - programmed) <= tol,
                    f"to the patient within {_pct(p['patient'])} of programmed",
                )
            )
        if p["patient_at_most"] is not None:
            tests.append(
                (
                    "patient at most",
                    patient <= programmed * p["patient_at_most"] // PPM + slack,
                    f"to the patient at most {_pct(p['patient_at_most'])} of programmed",
                )
            )
        if p["patient_at_least"] is not None:
            tests.append(
                (
                    "patient at least",
                    patient >= programmed * p["patient_at_least"] // PPM - slack,
                    f"to the patient at least {_pct(p['patient_at_least'])} of programmed",
                )
            )
        for what, ok, expected in tests:
            out.append(Finding(where, f"dose {what}, {window}", ok, expected, figures, b))
    return out, rows


def _steps_near(records: Sequence[Any], lo: int, hi: int) -> str:
    """The steps a dose window is about: those inside it, else the last one before it."""
    inside = [r.step.name for r in records if lo <= r.step.at_ms < hi]
    if inside:
        return f" (steps {', '.join(repr(n) for n in inside)})"
    before = [r.step.name for r in records if r.step.at_ms < lo]
    return f" (after step {before[-1]!r})" if before else ""


def _concentration(records: Sequence[Any]) -> int:
    """The drug strength for the slack: the largest the run programmed (the conservative
    choice for a quantisation allowance)."""
    best = 1
    for record in records:
        rx = record.step.params.get("prescription")
        if rx is not None:
            best = max(best, rx.concentration_ug_per_ml)
        conc = record.step.params.get("concentration_ug_per_ml")
        if conc:
            best = max(best, conc)
    return best


def _reservoir(
    where: str, p: Mapping[str, Any], samples: Sequence[Sample], end_ms: int
) -> tuple[list[Finding], Any]:
    lo = p["from_ms"]
    hi = p["to_ms"] if p["to_ms"] is not None else end_ms
    inside = [s for s in samples if lo <= s.t_ms <= hi]
    if not inside:
        return [
            Finding(where, "reservoir belief vs truth", False, "samples", "none in the window")
        ], {}
    worst = max(inside, key=lambda s: abs(s.reservoir_belief_nl - s.reservoir_truth_nl))
    gap = abs(worst.reservoir_belief_nl - worst.reservoir_truth_nl)
    out = []
    if p["max_gap_nl"] is not None:
        out.append(
            Finding(
                where,
                "reservoir belief vs truth",
                gap <= p["max_gap_nl"],
                f"gap at most {q.volume(p['max_gap_nl'])} at every sample",
                f"largest gap {q.volume(gap)}",
                worst,
            )
        )
    if p["min_gap_nl"] is not None:
        out.append(
            Finding(
                where,
                "reservoir belief vs truth",
                gap >= p["min_gap_nl"],
                f"gap at least {q.volume(p['min_gap_nl'])} at some sample",
                f"largest gap {q.volume(gap)}",
                worst,
            )
        )
    return out, {"largest_gap_nl": gap, "at": fmt_time(worst.t_ms), "samples": len(inside)}


def _refill(
    where: str, p: Mapping[str, Any], record: Any, log: Sequence[LogEntry]
) -> tuple[list[Finding], Any]:
    result = record.result
    if result is None or result.outcome != "applied" or result.predicted_residual_nl is None:
        return [
            Finding(
                where,
                "refill discrepancy",
                False,
                "an applied refill",
                f"the refill ended {result.outcome if result else 'not run'}",
                record.sample,
            )
        ], {}
    flagged = _discrepancy_flagged(result, log)
    gap = result.withdrawn_reported_nl - result.predicted_residual_nl
    sign = "zero" if gap == 0 else ("positive" if gap > 0 else "negative")
    out = [
        Finding(
            where,
            "refill discrepancy flagged",
            flagged == p["flagged"],
            "flagged" if p["flagged"] else "not flagged",
            f"{'flagged' if flagged else 'not flagged'}: withdrawn "
            f"{q.volume(result.withdrawn_reported_nl)} vs predicted "
            f"{q.volume(result.predicted_residual_nl)}",
            record.sample,
        )
    ]
    if p["sign"] is not None:
        out.append(
            Finding(
                where, "refill discrepancy sign", sign == p["sign"], p["sign"], sign, record.sample
            )
        )
    return out, {"flagged": flagged, "discrepancy_nl": gap}


def _latency(
    where: str, p: Mapping[str, Any], record: Any, log: Sequence[LogEntry]
) -> tuple[list[Finding], Any]:
    kind = AlarmKind[p["alarm"]]
    raised = [
        e
        for e in log
        if e.seq >= record.log_from and e.kind is EventKind.ALARM_RAISED and e.detail == kind
    ]
    latency = raised[0].time_ms - record.local_ms if raised else None
    shown = (
        "never"
        if latency is None
        else q.duration(latency // 1_000)
        if latency >= 1_000
        else f"{latency} ms"
    )
    if p["never"]:
        finding = Finding(
            where,
            f"{kind.name} after fault {record.step.name!r}",
            latency is None,
            "never (the firmware cannot see it)",
            shown,
            record.sample,
        )
    else:
        ok = latency is not None and latency <= p["within_ms"]
        finding = Finding(
            where,
            f"{kind.name} after fault {record.step.name!r}",
            ok,
            f"within {q.duration(p['within_ms'] // 1_000)}",
            shown,
            record.sample,
        )
    return [finding], {"latency_ms": latency}


def _exactly_once(
    where: str, scenario: Scenario, records: Sequence[Any], log: Sequence[LogEntry]
) -> tuple[list[Finding], Any]:
    out: list[Finding] = []
    checked = 0
    for record in records:
        result = record.result
        kinds = PRIMARY_KIND.get(record.step.do)
        if result is None or kinds is None or result.skipped:
            continue
        for cid, kind in zip(result.command_ids, kinds, strict=False):
            applied = sum(1 for e in log if e.kind is kind and e.value_b == cid)
            checked += 1
            step = _step_where(scenario, record.step)
            if applied > 1:
                out.append(
                    Finding(
                        where,
                        f"command {cid} applied once",
                        False,
                        "applied once",
                        f"applied {applied} times ({kind.name}) in {step}",
                        record.sample,
                    )
                )
            elif result.outcome == "applied" and applied == 0 and (kind is kinds[-1]):
                out.append(
                    Finding(
                        where,
                        f"command {cid} applied",
                        False,
                        "the pump's log shows the applied command",
                        f"reported applied but no {kind.name} in {step}",
                        record.sample,
                    )
                )
            elif result.outcome in ("refused", "not applied") and applied and kind is kinds[-1]:
                out.append(
                    Finding(
                        where,
                        f"command {cid} not applied",
                        False,
                        f"{result.outcome}: nothing applied",
                        f"{kind.name} logged for it in {step}: applied behind the user's back",
                        record.sample,
                    )
                )
    if not out:
        out.append(
            Finding(
                where,
                "every command applied at most once, none silently lost",
                True,
                "exactly once",
                f"{checked} commands checked",
            )
        )
    return out, {"commands_checked": checked, "violations": len([f for f in out if f.ok is False])}

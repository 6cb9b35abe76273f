"""Runs one scenario on one backend and judges it (docs/scenarios.md, "Running").

The runner walks the timeline in order: it advances the pump to each instant it needs (a
step, a dose-window boundary, a reservoir sample), takes a ``Sample`` of firmware belief
beside plant truth there, and does the step. Expectations and oracles are judged at the
end, from the step records, the samples and the pump's event log (oracles.py). Nothing
reads a clock; one file and seed give one run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from hil.errors import HilError, UsageError
from hil.scenario import oracles
from hil.scenario.backends import (
    Backend,
    PumpFactory,
    PumpView,
    RefillHands,
    SetupError,
    StepResult,
    command_count,
    make_backend,
)
from hil.scenario.model import PROGRAMMER_ACTIONS, Scenario, Step
from hil.scenario.oracles import Finding, Sample, fmt_time
from protocol.device_state import LogEntry
from protocol.prescription import InfusionMode, Prescription
from protocol.units import MS_PER_DAY

if TYPE_CHECKING:
    from emulator.command_ledger import CommandLedger
    from hil.pump_at_url import PumpAtUrl

_NO_TRUTH = SimpleNamespace(delivered_nl=0, reservoir_nl=0, withdrawn_nl=0)
"""Plant truth on a backend that cannot read it (``Backend.no_truth``)."""

FIRST_COMMAND_ID = 1_001
"""Command ids the runner gives, counting up in timeline order (the same on every backend)."""


@dataclass(slots=True)
class StepRecord:
    step: Step
    local_ms: int
    log_from: int
    """The log seq the step's span starts at (the next entry written at or after it)."""
    log_to: int = 0
    result: StepResult | None = None
    state_after: str = ""
    sample: Sample | None = None


@dataclass(slots=True)
class RunResult:
    scenario: Scenario
    backend: str
    verdict: str = "pass"
    """pass, fail, skip (something could not be run on this backend) or error."""
    findings: list[Finding] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    """The oracles' figures (the same on every backend for a file and seed)."""
    error: str = ""
    records: list[StepRecord] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    log: tuple[LogEntry, ...] = ()


class _Run:
    def __init__(self, scenario: Scenario, backend: Backend) -> None:
        self.sc = scenario
        self.b = backend
        self.pump: PumpView = backend.pump
        self.origin = scenario.setup.clock_ms  # internal ms at 0d 00:00
        self.samples: list[Sample] = []
        self.records: list[StepRecord] = []
        # Programmed dose: what the clinician asked for, integrated independently of the
        # firmware's own schedule code (an oracle must not share the code it judges).
        self.rx: Prescription | None = scenario.setup.prescription
        self.running = self.rx is not None and self.rx.mode is not InfusionMode.STOPPED
        self.programmed_pgms = 0  # pg x ms / day, exact
        self.believed_pg = 0
        self.patient_pg = 0
        self.no_truth = backend.no_truth
        self.stuck: str | None = None
        """Why pump time cannot move on (a rig's real clock): every later step is skipped."""
        truth = self._truth()
        status = self.pump.status()
        self.last_t = 0
        self.last_local = status.local_time_ms
        self.last_believed_nl = status.delivered_nl
        self.last_patient_nl = truth.delivered_nl
        self.last_patient_pg: int | None = getattr(truth, "delivered_pg", None)
        self.truth_concentration = scenario.setup.concentration_ug_per_ml or 0
        self.next_id = FIRST_COMMAND_ID
        self.skip_until = 0
        self.log: tuple[LogEntry, ...] = ()

    # -- time and samples --

    def _truth(self) -> Any:
        if self.no_truth is not None:
            # Nothing judges truth on such a backend (oracles.judge skips what needs it);
            # zeros, not belief, so a slip would show as a gap, never as agreement.
            return _NO_TRUTH
        return self.pump.plant_truth()

    def goto(self, t_ms: int) -> Sample:
        if t_ms > self.last_t and self.stuck is None:
            self.stuck = self.b.advance_to(self.origin + t_ms)
        return self.sample(t_ms)

    def sample(self, t_ms: int) -> Sample:
        if self.stuck is not None and self.samples:
            return self.samples[-1]  # time did not move: the last reading is still the news
        status = self.pump.status()
        truth = self._truth()
        span = t_ms - self.last_t
        if span > 0 and self.running and self.rx is not None:
            volume_x_ms = oracles.basal_volume_x_ms(self.rx, self.last_local, span)
            self.programmed_pgms += volume_x_ms * self.rx.concentration_ug_per_ml
        believed = status.delivered_nl - self.last_believed_nl
        if believed < 0:  # a reset counts from power-on again (H4)
            believed = status.delivered_nl
        fw_rx = status.prescription
        fw_conc = fw_rx.concentration_ug_per_ml if fw_rx is not None else 0
        self.believed_pg += believed * fw_conc
        # Mass that reached the patient: the plant's own mass figure when it has one
        # (``delivered_pg``, the fluid path's drug mass), else volume x the concentration in the
        # reservoir (exact while one drug strength is in the pump and catheter).
        truth_pg: int | None = getattr(truth, "delivered_pg", None)
        if truth_pg is not None and self.last_patient_pg is not None:
            self.patient_pg += truth_pg - self.last_patient_pg
            self.last_patient_pg = truth_pg
        else:
            self.patient_pg += (
                truth.delivered_nl - self.last_patient_nl
            ) * self.truth_concentration
        self.last_t = max(self.last_t, t_ms)
        self.last_local = status.local_time_ms
        self.last_believed_nl = status.delivered_nl
        self.last_patient_nl = truth.delivered_nl
        sample = Sample(
            t_ms=t_ms,
            local_ms=status.local_time_ms,
            log_next_seq=status.log_next_seq,
            state=status.state.name,
            reservoir_belief_nl=status.reservoir_estimate_nl,
            reservoir_truth_nl=truth.reservoir_nl,
            believed_nl=status.delivered_nl,
            patient_nl=truth.delivered_nl,
            programmed_pg=self.programmed_pgms // MS_PER_DAY,
            believed_pg=self.believed_pg,
            patient_pg=self.patient_pg,
            truth_read=self.no_truth is None,
        )
        self.samples.append(sample)
        return sample

    # -- steps --

    def do(self, step: Step) -> StepRecord:
        before = self.samples[-1]  # taken at this instant by goto (status() is not cheap)
        record = StepRecord(step, before.local_ms, before.log_next_seq)
        params = dict(step.params)
        if self.stuck is not None and step.at_ms > self.last_t:
            record.result = StepResult(skipped=f"at {fmt_time(step.at_ms)}: {self.stuck}")
        elif step.do in PROGRAMMER_ACTIONS and step.at_ms < self.skip_until:
            # The link fault this step was written against did not happen here: the step
            # would tell another story, so it is not run (and reported skipped).
            record.result = StepResult(
                skipped="inside the window of a link fault this backend cannot apply"
            )
        elif step.do in PROGRAMMER_ACTIONS:
            n = command_count(step.do)
            ids = tuple(range(self.next_id, self.next_id + n))
            self.next_id += n
            if step.do == "prime" and params.get("volume_nl") is None:
                p = self.pump.profile
                length = self.sc.setup.catheter_length_cm or p.catheter_max_length_cm
                params["volume_nl"] = p.catheter_dead_volume_nl_per_cm * length
            result = self.b.request(step.do, params, ids)
            if not result.skipped:
                result = dataclasses.replace(result, command_ids=ids)
            record.result = result
            self._follow(step, params, result)
        elif step.do == "fault":
            reason = self.b.inject(params["fault"], params["params"])
            record.result = StepResult("applied", skipped=reason)
        elif step.do == "link-fault":
            start = self.origin + step.at_ms
            reason = self.b.link_fault(
                params["spec"], start, start + params["duration_ms"], self.sc.seed
            )
            record.result = StepResult("applied", skipped=reason)
            if reason is not None:
                self.skip_until = max(self.skip_until, step.at_ms + params["duration_ms"])
        else:
            record.result = StepResult("answered")
        return record

    def _follow(self, step: Step, params: dict[str, Any], result: StepResult) -> None:
        """Keep the programmed-dose ledger: what the clinician asked for, as applied."""
        if result.outcome != "applied":
            return
        if step.do == "program":
            self.rx = params["prescription"]
            self.running = self.rx is not None and self.rx.mode is not InfusionMode.STOPPED
        elif step.do in ("stop", "clear-memory-error"):
            self.running = False  # a cleared memory error leaves the pump stopped (H8)
        elif step.do == "start":
            self.running = self.rx is not None and self.rx.mode is not InfusionMode.STOPPED
        elif step.do in ("clinician-bolus", "patient-bolus", "prime"):
            conc = self.rx.concentration_ug_per_ml if self.rx is not None else 0
            if step.do == "clinician-bolus":
                volume = params["dose_nl"]
            elif step.do == "prime":
                volume = params["volume_nl"]
            else:
                limits = self.rx.patient_bolus if self.rx is not None else None
                volume = limits.dose_nl if limits is not None else 0
            self.programmed_pgms += volume * conc * MS_PER_DAY
        elif step.do == "refill" and params.get("concentration_ug_per_ml") is not None:
            self.truth_concentration = params["concentration_ug_per_ml"]
            if self.rx is not None:
                self.rx = dataclasses.replace(
                    self.rx, concentration_ug_per_ml=params["concentration_ug_per_ml"]
                )


def sample_times(scenario: Scenario) -> list[int]:
    """Every instant an oracle needs a sample at, besides the steps."""
    times = {0, scenario.end_ms}
    for oracle in scenario.oracles:
        p = oracle.params
        if oracle.check not in ("dose", "reservoir"):
            continue
        start = p["from_ms"]
        end = p["to_ms"] if p["to_ms"] is not None else scenario.end_ms
        times.update((start, end))
        every = p.get("per_ms") or p.get("every_ms")
        if every:
            times.update(range(start, end + 1, every))
    return sorted(t for t in times if t <= scenario.end_ms)


def run(
    scenario: Scenario,
    backend: str = "wire",
    *,
    pump_class: PumpFactory = RefillHands,
    ledger_factory: Callable[[], CommandLedger] | None = None,
    target: PumpAtUrl | None = None,
) -> RunResult:
    """Run ``scenario`` on ``backend`` and judge it. ``pump_class`` and ``ledger_factory``
    put test doubles in (tests/hil/scenario/test_broken_pumps.py); ``target`` is the pump
    the url backend drives (hil/pump_at_url.py)."""
    out = RunResult(scenario, backend)
    try:
        b = make_backend(
            backend,
            scenario.setup,
            scenario.seed,
            pump_class=pump_class,
            ledger=ledger_factory() if ledger_factory is not None else None,
            target=target,
        )
    except SetupError as exc:
        out.verdict = "error"
        out.error = f"{scenario.path}: setup: {exc}"
        return out
    except UsageError:
        raise  # a port that cannot be opened, a bad address: one line, exit 2
    except HilError as exc:  # the target did not answer: a verdict with the reason
        out.verdict = "error"
        out.error = f"{scenario.path}: the target: {type(exc).__name__}: {exc}"
        return out
    try:
        r = _play(scenario, b)
    except Exception as exc:  # a verdict with the reason (exit 1), never a traceback
        out.verdict = "error"
        out.error = f"{scenario.path}: the run broke: {type(exc).__name__}: {exc}"
        return out
    finally:
        b.close()
    out.records = r.records
    out.samples = r.samples
    out.log = r.log
    out.findings, out.figures = oracles.judge(
        scenario, r.records, r.samples, out.log, r.pump, no_truth=b.no_truth
    )
    if any(f.ok is None for f in out.findings):
        # A step this backend could not run: the run no longer tells the file's story, so
        # its other checks are shown but do not decide (never a pass, never a false fail).
        out.verdict = "skip"
    elif any(f.ok is False for f in out.findings):
        out.verdict = "fail"
    return out


def _play(scenario: Scenario, b: Backend) -> _Run:
    r = _Run(scenario, b)
    r.sample(0)
    extra = sample_times(scenario)
    for step in scenario.steps:
        while extra and extra[0] < step.at_ms:
            r.goto(extra.pop(0))
        at = r.goto(step.at_ms)
        if r.records:
            r.records[-1].log_to = at.log_next_seq
        record = r.do(step)
        record.sample = r.sample(step.at_ms)
        record.state_after = record.sample.state
        r.records.append(record)
    for t in extra:
        r.goto(t)
    end = r.goto(scenario.end_ms)
    if r.records:
        r.records[-1].log_to = end.log_next_seq
    r.log = r.pump.log()
    return r

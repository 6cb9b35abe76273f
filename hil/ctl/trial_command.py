"""``pumpemu ctl trial``: record an intrathecal trial, and program an implant from it
(docs/ctl.md, "The trial"; the conversion is emulator/trial.py's, documented in
docs/pump-model.md, "The trial").

- ``trial record --single-shot DOSE --drug NAME ...``: a screening bolus by lumbar puncture.
  No pump is involved, so nothing is sent: the record is written to ``--out``.
- ``trial record --outcome effective --out FILE`` (no ``--single-shot``): a continuous trial
  on a temporary pump. The served trial pump is read over ``--port`` (its model and serial,
  its clock, its committed continuous prescription) and the daily mass it delivers is
  recorded as the dose that worked.
- ``trial show FILE [--concentration C]``: the record and the implant dose it converts to.

``pumpemu ctl program --from-trial FILE --concentration C`` then stages the implant's
prescription and reviews it like any prescription file (stage, review, commit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hil import quantities as q
from hil.ctl import prescription_file
from hil.ctl.command import Ctl, CtlUsageError, _ctl, _parse, _read, _read_log, ctl
from hil.errors import HilError
from protocol.device_state import EventKind

if TYPE_CHECKING:
    from emulator.trial import (
        Conversion,
        TrialOutcome,
        TrialRecord,
    )

__all__ = ["FromTrial", "load_record", "prescription_from_trial", "trial"]

MAX_RECORD_BYTES = 64 * 1024

TRIAL_OUTCOMES = ("effective", "not-effective")
"""emulator.trial.TrialOutcome's values, for --outcome without loading the emulator
(tests/hil/test_cli_lazy_imports.py checks the copy)."""


def load_record(path: Path) -> TrialRecord:
    """A trial record file, or a one-line usage error naming it."""
    from emulator.trial import TrialError, TrialRecord  # noqa: PLC0415

    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise CtlUsageError(f"{path}: larger than {MAX_RECORD_BYTES} bytes: not a trial record")
        return TrialRecord.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CtlUsageError(f"{path}: cannot read the trial record: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CtlUsageError(f"{path}: not a UTF-8 trial record") from None
    except TrialError as exc:
        raise CtlUsageError(f"{path}: {exc}") from None


def _write_record(path: Path, record: TrialRecord) -> None:

    try:
        path.write_text(record.dumps(), encoding="utf-8")
    except OSError as exc:
        raise CtlUsageError(f"--out {path}: cannot write: {exc.strerror}") from None


def _dose_text(record: TrialRecord) -> str:
    from emulator.trial import TrialKind  # noqa: PLC0415

    per = "per injection" if record.kind is TrialKind.SINGLE_SHOT else "per day"
    return f"{q.mass(record.dose_pg)} {per}"


def _conversion_lines(record: TrialRecord, conversion: Conversion) -> list[str]:
    rule = conversion.rule
    return [
        f"trial: {record.kind.value} {record.drug}, {_dose_text(record)}, {record.outcome.value}"
        + (
            f", effect lasted {q.duration(record.effect_duration_s)}"
            if record.effect_duration_s is not None
            else ""
        ),
        f"implant starting dose: {q.mass_per_day(conversion.daily_mass_pg)} "
        f"({rule.text}{'; assumed' if rule.assumed else ''})",
        f"  source: {rule.source}",
    ]


def _conversion_json(conversion: Conversion) -> dict[str, Any]:
    rule = conversion.rule
    return {
        "daily_mass_pg": conversion.daily_mass_pg,
        "rule": rule.text,
        "factor": [rule.numerator, rule.denominator],
        "fixed_pg_per_day": rule.fixed_pg_per_day,
        "source": rule.source,
        "assumed": rule.assumed,
    }


# -- program --from-trial -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FromTrial:
    """What ``program --from-trial`` stages, and how it came from the trial."""

    file: prescription_file.PrescriptionFile
    record: TrialRecord
    conversion: Conversion
    lines: list[str]
    document: dict[str, Any]


def prescription_from_trial(
    path: Path, concentration: str, drug: str | None, threshold: str
) -> FromTrial:
    """The implant's continuous prescription from a trial record, built as the prescription
    file a clinician would write (so the review shows it side by side like any file)."""
    from emulator.trial import TrialError, implant_prescription  # noqa: PLC0415

    record = load_record(path)
    conc = _parse("--concentration", q.parse_concentration, concentration)
    if conc < 1:
        raise CtlUsageError("--concentration must be above zero")
    _parse("--low-reservoir-threshold", q.parse_volume, threshold)
    try:
        rx, conversion = implant_prescription(record, conc, drug_name=drug)
    except TrialError as exc:
        raise CtlUsageError(f"--from-trial {path}: {exc}") from None
    daily = conversion.daily_mass_pg
    programmed = rx.steps[0].rate_nl_per_day * conc
    # The dose is asked by mass when the rate carries it exactly; otherwise the rate is
    # asked, rounded down, and the difference is shown (the pump never gets more, H11).
    amount = (
        f'dose = "{q.mass_per_day(daily)}"'
        if programmed == daily
        else f'rate = "{rx.steps[0].rate_nl_per_day} nL/day"'
    )
    text = "\n".join(
        [
            'format = "pumpemu-prescription/1"',
            f"drug = {json.dumps(rx.drug_name)}",
            f"concentration = {json.dumps(concentration)}",
            'mode = "continuous"',
            amount,
            f"low_reservoir_threshold = {json.dumps(threshold)}",
            "",
        ]
    )
    try:
        file = prescription_file.parse(text, f"{path} (trial record)")
    except HilError as exc:
        raise CtlUsageError(f"--from-trial {path}: {exc}") from None
    lines = _conversion_lines(record, conversion)
    lines.append(
        f"implant: {q.concentration(conc)} -> {q.rate(rx.steps[0].rate_nl_per_day)} "
        f"= {q.mass_per_day(programmed)}"
        + (
            ""
            if programmed == daily
            else f" (rounded down by {q.mass_per_day(daily - programmed)}: a whole nL/day)"
        )
    )
    document = {
        "record": record.to_json(),
        "conversion": _conversion_json(conversion),
        "rate_nl_per_day": rx.steps[0].rate_nl_per_day,
        "programmed_daily_mass_pg": programmed,
    }
    return FromTrial(file, record, conversion, lines, document)


# -- the trial group ------------------------------------------------------------------------------


@ctl.group(
    epilog="""\b
Examples:
  pumpemu ctl trial record --single-shot 50ug --drug baclofen --effect-duration 6h \\
      --outcome effective --out trial.json
  pumpemu ctl --port /dev/pts/7 --keys trial.keys trial record --outcome effective \\
      --out trial.json
  pumpemu ctl trial show trial.json --concentration 2000ug/mL
  pumpemu ctl --port /dev/pts/8 --keys implant.keys program --from-trial trial.json \\
      --concentration 2000ug/mL --yes
"""
)
def trial() -> None:
    """Record an intrathecal trial (a screening bolus, or a continuous trial on a temporary
    pump) and the dose that worked, to program the implant from it in dose units."""


@trial.command(
    epilog="""\b
Examples:
  single shot (lumbar puncture, nothing is sent; --port and --keys are not needed):
    pumpemu ctl trial record --single-shot 50ug --drug baclofen --effect-duration 6h \\
        --outcome effective --out trial.json
  a screening bolus given through the trial pump (pumpemu ctl bolus), read from its log:
    pumpemu ctl --port /dev/pts/7 --keys trial.keys trial record --from-bolus \\
        --effect-duration 6h --outcome effective --out trial.json
  continuous, read from the served trial pump:
    pumpemu ctl --port /dev/pts/7 --keys trial.keys trial record --outcome effective \\
        --out trial.json --note "pain 7 -> 3 at 0.2 mg/day"
"""
)
@click.option(
    "--outcome",
    required=True,
    type=click.Choice(TRIAL_OUTCOMES),
    help="Whether the dose worked.",
)
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="The trial record file to write (JSON, format pumpemu-trial/1).",
)  # fmt: skip
@click.option(
    "--single-shot",
    "single_shot",
    metavar="DOSE",
    help="A screening bolus by lumbar puncture: its mass (50ug, 0.1mg). Without it the "
    "continuous trial running on the pump at --port is recorded (or, with --from-bolus, "
    "its last clinician bolus).",
)
@click.option("--drug", help="The drug of a --single-shot trial (baclofen, morphine, Prialt).")
@click.option(
    "--effect-duration",
    "effect_duration",
    metavar="T",
    help="How long a --single-shot dose's effect lasted (6h); baclofen's rule depends on it.",
)
@click.option(
    "--at",
    "at",
    default="now",
    show_default=True,
    metavar="ISO8601|now",
    help="When the --single-shot dose was given (local time, no zone).",
)
@click.option(
    "--from-bolus",
    "from_bolus",
    is_flag=True,
    help="A single-shot trial given as a clinician bolus through the trial pump at --port: "
    "its last completed clinician bolus (delivered volume x concentration) is the dose.",
)
@click.option("--note", default="", help="Free text kept in the record (at most 400 characters).")
@click.pass_context
def record(  # noqa: PLR0917 (click passes every option as an argument)
    ctx: click.Context,
    outcome: str,
    out: Path,
    single_shot: str | None,
    drug: str | None,
    effect_duration: str | None,
    at: str,
    from_bolus: bool,
    note: str,
) -> None:
    """Record the trial's result: the dose that worked (or did not) and when."""
    from emulator.trial import Trial, TrialError, TrialKind, TrialOutcome, TrialRecord  # noqa: PLC0415
    from hil.capture import fields_of  # noqa: PLC0415
    from hil.programmer.client import Programmer  # noqa: PLC0415
    from protocol.messages import CurrentPrescription, DeviceInfo, Status  # noqa: PLC0415

    ctl_ = _ctl(ctx)
    result = TrialOutcome(outcome)
    if from_bolus:
        if single_shot is not None or drug is not None or at != "now":
            raise CtlUsageError("--from-bolus reads the dose, drug and time from the pump")
        seconds = (
            None
            if effect_duration is None
            else _parse("--effect-duration", q.parse_duration, effect_duration)
        )
        _record_from_bolus(ctl_, out, result, seconds, note)
        return
    if single_shot is not None:
        if drug is None:
            raise CtlUsageError("--single-shot needs --drug")
        dose = _parse("--single-shot", q.parse_mass, single_shot)
        seconds = (
            None
            if effect_duration is None
            else _parse("--effect-duration", q.parse_duration, effect_duration)
        )
        when = _parse("--at", q.parse_pump_time, at)
        try:
            made = TrialRecord(
                drug, TrialKind.SINGLE_SHOT, dose, result, when, seconds, "lumbar puncture", note
            )
        except TrialError as exc:
            raise CtlUsageError(str(exc)) from None
        _finish_record(ctl_, out, made)
        return
    for option, value in (("--drug", drug), ("--effect-duration", effect_duration)):
        if value is not None:
            raise CtlUsageError(f"{option} applies to --single-shot only")
    if at != "now":
        raise CtlUsageError("--at applies to --single-shot only (the pump's clock is used)")
    with ctl_.connect():
        info: DeviceInfo | None = _read(ctl_, "read device info", Programmer.info, DeviceInfo)
        status: Status | None = None
        current: CurrentPrescription | None = None
        if info is not None:
            status = _read(ctl_, "read status", Programmer.status, Status)
        if status is not None:
            current = _read(ctl_, "read prescription", Programmer.prescription, CurrentPrescription)
    if info is None or status is None or current is None:
        ctl_.finish()
    if current.prescription is None:
        raise CtlUsageError("the trial pump has no committed prescription: nothing to record")
    try:
        made = Trial(current.prescription.drug_name).record_continuous(
            current.prescription,
            result,
            status.pump_time_ms,
            f"{info.model} {info.serial}",
            note,
        )
    except TrialError as exc:
        raise CtlUsageError(f"the trial pump's prescription: {exc}") from None
    _finish_record(ctl_, out, made, {"pump_status": fields_of(status)})


def _record_from_bolus(
    ctl_: Ctl, out: Path, result: TrialOutcome, seconds: int | None, note: str
) -> None:
    """The last completed clinician bolus of the trial pump as a single-shot trial: its
    delivered volume (the COMPLETED entry's ``value_a``, whole strokes) times the committed
    prescription's concentration, stamped with the entry's pump time."""
    from emulator.trial import TrialError, TrialKind, TrialRecord  # noqa: PLC0415
    from hil.programmer.client import Programmer  # noqa: PLC0415
    from protocol.messages import CurrentPrescription, DeviceInfo  # noqa: PLC0415

    with ctl_.connect():
        info: DeviceInfo | None = _read(ctl_, "read device info", Programmer.info, DeviceInfo)
        current: CurrentPrescription | None = None
        if info is not None:
            current = _read(ctl_, "read prescription", Programmer.prescription, CurrentPrescription)
        log = None if current is None else _read_log(ctl_, 0, None)
    if info is None or current is None or log is None:
        ctl_.finish()
    if current.prescription is None:
        raise CtlUsageError("the trial pump has no prescription: its concentration is unknown")
    boluses = [e for e in log.entries if e.kind is EventKind.CLINICIAN_BOLUS_COMPLETED]
    if not boluses or boluses[-1].value_a < 1:
        raise CtlUsageError(
            "the trial pump's log holds no completed clinician bolus that delivered drug"
        )
    last = boluses[-1]
    rx = current.prescription
    try:
        made = TrialRecord(
            rx.drug_name, TrialKind.SINGLE_SHOT, last.value_a * rx.concentration_ug_per_ml,
            result, last.time_ms, seconds,
            f"{info.model} {info.serial}: clinician bolus of {q.volume(last.value_a)}", note,
        )  # fmt: skip
    except TrialError as exc:
        raise CtlUsageError(f"the trial pump's bolus: {exc}") from None
    _finish_record(ctl_, out, made, {"bolus_entry_seq": last.seq})


def _finish_record(
    ctl_: Ctl, out: Path, made: TrialRecord, extra: dict[str, Any] | None = None
) -> None:
    from emulator.trial import TrialError, TrialOutcome, implant_daily_dose  # noqa: PLC0415

    _write_record(out, made)
    ctl_.say(f"recorded: {made.kind.value} {made.drug}, {_dose_text(made)}, {made.outcome.value}")
    document: dict[str, Any] = {"action": "record trial", "ok": True, "file": str(out)}
    document["record"] = made.to_json()
    if made.outcome is TrialOutcome.EFFECTIVE:
        try:
            conversion = implant_daily_dose(made)
        except TrialError as exc:
            ctl_.say(f"no implant dose follows: {exc}")
        else:
            for line in _conversion_lines(made, conversion)[1:]:
                ctl_.say(line)
            document["conversion"] = _conversion_json(conversion)
    ctl_.say(f"written to {out}")
    ctl_.emit_json({**document, **(extra or {})})
    ctl_.finish()


@trial.command(
    epilog="""\b
Example:
  pumpemu ctl trial show trial.json --concentration 2000ug/mL
"""
)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--concentration",
    help="The implant's concentration (2000ug/mL): also show the rate it would run.",
)
@click.pass_context
def show(ctx: click.Context, file: Path, concentration: str | None) -> None:
    """Show a trial record and the implant starting dose it converts to (nothing is sent)."""
    from emulator.trial import TrialError, implant_daily_dose  # noqa: PLC0415

    ctl_ = _ctl(ctx)
    made = load_record(file)
    document: dict[str, Any] = {"action": "show trial", "ok": True, "record": made.to_json()}
    try:
        conversion = implant_daily_dose(made)
    except TrialError as exc:
        raise CtlUsageError(f"{file}: {exc}") from None
    for line in _conversion_lines(made, conversion):
        ctl_.say(line)
    document["conversion"] = _conversion_json(conversion)
    if concentration is not None:
        planned = prescription_from_trial(file, concentration, None, "2 mL")
        ctl_.say(planned.lines[-1])
        document.update(planned.document)
    ctl_.emit_json(document)
    ctl_.finish()

"""The intrathecal trial, and the implant prescription it leads to (docs/pump-model.md,
"The trial").

Before a pump is implanted the patient is tried on the drug (docs/domain.md section 1):

- a **single-shot trial**: a screening bolus by lumbar puncture (baclofen 50, then 75, then
  100 ug, 24 h apart, until one works), or a few shots of an opioid; no pump is involved,
  so the injection is recorded here, not in any pump's plant;
- a **continuous trial**: a temporary external pump (the ``trial-external`` profile) runs a
  continuous prescription through a percutaneous catheter for days.

Either way the clinician records the dose that worked (``TrialRecord``), and the implant's
starting prescription is computed from it **in dose units** (mass per day), then converted
to a volume rate through the implant's own concentration. That conversion is where a unit
slip or a wrong rule overdoses a patient (H9, H11), so it is one small, documented table
(``CONVERSION_RULES``) with the source of every factor, and a trial with no documented rule
is refused rather than guessed.

Integer units throughout (docs/architecture.md principle 4): masses in pg, volumes in nL,
concentrations in ug/mL (1 ug/mL == 1 pg/nL), times in ms and s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from emulator.drug_library import default_library
from emulator.errors import EmulatorError
from protocol.errors import FieldValueError
from protocol.prescription import (
    DRUG_NAME_MAX_LEN,
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)
from protocol.units import U32_MAX, U64_MAX

__all__ = [
    "CONVERSION_RULES",
    "EIGHT_HOURS_S",
    "RECORD_FORMAT",
    "Conversion",
    "ConversionRule",
    "Trial",
    "TrialError",
    "TrialInjection",
    "TrialKind",
    "TrialOutcome",
    "TrialRecord",
    "canonical_drug",
    "implant_daily_dose",
    "implant_prescription",
]

RECORD_FORMAT = "pumpemu-trial/1"
EIGHT_HOURS_S = 8 * 3_600
MAX_NOTE_LEN = 400


class TrialError(EmulatorError, ValueError):
    """A trial that cannot be recorded or converted (not effective, no documented rule, a
    malformed record). The message says what to do instead."""


class TrialKind(Enum):
    SINGLE_SHOT = "single-shot"
    """A screening bolus by lumbar puncture: the dose is a mass per injection."""
    CONTINUOUS = "continuous"
    """A temporary external pump: the dose is a mass per day."""


class TrialOutcome(Enum):
    EFFECTIVE = "effective"
    NOT_EFFECTIVE = "not-effective"


# -- drug names -------------------------------------------------------------------------------


def canonical_drug(name: str) -> str:
    """The generic name for ``name``: the drug library's canonical name for any of its
    aliases and brand names (emulator/drugs.toml: Lioresal -> baclofen, Prialt ->
    ziconotide); a name the library does not know, folded to lower case."""
    drug = default_library().lookup(name)
    return drug.name if drug is not None else name.strip().lower()


# -- the conversion table ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversionRule:
    """Starting daily dose = ``numerator / denominator`` x the trial dose (per day), or a
    fixed ``fixed_pg_per_day`` whatever the trial dose."""

    numerator: int
    denominator: int
    fixed_pg_per_day: int | None
    text: str
    source: str
    assumed: bool


@dataclass(frozen=True, slots=True)
class Conversion:
    """What a trial record converts to: the implant's starting daily dose and why."""

    daily_mass_pg: int
    rule: ConversionRule


_SAME_DAILY_MASS = ConversionRule(
    1, 1, None,
    "a continuous trial's daily dose is the implant's starting daily dose",
    "a continuous trial mimics the implanted pump (trial-technique reviews, e.g. guwsmedical "
    "patient-selection chapter); PACC 2017 leaves the factor to the clinician",
    assumed=True,
)  # fmt: skip

CONVERSION_RULES: dict[tuple[str, TrialKind, bool], ConversionRule] = {
    # (drug, kind, effect lasted more than 8 h) -> rule
    ("baclofen", TrialKind.SINGLE_SHOT, False): ConversionRule(
        2, 1, None,
        "twice the effective screening bolus, per day",
        "initial total daily dose up to double the screening dose that gave a beneficial "
        "response (Medscape, intrathecal baclofen dosing; Lioresal Intrathecal labeling)",
        assumed=False,
    ),
    ("baclofen", TrialKind.SINGLE_SHOT, True): ConversionRule(
        1, 1, None,
        "the effective screening bolus, per day (its effect lasted more than 8 h)",
        "Lioresal Intrathecal labeling's exception for an effect longer than 8 h; recalled "
        "from the label, not confirmed in a stored source",
        assumed=True,
    ),
    ("morphine", TrialKind.SINGLE_SHOT, False): ConversionRule(
        1, 1, None,
        "the effective single-shot dose, per day",
        "low-dose trialing (Grider 2011: trial shots of 25-400 ug, effective daily doses "
        "50-400 ug/day); the 1:1 factor is assumed",
        assumed=True,
    ),
    ("morphine", TrialKind.SINGLE_SHOT, True): ConversionRule(
        1, 1, None,
        "the effective single-shot dose, per day",
        "as above (the duration of effect does not change the factor; assumed)",
        assumed=True,
    ),
    ("ziconotide", TrialKind.SINGLE_SHOT, False): ConversionRule(
        0, 1, 2_400_000,
        "2.4 ug/day whatever the trial dose: start low and titrate weekly",
        "Prialt labeling: initiate at 2.4 ug/day (0.1 ug/h), titrate by at most 2.4 ug/day "
        "no more than weekly (as quoted by aneskey.com, intrathecal therapy chapter)",
        assumed=False,
    ),
    ("ziconotide", TrialKind.SINGLE_SHOT, True): ConversionRule(
        0, 1, 2_400_000,
        "2.4 ug/day whatever the trial dose: start low and titrate weekly",
        "Prialt labeling (as above)",
        assumed=False,
    ),
}  # fmt: skip


# -- the record -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrialInjection:
    """One single-shot trial injection by lumbar puncture: no pump, no catheter."""

    time_ms: int
    drug: str
    dose_pg: int
    volume_nl: int


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """The trial's result: the dose that worked (or did not), as a clinician records it.

    ``dose_pg`` is a mass per injection for a single-shot trial and a mass per day for a
    continuous one. ``effect_duration_s`` (single-shot) is how long the effect lasted; the
    baclofen rule depends on it. ``time_ms`` is when the dose was given or the trial read
    (ms since 1970-01-01, local, like the pump clock).
    """

    drug: str
    kind: TrialKind
    dose_pg: int
    outcome: TrialOutcome
    time_ms: int
    effect_duration_s: int | None = None
    device: str = ""
    """Where the dose ran: a trial pump's model and serial, or ``lumbar puncture``."""
    note: str = ""

    def __post_init__(self) -> None:
        _check_drug(self.drug)
        if not isinstance(self.kind, TrialKind) or not isinstance(self.outcome, TrialOutcome):
            raise TrialError("kind and outcome must be TrialKind and TrialOutcome")
        _need_int("dose_pg", self.dose_pg, 1, U64_MAX)
        _need_int("time_ms", self.time_ms, 0, U64_MAX)
        if self.effect_duration_s is not None:
            _need_int("effect_duration_s", self.effect_duration_s, 0, 30 * 86_400)
            if self.kind is TrialKind.CONTINUOUS:
                raise TrialError("effect_duration_s applies to a single-shot trial only")
        for name in ("device", "note"):
            text = getattr(self, name)
            if not isinstance(text, str) or len(text) > MAX_NOTE_LEN:
                raise TrialError(f"{name} must be a string of at most {MAX_NOTE_LEN} characters")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "drug": self.drug,
            "kind": self.kind.value,
            "dose_pg": self.dose_pg,
            "dose_unit": "pg/injection" if self.kind is TrialKind.SINGLE_SHOT else "pg/day",
            "outcome": self.outcome.value,
            "time_ms": self.time_ms,
            "effect_duration_s": self.effect_duration_s,
            "device": self.device,
            "note": self.note,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def from_json(cls, data: object) -> TrialRecord:
        """A record from ``to_json()``'s object; TrialError naming the key otherwise."""
        if not isinstance(data, dict):
            raise TrialError("a trial record is a JSON object")
        keys = {
            "format", "drug", "kind", "dose_pg", "dose_unit", "outcome", "time_ms",
            "effect_duration_s", "device", "note",
        }  # fmt: skip
        if set(data) != keys:
            raise TrialError(
                f"trial record keys differ: missing {sorted(keys - set(data))}, "
                f"unknown {sorted(set(data) - keys)}"
            )
        if data["format"] != RECORD_FORMAT:
            raise TrialError(f"format must be {RECORD_FORMAT!r}, got {data['format']!r:.40}")
        try:
            kind = TrialKind(data["kind"])
            outcome = TrialOutcome(data["outcome"])
        except ValueError as exc:
            raise TrialError(f"trial record: {exc}") from None
        record = cls(
            drug=data["drug"],
            kind=kind,
            dose_pg=data["dose_pg"],
            outcome=outcome,
            time_ms=data["time_ms"],
            effect_duration_s=data["effect_duration_s"],
            device=data["device"],
            note=data["note"],
        )
        if record.to_json() != data:  # dose_unit must agree with the kind
            raise TrialError("trial record: dose_unit does not match the kind")
        return record

    @classmethod
    def loads(cls, text: str) -> TrialRecord:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise TrialError(f"not a JSON trial record: {exc}") from None
        return cls.from_json(data)


def _check_drug(drug: object) -> None:
    """A drug name as a prescription carries it: 1-16 printable ASCII characters."""
    if (
        not isinstance(drug, str)
        or not 1 <= len(drug) <= DRUG_NAME_MAX_LEN
        or not all(" " <= ch <= "~" for ch in drug)
    ):
        raise TrialError(f"drug must be 1-{DRUG_NAME_MAX_LEN} printable ASCII characters")


def _need_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TrialError(f"{name} must be an integer {low}..{high}, got {value!r:.40}")


# -- running a trial (the Python API) --------------------------------------------------------


class Trial:
    """A trial of one drug, as the clinician runs it: injections, then a recorded result.

    ``inject`` records a single-shot injection by lumbar puncture (drug, dose, time): it goes
    straight into the spinal fluid and never through a pump, so no pump's plant sees it.
    ``record_single_shot`` and ``record_continuous`` write the result.
    """

    def __init__(self, drug: str) -> None:
        _check_drug(drug)
        self.drug = drug
        self.injections: list[TrialInjection] = []

    def inject(self, now_ms: int, dose_pg: int, volume_nl: int) -> TrialInjection:
        """A screening bolus of ``dose_pg`` in ``volume_nl`` by lumbar puncture at ``now_ms``
        (e.g. 50 ug baclofen in 1 mL: ``dose_pg=50_000_000, volume_nl=1_000_000``)."""
        _need_int("dose_pg", dose_pg, 1, U64_MAX)
        _need_int("volume_nl", volume_nl, 1, U64_MAX)
        _need_int("now_ms", now_ms, 0, U64_MAX)
        if self.injections and now_ms < self.injections[-1].time_ms:
            raise TrialError("injections are recorded in time order")
        shot = TrialInjection(now_ms, self.drug, dose_pg, volume_nl)
        self.injections.append(shot)
        return shot

    def record_single_shot(
        self, outcome: TrialOutcome, effect_duration_s: int | None = None, note: str = ""
    ) -> TrialRecord:
        """The result of the last injection (the escalation stops at the one that worked)."""
        if not self.injections:
            raise TrialError("no injection to record: inject() first")
        last = self.injections[-1]
        return TrialRecord(
            self.drug, TrialKind.SINGLE_SHOT, last.dose_pg, outcome, last.time_ms,
            effect_duration_s, "lumbar puncture", note,
        )  # fmt: skip

    def record_continuous(
        self, rx: Prescription, outcome: TrialOutcome, now_ms: int, device: str, note: str = ""
    ) -> TrialRecord:
        """The result of a continuous trial on a temporary pump running ``rx``."""
        return TrialRecord(
            rx.drug_name, TrialKind.CONTINUOUS, continuous_daily_mass_pg(rx), outcome, now_ms,
            None, device, note,
        )  # fmt: skip


def continuous_daily_mass_pg(rx: Prescription) -> int:
    """The daily basal mass of a continuous trial prescription (patient boluses, if any, are
    not counted: they were rescue doses, not the dose that worked)."""
    if rx.mode is not InfusionMode.CONTINUOUS or len(rx.steps) != 1:
        raise TrialError(
            f"a continuous trial runs one continuous rate; this prescription is {rx.mode.name}"
        )
    mass = rx.steps[0].rate_nl_per_day * rx.concentration_ug_per_ml
    if mass < 1:
        raise TrialError("the trial pump delivers no drug (rate 0)")
    return mass


# -- the conversion ---------------------------------------------------------------------------


def implant_daily_dose(record: TrialRecord) -> Conversion:
    """The implant's starting daily dose (pg/day) from an effective trial, by the documented
    rule; TrialError for an ineffective trial or a drug and kind with no rule."""
    if record.outcome is not TrialOutcome.EFFECTIVE:
        raise TrialError(
            "the trial was not effective: no implant dose follows from it (H11: never "
            "program an implant from a failed trial)"
        )
    drug = canonical_drug(record.drug)
    if record.kind is TrialKind.CONTINUOUS:
        rule = _SAME_DAILY_MASS
    else:
        long_effect = (record.effect_duration_s or 0) > EIGHT_HOURS_S
        found = CONVERSION_RULES.get((drug, record.kind, long_effect))
        if found is None:
            raise TrialError(
                f"no documented rule converts a single-shot {record.drug} trial into a daily "
                "dose (docs/pump-model.md, 'The trial'); write the implant prescription by hand"
            )
        rule = found
    if rule.fixed_pg_per_day is not None:
        daily = rule.fixed_pg_per_day
    else:
        # Rounded down: a starting dose is never above what the rule gives (H11).
        daily = record.dose_pg * rule.numerator // rule.denominator
    return Conversion(daily, rule)


def implant_prescription(
    record: TrialRecord,
    concentration_ug_per_ml: int,
    *,
    drug_name: str | None = None,
    low_reservoir_threshold_nl: int = 2_000_000,
    patient_bolus: PatientBolusLimits | None = None,
) -> tuple[Prescription, Conversion]:
    """A continuous implant prescription delivering the trial's converted daily dose at
    ``concentration_ug_per_ml`` (the implant's drug, not the trial's), named
    ``drug_name`` or, by default, the trial drug's generic name (Lioresal -> baclofen).

    The rate is ``daily_mass_pg // concentration`` nL/day, rounded down (the pump delivers
    at most the converted dose: H11); ``rate x concentration`` is the programmed daily mass,
    which the caller shows for review. The pump checks its own limits at stage time.
    """
    _need_int("concentration_ug_per_ml", concentration_ug_per_ml, 1, U64_MAX)
    conversion = implant_daily_dose(record)
    rate = conversion.daily_mass_pg // concentration_ug_per_ml
    if rate < 1:
        raise TrialError(
            f"at {concentration_ug_per_ml} ug/mL the daily dose is less than 1 nL/day: "
            "the concentration is far too high for this dose (a mg/ug slip?)"
        )
    if rate > U32_MAX:
        raise TrialError(
            f"at {concentration_ug_per_ml} ug/mL the daily dose needs more than "
            f"{U32_MAX} nL/day: the concentration is far too low for this dose"
        )
    try:
        rx = Prescription(
            # The generic name by default: the pump keys its per-drug limits on it, and a
            # brand name would fall back to the generic default limit (H11).
            drug_name=canonical_drug(record.drug) if drug_name is None else drug_name,
            concentration_ug_per_ml=concentration_ug_per_ml,
            mode=InfusionMode.CONTINUOUS,
            repeat=Repeat.DAILY,
            steps=(FlexStep(0, rate),),
            patient_bolus=patient_bolus,
            low_reservoir_threshold_nl=low_reservoir_threshold_nl,
        )
    except FieldValueError as exc:
        raise TrialError(f"the implant prescription: {exc}") from None
    return rx, conversion

"""Shared builders for the pump tests: prescriptions in a line, pumps already programmed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from emulator.firmware.results import Refused
from emulator.pump import Pump
from protocol.prescription import (
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)

RxFactory = Callable[..., Prescription]
PumpFactory = Callable[..., Pump]


def continuous(
    rate_nl_per_day: int,
    *,
    drug: str = "morphine",
    concentration: int = 1_000,
    patient_bolus: PatientBolusLimits | None = None,
    low_nl: int = 2_000_000,
) -> Prescription:
    return Prescription(
        drug_name=drug,
        concentration_ug_per_ml=concentration,
        mode=InfusionMode.CONTINUOUS,
        repeat=Repeat.DAILY,
        steps=(FlexStep(0, rate_nl_per_day),),
        patient_bolus=patient_bolus,
        low_reservoir_threshold_nl=low_nl,
    )


def flex(
    steps: list[tuple[int, int]],
    *,
    drug: str = "morphine",
    concentration: int = 1_000,
    patient_bolus: PatientBolusLimits | None = None,
    repeat: Repeat = Repeat.DAILY,
) -> Prescription:
    return Prescription(
        drug_name=drug,
        concentration_ug_per_ml=concentration,
        mode=InfusionMode.FLEX,
        repeat=repeat,
        steps=tuple(FlexStep(s, r) for s, r in steps),
        patient_bolus=patient_bolus,
        low_reservoir_threshold_nl=2_000_000,
    )


@pytest.fixture
def rx() -> RxFactory:
    """``rx(rate_nl_per_day, drug=..., concentration=..., patient_bolus=..., low_nl=...)``."""
    return continuous


@pytest.fixture
def flex_rx() -> RxFactory:
    """``flex_rx([(start_s, rate), ...], drug=..., concentration=..., patient_bolus=...)``."""
    return flex


@pytest.fixture
def programmed() -> PumpFactory:
    """A pump with ``prescription`` staged and committed at time 0."""

    def build(prescription: Prescription, profile: str = "peristaltic-20", **kw: object) -> Pump:
        pump = Pump(profile, **kw)  # type: ignore[arg-type]
        result = pump.program(prescription, command_id=1)
        assert not isinstance(result, Refused), result
        return pump

    return build

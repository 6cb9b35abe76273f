"""The examples of docs/protocol.md are what a built-in pump really answers, and the message
descriptions say what the pump really does (issue 11): a client team that checks its
decoder against an example, or plans around a sentence, meets the same pump."""

from __future__ import annotations

from emulator.pump import Pump
from protocol.device_state import TherapyState
from protocol.messages import (
    Ack,
    ClinicianBolus,
    CommitPrescription,
    DeviceInfo,
    Nak,
    PrescriptionStaged,
    ReadDeviceInfo,
    RefillBegin,
    RefillComplete,
    StagePrescription,
    StagePrescriptionOverride,
    StartTherapy,
    StopTherapy,
)
from protocol.refusal import RefusalCode
from protocol.units import MS_PER_S
from tests.emulator.test_refusal_conformance import BACLOFEN, KEYS, RX, Bench, P, bench
from tests.protocol_doc import evaluate, vector

EXAMPLE_CLOCK_MS = 1_767_225_600_000
"""2026-01-01 00:00, the pump clock the PRESCRIPTION_STAGED example was computed at."""


def test_the_device_info_example_is_what_a_peristaltic_20_pump_reports() -> None:
    example = evaluate(vector("device-info")["message"])
    assert isinstance(example, DeviceInfo)
    b = bench(None)
    reply = b.request(ReadDeviceInfo())
    assert isinstance(reply, DeviceInfo)
    assert reply.limits == example.limits
    assert reply.model == example.model == P.name
    assert reply.firmware_version == example.firmware_version
    assert KEYS.serial == example.serial


def test_the_prescription_staged_example_answers_the_stage_example() -> None:
    stage = evaluate(vector("stage-prescription")["message"])
    assert isinstance(stage, StagePrescription)
    example = evaluate(vector("prescription-staged")["message"])
    b = Bench(Pump(P, start_ms=0))  # a full reservoir: 20 mL, nothing delivering
    assert b.pump.status().reservoir_estimate_nl == 20_000_000
    b.open()
    assert b.pump.now_ms == b.now
    # The STAGE lands 1 ms later (Bench.deliver), when the clock reads EXAMPLE_CLOCK_MS.
    assert b.pump.set_clock(EXAMPLE_CLOCK_MS - 1, command_id=1).ok
    reply = b.one(b.sealed(stage)).message
    assert reply == example
    assert isinstance(reply, PrescriptionStaged)
    assert reply.stage_lifetime_s == P.stage_lifetime_s


def test_refill_begin_does_not_stop_delivery() -> None:
    """docs/protocol.md REFILL_BEGIN: the basal keeps running until REFILL_COMPLETE; boluses
    and programming wait; START and STOP are accepted."""
    b = bench(RX)
    ack = b.request(RefillBegin(command_id=10))
    assert isinstance(ack, Ack)
    assert ack.state is TherapyState.CONTINUOUS
    before = b.pump.status()
    b.wait(3_600 * MS_PER_S)
    during = b.pump.status()
    assert during.state is TherapyState.CONTINUOUS
    assert during.basal_rate_nl_per_day == RX.steps[0].rate_nl_per_day
    assert during.delivered_nl > before.delivered_nl
    refused = b.request(ClinicianBolus(command_id=11, dose_nl=20_000, duration_s=600))
    assert isinstance(refused, Nak)
    assert refused.code is RefusalCode.REFILL_IN_PROGRESS
    refused = b.request(CommitPrescription(command_id=12, digest=bytes(16)))
    assert isinstance(refused, Nak)
    assert refused.code is RefusalCode.REFILL_IN_PROGRESS
    assert isinstance(b.request(StopTherapy(command_id=13)), Ack)
    assert isinstance(b.request(StartTherapy(command_id=14)), Ack)
    done = b.request(
        RefillComplete(
            command_id=15,
            withdrawn_nl=ack.value,
            new_volume_nl=18_000_000,
            new_concentration_ug_per_ml=RX.concentration_ug_per_ml,
        )
    )
    assert isinstance(done, Ack)
    assert done.reservoir_nl == 18_000_000  # strokes during the refill are not subtracted


def test_the_staged_with_override_example_answers_the_override_example() -> None:
    """docs/protocol.md STAGED_WITH_OVERRIDE: a peristaltic-20 pump running baclofen 2000
    ug/mL at 200 000 nL/day, 20 mL in its reservoir, its clock at 2026-01-01 00:00."""
    stage = evaluate(vector("stage-prescription-override")["message"])
    assert isinstance(stage, StagePrescriptionOverride)
    example = evaluate(vector("staged-with-override")["message"])
    pump = Pump(P, start_ms=0)
    assert pump.program(BACLOFEN, command_id=1).ok
    b = Bench(pump)
    b.open()
    assert b.pump.status().reservoir_estimate_nl == 20_000_000  # no stroke yet
    assert b.pump.set_clock(EXAMPLE_CLOCK_MS - 1, command_id=2).ok
    reply = b.one(b.sealed(stage)).message
    assert reply == example

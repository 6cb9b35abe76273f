"""Issue 12's acceptance cases over the wire: sealed frames into ``PumpDevice``.

The baclofen every-hour mis-entry, the Prialt alias and the 25-for-25000 concentration are
each refused with their own code, the override goes through STAGE_PRESCRIPTION_OVERRIDE and
shows in STAGED_WITH_OVERRIDE and the log, BRIDGE_BOLUS answers with the instant the old
drug is out, and a PATIENT session may send neither new request (docs/protocol.md 5, 10.3).
"""

from __future__ import annotations

import dataclasses

from protocol.device_state import EventKind, Role
from protocol.messages import (
    OVERRIDE_DOSE_CHANGE,
    OVERRIDE_SOFT_LIMIT,
    Ack,
    BridgeBolus,
    CommitPrescription,
    Nak,
    Opcode,
    RefillBegin,
    RefillComplete,
    StagedWithOverride,
    StagePrescription,
    StagePrescriptionOverride,
)
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat
from protocol.refusal import FieldId, RefusalCode
from tests.emulator.test_refusal_conformance import BACLOFEN, RX, bench

EVERY_HOUR = dataclasses.replace(BACLOFEN, steps=(FlexStep(0, 920_000),))
"""60 mcg each morning entered as every hour on a 400 ug/day basal: 1 840 ug/day."""


def test_the_every_hour_mis_entry_needs_both_overrides_and_they_are_logged() -> None:
    b = bench(BACLOFEN)
    refused = b.request(StagePrescription(EVERY_HOUR))
    assert refused == Nak(
        code=RefusalCode.SOFT_LIMIT_NEEDS_OVERRIDE, field=FieldId.DAILY_DOSE, limit=10**9
    )
    # The soft-limit override alone: the change from 400 ug/day is still +360 %.
    refused = b.request(StagePrescriptionOverride(OVERRIDE_SOFT_LIMIT, EVERY_HOUR))
    assert refused == Nak(
        code=RefusalCode.DOSE_CHANGE_NEEDS_OVERRIDE, field=FieldId.DAILY_DOSE, limit=560_000_000
    )
    staged = b.request(
        StagePrescriptionOverride(OVERRIDE_SOFT_LIMIT | OVERRIDE_DOSE_CHANGE, EVERY_HOUR)
    )
    assert isinstance(staged, StagedWithOverride)
    assert (staged.overrides_used, staged.soft_limit_pg, staged.reference_daily_mass_pg) == (
        3,
        10**9,
        400_000_000,
    )
    assert staged.daily_mass_pg == 1_840_000_000
    ack = b.request(CommitPrescription(command_id=b.command_id(), digest=staged.digest))
    assert isinstance(ack, Ack)
    kinds = [(e.kind, e.detail) for e in b.pump.log()]
    assert (EventKind.OVERRIDE_STAGED, 3) in kinds
    assert (EventKind.OVERRIDE_COMMITTED, 3) in kinds
    # The refusals were logged with the opcode that carried them.
    refusals = [e for e in b.pump.log() if e.kind is EventKind.COMMAND_REFUSED]
    assert [(e.detail, e.value_a) for e in refusals[-2:]] == [
        (RefusalCode.SOFT_LIMIT_NEEDS_OVERRIDE, Opcode.STAGE_PRESCRIPTION),
        (RefusalCode.DOSE_CHANGE_NEEDS_OVERRIDE, Opcode.STAGE_PRESCRIPTION_OVERRIDE),
    ]


def test_prialt_gets_ziconotides_limit_and_no_override_lifts_it() -> None:
    # 200 000 nL/day of Prialt 100 ug/mL is 20 ug/day: above ziconotide's 19.2 ug/day (the
    # profile's generic 20 mg/day used to apply to "Prialt").
    prialt = Prescription(
        "Prialt", 100, InfusionMode.CONTINUOUS, Repeat.DAILY, (FlexStep(0, 200_000),), None,
        2_000_000,
    )  # fmt: skip
    b = bench(None)
    expected = Nak(
        code=RefusalCode.DAILY_DOSE_ABOVE_MAX, field=FieldId.DAILY_DOSE, limit=19_200_000
    )
    assert b.request(StagePrescription(prialt)) == expected
    assert b.request(StagePrescriptionOverride(3, prialt)) == expected


def test_25_sent_for_25000_is_refused_at_stage_and_at_refill() -> None:
    b = bench(None)
    slip = dataclasses.replace(RX, drug_name="Infumorph", concentration_ug_per_ml=25)
    expected = Nak(
        code=RefusalCode.CONCENTRATION_OUT_OF_RANGE, field=FieldId.CONCENTRATION, limit=500
    )
    assert b.request(StagePrescription(slip)) == expected
    assert b.request(StagePrescriptionOverride(3, slip)) == expected


def test_bridge_bolus_over_the_wire_answers_when_the_old_drug_is_out() -> None:
    b = bench()  # morphine 1000 ug/mL at 500 000 nL/day
    b.ok(RefillBegin(command_id=5))
    b.ok(
        RefillComplete(
            command_id=6,
            withdrawn_nl=0,
            new_volume_nl=10_000_000,
            new_concentration_ug_per_ml=2_000,
        )
    )
    ack = b.request(BridgeBolus(command_id=7))
    assert isinstance(ack, Ack)
    assert ack.request is Opcode.BRIDGE_BOLUS
    # 486 000 nL of old drug at 500 000 nL/day: 2 430 strokes, one every 34.56 s, the last
    # 83 980.8 s after the commit at time 0 (the pump's clock was never set).
    assert ack.value == 83_980_800
    status = b.pump.status()
    assert status.bridging


def test_a_patient_session_may_send_neither_new_request() -> None:
    b = bench(session=False)
    b.open(Role.PATIENT)
    denied = Nak(code=RefusalCode.NOT_PERMITTED_FOR_ROLE, field=FieldId.ROLE, limit=0)
    assert b.request(StagePrescriptionOverride(1, RX)) == denied
    assert b.request(BridgeBolus(command_id=5)) == denied

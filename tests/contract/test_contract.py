"""The contract: protocol behaviours any pump that implements docs/protocol.md must show.

Written once against the plugin's ``programmer`` fixture (hil/pytest_plugin.py), so the
same tests run against the emulator in-process (``--pump-backend wire``, the default suite),
over a real pty (``--pump-backend pty``: tests/hil/e2e/test_contract_backends_e2e.py), and
against a device team's own pump (``--pump-backend url --pump-url ... --pump-keys ...``;
docs/contract.md). Every figure a test needs from the pump (its limits, its serial) is read
from the pump itself, never assumed from a profile.
"""

from __future__ import annotations

import secrets

import pytest

from hil.programmer.client import Programmer
from hil.programmer.core import Outcome, RetryPolicy
from hil.pytest_plugin import PlantControl, PumpTarget
from protocol.device_state import AlarmKind, EventKind, Role, TherapyState
from protocol.messages import (
    NEVER_MS,
    Ack,
    AlarmTest,
    CatheterInfo,
    CurrentPrescription,
    DeviceInfo,
    EventLogPage,
    Nak,
    PatientView,
    PrescriptionStaged,
    Status,
    StatusDetail,
    StopTherapy,
)
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat
from protocol.refusal import FieldId, RefusalCode


def prescription(rate_nl_per_day: int = 500_000) -> Prescription:
    """Morphine 10 mg/mL at 0.5 mL/day (5 mg/day): inside every clinical limit."""
    return Prescription(
        drug_name="morphine",
        concentration_ug_per_ml=10_000,
        mode=InfusionMode.CONTINUOUS,
        repeat=Repeat.DAILY,
        steps=(FlexStep(0, rate_nl_per_day),),
        patient_bolus=None,
        low_reservoir_threshold_nl=2_000_000,
    )


def info(programmer: Programmer) -> DeviceInfo:
    result = programmer.info()
    assert result.outcome is Outcome.ANSWERED, result
    assert isinstance(result.reply, DeviceInfo)
    return result.reply


def status(programmer: Programmer) -> Status:
    result = programmer.status()
    assert result.outcome is Outcome.ANSWERED, result
    assert isinstance(result.reply, Status)
    return result.reply


def program(programmer: Programmer, rx: Prescription) -> None:
    staged = programmer.stage(rx)
    assert staged.outcome is Outcome.ANSWERED, staged
    assert isinstance(staged.reply, PrescriptionStaged)
    committed = programmer.commit(staged.reply.digest)
    assert committed.outcome is Outcome.APPLIED, committed


def next_seq(programmer: Programmer) -> int:
    """Where the log's next entry will go: what a test reads from to see only its own."""
    page = programmer.event_log(from_seq=0, count=1)
    assert isinstance(page.reply, EventLogPage), page
    return page.reply.next_seq


def log_kinds(programmer: Programmer, from_seq: int = 0) -> list[EventKind]:
    """The kinds of the log's entries from ``from_seq`` on. A test reads only from where it
    started: a pump under test (a device on a bench) may have a history."""
    kinds: list[EventKind] = []
    while True:
        page = programmer.event_log(from_seq=from_seq, count=32)
        assert page.outcome is Outcome.ANSWERED, page
        assert isinstance(page.reply, EventLogPage)
        kinds += [e.kind for e in page.reply.entries]
        if not page.reply.entries or page.reply.entries[-1].seq + 1 >= page.reply.next_seq:
            return kinds
        from_seq = page.reply.entries[-1].seq + 1


def refusal(result: object) -> Nak:
    assert getattr(result, "outcome", None) is Outcome.REFUSED, result
    reply = getattr(result, "reply", None)
    assert isinstance(reply, Nak), result
    return reply


# -- opening a session (docs/security.md sections 4-6) --------------------------------------


def test_a_session_opens_and_the_pump_names_itself(
    programmer: Programmer, pump_target: PumpTarget
) -> None:
    assert info(programmer).serial == pump_target.keys.serial
    assert status(programmer).pump_time_ms >= 0


def test_a_programmer_with_a_wrong_key_is_never_answered(pump_target: PumpTarget) -> None:
    """C4: a proof made with another key opens nothing, whatever the programmer retries."""
    link = pump_target.open_link()
    stranger = Programmer(
        link,
        pump_target.keys.serial,
        Role.CLINICIAN,
        secrets.token_bytes(32),
        policy=RetryPolicy(attempts=1, reopen_attempts=1, busy_wait_ms=0),
        clock=pump_target.clock,
    )
    result = stranger.status()
    assert result.outcome is not Outcome.ANSWERED
    if isinstance(result.reply, Nak):
        assert result.reply.code is RefusalCode.AUTHENTICATION_FAILED
    if pump_target.backend != "wire":
        link.close()


@pytest.mark.role("patient")
@pytest.mark.hazard("C4")
def test_a_patient_reads_status_but_may_not_program(programmer: Programmer) -> None:
    assert status(programmer).state in TherapyState
    nak = refusal(programmer.stage(prescription()))
    assert nak.code is RefusalCode.NOT_PERMITTED_FOR_ROLE
    nak = refusal(programmer.stop())
    assert nak.code is RefusalCode.NOT_PERMITTED_FOR_ROLE


# -- stage and commit (docs/protocol.md section 7; C5) ---------------------------------------


@pytest.mark.hazard("C5")
def test_a_staged_prescription_is_committed_and_read_back(programmer: Programmer) -> None:
    rx = prescription()
    program(programmer, rx)
    back = programmer.prescription()
    assert back.outcome is Outcome.ANSWERED
    assert isinstance(back.reply, CurrentPrescription)
    assert back.reply.prescription == rx
    assert status(programmer).rate_nl_per_day == 500_000


@pytest.mark.hazard("C5")
def test_a_commit_of_another_digest_changes_nothing(programmer: Programmer) -> None:
    before = status(programmer).rate_nl_per_day
    staged = programmer.stage(prescription(700_000))
    assert isinstance(staged.reply, PrescriptionStaged)
    wrong = bytes(b ^ 0xFF for b in staged.reply.digest)
    assert refusal(programmer.commit(wrong)).code is RefusalCode.DIGEST_MISMATCH
    assert status(programmer).rate_nl_per_day == before


def test_a_commit_with_nothing_staged_is_refused(programmer: Programmer) -> None:
    assert refusal(programmer.commit(bytes(16))).code is RefusalCode.NOTHING_STAGED


@pytest.mark.hazard("H11")
def test_a_rate_above_the_pumps_maximum_is_refused_with_field_and_limit(
    programmer: Programmer,
) -> None:
    limits = info(programmer).limits
    nak = refusal(programmer.stage(prescription(limits.rate_max_nl_per_day + 1)))
    assert nak.code is RefusalCode.RATE_ABOVE_MAX
    assert nak.field is FieldId.STEP_RATE
    assert nak.limit == limits.rate_max_nl_per_day


@pytest.mark.hazard("H11")
def test_a_bolus_above_the_pumps_maximum_is_refused(programmer: Programmer) -> None:
    program(programmer, prescription())
    limits = info(programmer).limits
    nak = refusal(programmer.clinician_bolus(limits.max_clinician_bolus_nl + 1, 600))
    assert nak.code is RefusalCode.BOLUS_ABOVE_MAX
    assert nak.limit == limits.max_clinician_bolus_nl


# -- exactly once (docs/protocol.md section 8; C1) -------------------------------------------


@pytest.mark.hazard("C1")
def test_a_repeated_command_id_is_answered_again_and_applied_once(
    programmer: Programmer,
) -> None:
    start = next_seq(programmer)
    command = AlarmTest(command_id=programmer.command_id())
    first = programmer.request(command)
    again = programmer.request(command)
    assert first.outcome is Outcome.APPLIED
    assert again.outcome is Outcome.APPLIED
    assert isinstance(first.reply, Ack)
    assert again.reply == first.reply
    assert log_kinds(programmer, start).count(EventKind.ALARM_TEST) == 1
    assert status(programmer).last_command_id == command.command_id


@pytest.mark.hazard("C1")
def test_a_command_id_reused_for_another_request_is_a_conflict(programmer: Programmer) -> None:
    command_id = programmer.command_id()
    assert programmer.request(AlarmTest(command_id=command_id)).outcome is Outcome.APPLIED
    other = programmer.request(StopTherapy(command_id=command_id))
    assert refusal(other).code is RefusalCode.COMMAND_ID_CONFLICT


# -- therapy state, alarms and the log -------------------------------------------------------


def test_stop_then_start_is_logged_in_order(programmer: Programmer) -> None:
    program(programmer, prescription())
    start = next_seq(programmer)
    assert programmer.stop().outcome is Outcome.APPLIED
    assert status(programmer).state is TherapyState.STOPPED
    assert programmer.start().outcome is Outcome.APPLIED
    assert status(programmer).state is TherapyState.CONTINUOUS
    kinds = log_kinds(programmer, start)
    stopped = kinds.index(EventKind.THERAPY_STOPPED)
    assert EventKind.THERAPY_STARTED in kinds[stopped:]


def test_an_alarm_test_is_applied_and_logged(programmer: Programmer) -> None:
    start = next_seq(programmer)
    assert programmer.alarm_test().outcome is Outcome.APPLIED
    assert EventKind.ALARM_TEST in log_kinds(programmer, start)


@pytest.mark.needs_plant_control
@pytest.mark.hazard("H5")
def test_a_permanent_stall_raises_an_alarm_and_stops_delivery(
    programmer: Programmer, plant_faults: PlantControl, pump_clock: PlantControl
) -> None:
    """H5 on a pump with a stall sensor (every shipped profile has one)."""
    program(programmer, prescription())
    plant_faults.fault("stall")
    try:
        pump_clock.advance(3_600)
        now = status(programmer)
        assert now.state is TherapyState.SUSPENDED_BY_ALARM
        assert AlarmKind.MOTOR_STALL in now.active_alarms
        assert plant_faults.truth()["motor"] != 0
    finally:  # a pump on a bench outlives this test
        plant_faults.fault("repair", part="motor")
        pump_clock.advance(3_600)


# -- the detailed reads and service procedures (docs/protocol.md section 7, issue 12) --------


@pytest.mark.role("patient")
@pytest.mark.hazard("C4")
def test_a_patient_reads_the_patient_view_and_nothing_else_new(programmer: Programmer) -> None:
    view = programmer.patient_view()
    assert view.outcome is Outcome.ANSWERED, view
    assert isinstance(view.reply, PatientView)
    if not view.reply.patient_bolus_allowed:
        assert view.reply.next_bolus_at_ms == NEVER_MS
        assert view.reply.boluses_left_24h == 0
    for result in (
        programmer.status_detail(),
        programmer.catheter(),
        programmer.clear_memory_error(),
        programmer.reset_flow_valve(),
        programmer.set_catheter(50, primed=True),
    ):
        nak = refusal(result)
        assert (nak.code, nak.field) == (RefusalCode.NOT_PERMITTED_FOR_ROLE, FieldId.ROLE)


@pytest.mark.hazard("H7")
def test_the_detailed_status_forecasts_in_order(programmer: Programmer) -> None:
    """Running therapy: low reservoir no later than empty, both ahead of now (or now);
    ERI (projected) no later than end of service; the day's and the since-refill masses
    are parts of the whole, and every mass is a volume x a concentration."""
    program(programmer, prescription())
    result = programmer.status_detail()
    assert result.outcome is Outcome.ANSWERED, result
    d = result.reply
    assert isinstance(d, StatusDetail)
    assert d.pump_time_ms <= d.low_reservoir_at_ms <= d.empty_at_ms < NEVER_MS
    if not d.eri_reached:
        assert d.pump_time_ms <= d.eri_at_ms
    assert d.eri_at_ms <= d.end_of_service_at_ms
    assert d.mass_today_pg <= d.delivered_pg
    assert d.mass_since_refill_pg <= d.delivered_pg


def test_a_catheter_set_is_read_back_with_its_dead_volume(programmer: Programmer) -> None:
    before = programmer.catheter()
    assert isinstance(before.reply, CatheterInfo), before
    most = before.reply.max_length_cm
    applied = programmer.set_catheter(most, primed=False)
    assert applied.outcome is Outcome.APPLIED, applied
    assert isinstance(applied.reply, Ack)
    after = programmer.catheter()
    assert isinstance(after.reply, CatheterInfo), after
    assert (after.reply.length_cm, after.reply.primed) == (most, False)
    assert after.reply.dead_volume_nl == applied.reply.value
    nak = refusal(programmer.set_catheter(most + 1, primed=False))
    expected = (RefusalCode.INVALID_FIELD, FieldId.CATHETER_LENGTH, most)
    assert (nak.code, nak.field, nak.limit) == expected

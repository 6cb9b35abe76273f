"""The therapy state machine is total: every (state, input) pair is a transition or a
specific refusal (docs/architecture.md principle 6), and the firmware honours the table."""

from __future__ import annotations

import itertools

import pytest

from emulator.firmware.results import Refused
from emulator.firmware.therapy_table import TABLE, Go, Refuse, Target, TherapyInput, lookup
from emulator.pump import Pump
from protocol.device_state import TherapyState
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat
from protocol.refusal import RefusalCode

PAIRS = list(itertools.product(TherapyState, TherapyInput))


@pytest.mark.parametrize(("state", "what"), PAIRS, ids=[f"{s.name}-{i.name}" for s, i in PAIRS])
def test_every_pair_has_a_transition_or_a_refusal(state: TherapyState, what: TherapyInput) -> None:
    entry = lookup(state, what)
    if isinstance(entry, Go):
        assert isinstance(entry.target, Target)
    else:
        assert isinstance(entry, Refuse)
        # None ("the suspension's own code") only makes sense while suspended.
        assert entry.code is not None or state is TherapyState.SUSPENDED_BY_ALARM


def test_table_has_no_extra_rows() -> None:
    assert set(TABLE) == set(TherapyState)
    assert all(set(row) == set(TherapyInput) for row in TABLE.values())


def test_end_of_service_refuses_every_command() -> None:
    row = TABLE[TherapyState.END_OF_SERVICE]
    commands = [i for i in TherapyInput if i < TherapyInput.BOLUS_COMPLETE]
    assert all(row[i] == Refuse(RefusalCode.END_OF_SERVICE) for i in commands)


RX = Prescription(
    "morphine", 1_000, InfusionMode.CONTINUOUS, Repeat.DAILY, (FlexStep(0, 288_000),), None,
    2_000_000,
)  # fmt: skip


def test_firmware_refuses_what_the_table_refuses() -> None:
    pump = Pump("peristaltic-20")
    # STOPPED: stop and patient bolus are refused with the table's codes, and logged.
    assert pump.stop() == Refused(RefusalCode.THERAPY_STOPPED)
    assert pump.patient_bolus() == Refused(RefusalCode.THERAPY_STOPPED)
    assert pump.cancel_bolus() == Refused(RefusalCode.NO_BOLUS_IN_PROGRESS)
    assert pump.log()[-1].detail == RefusalCode.NO_BOLUS_IN_PROGRESS
    assert pump.program(RX).ok
    assert pump.status().state is TherapyState.CONTINUOUS
    assert pump.start() == Refused(RefusalCode.BAD_STATE)  # already running
    assert pump.clinician_bolus(100_000, 3_600).ok
    assert pump.status().state is TherapyState.CLINICIAN_BOLUS
    # Mid-bolus: reprogramming and refills wait for the bolus (or its cancel).
    staged = pump.stage(RX)
    assert staged.ok
    assert pump.commit(staged.digest) == Refused(RefusalCode.BOLUS_IN_PROGRESS)
    assert pump.refill_begin() == Refused(RefusalCode.BOLUS_IN_PROGRESS)
    assert pump.cancel_bolus().ok
    assert pump.status().state is TherapyState.CONTINUOUS


DELIVERING_TARGETS = {Target.BASAL, Target.CLINICIAN_BOLUS, Target.PATIENT_BOLUS, Target.PRIMING}
COMMANDS = [i for i in TherapyInput if i < TherapyInput.BOLUS_COMPLETE]


@pytest.mark.hazard("H5", "H12")
def test_every_command_that_can_start_delivery_is_guarded_against_a_stall() -> None:
    """A stall is a condition, not a state (a pump can be STOPPED with it detected), so every
    command whose target can deliver carries the guard the firmware refuses MOTOR_STALLED by.
    RESUME checks the stall itself; SUSPENDED's COMMIT is stored and starts nothing."""
    for state, row in TABLE.items():
        for what in COMMANDS:
            entry = row[what]
            if isinstance(entry, Go) and entry.target in DELIVERING_TARGETS:
                assert entry.starts_delivery, (state.name, what.name)
    assert lookup(TherapyState.SUSPENDED_BY_ALARM, TherapyInput.COMMIT) == Go(Target.SAME)


@pytest.mark.hazard("H5", "H12")
def test_firmware_never_enters_delivery_with_a_stall_detected() -> None:
    """The last line: a transition into a delivering state with a stall detected is a
    firmware bug and raises instead of counting strokes a stalled rotor never gives."""
    pump = Pump("peristaltic-20")
    assert pump.program(RX).ok
    fw = pump._fw  # white-box: no command can reach this, which is the point
    fw._stalled = True
    with pytest.raises(RuntimeError, match="stall detected"):
        fw._transition(Go(Target.BASAL), pump.now_ms)
    assert fw.state is TherapyState.CONTINUOUS  # unchanged: the check comes first

"""A thousand therapy commands through the link-fault proxy: none lost, none applied twice.

The issue-5 acceptance, end to end in one process, on real threads and real time. The
reference programmer talks to the serve loop through ``FaultProxy``, the engine behind
``pumpemu proxy``. The proxy corrupts, drops and duplicates 5% of the frames each way.
Every command must end either confirmed applied or reported not applied, and the pump's own
event log must agree, command id by command id (C1, C2).
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import pytest

from emulator.device import PumpDevice
from emulator.profile import load_profile
from emulator.pump import Pump
from hil.clock import SystemClock
from hil.programmer.client import Programmer
from hil.programmer.core import Outcome, Result, RetryPolicy
from hil.proxy import FaultSpec, Rate, memory_proxy
from hil.serve import PumpServer
from protocol.device_state import EventKind, Role
from protocol.keys import generate_keys
from protocol.prescription import (
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)
from protocol.session import SessionLimits

pytestmark = [pytest.mark.e2e, pytest.mark.hazard("C1", "C2")]

COMMANDS = 1_000
FAULT_RATE = 0.05

REFUSAL_KINDS = frozenset({EventKind.COMMAND_REFUSED, EventKind.PATIENT_BOLUS_REFUSED})


def applied_counts(pump: Pump) -> Counter[int]:
    """How many times the pump's log shows each command id applied.

    The firmware records the command id of every command it applies in ``value_b``
    (docs/protocol.md, event log); refusals are counted apart.
    """
    return Counter(
        entry.value_b
        for entry in pump.log()
        if entry.value_b and entry.kind not in REFUSAL_KINDS and entry.kind in COMMAND_EVENTS
    )


COMMAND_EVENTS = frozenset(
    {
        EventKind.ALARM_TEST,
        EventKind.THERAPY_STARTED,
        EventKind.THERAPY_STOPPED,
        EventKind.PATIENT_BOLUS_GRANTED,
    }
)


def test_a_thousand_commands_through_a_lossy_link_apply_exactly_once() -> None:
    rng = random.Random(20261124)
    keys = generate_keys("PE-LOSSY-1", rng.randbytes(64))
    # A log large enough to hold the whole run, so the oracle sees every application.
    profile = dataclasses.replace(load_profile("peristaltic-20"), log_capacity=20_000)
    pump = Pump(profile)
    rx = Prescription(
        "morphine", 1_000, InfusionMode.CONTINUOUS, Repeat.DAILY, (FlexStep(0, 500_000),),
        PatientBolusLimits(dose_nl=1_000, duration_s=60, lockout_s=600, max_per_24h=24),
        2_000_000,
    )  # fmt: skip
    staged = pump.stage(rx)
    assert staged.ok
    assert pump.commit(staged.digest, command_id=1).ok
    # Short session timers: a session the programmer gave up on expires in a second.
    limits = SessionLimits(
        idle_timeout_s=1, max_session_s=3_600, max_failed_openings=5, lockout_s=1
    )
    pump_entropy = random.Random(1)
    device = PumpDevice(pump, keys, pump_entropy.randbytes, limits=limits)
    faults = [
        FaultSpec.make("corrupt", Rate(FAULT_RATE)),
        FaultSpec.make("drop", Rate(FAULT_RATE)),
        FaultSpec.make("duplicate", Rate(FAULT_RATE)),
    ]
    programmer_link, pump_link, proxy = memory_proxy(faults, seed=7, idle_ms=20)
    policy = RetryPolicy(reply_timeout_ms=40, attempts=6, reopen_attempts=6, busy_wait_ms=5_000)
    results: list[Result] = []
    server_log: list[str] = []
    with (
        proxy,
        PumpServer(device, pump_link, SystemClock(start_ms=pump.now_ms), log=server_log.append),
    ):
        programmer = Programmer(
            programmer_link, keys.serial, Role.CLINICIAN, keys.clinician,
            policy=policy, entropy=rng.randbytes,
        )  # fmt: skip
        commands = (programmer.alarm_test, programmer.patient_bolus, programmer.stop,
                    programmer.start)  # fmt: skip
        for index in range(COMMANDS):
            results.append(commands[index % len(commands)]())
        programmer.close()
        stats = proxy.stats

    outcomes = Counter(result.outcome for result in results)
    assert outcomes[Outcome.UNCERTAIN] == 0, outcomes
    assert set(outcomes) <= {Outcome.APPLIED, Outcome.REFUSED, Outcome.NOT_APPLIED}
    assert outcomes[Outcome.APPLIED] >= COMMANDS // 2  # alarm tests and most starts/stops

    applied = applied_counts(pump)
    ids = [getattr(result.request, "command_id") for result in results]  # noqa: B009
    assert len(set(ids)) == COMMANDS
    assert max(applied.values()) == 1, "a command id was applied twice"
    for result, command_id in zip(results, ids, strict=True):
        expected = 1 if result.outcome is Outcome.APPLIED else 0
        assert applied[command_id] == expected, (result, command_id)

    # The proxy really misbehaved: the run above proves something only if it did.
    assert sum(stats.faults.values()) > COMMANDS * FAULT_RATE

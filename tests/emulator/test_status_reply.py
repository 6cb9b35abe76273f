"""emulator/status_reply.py against the reference STATUS reply (``PumpDevice._status``).

The plan must give the payload bytes the reference encodes, in every state a pump reaches:
therapy running or stopped, boluses, alarms raised and acknowledged, the clock set, the
battery drained, the motor stalled, the pump reset; and over the wire a READ_STATUS must be
answered the same whether the plan or the reference builds the reply.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator import device as device_module
from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.faults import BatteryDrain, MemoryCorruption, MotorStall, Reset
from emulator.pump import Pump
from emulator.status_reply import status_payload
from hil.programmer.core import Outcome, ProgrammerCore
from hil.two_peer import PerfectLink, TwoPeer
from protocol import codec
from protocol.device_state import AlarmKind, Role
from protocol.keys import generate_keys
from protocol.messages import ReadStatus, Status
from tests.emulator.conftest import continuous

KEYS = generate_keys("PE-000123", bytes(range(5, 69)))

steps = st.one_of(
    st.tuples(st.just("advance"), st.integers(0, 40 * 86_400)),
    st.tuples(st.just("program"), st.integers(1_000, 5_000_000)),
    st.tuples(st.just("start"), st.just(0)),
    st.tuples(st.just("stop"), st.just(0)),
    st.tuples(st.just("bolus"), st.integers(1, 50_000)),
    st.tuples(st.just("alarm_test"), st.just(0)),
    st.tuples(st.just("acknowledge"), st.sampled_from(list(AlarmKind))),
    st.tuples(st.just("set_clock"), st.integers(0, 2**40)),
    st.tuples(st.just("drain"), st.integers(0, 10**9)),
    st.tuples(st.just("stall"), st.integers(1, 3_600)),
    st.tuples(st.just("reset"), st.just(0)),
    st.tuples(st.just("memory"), st.integers(0, 10_000)),
)


def apply(pump: Pump, step: tuple[str, object], command_id: int) -> None:
    kind, value = step
    assert isinstance(value, int | AlarmKind)
    match kind:
        case "advance":
            pump.advance(int(value))
        case "program":
            pump.program(continuous(int(value)), command_id=command_id)
        case "start":
            pump.start(command_id=command_id)
        case "stop":
            pump.stop(command_id=command_id)
        case "bolus":
            pump.clinician_bolus(int(value), 600, command_id=command_id)
        case "alarm_test":
            pump.alarm_test(command_id=command_id)
        case "acknowledge":
            pump.acknowledge_alarm(AlarmKind(value), command_id=command_id)
        case "set_clock":
            pump.set_clock(int(value), command_id=command_id)
        case "drain":
            pump.inject(BatteryDrain(nah=int(value)))
        case "stall":
            pump.inject(MotorStall(recover_after_s=int(value)))
        case "reset":
            pump.inject(Reset())
        case "memory":
            pump.inject(MemoryCorruption(bit=int(value)))


@given(st.lists(steps, max_size=12))
def test_the_plan_gives_the_reference_bytes_in_every_state(
    script: list[tuple[str, object]],
) -> None:
    device = PumpDevice(Pump("peristaltic-20", start_ms=0), KEYS, random.Random(1).randbytes)
    for command_id, step in enumerate([("advance", 0), *script], start=1):
        apply(device.pump, step, command_id)
        reference = device._status()
        planned = status_payload(device.pump)
        assert planned == codec.encode_payload(reference)[1]
        assert planned == codec.encode_payload_reference(reference)[1]


SCRIPTS = {
    "fresh": [],
    "therapy-running": [("program", 500_000), ("advance", 3_600)],
    "bolus-running": [("program", 500_000), ("bolus", 20_000), ("advance", 60)],
    "reservoir-empty": [("program", 5_000_000), ("advance", 10 * 86_400)],
    "alarm-acknowledged": [
        ("program", 5_000_000),
        ("advance", 10 * 86_400),
        ("acknowledge", AlarmKind.LOW_RESERVOIR),
    ],
    "battery-end-of-service": [("drain", 10**9), ("advance", 10)],
    "motor-stall": [("program", 5_000_000), ("stall", 3_000), ("advance", 600)],
    "memory-error": [("program", 500_000), ("memory", 77), ("advance", 1)],
    "clock-set": [("program", 500_000), ("set_clock", 2**40), ("advance", 7)],
    "reset": [("program", 500_000), ("advance", 100), ("reset", 0), ("advance", 1)],
}


@pytest.mark.parametrize("script", list(SCRIPTS.values()), ids=list(SCRIPTS))
def test_the_plan_gives_the_reference_bytes_in_named_states(
    script: list[tuple[str, object]],
) -> None:
    device = PumpDevice(Pump("peristaltic-20", start_ms=0), KEYS, random.Random(1).randbytes)
    for command_id, step in enumerate(script, start=1):
        apply(device.pump, step, command_id)
    reference = device._status()
    assert status_payload(device.pump) == codec.encode_payload_reference(reference)[1]


def test_the_named_states_cover_alarms_battery_and_therapy() -> None:
    """The named scripts reach what the plan converts: alarms, a drained battery, a rate."""
    seen_alarms: set[AlarmKind] = set()
    percents, rates = set(), set()
    for script in SCRIPTS.values():
        pump = Pump("peristaltic-20", start_ms=0)
        for command_id, step in enumerate(script, start=1):
            apply(pump, step, command_id)
        _state, rate, _reservoir, _battery, alarms, _last, _time = pump.status_figures()
        seen_alarms |= alarms
        rates.add(rate)
        percents.add(PumpDevice(pump, KEYS, random.Random(1).randbytes)._status().battery_percent)
    assert {
        AlarmKind.LOW_RESERVOIR,
        AlarmKind.RESERVOIR_EMPTY,
        AlarmKind.MEMORY_ERROR,
    } <= seen_alarms
    assert 0 in percents
    assert 100 in percents
    assert len(rates) > 1


def test_the_plan_declines_a_figure_outside_its_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """A figure the layout cannot carry is the reference's to refuse, never packed."""
    pump = Pump("peristaltic-20", start_ms=0)
    figures = pump.status_figures()
    assert status_payload(pump) is not None
    for index, bad in ((1, -1), (2, -5), (5, 2**32), (6, -1), (6, 2**64)):
        changed = (*figures[:index], bad, *figures[index + 1 :])
        monkeypatch.setattr(pump, "status_figures", lambda changed=changed: changed)
        assert status_payload(pump) is None, (index, bad)


def _statuses(monkeypatch: pytest.MonkeyPatch, *, plan: bool) -> list[Status]:
    if not plan:
        monkeypatch.setattr(device_module, "status_payload", lambda _pump: None)
    pump = Pump("peristaltic-20", start_ms=0)
    pump.program(continuous(400_000), command_id=1)
    device = PumpDevice(pump, KEYS, random.Random(1).randbytes)
    core = ProgrammerCore(KEYS.serial, Role.CLINICIAN, KEYS.clinician, random.Random(2).randbytes)
    tp = TwoPeer(device, core, ManualClock(0), PerfectLink(latency_ms=0))
    replies: list[Status] = []
    for when in (0, 1_000, 3_600_000, 86_400_000):
        tp.run_until(when)
        result = tp.request(ReadStatus())
        assert result.outcome is Outcome.ANSWERED
        assert isinstance(result.reply, Status)
        replies.append(result.reply)
    return replies


def test_over_the_wire_the_plan_answers_as_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    planned = _statuses(monkeypatch, plan=True)
    monkeypatch.undo()
    assert planned == _statuses(monkeypatch, plan=False)
    assert planned[-1].reservoir_nl < planned[0].reservoir_nl  # therapy ran between reads

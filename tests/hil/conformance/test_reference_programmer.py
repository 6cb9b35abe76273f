"""The reference programmer breaks no conformance rule, over a perfect link and over lossy
ones (hil/two_peer.py ``LossyLink``: drops, bit flips, late duplicates), with the monitor on
the programmer's side of the link (docs/conformance.md, "Where the monitor listens").

False positives are the worst failure of such a tool: these runs are the guard.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from hil.conformance import TO_PROGRAMMER, TO_PUMP, ConformanceMonitor
from hil.programmer.core import Outcome, ProgrammerCore
from hil.two_peer import TO_PUMP as TO_PUMP_WIRE
from hil.two_peer import Delivery, LinkModel, LossyLink, PerfectLink, ScriptedLink, TwoPeer
from protocol.device_state import Role
from protocol.messages import (
    AlarmTest,
    ClinicianBolus,
    CommitPrescription,
    Message,
    PrescriptionStaged,
    ReadAlarms,
    ReadDeviceInfo,
    ReadStatus,
    SetClock,
    StagePrescription,
    StartTherapy,
    StopTherapy,
)
from tests.hil.conformance.rig import CLOCK_2026_MS, KEYS, RX, RX_TOO_FAST, new_pump


class TappedProgrammer(ProgrammerCore):
    """The reference programmer core with the monitor on its side of the link."""

    def __init__(self, monitor: ConformanceMonitor, clock: ManualClock, seed: int) -> None:
        super().__init__(
            KEYS.serial, Role.CLINICIAN, KEYS.key_for(Role.CLINICIAN), random.Random(seed).randbytes
        )
        self.monitor = monitor
        self.clock = clock

    def data_to_send(self) -> bytes:
        data = super().data_to_send()
        if data:
            self.monitor.feed(TO_PUMP, data, self.clock.now_ms())
        return data

    def receive_data(self, data: bytes, now_ms: int) -> None:
        self.monitor.feed(TO_PROGRAMMER, data, now_ms)
        super().receive_data(data, now_ms)


def visit(link: LinkModel, seed: int, *, clock_set: bool) -> tuple[ConformanceMonitor, list[str]]:
    """A clinic visit by the reference programmer: read, set the clock, program with a
    refused first try, start, bolus, read the alarms, stop, close."""
    pump = new_pump(clock_set=clock_set)
    device = PumpDevice(pump, KEYS, random.Random(seed).randbytes)
    clock = ManualClock(device.now_ms)
    monitor = ConformanceMonitor(KEYS)
    programmer = TappedProgrammer(monitor, clock, seed + 1)
    tp = TwoPeer(device, programmer, clock, link)
    outcomes: list[str] = []
    ids = iter(range(seed * 100 + 1, seed * 100 + 100))

    def do(message: Message) -> Message | None:
        result = tp.request(message)
        outcomes.append(result.outcome.value)
        if result.outcome is Outcome.UNCERTAIN:
            # The programmer says so; a careful user reads the status before going on.
            for _ in range(5):
                if tp.request(ReadStatus()).outcome is Outcome.ANSWERED:
                    break
        return result.reply

    do(ReadDeviceInfo())
    do(ReadStatus())
    for _ in range(5):  # a careful user sets the clock until it is set
        do(SetClock(command_id=next(ids), pump_time_ms=CLOCK_2026_MS + 60_000))
        if outcomes[-1] == Outcome.APPLIED.value:
            break
        do(ReadStatus())
    do(StagePrescription(prescription=RX_TOO_FAST))
    staged = do(StagePrescription(prescription=RX))
    if isinstance(staged, PrescriptionStaged):
        do(CommitPrescription(command_id=next(ids), digest=staged.digest))
        do(StartTherapy(command_id=next(ids)))
        do(ClinicianBolus(command_id=next(ids), dose_nl=20_000, duration_s=600))
    do(AlarmTest(command_id=next(ids)))
    do(ReadAlarms())
    do(ReadStatus())
    do(StopTherapy(command_id=next(ids)))
    tp.close()
    monitor.finish(clock.now_ms())
    return monitor, outcomes


def test_over_a_perfect_link_it_breaks_no_rule() -> None:
    monitor, outcomes = visit(PerfectLink(), 0, clock_set=False)
    assert monitor.violations == ()
    assert "uncertain" not in outcomes
    assert monitor.stats.sessions == 1
    assert monitor.stats.unopened == 0


@pytest.mark.parametrize("seed", range(24), ids=lambda s: f"seed{s}")
def test_over_a_lossy_link_it_breaks_no_rule(seed: int) -> None:
    link = LossyLink(drop=0.15, corrupt=0.1, duplicate=0.15, seed=seed)
    monitor, outcomes = visit(link, seed, clock_set=seed % 2 == 0)
    assert monitor.violations == (), [(v.rule, v.detail) for v in monitor.violations]
    assert monitor.stats.requests > len(outcomes)  # the link made it retry
    assert Outcome.UNCERTAIN.value not in outcomes or link.counts


# -- any link script: hypothesis picks the fate of every chunk --------------------------------

fates = st.one_of(
    st.tuples(st.just("delay"), st.integers(0, 3_000)),
    st.tuples(st.just("drop"), st.just(0)),
    st.tuples(st.just("duplicate"), st.integers(0, 5_000)),
    st.tuples(st.just("corrupt"), st.integers(0, 10_000)),
)


@dataclass
class Script:
    """The fates hypothesis chose for the first chunks of each direction, then a good link."""

    to_pump: list[tuple[str, int]]
    to_programmer: list[tuple[str, int]]

    def fate(self, direction: str, index: int, data: bytes) -> list[Delivery]:
        script = self.to_pump if direction == TO_PUMP_WIRE else self.to_programmer
        kind, value = script[index] if index < len(script) else ("delay", 1)
        if kind == "delay":
            return [Delivery(value, data)]
        if kind == "drop":
            return []
        if kind == "duplicate":
            return [Delivery(1, data), Delivery(value, data)]
        damaged = bytearray(data)
        damaged[value % len(damaged)] ^= 0x40
        return [Delivery(1, bytes(damaged))]


COMMANDS = st.lists(
    st.tuples(
        st.sampled_from(["alarm_test", "start", "stop", "bolus", "status", "stage"]),
        st.sampled_from([0, 30_000, 700_000]),
    ),
    min_size=1,
    max_size=6,
).filter(lambda steps: all(a[0] != b[0] for a, b in itertools.pairwise(steps)))
"""A user's commands; never the same twice in a row (three refusals of one request in a row
is REFUSED-LOOP, the user's doing, not the programmer's)."""


def _message(kind: str, command_id: int) -> Message:
    match kind:
        case "alarm_test":
            return AlarmTest(command_id=command_id)
        case "start":
            return StartTherapy(command_id=command_id)
        case "stop":
            return StopTherapy(command_id=command_id)
        case "bolus":
            return ClinicianBolus(command_id=command_id, dose_nl=20_000, duration_s=60)
        case "status":
            return ReadStatus()
        case _:
            return StagePrescription(prescription=RX)


@settings(max_examples=40)
@given(
    st.lists(fates, max_size=8),
    st.lists(fates, max_size=8),
    COMMANDS,
)
def test_over_any_link_script_it_breaks_no_rule(
    to_pump: list[tuple[str, int]],
    to_programmer: list[tuple[str, int]],
    commands: list[tuple[str, int]],
) -> None:
    """Whatever the link does to the first chunks (drop, damage, late duplicates) and however
    long the user pauses (an idle session expires on the pump), the reference programmer,
    used with care (STATUS after an uncertain outcome), breaks no rule."""
    pump = new_pump()
    device = PumpDevice(pump, KEYS, random.Random(3).randbytes)
    clock = ManualClock(device.now_ms)
    monitor = ConformanceMonitor(KEYS)
    programmer = TappedProgrammer(monitor, clock, 4)
    tp = TwoPeer(device, programmer, clock, ScriptedLink(Script(to_pump, to_programmer).fate))
    for index, (kind, gap_ms) in enumerate(commands, 1):
        tp.run_until(clock.now_ms() + gap_ms)
        result = tp.request(_message(kind, index))
        if result.outcome is Outcome.UNCERTAIN:
            for _ in range(5):
                if tp.request(ReadStatus()).outcome is Outcome.ANSWERED:
                    break
    tp.close()
    monitor.finish(clock.now_ms())
    assert monitor.violations == (), [(v.rule, v.detail) for v in monitor.violations]

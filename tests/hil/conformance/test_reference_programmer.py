"""The reference programmer breaks no conformance rule, over a perfect link and over lossy
ones (hil/two_peer.py ``LossyLink``: drops, bit flips, late duplicates), with the monitor on
the programmer's side of the link (docs/conformance.md, "Where the monitor listens").

False positives are the worst failure of such a tool: these runs are the guard.
"""

from __future__ import annotations

import random

import pytest

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from hil.conformance import TO_PROGRAMMER, TO_PUMP, ConformanceMonitor
from hil.programmer.core import Outcome, ProgrammerCore
from hil.two_peer import LinkModel, LossyLink, PerfectLink, TwoPeer
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

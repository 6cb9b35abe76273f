"""TwoPeer: the discrete-event joint of programmer core, device and link model."""

from __future__ import annotations

import random

import pytest

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.pump import Pump
from hil.programmer.core import Outcome, ProgrammerCore
from hil.two_peer import (
    TO_PROGRAMMER,
    TO_PUMP,
    Delivery,
    PerfectLink,
    ScriptedLink,
    StalledError,
    TwoPeer,
)
from protocol.device_state import Role
from protocol.keys import generate_keys
from protocol.messages import AlarmTest, ReadStatus, Status

KEYS = generate_keys("PE-000555", bytes(range(11, 75)))


def build(link: object = None, *, start_ms: int = 0) -> TwoPeer:
    pump = Pump("peristaltic-20", start_ms=start_ms)
    device = PumpDevice(pump, KEYS, random.Random(1).randbytes)
    core = ProgrammerCore(KEYS.serial, Role.CLINICIAN, KEYS.clinician, random.Random(2).randbytes)
    return TwoPeer(device, core, ManualClock(start_ms), link)  # type: ignore[arg-type]


def test_clock_and_pump_must_agree() -> None:
    pump = Pump("peristaltic-20", start_ms=5)
    device = PumpDevice(pump, KEYS, random.Random(1).randbytes)
    core = ProgrammerCore(KEYS.serial, Role.CLINICIAN, KEYS.clinician, random.Random(2).randbytes)
    with pytest.raises(ValueError, match="same time"):
        TwoPeer(device, core, ManualClock(0))


@pytest.mark.parametrize("latency", [0, 1, 250])
def test_latency_is_exact_time(latency: int) -> None:
    tp = build(PerfectLink(latency_ms=latency))
    first = tp.request(ReadStatus())  # handshake (2 round trips) + request (1)
    assert first.outcome is Outcome.ANSWERED
    assert tp.clock.now_ms() == 6 * latency
    status = tp.request(ReadStatus()).reply
    assert isinstance(status, Status)
    assert tp.clock.now_ms() == 8 * latency
    assert status.pump_time_ms == 7 * latency  # answered when the request arrived


def test_scripted_link_counts_chunks_per_direction_and_duplicates_arrive() -> None:
    seen: list[tuple[str, int]] = []

    def fate(direction: str, index: int, data: bytes) -> list[Delivery]:
        seen.append((direction, index))
        return [Delivery(1, data), Delivery(5, data)]  # every chunk twice

    link = ScriptedLink(fate)
    tp = build(link)
    result = tp.request(AlarmTest(command_id=3))
    assert result.outcome is Outcome.APPLIED
    tp.run_until(tp.clock.now_ms() + 1_000)
    assert tp.device.ledger.applied_ids() == (3,)
    assert [i for d, i in seen if d == TO_PUMP] == list(range(link.counts[TO_PUMP]))
    assert link.counts[TO_PROGRAMMER] >= 3


def test_run_until_moves_the_pump_and_close_ends_the_session() -> None:
    tp = build()
    tp.request(ReadStatus())
    tp.run_until(3_600_000)
    assert tp.clock.now_ms() == 3_600_000 == tp.device.now_ms
    tp.run_until(10)  # never backwards
    assert tp.clock.now_ms() == 3_600_000
    tp.request(ReadStatus())
    tp.close()
    assert tp.programmer.idle
    assert not tp.programmer.is_open


def test_an_unresolvable_request_stalls_within_the_bound() -> None:
    tp = build(ScriptedLink(lambda d, i, data: []))
    with pytest.raises(StalledError, match="ReadStatus"):
        tp.request(ReadStatus(), limit_ms=500)

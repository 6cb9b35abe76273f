"""Never an ACK without a save (C1, H8): PumpDevice stores its state through ``persist``
before any reply leaves, and a command it could not store is undone and refused NOT_STORED."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.clock import ManualClock
from emulator.device import CommandLedger, PumpDevice
from emulator.pump import Pump
from hil.programmer.core import Outcome, ProgrammerCore
from hil.two_peer import PerfectLink, TwoPeer
from protocol.device_state import EventKind, Role
from protocol.messages import Ack, ClinicianBolus, Nak, ReadStatus, Status, StopTherapy
from protocol.refusal import FieldId, RefusalCode
from tests.emulator.test_device import KEYS, RX, acked, ok


class Disk:
    """A persist target that can be made to fail, keeping what it last stored."""

    def __init__(self) -> None:
        self.stored: list[bytes] = []
        self.failing = False

    def __call__(self, blob: bytes) -> None:
        if self.failing:
            raise OSError(27, "File too large")
        self.stored.append(blob)

    def restart(self) -> PumpDevice:
        """The device a restart would find: the last record stored."""
        return PumpDevice.restore(self.stored[-1], KEYS, random.Random(9).randbytes)


def persisted_pair(disk: Disk, *, ledger: CommandLedger | None = None) -> TwoPeer:
    pump = Pump("peristaltic-20", start_ms=0)
    pump.program(RX, command_id=1)
    device = PumpDevice(pump, KEYS, random.Random(1).randbytes, persist=disk, ledger=ledger)
    device.save()
    core = ProgrammerCore(KEYS.serial, Role.CLINICIAN, KEYS.clinician, random.Random(2).randbytes)
    return TwoPeer(device, core, ManualClock(0), PerfectLink(latency_ms=0))


def bolus_starts(device: PumpDevice) -> int:
    return sum(e.kind is EventKind.CLINICIAN_BOLUS_STARTED for e in device.pump.log())


@pytest.mark.hazard("C1")
def test_every_ack_is_stored_before_it_leaves() -> None:
    disk = Disk()
    tp = persisted_pair(disk)
    for command_id in (10, 11, 12):
        acked(tp, ClinicianBolus(command_id=command_id, dose_nl=1_000, duration_s=60))
        # What a kill right after the ACK would leave already holds the command.
        back = disk.restart()
        assert back.ledger.applied_ids()[-1] == command_id
        assert back.pump.status().last_command_id == command_id
        tp.run_until(tp.clock.now_ms() + 61_000)


@pytest.mark.hazard("C1")
@pytest.mark.hazard("H8")
def test_a_command_that_cannot_be_stored_is_undone_and_refused_not_stored() -> None:
    disk = Disk()
    tp = persisted_pair(disk)
    tp.run_until(5_000)
    ok(tp, ReadStatus())
    before = tp.device.pump.status()
    ledger_before = tp.device.ledger.entries()
    disk.failing = True
    result = tp.request(ClinicianBolus(command_id=20, dose_nl=1_000, duration_s=60))
    assert result.outcome is Outcome.REFUSED
    assert result.reply == Nak(code=RefusalCode.NOT_STORED, field=FieldId.NONE, limit=0)
    # Nothing of the command remains: therapy, reservoir, ledger, last command id.
    after = tp.device.pump.status()
    assert (after.state, after.reservoir_estimate_nl, after.last_command_id) == (
        before.state,
        before.reservoir_estimate_nl,
        before.last_command_id,
    )
    assert tp.device.ledger.entries() == ledger_before
    assert bolus_starts(tp.device) == 0
    refused = tp.device.pump.log()[-1]
    assert (refused.kind, refused.detail, refused.value_b) == (
        EventKind.COMMAND_REFUSED,
        RefusalCode.NOT_STORED,
        20,
    )
    # The therapy runs on: no safe state.
    assert not tp.device.pump.status().memory_error
    # Once the disk works again, the same id is judged afresh and applied exactly once.
    disk.failing = False
    acked(tp, ClinicianBolus(command_id=20, dose_nl=1_000, duration_s=60))
    assert bolus_starts(tp.device) == 1
    assert disk.restart().ledger.applied_ids() == (20,)


def test_a_read_never_shows_a_time_that_was_not_stored() -> None:
    disk = Disk()
    tp = persisted_pair(disk)
    ok(tp, ReadStatus())
    disk.failing = True
    tp.run_until(60_000)
    result = tp.request(ReadStatus())
    assert result.reply == Nak(code=RefusalCode.NOT_STORED, field=FieldId.NONE, limit=0)
    disk.failing = False
    status = ok(tp, ReadStatus()).reply
    assert isinstance(status, Status)
    assert disk.restart().now_ms >= tp.device.now_ms - 0  # stored before it was shown
    assert disk.restart().pump.status().local_time_ms == status.pump_time_ms


def test_rollback_brings_back_an_entry_the_failed_command_evicted() -> None:
    disk = Disk()
    tp = persisted_pair(disk, ledger=CommandLedger(capacity=2))
    acked(tp, ClinicianBolus(command_id=30, dose_nl=1_000, duration_s=60))
    tp.run_until(61_000)
    acked(tp, StopTherapy(command_id=31))
    disk.failing = True
    refused = tp.request(ClinicianBolus(command_id=32, dose_nl=1_000, duration_s=60))
    assert isinstance(refused.reply, Nak)
    assert tp.device.ledger.applied_ids() == (30, 31)
    disk.failing = False
    repeat = tp.request(ClinicianBolus(command_id=30, dose_nl=1_000, duration_s=60))
    assert isinstance(repeat.reply, Ack)  # still a repeat: answered from the ledger
    assert bolus_starts(tp.device) == 1


def test_persist_errors_are_reported_once() -> None:
    disk = Disk()
    tp = persisted_pair(disk)
    disk.failing = True
    tp.run_until(1_000)
    tp.request(ReadStatus())
    error = tp.device.pop_persist_error()
    assert error is not None
    assert "File too large" in error
    assert tp.device.pop_persist_error() is None


@pytest.mark.hazard("C1")
@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["bolus", "stop", "wait"]), st.booleans()),
        min_size=1,
        max_size=12,
    )
)
def test_whatever_fails_the_stored_state_holds_every_acked_command(
    steps: list[tuple[str, bool]],
) -> None:
    disk = Disk()
    tp = persisted_pair(disk)
    acked_ids: list[int] = []
    for n, (what, fail) in enumerate(steps, start=100):
        disk.failing = fail
        if what == "wait":
            tp.run_until(tp.clock.now_ms() + 70_000)
            continue
        message = (
            StopTherapy(command_id=n)
            if what == "stop"
            else ClinicianBolus(command_id=n, dose_nl=1_000, duration_s=60)
        )
        result = tp.request(message)
        if isinstance(result.reply, Ack):
            acked_ids.append(n)
        else:
            assert isinstance(result.reply, Nak)
    back = disk.restart()
    assert set(acked_ids) <= set(back.ledger.applied_ids())
    # Never applied twice, and nothing applied that was refused.
    stored_boluses = bolus_starts(back)
    assert stored_boluses <= sum(1 for i in acked_ids if steps[i - 100][0] == "bolus")
    assert set(back.ledger.applied_ids()) <= set(acked_ids)


def test_a_state_with_a_bolus_older_than_a_day_in_its_window_resumes() -> None:
    """Found in review: a read forgets boluses older than 24 h; a resumed device must not
    mistake that for an altered record."""
    disk = Disk()
    tp = persisted_pair(disk)
    acked(tp, ClinicianBolus(command_id=70, dose_nl=1_000, duration_s=60))
    tp.device.pump.advance_to(2 * 86_400_000)  # no read since: the bolus is still listed
    blob = tp.device.snapshot()
    again = PumpDevice.restore(blob, KEYS, random.Random(9).randbytes)
    assert again.ledger.applied_ids() == (70,)

"""CommandLedger: the exactly-once memory of applied command ids (C1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.command_ledger import CommandLedger, fingerprint
from protocol.device_state import TherapyState
from protocol.messages import Ack, Opcode
from protocol.refusal import RefusalCode


def ack(command_id: int, value: int = 0) -> Ack:
    return Ack(
        command_id=command_id,
        request=Opcode.ALARM_TEST,
        state=TherapyState.CONTINUOUS,
        reservoir_nl=1_000,
        value=value,
    )


@pytest.mark.hazard("C1")
def test_repeat_returns_the_original_ack_and_conflict_is_refused() -> None:
    ledger = CommandLedger()
    print_a = fingerprint(Opcode.ALARM_TEST, b"\x05\x00\x00\x00")
    print_b = fingerprint(Opcode.STOP_THERAPY, b"\x05\x00\x00\x00")
    assert print_a != print_b
    assert ledger.lookup(5, print_a) is None
    ledger.record(5, print_a, ack(5, value=42))
    assert ledger.lookup(5, print_a) == ack(5, value=42)
    assert ledger.lookup(5, print_b) is RefusalCode.COMMAND_ID_CONFLICT
    assert ledger.lookup(6, print_a) is None
    assert ledger.applied_ids() == (5,)
    assert len(ledger) == 1


def test_capacity_drops_the_oldest() -> None:
    ledger = CommandLedger(capacity=3)
    for command_id in range(1, 6):
        ledger.record(command_id, b"p", ack(command_id))
    assert ledger.applied_ids() == (3, 4, 5)
    assert ledger.lookup(1, b"p") is None
    with pytest.raises(ValueError, match="capacity"):
        CommandLedger(capacity=0)


@given(st.lists(st.integers(1, 20), max_size=60), st.integers(1, 10))
def test_ledger_keeps_the_most_recent_distinct_ids(ids: list[int], capacity: int) -> None:
    ledger = CommandLedger(capacity)
    order: list[int] = []
    for command_id in ids:
        ledger.record(command_id, b"p", ack(command_id))
        if command_id in order:
            order.remove(command_id)
        order.append(command_id)
    assert ledger.applied_ids() == tuple(order[-capacity:])
    for command_id in order[-capacity:]:
        assert ledger.lookup(command_id, b"p") == ack(command_id)

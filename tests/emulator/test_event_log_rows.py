"""The event log keeps rows and builds LogEntry values for readers
(emulator/firmware/event_log.py; docs/pump-model.md, "Event log values"): a value is
checked when it is written, as building the LogEntry checked it, and a reader, a snapshot
and a restore see exactly the entries written."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emulator.firmware.event_log import EventLog
from protocol.device_state import EventKind, LogEntry
from protocol.units import U16_MAX, U64_MAX

values = st.integers(0, U64_MAX)
kinds = st.sampled_from(list(EventKind))


@given(
    st.lists(st.tuples(values, kinds, st.integers(0, U16_MAX), values, values), max_size=40),
    st.integers(1, 12),
)
def test_readers_see_the_entries_written(
    writes: list[tuple[int, EventKind, int, int, int]], capacity: int
) -> None:
    log = EventLog(capacity)
    written = [
        LogEntry(log.append(t, kind, detail, a, b), t, kind, detail, a, b)
        for t, kind, detail, a, b in writes
    ]
    held = log.entries()
    assert all(isinstance(e, LogEntry) for e in held)
    assert list(held) == [e for e in written if e in held]  # the newest kept, in order
    assert len(held) == len(log) <= capacity
    assert log.entries(since_seq=len(writes)) == tuple(e for e in held if e.seq >= len(writes))
    again = EventLog.from_json(log.to_json())
    assert again.entries() == held
    assert again.to_json() == log.to_json()


@pytest.mark.parametrize(
    ("field", "args"),
    [
        ("time_ms", (-1, EventKind.POWER_ON, 0, 0, 0)),
        ("detail", (0, EventKind.POWER_ON, U16_MAX + 1, 0, 0)),
        ("value_a", (0, EventKind.POWER_ON, 0, U64_MAX + 1, 0)),
        ("value_b", (0, EventKind.POWER_ON, 0, 0, -5)),
    ],
    ids=["time-negative", "detail-too-big", "value-a-too-big", "value-b-negative"],
)
def test_a_value_out_of_range_is_refused_when_written(
    field: str, args: tuple[int, EventKind, int, int, int]
) -> None:
    log = EventLog(8)
    with pytest.raises(ValueError, match=field):
        log.append(*args)
    assert len(log) == 0
    assert log.next_seq == 1  # nothing half-written


def test_an_int_subclass_is_kept_as_given() -> None:
    # As a LogEntry held it: the slow check accepts an IntEnum detail, and the entry read
    # back carries it.
    log = EventLog(8)
    log.append(5, EventKind.ALARM_RAISED, EventKind.POWER_ON, 1, 2)
    (entry,) = log.entries()
    assert entry == LogEntry(1, 5, EventKind.ALARM_RAISED, int(EventKind.POWER_ON), 1, 2)

"""What a served pump publishes to subscribers: frames, log, sessions, alarms with tones,
state, faults, time, conformance and status (docs/serve.md, "subscribe"). Manual clocks,
no threads: the server is never started, its operations are called directly."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.faults import CatheterOcclusion, MemoryCorruption
from emulator.pump import Pump
from hil.events import EVENT_TYPES, EventHub, Subscription
from hil.links import memory_pair
from hil.pump_events import STATUS_EVERY_MS, TONES, PumpEvents
from hil.serve import PumpServer
from protocol.codec import encode
from protocol.device_state import AlarmKind, AlarmSeverity, EventKind, LogEntry, Role
from protocol.keys import generate_keys
from protocol.messages import OpenSession

KEYS_SEED = bytes(range(64))
HOUR_MS = 3_600_000


def silent(_line: str) -> None:
    """A log that drops lines: these tests read events."""


@pytest.fixture
def server() -> PumpServer:
    device = PumpDevice(
        Pump("peristaltic-20"), generate_keys("PE-000009", KEYS_SEED), secrets.token_bytes
    )
    pump_end, _programmer_end = memory_pair()
    return PumpServer(device, pump_end, ManualClock(), log=silent)


def drain(subscription: Subscription) -> list[dict[str, Any]]:
    out = []
    while (event := subscription.get(0)) is not None:
        out.append(event)
    return out


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


def test_a_new_status_subscriber_is_sent_the_status_first(server: PumpServer) -> None:
    sub = server.subscribe(["status"], 64)
    (status,) = drain(sub)
    assert status["event"] == "status"
    assert status["seq"] == 1
    assert status["state"] == "STOPPED"
    assert status["serial"] == "PE-000009"
    assert status["clock"] == "manual"
    assert status["session"] == {"state": "IDLE", "role": None}
    assert status["sounding"] is None
    reservoir = status["compare"][0]
    assert reservoir["quantity"] == "reservoir"
    assert reservoir["firmware"] == reservoir["plant"] == status["plant"]["reservoir_nl"]


def test_a_fault_then_time_publish_fault_log_alarm_time_state_and_status(
    server: PumpServer,
) -> None:
    sub = server.subscribe(EVENT_TYPES, 256)
    drain(sub)  # the first status
    server.inject(MemoryCorruption(0))
    server.advance(HOUR_MS)
    events = drain(sub)
    (fault,) = of(events, "fault")
    assert fault["fault"] == "MemoryCorruption"
    assert fault["applied"] == {"bit": 0}
    assert [e["entry"]["kind"] for e in of(events, "log")] == ["MEMORY_ERROR", "ALARM_RAISED"]
    assert of(events, "log")[1]["text"] == "alarm raised: MEMORY_ERROR (critical)"
    (alarm,) = of(events, "alarm")
    assert alarm["change"] == "raised"
    assert alarm["alarm"] == "MEMORY_ERROR"
    assert alarm["severity"] == "CRITICAL"
    assert alarm["tone"] == "3 s two-tone"
    (moved,) = of(events, "time")
    assert moved["advanced_ms"] == HOUR_MS
    assert moved["now"] == "T+0d01:00:00.000"  # the internal timeline, kept for clients
    # Beside it, the instant as a person reads it; the clock was never set: 1970.
    assert (moved["pump_clock_ms"], moved["pump_clock"], moved["elapsed"]) == (
        HOUR_MS,
        "1970-01-01T01:00:00",
        "+0d 01:00",
    )
    (state,) = of(events, "state")
    assert (state["from"], state["to"]) == ("STOPPED", "SUSPENDED_BY_ALARM")
    status = of(events, "status")[-1]
    assert status["sounding"] == "3 s two-tone"
    assert status["pump_clock_ms"] == status["now_ms"]  # clock never set: no offset
    assert status["pump_clock"] == "1970-01-01T01:00:00"
    assert status["elapsed"] == "+0d 01:00"
    assert status["alarms"][0]["kind"] == "MEMORY_ERROR"
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(2, 2 + len(events)))


def test_status_is_published_only_on_change(server: PumpServer) -> None:
    sub = server.subscribe(["status"], 64)
    drain(sub)
    server.inject(CatheterOcclusion(0))  # the plant changes: the truth rows show it
    (status,) = drain(sub)
    catheter = next(r for r in status["compare"] if r["quantity"] == "catheter")
    assert catheter["plant"] == "OCCLUDED"
    assert catheter["firmware"] is None  # the firmware cannot sense it (H13)
    server.inject(CatheterOcclusion(0))  # the same again: nothing shown changed
    assert drain(sub) == []


def test_status_due_paces_the_serve_loops_look_by_link_time() -> None:
    events = PumpEvents(EventHub())
    assert not events.status_due(0)  # nobody wants status: never due
    events.hub.subscribe(["state"], 16)
    assert events.status_due(0)
    assert not events.status_due(STATUS_EVERY_MS - 1)
    assert events.status_due(STATUS_EVERY_MS)


def test_frames_are_framed_and_decoded_across_chunks_with_noise_counted() -> None:
    events = PumpEvents(EventHub())
    sub = events.hub.subscribe(["frame", "noise"], 64)
    frame = encode(OpenSession(Role.CLINICIAN, bytes(16)), seq=1)
    stream = b"\x00\x01\x02" + frame
    events.chunk("rx", stream[:9], 100, 7)
    events.chunk("rx", stream[9:], 100, 8)
    noise, decoded = drain(sub)
    assert noise == {
        "event": "noise",
        "seq": 1,
        "direction": "rx",
        "now_ms": 100,
        "link_ms": 8,
        "offset": 0,
        "length": 3,
    }
    assert decoded["event"] == "frame"
    assert decoded["direction"] == "rx"
    assert decoded["offset"] == 3
    assert decoded["header"]["opcode"] == "OPEN_SESSION"
    assert decoded["sealed"] is False
    assert decoded["message"]["role"] == "CLINICIAN"
    assert decoded["hex"] == frame.hex()


def test_nobody_subscribed_to_frames_means_nothing_is_framed() -> None:
    events = PumpEvents(EventHub())
    sub = events.hub.subscribe(["log"], 16)
    events.chunk("tx", encode(OpenSession(Role.PATIENT, bytes(16)), seq=1), 0, 0)
    assert drain(sub) == []


@pytest.mark.parametrize(
    ("kind", "change"),
    [
        pytest.param(EventKind.SESSION_OPENED, "opened", id="opened"),
        pytest.param(EventKind.SESSION_CLOSED, "closed", id="closed"),
    ],
)
def test_session_entries_become_session_events_with_the_role(kind: EventKind, change: str) -> None:
    events = PumpEvents(EventHub())
    sub = events.hub.subscribe(["session"], 16)
    events.log_entries([LogEntry(4, 10, kind, Role.PATIENT, 0, 0)], [10])
    assert drain(sub) == [
        {"event": "session", "seq": 1, "now_ms": 10, "change": change, "role": "PATIENT"}
    ]


def test_every_alarm_kind_has_the_tone_of_its_severity() -> None:
    events = PumpEvents(EventHub())
    sub = events.hub.subscribe(["alarm"], 64)
    entries = [
        LogEntry(i, 0, EventKind.ALARM_RAISED, kind, 0, 0) for i, kind in enumerate(AlarmKind)
    ]
    events.log_entries(entries, [0] * len(entries))
    published = drain(sub)
    assert [e["alarm"] for e in published] == [k.name for k in AlarmKind]
    for event, kind in zip(published, AlarmKind, strict=True):
        assert event["tone"] == TONES[kind.severity]
    assert TONES[AlarmSeverity.CRITICAL] != TONES[AlarmSeverity.NON_CRITICAL]


def test_conformance_violations_are_published_once_each() -> None:
    found: list[dict[str, Any]] = [{"rule": "R1", "severity": "critical"}]
    events = PumpEvents(EventHub())
    sub = events.hub.subscribe(["conformance"], 16)

    def since(index: int) -> list[dict[str, Any]]:
        return found[index:]

    events.conformance(since)
    found.append({"rule": "R2", "severity": "minor"})
    events.conformance(since)
    events.conformance(since)
    assert [e["rule"] for e in drain(sub)] == ["R1", "R2"]


def test_after_a_chunk_status_is_looked_at_only_if_the_chunk_changed_something() -> None:
    device = PumpDevice(
        Pump("peristaltic-20"), generate_keys("PE-000009", KEYS_SEED), secrets.token_bytes
    )
    events = PumpEvents(EventHub())
    sub = events.hub.subscribe(["status"], 16)
    events.status_after_chunk(device, "manual", 0)
    assert [e["event"] for e in drain(sub)] == ["status"]
    device.pump.inject(CatheterOcclusion(0))  # the plant changed, no chunk changed anything
    events.status_after_chunk(device, "manual", 1)
    assert drain(sub) == []
    events.status_changed(device, "manual", 2)  # the periodic look finds it
    (status,) = drain(sub)
    assert status["plant"]["catheter"] == "OCCLUDED"

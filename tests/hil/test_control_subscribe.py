"""The control API's subscribe op: the request, its answer, auth, several subscribers over
real sockets, drops, unsubscribing by closing, and the end when serve stops."""

from __future__ import annotations

import json
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.pump import Pump
from hil.control import ControlClient, ControlError, ControlServer, EventStream
from hil.events import EVENT_TYPES, MIN_QUEUE
from hil.links import memory_pair
from hil.serve import PumpServer
from protocol.keys import generate_keys

KEYS = generate_keys("PE-000011", bytes(range(64)))
DEADLINE_S = 10.0


def silent(_line: str) -> None:
    """A log that drops lines."""


def make_server() -> PumpServer:
    device = PumpDevice(Pump("peristaltic-20"), KEYS, secrets.token_bytes)
    pump_end, _programmer_end = memory_pair()
    return PumpServer(device, pump_end, ManualClock(), log=silent)


# -- without threads: the request and its answer ------------------------------------------


def test_subscribe_answers_ok_with_the_format_events_and_queue(tmp_path: Path) -> None:
    control = ControlServer(make_server(), f"unix:{tmp_path}/c.sock")
    try:
        answer, sub = control.subscribe({"op": "subscribe", "events": ["status", "alarm"]})
        assert answer == {
            "ok": True,
            "format": "pumpemu-events/1",
            "events": ["alarm", "status"],
            "queue": 1024,
        }
        assert sub is not None
        first = sub.get(0)
        assert first is not None
        assert first["event"] == "status"
        sub.cancel()
    finally:
        control.stop()


@pytest.mark.parametrize(
    "request_fields",
    [
        pytest.param({"events": ["status", "weather"]}, id="unknown-type"),
        pytest.param({"events": []}, id="no-types"),
        pytest.param({"queue": 0}, id="tiny-queue"),
        pytest.param({"extra": 1}, id="unknown-field"),
    ],
)
def test_a_malformed_subscribe_is_refused_and_subscribes_nothing(
    tmp_path: Path, request_fields: dict[str, Any]
) -> None:
    server = make_server()
    control = ControlServer(server, f"unix:{tmp_path}/c.sock")
    try:
        answer, sub = control.subscribe({"op": "subscribe", **request_fields})
        assert answer["ok"] is False
        assert answer["error"]
        assert sub is None
        assert server.events.subscribers == 0
    finally:
        control.stop()


def test_subscribe_cannot_stream_through_handle(tmp_path: Path) -> None:
    control = ControlServer(make_server(), f"unix:{tmp_path}/c.sock")
    try:
        answer = control.handle({"op": "subscribe"})
        assert answer["ok"] is False
        assert "connection of its own" in answer["error"]
        assert "subscribe" in control.handle({"op": "nope"})["error"]  # listed as known
    finally:
        control.stop()


def test_subscribe_through_handle_needs_the_token_first(tmp_path: Path) -> None:
    control = ControlServer(make_server(), f"unix:{tmp_path}/c.sock", token="t" * 64)
    try:
        assert "needs a token" in control.handle({"op": "subscribe"})["error"]
    finally:
        control.stop()


# -- over sockets (threads: the e2e layer) -------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[PumpServer, ControlServer]]:
    server = make_server().start()
    control = ControlServer(server, f"unix:{tmp_path}/c.sock").start()
    try:
        yield server, control
    finally:
        control.stop()
        server.stop()


def next_of(stream: EventStream, kind: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        event = stream.next(0.5)
        if event is not None and event["event"] == kind:
            return event
    raise AssertionError(f"no {kind} event within {DEADLINE_S} s")


def wait_until(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.mark.e2e
def test_several_subscribers_each_see_a_fault(served: tuple[PumpServer, ControlServer]) -> None:
    server, control = served
    with (
        EventStream(control.address, ["fault"]) as first,
        EventStream(control.address, ["fault", "status"]) as second,
    ):
        assert second.answer["events"] == ["fault", "status"]
        with ControlClient(control.address) as client:
            client.fault("stall")
        assert next_of(first, "fault")["fault"] == "MotorStall"
        assert next_of(second, "fault")["fault"] == "MotorStall"
        assert server.events.subscribers == 2


@pytest.mark.e2e
def test_closing_the_connection_unsubscribes(served: tuple[PumpServer, ControlServer]) -> None:
    server, control = served
    stream = EventStream(control.address, ["time"])
    wait_until(lambda: server.events.subscribers == 1, "not subscribed")
    stream.close()
    wait_until(lambda: server.events.subscribers == 0, "still subscribed after closing")


@pytest.mark.e2e
def test_a_slow_subscriber_is_told_what_it_lost_and_the_pump_never_waits(
    served: tuple[PumpServer, ControlServer], tmp_path: Path
) -> None:
    server, _control = served
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(DEADLINE_S)
    sock.connect(str(tmp_path / "c.sock"))
    with sock, sock.makefile("rb") as reader:
        request = {"op": "subscribe", "events": ["fault"], "queue": MIN_QUEUE}
        sock.sendall(json.dumps(request).encode() + b"\n")
        assert json.loads(reader.readline())["ok"] is True
        wait_until(lambda: server.events.subscribers == 1, "not subscribed")
        # Far more than the socket buffers and the queue hold, while nobody reads.
        padding = "x" * 4096
        for n in range(2_000):  # returns at once each time: the pump's side never blocks
            server.events.publish("fault", {"n": n, "padding": padding})
        seen: list[int] = []
        dropped = 0
        while len(seen) < 2_000:
            event = json.loads(reader.readline())
            if event["event"] == "dropped":
                dropped += event["count"]
                seen.extend(range(event["first_seq"], event["last_seq"] + 1))
            else:
                assert event["n"] == event["seq"] - 1
                seen.append(event["seq"])
        assert dropped > 0
        assert seen == list(range(1, 2_001))


@pytest.mark.e2e
def test_a_tcp_subscribe_needs_the_token(tmp_path: Path) -> None:
    server = make_server().start()
    control = ControlServer(server, "127.0.0.1:0", log=silent).start()
    try:
        with pytest.raises(ControlError, match="needs a token"):
            EventStream(control.address, ["status"])
        with pytest.raises(ControlError, match="wrong token"):
            EventStream(control.address, ["status"], token="0" * 64)
        assert server.events.subscribers == 0
        with EventStream(control.address, ["status"], token=control.token) as stream:
            assert next_of(stream, "status")["serial"] == "PE-000011"
    finally:
        control.stop()
        server.stop()


@pytest.mark.e2e
def test_stopping_serve_ends_every_stream_with_an_end_event(tmp_path: Path) -> None:
    server = make_server().start()
    control = ControlServer(server, f"unix:{tmp_path}/c.sock").start()
    try:
        streams = [EventStream(control.address, list(EVENT_TYPES)) for _ in range(2)]
        wait_until(lambda: server.events.subscribers == 2, "not subscribed")
        control.stop()
        for stream in streams:
            end = next_of(stream, "end")
            assert end["reason"] == "serve is stopping"
            with pytest.raises(ControlError, match=r"ended|closed"):
                stream.next(DEADLINE_S)
            stream.close()
    finally:
        control.stop()
        server.stop()

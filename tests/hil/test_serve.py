"""PumpServer in-process: a real programmer over in-memory and TCP links, manual clocks.

No sleeping: the pump's time is a ManualClock moved by the test; the only waits are on
events with bounded timeouts while the server thread answers.
"""

from __future__ import annotations

import random
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.faults import BatteryDrain, MotorStall, Reset
from emulator.plant import MotorState
from emulator.pump import Pump
from hil.capture import CaptureWriter, read_capture
from hil.clock import ScaledClock
from hil.errors import UsageError
from hil.links import LinkClosedError, LinkOpenError, MemoryLink, SerialLink, memory_pair
from hil.programmer.client import Programmer
from hil.programmer.core import Outcome
from hil.serve import (
    MAX_ADVANCE_MS,
    ClockControlError,
    PumpServer,
    StateNotStoredError,
    TcpListenerLink,
    WireModel,
    describe_event,
    format_pump_time,
    internal_times,
    parse_tcp_address,
)
from protocol import codec
from protocol.device_state import EventKind, LogEntry, Role, TherapyState
from protocol.keys import PumpKeys, generate_keys
from protocol.messages import (
    Ack,
    DeviceInfo,
    EventLogPage,
    Nak,
    PrescriptionStaged,
    ReadStatus,
    Status,
)
from protocol.prescription import (
    FlexStep,
    InfusionMode,
    PatientBolusLimits,
    Prescription,
    Repeat,
)
from protocol.refusal import RefusalCode

KEYS = generate_keys("PE-000001", bytes(range(64)))
OTHER_PUMP = generate_keys("PE-000002", bytes(range(64, 128)))
HOUR_MS = 3_600_000
STAMP = r"\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})? \(\+\d+d \d\d:\d\d(:\d\d(\.\d{3})?)?\)\] "
"""The one display style of an instant (docs/quantities.md) as a log line's stamp."""

RX = Prescription(
    drug_name="morphine",
    concentration_ug_per_ml=1_000,
    mode=InfusionMode.CONTINUOUS,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 500_000),),
    patient_bolus=PatientBolusLimits(
        dose_nl=20_000, duration_s=600, lockout_s=3_600, max_per_24h=4
    ),
    low_reservoir_threshold_nl=2_000_000,
)


class Lines:
    """A server log that a test can wait on (bounded) for a line containing some text."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()

    def __call__(self, line: str) -> None:
        with self._cond:
            self.lines.append(line)
            self._cond.notify_all()

    def wait_for(self, text: str, timeout_s: float = 30.0) -> str:
        with self._cond:
            found = self._cond.wait_for(lambda: any(text in line for line in self.lines), timeout_s)
        assert found, f"no log line with {text!r} in {self.lines}"
        return next(line for line in self.lines if text in line)

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)


def make_device(keys: PumpKeys = KEYS) -> PumpDevice:
    return PumpDevice(Pump("peristaltic-20"), keys, secrets.token_bytes)


def programmer(link: MemoryLink | SerialLink, role: Role = Role.CLINICIAN) -> Programmer:
    return Programmer(link, KEYS.serial, role, KEYS.key_for(role))


@pytest.fixture
def served() -> Iterator[tuple[PumpServer, MemoryLink, Lines]]:
    lines = Lines()
    pump_end, programmer_end = memory_pair()
    server = PumpServer(make_device(), pump_end, ManualClock(), log=lines)
    with server:
        yield server, programmer_end, lines
    assert server.error is None


# -- a whole visit ----------------------------------------------------------------------------


@pytest.mark.e2e
def test_full_visit_over_a_memory_link(served: tuple[PumpServer, MemoryLink, Lines]) -> None:
    server, link, lines = served
    with programmer(link) as clinician:
        info = clinician.info()
        assert isinstance(info.reply, DeviceInfo)
        assert info.reply.serial == KEYS.serial
        assert isinstance(clinician.status().reply, Status)
        staged = clinician.stage(RX)
        assert isinstance(staged.reply, PrescriptionStaged)
        # Basal plus every allowed patient bolus; mass = volume x concentration (protocol.md 7).
        assert staged.reply.daily_volume_nl == 500_000 + 4 * 20_000
        assert staged.reply.daily_mass_pg == staged.reply.daily_volume_nl * 1_000
        committed = clinician.commit(staged.reply.digest)
        assert committed.outcome is Outcome.APPLIED
        assert isinstance(committed.reply, Ack)
        assert committed.reply.state is TherapyState.CONTINUOUS
    # The manual clock did not move by itself while the visit took real time.
    assert server.now_ms() == 0
    assert server.advance(HOUR_MS) == HOUR_MS
    with programmer(link, Role.PATIENT) as patient:
        granted = patient.patient_bolus()
        assert granted.outcome is Outcome.APPLIED
    server.advance(15 * 60_000)  # the 10 min bolus is over; the 1 h lockout is not
    with programmer(link, Role.PATIENT) as patient:
        refused = patient.patient_bolus()
        assert refused.outcome is Outcome.REFUSED
        assert refused.refusal is RefusalCode.LOCKOUT_ACTIVE
    with programmer(link) as clinician:
        begun = clinician.refill_begin()
        assert begun.outcome is Outcome.APPLIED
        assert isinstance(begun.reply, Ack)
        residual = begun.reply.value
        assert 0 < residual < 20_000_000
        done = clinician.refill_complete(residual, 18_000_000, 1_000)
        assert done.outcome is Outcome.APPLIED
        page = clinician.event_log()
        assert isinstance(page.reply, EventLogPage)
        kinds = [entry.kind for entry in page.reply.entries]
    for kind in (
        EventKind.PRESCRIPTION_COMMITTED,
        EventKind.PATIENT_BOLUS_GRANTED,
        EventKind.PATIENT_BOLUS_REFUSED,
        EventKind.REFILL_BEGUN,
        EventKind.REFILL_COMPLETED,
    ):
        assert kind in kinds
    lines.wait_for("session closed (clinician)")
    assert "session opened (patient)" in lines.text()
    stats = server.stats()
    assert stats.sessions_opened == 4
    assert stats.rx_bytes > 0
    assert stats.tx_bytes > 0


@pytest.mark.e2e
def test_the_server_log_stays_on_its_own_timeline_after_set_clock(
    served: tuple[PumpServer, MemoryLink, Lines],
) -> None:
    """The pump stamps its log with the clock the programmer set (2026); serve's log lines
    show that clock beside the emulator's elapsed time, which a SET_CLOCK never moves."""
    server, link, lines = served
    with programmer(link) as clinician:
        assert clinician.set_clock(1_767_225_600_000).outcome is Outcome.APPLIED
        staged = clinician.stage(RX)
        assert isinstance(staged.reply, PrescriptionStaged)
        assert clinician.commit(staged.reply.digest).outcome is Outcome.APPLIED
    lines.wait_for("session closed (clinician)")
    server.inject(MotorStall())
    server.advance(HOUR_MS)
    stall = lines.wait_for("motor stall detected")
    # The first stroke after the stall: on the clock the programmer set, minutes elapsed.
    assert re.match(r"\[2026-01-01T00:\d\d:\d\d(\.\d{3})? \(\+0d 00:\d\d[:.\d]*\)\] ", stall), stall
    assert server.log_entries()[-1].time_ms > 1_767_225_600_000  # the pump's own stamp
    stamped = [line for line in lines.lines if line.startswith("[")]
    assert stamped
    assert all(re.match(STAMP, line) for line in stamped), stamped


@pytest.mark.e2e
def test_a_programmer_with_another_pumps_key_is_refused_and_logged(
    served: tuple[PumpServer, MemoryLink, Lines],
) -> None:
    server, link, lines = served
    intruder = Programmer(link, KEYS.serial, Role.CLINICIAN, OTHER_PUMP.clinician)
    result = intruder.status()
    assert result.refusal is RefusalCode.AUTHENTICATION_FAILED
    assert result.outcome in (Outcome.REFUSED, Outcome.NOT_APPLIED)  # never answered/applied
    assert "security event: AUTHENTICATION_FAILED" in lines.wait_for("security event")
    assert server.stats().security_events == 1
    assert server.stats().sessions_opened == 0
    kinds = [entry.kind for entry in server.log_entries()]
    assert EventKind.SECURITY_EVENT in kinds


# -- time and faults --------------------------------------------------------------------------


@pytest.mark.e2e
def test_the_largest_advance_returns_and_a_programmer_is_served_meanwhile(
    served: tuple[PumpServer, MemoryLink, Lines],
) -> None:
    """The control API's largest advance (100 years) moves in week slices, releasing the
    device lock in between: a programmer reading status meanwhile is answered with pump
    times inside the advance, and the advance ends exactly where it should."""
    server, link, _ = served
    start = server.now_ms()
    ended: list[int] = []
    with programmer(link) as clinician:
        assert isinstance(clinician.status().reply, Status)  # the session is open
        advancing = threading.Thread(target=lambda: ended.append(server.advance(MAX_ADVANCE_MS)))
        advancing.start()
        during: list[int] = []
        while advancing.is_alive():
            reply = clinician.status().reply
            assert isinstance(reply, Status)
            if advancing.is_alive():
                during.append(reply.pump_time_ms)
        advancing.join(60)
    assert ended == [start + MAX_ADVANCE_MS]
    assert any(0 < t - start < MAX_ADVANCE_MS for t in during), during[:5]
    with pytest.raises(ValueError, match="at most 36500 days"):
        server.advance(MAX_ADVANCE_MS + 1)


@pytest.mark.e2e
def test_manual_time_and_a_fault_show_truth_beside_belief(
    served: tuple[PumpServer, MemoryLink, Lines],
) -> None:
    server, link, lines = served
    with programmer(link) as clinician:
        staged = clinician.stage(RX)
        assert isinstance(staged.reply, PrescriptionStaged)
        assert clinician.commit(staged.reply.digest).outcome is Outcome.APPLIED
    server.inject(MotorStall())
    view = server.view()
    assert view.truth.motor is MotorState.STALLED
    assert not view.status.motor_stall_detected  # the sensor notices at the next stroke
    server.advance(HOUR_MS)
    view = server.view()
    assert view.now_ms == HOUR_MS
    assert view.status.motor_stall_detected
    assert "motor stall detected" in lines.wait_for("motor stall")
    assert "(critical)" in lines.wait_for("alarm raised: MOTOR_STALL")
    assert server.stats().alarms_raised == 1


def test_advance_is_refused_on_a_real_time_clock() -> None:
    pump_end, _ = memory_pair()
    server = PumpServer(make_device(), pump_end, ScaledClock(60, source=lambda: 0), log=Lines())
    with pytest.raises(ClockControlError, match="manual clock"):
        server.advance(1_000)
    with pytest.raises(ValueError, match="forward"):
        PumpServer(make_device(), pump_end, ManualClock(), log=Lines()).advance(-1)


def test_the_clock_must_not_be_behind_the_pump() -> None:
    pump_end, _ = memory_pair()
    device = PumpDevice(Pump("peristaltic-20", start_ms=5_000), KEYS, secrets.token_bytes)
    with pytest.raises(ValueError, match="behind the pump"):
        PumpServer(device, pump_end, ManualClock(4_999), log=Lines())
    # A real-time clock a little ahead (it ran while things were set up) is caught up with.
    PumpServer(device, pump_end, ManualClock(5_001), log=Lines())


def test_real_time_clock_waits_are_derived_from_the_pump_timer() -> None:
    """The read timeout is the real time until the next pump deadline, capped by poll_s."""
    source_ns = [0]
    clock = ScaledClock(1000, source=lambda: source_ns[0])
    pump_end, _ = memory_pair()
    server = PumpServer(make_device(), pump_end, clock, log=Lines(), poll_s=10.0)
    # A deadline 5 s of pump time away at 1000x is 5 ms of real time.
    assert server._wait_s(5_000, None, 0) == pytest.approx(0.005)
    source_ns[0] = 4_000_000
    assert server._wait_s(5_000, None, 0) == pytest.approx(0.001)
    assert server._wait_s(None, None, 0) == 10.0
    manual = PumpServer(make_device(), pump_end, ManualClock(), log=Lines(), poll_s=0.5)
    assert manual._wait_s(5_000, None, 0) == 0.5  # a manual clock never reaches it by itself


def test_link_timers_are_waited_for_in_real_milliseconds_whatever_the_clock() -> None:
    """Link time is real time: a link deadline 30 ms away is a 30 ms wait under a manual
    clock and under 1000x alike (docs/serve.md, two timelines)."""
    pump_end, _ = memory_pair()
    for clock in (ManualClock(), ScaledClock(1000, source=lambda: 0)):
        server = PumpServer(make_device(), pump_end, clock, log=Lines(), poll_s=10.0)
        assert server._wait_s(None, 1_030, 1_000) == pytest.approx(0.030)
        assert server._wait_s(None, 900, 1_000) == 0.0  # overdue: no wait at all


# -- capture ----------------------------------------------------------------------------------


@pytest.mark.e2e
def test_capture_records_every_chunk_both_ways_with_pump_time(tmp_path: Path) -> None:
    path = tmp_path / "serve.jsonl"
    pump_end, programmer_end = memory_pair()
    clock = ManualClock()
    clock.advance(0)
    with CaptureWriter(path, "serve") as capture:
        server = PumpServer(make_device(), pump_end, clock, capture=capture, log=Lines())
        with server:
            server.advance(2_000)
            with programmer(programmer_end) as clinician:
                assert clinician.status().outcome is Outcome.ANSWERED
        capture.close(sim_ms=server.now_ms())
    records = list(read_capture(path))
    frames = [r for r in records if r.kind == "frame"]
    rx = [r for r in frames if r.direction == "rx"]
    tx = [r for r in frames if r.direction == "tx"]
    # OPEN_SESSION, AUTHENTICATE, READ_STATUS, CLOSE and their replies.
    assert len(rx) >= 3
    assert len(tx) >= 3
    assert all(r.sim_ms == 2_000 for r in frames)
    assert rx[0].fields["header"]["opcode"] == "OPEN_SESSION"
    notes = [r.text for r in records if r.kind == "note"]
    moved = "time advanced 2000 ms: 1970-01-01T00:00:00 (+0d 00:00) -> 1970-01-01T00:00:02"
    assert f"{moved} (+0d 00:00:02)" in notes
    assert "session opened (clinician)" in notes


# -- links that vanish ------------------------------------------------------------------------


class FlakyLink:
    """A memory link end that can vanish, and reopens only after ``failures`` tries."""

    def __init__(self, end: MemoryLink, failures: int) -> None:
        self._end = end
        self._failures = failures
        self._lost = threading.Event()
        self.reopen_calls = 0

    @property
    def name(self) -> str:
        return "flaky://port"

    def lose(self) -> None:
        self._lost.set()

    def read(self, timeout_s: float) -> bytes:
        if self._lost.is_set():
            raise LinkClosedError("flaky://port: link lost: device unplugged")
        return self._end.read(timeout_s)

    def write(self, data: bytes) -> None:
        if self._lost.is_set():
            raise LinkClosedError("flaky://port: link lost while writing")
        self._end.write(data)

    def reopen(self) -> None:
        self.reopen_calls += 1
        if self.reopen_calls <= self._failures:
            raise LinkOpenError("cannot open 'flaky://port': no such device")
        self._lost.clear()

    def close(self) -> None:
        self._end.close()


@pytest.mark.e2e
def test_a_vanished_port_is_reopened_and_the_pump_state_kept() -> None:
    lines = Lines()
    pump_end, programmer_end = memory_pair()
    flaky = FlakyLink(pump_end, failures=2)
    server = PumpServer(
        make_device(), flaky, ManualClock(), log=lines, reopen_delays_s=(0.0, 0.001)
    )
    with server:
        with programmer(programmer_end) as clinician:
            staged = clinician.stage(RX)
            assert isinstance(staged.reply, PrescriptionStaged)
            committed = clinician.commit(staged.reply.digest)
            assert isinstance(committed.reply, Ack)
        flaky.lose()
        assert "reopening (pump state kept)" in lines.wait_for("link lost")
        assert "no such device" in lines.wait_for("still gone")
        lines.wait_for("link back after 3 attempt(s)")
        with programmer(programmer_end) as clinician:
            status = clinician.status()
        assert isinstance(status.reply, Status)
        assert status.reply.last_command_id == committed.reply.command_id
        assert status.reply.state is TherapyState.CONTINUOUS
        stats = server.stats()
        assert (stats.link_losses, stats.reconnects) == (1, 1)
    assert server.error is None


@pytest.mark.e2e
def test_a_link_that_cannot_reopen_ends_the_server_with_its_reason() -> None:
    lines = Lines()
    pump_end, programmer_end = memory_pair()
    server = PumpServer(make_device(), pump_end, ManualClock(), log=lines).start()
    programmer_end.close()
    assert server.wait(30.0)
    assert isinstance(server.error, LinkClosedError)
    assert "cannot be reopened" in lines.wait_for("stopping")
    server.stop()


# -- pacing -----------------------------------------------------------------------------------


def test_wire_model_serializes_received_bytes_back_to_back() -> None:
    wire = WireModel(115_200)
    assert wire.wire_ns(1) == 86_806  # 10 bits at 115200 baud, rounded up
    assert wire.rx_visible(10, 1_000) == 1_000 + wire.wire_ns(10)
    # A chunk that arrives while the wire is still busy starts when it is free.
    busy_until = 1_000 + wire.wire_ns(10)
    assert wire.rx_visible(5, 2_000) == busy_until + wire.wire_ns(5)
    # After a quiet spell the wire starts at the arrival.
    assert wire.rx_visible(1, 10_000_000) == 10_000_000 + wire.wire_ns(1)
    wire.reset()
    assert wire.rx_visible(1, 0) == wire.wire_ns(1)


def test_wire_model_writes_replies_in_slices_no_faster_than_the_wire() -> None:
    wire = WireModel(115_200)
    data = bytes(range(30))
    slices = wire.tx_schedule(data, 5_000)
    assert [len(piece) for _, piece in slices] == [11, 11, 8]  # about 1 ms of wire each
    assert b"".join(piece for _, piece in slices) == data
    assert [due for due, _ in slices] == [5_000 + wire.wire_ns(n) for n in (11, 22, 30)]
    # The next reply queues behind the first on the wire.
    (due, _), *_ = wire.tx_schedule(b"\x00", 6_000)
    assert due == 5_000 + wire.wire_ns(31)
    assert WireModel(300).tx_schedule(b"ab", 0) == [
        (WireModel(300).wire_ns(1), b"a"),
        (WireModel(300).wire_ns(2), b"b"),
    ]
    with pytest.raises(ValueError, match="baud"):
        WireModel(0)


@pytest.mark.e2e
def test_a_paced_round_trip_is_never_faster_than_the_wire() -> None:
    """A lower bound, not a speed figure: the reply cannot arrive before its bytes could
    have crossed a 9600-baud wire both ways (benchmarks/serial.py measures the ratio)."""
    baud = 9_600
    pump_end, programmer_end = memory_pair()
    counts = {"tx": 0, "rx": 0}

    def count(direction: str, data: bytes) -> None:
        counts[direction] += len(data)

    server = PumpServer(make_device(), pump_end, ManualClock(), baud=baud, log=Lines())
    with server:
        clinician = Programmer(
            programmer_end, KEYS.serial, Role.CLINICIAN, KEYS.clinician, on_traffic=count
        )
        assert clinician.status().outcome is Outcome.ANSWERED  # opens the session
        counts.update(tx=0, rx=0)
        started = time.perf_counter()
        assert clinician.status().outcome is Outcome.ANSWERED
        elapsed = time.perf_counter() - started
        sent, received = counts["tx"], counts["rx"]
        clinician.close()
    assert sent > 0
    assert received > 0
    floor_s = (sent + received) * 10 / baud
    assert elapsed >= floor_s


# -- TCP --------------------------------------------------------------------------------------


def test_parse_tcp_address_allows_loopback_only() -> None:
    assert parse_tcp_address("127.0.0.1:5555", what="--tcp") == ("127.0.0.1", 5555)
    assert parse_tcp_address("[::1]:0", what="--tcp") == ("::1", 0)
    assert parse_tcp_address("localhost:80", what="--tcp")[1] == 80
    with pytest.raises(UsageError, match="only loopback"):
        parse_tcp_address("0.0.0.0:5555", what="--tcp")
    with pytest.raises(UsageError, match="only loopback"):
        parse_tcp_address("192.0.2.7:5555", what="--tcp")
    assert parse_tcp_address("0.0.0.0:5555", what="--tcp", allow_remote=True) == ("0.0.0.0", 5555)
    for bad, why in (
        ("5555", "HOST:PORT"),
        ("127.0.0.1:x", "not a number"),
        ("127.0.0.1:70000", "out of range"),
    ):
        with pytest.raises(UsageError, match=why):
            parse_tcp_address(bad, what="--tcp")


@pytest.mark.e2e
def test_tcp_listener_serves_one_programmer_and_then_the_next() -> None:
    lines = Lines()
    listener = TcpListenerLink("127.0.0.1", 0, log=lines)
    host, port = listener.address
    assert listener.name == f"socket://{host}:{port}"
    with PumpServer(make_device(), listener, ManualClock(), log=lines):
        first = SerialLink(listener.name)
        with programmer(first) as clinician:
            staged = clinician.stage(RX)
            assert isinstance(staged.reply, PrescriptionStaged)
            committed = clinician.commit(staged.reply.digest)
            assert isinstance(committed.reply, Ack)
        first.close()
        lines.wait_for("programmer disconnected")
        second = SerialLink(listener.name)
        with programmer(second) as clinician:
            status = clinician.status()
        second.close()
        assert isinstance(status.reply, Status)
        assert status.reply.last_command_id == committed.reply.command_id
        assert len([line for line in lines.lines if "programmer connected" in line]) == 2


def connected(listener: TcpListenerLink) -> bool:
    """Read afresh each time (mypy would otherwise keep an earlier assert's narrowing)."""
    return listener.connected


def test_tcp_listener_sets_nodelay_and_drops_replies_with_nobody_connected() -> None:
    listener = TcpListenerLink("127.0.0.1", 0)
    try:
        listener.write(b"nobody")
        assert listener.dropped_bytes == 6
        client = socket.create_connection(listener.address, timeout=30)
        with client:
            assert listener.read(5.0) == b""  # accepts
            assert connected(listener)
            assert listener._client is not None
            nodelay = listener._client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            assert nodelay != 0
            client.sendall(b"abc")
            assert listener.read(5.0) == b"abc"
            listener.write(b"xyz")
            assert client.recv(3) == b"xyz"
        assert listener.read(5.0) == b""  # the peer closed: forgotten
        assert not connected(listener)
    finally:
        listener.close()
    with pytest.raises(LinkClosedError):
        listener.read(0)


def test_tcp_listener_reports_a_busy_port() -> None:
    first = TcpListenerLink("127.0.0.1", 0)
    try:
        with pytest.raises(LinkOpenError, match="cannot listen"):
            TcpListenerLink("127.0.0.1", first.address[1])
    finally:
        first.close()


# -- logging helpers --------------------------------------------------------------------------


def test_format_pump_time() -> None:
    assert format_pump_time(0) == "T+0d00:00:00.000"
    assert format_pump_time(30 * 86_400_000 + 3_723_004) == "T+30d01:02:03.004"


@pytest.mark.parametrize(
    ("entry", "text"),
    [
        (LogEntry(1, 0, EventKind.SESSION_OPENED, 2, 0, 0), "session opened (patient)"),
        (LogEntry(1, 0, EventKind.SESSION_CLOSED, 1, 0, 0), "session closed (clinician)"),
        (
            LogEntry(1, 0, EventKind.SECURITY_EVENT, 17, 2, 9),
            "security event: AUTHENTICATION_FAILED (request AUTHENTICATE, seq 9)",
        ),
        (
            LogEntry(1, 0, EventKind.ALARM_RAISED, 1, 0, 0),
            "alarm raised: LOW_RESERVOIR (non_critical)",
        ),
        (LogEntry(1, 0, EventKind.ALARM_CLEARED, 3, 0, 0), "alarm cleared: MOTOR_STALL"),
        (LogEntry(1, 0, EventKind.MOTOR_RECOVERED, 0, 7_000, 0), "motor recovered after 7 s"),
        (LogEntry(1, 0, EventKind.SESSION_OPENED, 9, 0, 0), "session opened (#9)"),
        (LogEntry(1, 0, EventKind.THERAPY_STARTED, 1, 1, 1), None),
        (
            LogEntry(1, 5, EventKind.ELECTIVE_REPLACEMENT, 0, 9, 5 + 90 * 86_400_000),
            "elective replacement indicator (battery 9%, end of service in 90 d 0 h)",
        ),
        (
            LogEntry(1, 0, EventKind.END_OF_SERVICE, 0, 0, 0),
            "end of service: the pump has stopped for good (battery 0%)",
        ),
    ],
)
def test_describe_event(entry: LogEntry, text: str | None) -> None:
    assert describe_event(entry) == text


def test_describe_event_reads_the_firmwares_eri_entry() -> None:
    """The ERI line shows the battery percent STATUS would show, from the pump's own entry,
    and the time left to end of service, whatever the pump clock is set to."""
    pump = Pump("peristaltic-20")
    assert pump.set_clock(1_767_225_600_000).ok
    p = pump.profile
    pump.inject(BatteryDrain(pump.plant_truth().battery_nah - p.battery_eri_threshold_nah))
    pump.advance(p.battery_check_interval_s)
    entry = next(e for e in pump.log() if e.kind is EventKind.ELECTIVE_REPLACEMENT)
    status = pump.status()
    percent = status.battery_nah * 100 // p.battery_capacity_nah
    assert status.end_of_service_ms is not None
    assert entry.value_b == status.end_of_service_ms  # both on the pump clock
    assert describe_event(entry) == (
        f"elective replacement indicator (battery {percent}%, "
        f"end of service in {p.days_eri_to_eos} d 0 h)"
    )


def test_internal_times_undo_the_clock_changes() -> None:
    """Log stamps are on the pump clock as it read when written; the serve log and the
    capture run on the internal timeline, recovered across every CLOCK_SET."""
    pump = Pump("peristaltic-20")
    pump.advance(10)
    pump.record_event(EventKind.SESSION_OPENED, 1)
    assert pump.set_clock(1_767_225_600_000).ok
    pump.advance(5)
    pump.record_event(EventKind.SESSION_CLOSED, 1)
    assert pump.set_clock(1_000).ok  # set back
    pump.advance(1)
    pump.record_event(EventKind.SESSION_OPENED, 1)
    status = pump.status()
    entries = pump.log()
    assert [e.time_ms for e in entries] == [
        0, 10_000, 10_000, 1_767_225_605_000, 1_767_225_605_000, 2_000
    ]  # fmt: skip
    offset = status.local_time_ms - status.time_ms
    assert internal_times(entries, offset) == [0, 10_000, 10_000, 15_000, 15_000, 16_000]
    assert internal_times(entries[3:], offset) == [15_000, 15_000, 16_000]


@pytest.mark.e2e
def test_refused_patient_bolus_is_a_nak_value(served: tuple[PumpServer, MemoryLink, Lines]) -> None:
    """A patient bolus without a prescription is refused with a specific code, over the link."""
    _, link, _ = served
    with programmer(link, Role.PATIENT) as patient:
        result = patient.patient_bolus()
    assert result.outcome is Outcome.REFUSED
    assert isinstance(result.reply, Nak)
    assert result.refusal is not None


def test_advance_and_fault_answer_only_once_stored() -> None:
    """docs/serve.md: a control client never sees a pump time or a fault a restart loses."""
    stored: list[bytes] = []
    failing = [False]

    def persist(blob: bytes) -> None:
        if failing[0]:
            raise OSError(28, "No space left on device")
        stored.append(blob)

    keys = generate_keys("PE-000321", bytes(range(9, 73)))
    device = PumpDevice(Pump(), keys, random.Random(1).randbytes, persist=persist)
    pump_end, _programmer_end = memory_pair()
    lines: list[str] = []
    server = PumpServer(device, pump_end, ManualClock(0), log=lines.append)
    assert server.advance(60_000) == 60_000
    assert PumpDevice.restore(stored[-1], keys, random.Random(2).randbytes).now_ms == 60_000
    before = len(stored)
    server.inject(Reset())  # no time moved, yet the fault is stored
    assert len(stored) == before + 1
    failing[0] = True
    with pytest.raises(StateNotStoredError, match="could not be stored: OSError") as moved:
        server.advance(1_000)
    assert str(moved.value).startswith("time advanced to 1970-01-01T00:01:01 (+0d 00:01:01), ")
    with pytest.raises(StateNotStoredError, match="fault injected") as hit:
        server.inject(Reset())
    assert str(hit.value).startswith("fault injected at 1970-01-01T00:01:01 (+0d 00:01:01), ")
    assert any("state not saved: OSError" in line for line in lines)


def test_a_clean_stop_writes_the_open_security_runs_before_its_last_save() -> None:
    """docs/protocol.md section 11.3: a clean stop ends every open coalescing run with its
    SECURITY_SUMMARY before the last save, so the restarted pump's log counts every
    refused frame; a crash (no ``save``) loses only the events counted since."""
    saved: list[bytes] = []
    device = PumpDevice(Pump("peristaltic-20"), KEYS, secrets.token_bytes, persist=saved.append)
    pump_end, _ = memory_pair()
    server = PumpServer(device, pump_end, ManualClock(), log=Lines())
    for seq in range(1, 6):  # five unsealed requests: NOT_AUTHENTICATED, one run
        device.receive_data(codec.encode(ReadStatus(), seq=seq), device.now_ms)
        device.data_to_send()
    assert device.uncounted_security_events() == {RefusalCode.NOT_AUTHENTICATED: 4}
    server.save()
    restored = PumpDevice.restore(saved[-1], KEYS, secrets.token_bytes)
    security = [
        (e.kind, e.detail, e.value_a)
        for e in restored.pump.log()
        if e.kind in (EventKind.SECURITY_EVENT, EventKind.SECURITY_SUMMARY)
    ]
    assert security == [
        (EventKind.SECURITY_EVENT, RefusalCode.NOT_AUTHENTICATED, ReadStatus.OPCODE),
        (EventKind.SECURITY_SUMMARY, RefusalCode.NOT_AUTHENTICATED, 4),
    ]

"""``pumpemu serve`` as a subprocess, driven by the Python programmer over real ptys and sockets.

Each test starts its own emulator (fixture ``serve``, always killed at teardown), waits only
with bounded timeouts, and finishes in a few seconds.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from hil import quantities as q
from hil.capture import read_capture
from hil.control import ControlClient
from hil.links import SerialLink
from hil.programmer.client import Programmer
from hil.programmer.core import Outcome, RetryPolicy
from hil.serve import TcpListenerLink
from protocol.device_state import EventKind, LogEntry, Role, TherapyState
from protocol.keys import PumpKeys, generate_keys
from protocol.messages import (
    Ack,
    ClinicianBolus,
    DeviceInfo,
    EventLogPage,
    PrescriptionStaged,
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
from tests.hil.e2e.conftest import ServeProcess, pumpemu_command

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

Serve = Callable[..., ServeProcess]
KeyFile = tuple[PumpKeys, Path]

RX = Prescription(
    drug_name="baclofen",
    concentration_ug_per_ml=500,
    mode=InfusionMode.FLEX,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 400_000), FlexStep(8 * 3_600, 600_000), FlexStep(20 * 3_600, 400_000)),
    patient_bolus=PatientBolusLimits(
        dose_nl=20_000, duration_s=600, lockout_s=3_600, max_per_24h=4
    ),
    low_reservoir_threshold_nl=2_000_000,
)
QUICK = RetryPolicy(reply_timeout_ms=500, attempts=3, reopen_attempts=2, busy_wait_ms=2_000)


def programmer(link: SerialLink | TcpListenerLink, keys: PumpKeys, role: Role) -> Programmer:
    return Programmer(link, keys.serial, role, keys.key_for(role), policy=QUICK)


def commit_rx(clinician: Programmer) -> Ack:
    staged = clinician.stage(RX)
    assert isinstance(staged.reply, PrescriptionStaged), staged
    committed = clinician.commit(staged.reply.digest)
    assert committed.outcome is Outcome.APPLIED, committed
    assert isinstance(committed.reply, Ack)
    return committed.reply


def test_a_full_visit_over_a_pty(serve: Serve, pump_keys: KeyFile, tmp_path: Path) -> None:
    keys, key_file = pump_keys
    control = f"unix:{tmp_path / 'control.sock'}"
    pump = serve("--pty", "--keys", str(key_file), "--clock", "manual", "--control", control)
    path = pump.first_line()
    assert path.startswith("/dev/")
    pump.wait_stderr("control API listening on unix:")
    link = SerialLink(path)
    try:
        with programmer(link, keys, Role.CLINICIAN) as clinician:
            info = clinician.info()
            assert isinstance(info.reply, DeviceInfo)
            assert info.reply.serial == keys.serial
            status = clinician.status()
            assert isinstance(status.reply, Status)
            assert status.reply.state is TherapyState.STOPPED
            ack = commit_rx(clinician)
            assert ack.state is TherapyState.FLEX
        with ControlClient(control) as api:
            api.advance("1h")  # past the lockout that starts with the prescription
        with programmer(link, keys, Role.PATIENT) as patient:
            granted = patient.patient_bolus()
            assert granted.outcome is Outcome.APPLIED, granted
        with ControlClient(control) as api:
            api.advance("15m")  # the bolus is over, its 1 h lockout is not
        with programmer(link, keys, Role.PATIENT) as patient:
            refused = patient.patient_bolus()
            assert refused.outcome is Outcome.REFUSED
            assert refused.refusal is RefusalCode.LOCKOUT_ACTIVE
        with programmer(link, keys, Role.CLINICIAN) as clinician:
            begun = clinician.refill_begin()
            assert begun.outcome is Outcome.APPLIED
            assert isinstance(begun.reply, Ack)
            residual = begun.reply.value
            done = clinician.refill_complete(residual, 20_000_000, 500)
            assert done.outcome is Outcome.APPLIED, done
            page = clinician.event_log()
            assert isinstance(page.reply, EventLogPage)
            kinds = {entry.kind.name for entry in page.reply.entries}
    finally:
        link.close()
    assert {"PRESCRIPTION_COMMITTED", "PATIENT_BOLUS_GRANTED", "PATIENT_BOLUS_REFUSED"} <= kinds
    assert {"REFILL_BEGUN", "REFILL_COMPLETED"} <= kinds
    pump.wait_stderr("session opened (patient)")
    assert pump.stop() == 0
    assert "Traceback" not in pump.stderr


def test_a_wrong_key_is_refused_and_logged(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    keys, key_file = pump_keys
    control = f"unix:{tmp_path / 'control.sock'}"
    pump = serve("--pty", "--keys", str(key_file), "--clock", "manual", "--control", control)
    link = SerialLink(pump.first_line())
    another_pump = generate_keys(keys.serial, bytes(range(1, 65)))
    try:
        intruder = programmer(link, another_pump, Role.CLINICIAN)
        result = intruder.status()
    finally:
        link.close()
    assert result.refusal is RefusalCode.AUTHENTICATION_FAILED
    assert result.outcome in (Outcome.REFUSED, Outcome.NOT_APPLIED)
    assert "AUTHENTICATION_FAILED" in pump.wait_stderr("security event")
    with ControlClient(control) as api:
        kinds = [entry["kind"] for entry in api.log()["entries"]]
    assert "SECURITY_EVENT" in kinds
    assert "SESSION_OPENED" not in kinds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accept_emulator(listener: TcpListenerLink) -> None:
    """Wait (bounded) until the emulator has connected to our device server."""
    for _ in range(100):
        if listener.connected:
            return
        listener.read(0.05)
    raise AssertionError("the emulator did not connect")


def test_a_port_that_disappears_and_comes_back(serve: Serve, pump_keys: KeyFile) -> None:
    """serve --port socket://...: the device server (a ser2net stand-in) goes away and comes
    back on the same port; the emulator reconnects and the pump's state is intact."""
    keys, key_file = pump_keys
    port = free_port()
    device_server = TcpListenerLink("127.0.0.1", port)
    pump = serve("--port", f"socket://127.0.0.1:{port}", "--keys", str(key_file))
    try:
        accept_emulator(device_server)
        with programmer(device_server, keys, Role.CLINICIAN) as clinician:
            ack = commit_rx(clinician)
        device_server.close()  # the port vanishes
        assert "reopening (pump state kept)" in pump.wait_stderr("link lost")
        pump.wait_stderr("still gone")
        device_server = TcpListenerLink("127.0.0.1", port)  # and comes back
        accept_emulator(device_server)
        pump.wait_stderr("link back")
        with programmer(device_server, keys, Role.CLINICIAN) as clinician:
            status = clinician.status()
        assert pump.stop() == 0  # before the device server goes: one loss, one return
    finally:
        device_server.close()
    assert isinstance(status.reply, Status)
    assert status.reply.last_command_id == ack.command_id
    assert status.reply.state is TherapyState.FLEX
    assert "link lost 1x, back 1x" in pump.stderr, pump.stderr


def test_a_tcp_programmer_drops_and_the_next_one_is_served(
    serve: Serve, pump_keys: KeyFile
) -> None:
    keys, key_file = pump_keys
    pump = serve("--tcp", "127.0.0.1:0", "--keys", str(key_file))
    url = pump.first_line()
    assert url.startswith("socket://127.0.0.1:")
    first = SerialLink(url)
    with programmer(first, keys, Role.CLINICIAN) as clinician:
        ack = commit_rx(clinician)
    first.close()
    pump.wait_stderr("programmer disconnected")
    second = SerialLink(url)
    try:
        with programmer(second, keys, Role.CLINICIAN) as clinician:
            status = clinician.status()
    finally:
        second.close()
    assert isinstance(status.reply, Status)
    assert status.reply.last_command_id == ack.command_id
    assert pump.stop() == 0


def test_time_advance_and_faults_show_plant_truth_beside_the_firmware(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    keys, key_file = pump_keys
    control = f"unix:{tmp_path / 'control.sock'}"
    pump = serve("--pty", "--keys", str(key_file), "--clock", "manual", "--control", control)
    link = SerialLink(pump.first_line())
    try:
        with programmer(link, keys, Role.CLINICIAN) as clinician:
            commit_rx(clinician)
        with ControlClient(control) as api:
            api.fault("leak", ppm=250_000)
            api.fault("stall", recover_after_s=2 * 3_600)
            assert api.advance("1h")["now"] == "T+0d01:00:00.000"
            truth = api.truth()
        # The stall is sensed (an alarm), the leak is not: the firmware cannot know.
        assert truth["firmware"]["motor_stall_detected"] is True
        assert truth["plant"]["catheter"] == "LEAKING"
        stall = pump.wait_stderr("alarm raised: MOTOR_STALL")
        # Stamped as every instant is printed: pump clock (never set: 1970), elapsed time.
        assert re.search(r"\[1970-01-01T00:\d\d:\d\d(\.\d{3})? \(\+0d 00:\d\d\S*\)\] alarm", stall)
        # The same, through the command line, as an operator sees it.
        cli = subprocess.run(
            [*pumpemu_command(), "time", "advance", "1d", "--control", control],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        assert "now 1970-01-02T01:00:00 (+1d 01:00)" in cli.stdout
        pump.wait_stderr("motor recovered")
        cli = subprocess.run(
            [*pumpemu_command(), "truth", "--control", control],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        lost = next(line for line in cli.stdout.splitlines() if line.startswith("lost"))
        assert "(not sensed)" in lost
        assert q.parse_volume(" ".join(lost.split()[-2:])) > 0  # printed in mL, exactly
        with programmer(link, keys, Role.CLINICIAN) as clinician:
            status = clinician.status()
        assert isinstance(status.reply, Status)
        assert status.reply.pump_time_ms == 25 * 3_600_000  # the firmware's own clock agrees
    finally:
        link.close()
    assert pump.stop() == 0
    assert "[1970-01-02T01:00:00 (+1d 01:00)] control: time advanced 86400000 ms" in pump.stderr
    assert "; pump time 1970-01-02T01:00:00 (+1d 01:00); " in pump.stderr
    assert "T+" not in pump.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_serve_cleanly(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path, sig: signal.Signals
) -> None:
    keys, key_file = pump_keys
    capture = tmp_path / "serve.jsonl"
    pump = serve("--pty", "--keys", str(key_file), "--capture", str(capture))
    link = SerialLink(pump.first_line())
    try:
        with programmer(link, keys, Role.CLINICIAN) as clinician:
            assert clinician.status().outcome is Outcome.ANSWERED
    finally:
        link.close()
    pump.wait_stderr("session closed")
    assert pump.stop(sig) == 0
    assert "Traceback" not in pump.stderr
    summary = pump.wait_stderr("stopped (")
    assert f"stopped ({sig.name})" in summary
    assert "1 session(s)" in summary
    records = list(read_capture(capture))
    assert {r.direction for r in records if r.kind == "frame"} == {"rx", "tx"}


# -- --state: a restarted emulator resumes where it stopped ----------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_state_file_resumes_the_pump_and_its_exactly_once_memory(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path, sig: signal.Signals
) -> None:
    """SIGTERM saves on the way out; even a kill -9 loses no applied command, because the
    state is saved after every one, before its ACK is sent."""
    keys, key_file = pump_keys
    state = tmp_path / "pump.state"
    first = serve("--pty", "--keys", str(key_file), "--state", str(state), "--clock", "x60")
    link = SerialLink(first.first_line())
    try:
        with programmer(link, keys, Role.CLINICIAN) as clinician:
            commit_rx(clinician)
            bolus = ClinicianBolus(command_id=777_001, dose_nl=5_000, duration_s=60)
            applied = clinician.request(bolus)
            assert applied.outcome is Outcome.APPLIED, applied
            status = clinician.status().reply
            prescription = clinician.prescription().reply
    finally:
        link.close()
    assert isinstance(status, Status)
    assert status.last_command_id == 777_001
    assert state.exists()  # saved after every applied command, before the ACK went out
    if sig is signal.SIGKILL:
        assert first.stop(sig) == -signal.SIGKILL
    else:
        assert first.stop(sig) == 0
        assert "state saved to" in first.wait_stderr("stopped (")
    assert state.stat().st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    second = serve("--pty", "--keys", str(key_file), "--state", str(state), "--clock", "x60")
    link = SerialLink(second.first_line())
    try:
        assert "state resumed from" in second.wait_stderr("state ")
        with programmer(link, keys, Role.CLINICIAN) as clinician:
            again = clinician.status().reply
            assert isinstance(again, Status)
            assert again.last_command_id == 777_001
            assert again.pump_time_ms >= status.pump_time_ms
            assert clinician.prescription().reply == prescription
            repeat = clinician.request(bolus)
            assert repeat.reply == applied.reply  # the original ACK, after a restart
            entries: list[LogEntry] = []
            page = clinician.event_log(0, 32).reply
            while isinstance(page, EventLogPage) and page.entries:
                entries.extend(page.entries)
                page = clinician.event_log(page.entries[-1].seq + 1, 32).reply
            assert isinstance(page, EventLogPage)
    finally:
        link.close()
    # The log goes on from before the restart: both visits' sessions are in it.
    assert entries
    assert entries[0].kind is EventKind.POWER_ON
    assert sum(e.kind is EventKind.SESSION_OPENED for e in entries) == 2
    starts = [e for e in entries if e.kind is EventKind.CLINICIAN_BOLUS_STARTED]
    assert len(starts) == 1
    assert second.stop(signal.SIGINT) == 0


def test_a_corrupt_state_file_is_one_line_exit_2_and_left_alone(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    _keys, key_file = pump_keys
    state = tmp_path / "pump.state"
    state.write_bytes(b"PEMU-DV1 definitely not a pump")
    before = state.read_bytes()
    pump = serve("--pty", "--keys", str(key_file), "--state", str(state))
    assert pump.proc.wait(10) == 2
    pump.wait_stderr("<eof>")
    lines = [line for line in pump.stderr.splitlines() if line and line != "<eof>"]
    assert len(lines) == 1, lines
    assert "is not a usable pump state" in lines[0]
    assert state.read_bytes() == before

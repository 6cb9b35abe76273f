"""``pumpemu ctl`` end to end: click's CliRunner against an emulated pump behind a real link.

The pump is served by ``hil.serve.PumpServer`` on a loopback TCP listener, so the CLI opens
``socket://127.0.0.1:PORT`` with pyserial exactly as it would open a rig. A ``FilterLink``
between the listener and the server can drop one request or one reply, to show how a lost
frame is resolved and reported (C1). Timeouts are short and bounded: each test runs in a
few seconds.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from emulator.device import PumpDevice
from emulator.pump import Pump
from hil.capture import read_capture
from hil.cli import main
from hil.clock import SystemClock
from hil.ctl import command as ctl_command
from hil.key_files import write_key_file
from hil.serve import PumpServer, TcpListenerLink
from protocol import wire
from protocol.device_state import EventKind, TherapyState
from protocol.keys import generate_keys
from protocol.messages import Opcode
from protocol.prescription import FlexStep, InfusionMode, PatientBolusLimits, Prescription, Repeat
from protocol.session import SessionLimits

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

SERIAL = "PE-CTL0001"
START_MS = 1_767_600_000_000  # 2026-01-05 08:00:00 pump time
EXAMPLES = Path(__file__).resolve().parents[2] / "hil" / "examples"

RUNNING = Prescription(
    drug_name="morphine",
    concentration_ug_per_ml=10_000,
    mode=InfusionMode.CONTINUOUS,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 400_000),),
    patient_bolus=PatientBolusLimits(
        dose_nl=20_000, duration_s=600, lockout_s=3_600, max_per_24h=4
    ),
    low_reservoir_threshold_nl=2_000_000,
)
"""Installed before a test runs: 0.4 mL/day of morphine 10 mg/mL, patient boluses allowed."""


class FilterLink:
    """The server's side of the TCP link, able to lose one request or one reply.

    ``drop_request = opcode``: the first request frame with that opcode never reaches the
    pump. ``drop_reply_to = opcode``: the pump gets the first such request, but its reply is
    lost on the way back. The opcode is in the frame header, which is never sealed.
    """

    def __init__(self, inner: TcpListenerLink) -> None:
        self.inner = inner
        self.drop_request: Opcode | None = None
        self.drop_reply_to: Opcode | None = None
        self._drop_next_write = False
        self.dropped: list[str] = []
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.inner.name

    def read(self, timeout_s: float) -> bytes:
        data = self.inner.read(timeout_s)
        if len(data) < wire.HEADER_LEN or data[:2] != wire.SYNC:
            return data
        opcode = data[12]
        with self._lock:
            if self.drop_request is not None and opcode == self.drop_request:
                self.dropped.append(f"request {self.drop_request.name}")
                self.drop_request = None
                return b""
            if self.drop_reply_to is not None and opcode == self.drop_reply_to:
                self.dropped.append(f"reply to {self.drop_reply_to.name}")
                self.drop_reply_to = None
                self._drop_next_write = True
        return data

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._drop_next_write:
                self._drop_next_write = False
                return
        self.inner.write(data)

    def close(self) -> None:
        self.inner.close()


@dataclass
class Bench:
    server: PumpServer
    link: FilterLink
    keys: Path
    tmp: Path
    runner: CliRunner = field(default_factory=CliRunner)

    @property
    def url(self) -> str:
        host, port = self.link.inner.address
        return f"socket://{host}:{port}"

    def ctl(self, *args: str, role: str = "clinician", retries: int = 3) -> Result:
        return self.runner.invoke(
            main,
            [
                "ctl",
                "--port",
                self.url,
                "--keys",
                str(self.keys),
                "--role",
                role,
                "--timeout",
                "0.3",
                "--retries",
                str(retries),
                "--busy-wait",
                "5",
                *args,
            ],
            catch_exceptions=False,
        )

    def pump_state(self) -> tuple[TherapyState, int, Prescription | None]:
        with self.server.locked() as device:
            status = device.pump.status()
            return status.state, status.last_command_id or 0, status.prescription


def _serve(tmp_path: Path, *, prescription: Prescription | None) -> Iterator[Bench]:
    keys = generate_keys(SERIAL, secrets.token_bytes(64))
    key_path = tmp_path / "pump.keys"
    write_key_file(key_path, keys)
    pump = Pump("peristaltic-20", start_ms=START_MS)
    if prescription is not None:
        assert pump.program(prescription, command_id=1).ok
    # A 1 s idle timeout: a session whose replies were lost ends quickly, so the CLI's
    # resolution through STATUS runs within the test's time box.
    limits = SessionLimits(idle_timeout_s=1, max_session_s=600, max_failed_openings=5, lockout_s=60)
    device = PumpDevice(pump, keys, secrets.token_bytes, limits=limits)
    link = FilterLink(TcpListenerLink("127.0.0.1", 0))
    for _ in range(20):  # the clock and the pump must agree to the ms when the server starts
        clock = SystemClock(start_ms=START_MS)
        pump.advance_to(clock.now_ms())
        try:
            server = PumpServer(device, link, clock, log=lambda line: None)
            break
        except ValueError:
            continue
    else:
        pytest.fail("could not start the server with the clock and the pump in step")
    with server:
        yield Bench(server, link, key_path, tmp_path)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    """A pump running RUNNING, served on loopback TCP."""
    yield from _serve(tmp_path, prescription=RUNNING)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Bench]:
    """A freshly implanted pump with no prescription."""
    yield from _serve(tmp_path, prescription=None)


# -- interrogation ----------------------------------------------------------------------------


def test_status_shows_the_pumps_state_in_human_units(bench: Bench) -> None:
    result = bench.ctl("status")
    assert result.exit_code == 0, result.output
    assert "continuous" in result.output
    assert "0.4 mL/day" in result.output
    assert "20 mL" in result.output  # reservoir estimate
    assert "2026-01-05T08:00" in result.output


def test_info_shows_serial_and_limits(bench: Bench) -> None:
    result = bench.ctl("info")
    assert result.exit_code == 0, result.output
    assert SERIAL in result.output
    assert "0.048 mL/day to 24 mL/day" in result.output
    assert "20 mg/day" in result.output  # max daily dose of the profile


def test_status_json_is_machine_readable(bench: Bench) -> None:
    result = bench.ctl("--json", "status")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["ok"] is True
    assert document["reply"]["state"] == "CONTINUOUS"
    assert document["reply"]["rate_nl_per_day"] == 400_000


def test_prescription_and_log_and_clock(bench: Bench) -> None:
    rx = bench.ctl("prescription")
    assert rx.exit_code == 0, rx.output
    assert "morphine" in rx.output
    assert "10 mg/mL" in rx.output
    assert "4 mg/day" in rx.output  # 0.4 mL/day x 10 mg/mL
    log = bench.ctl("--json", "log", "--all")
    assert log.exit_code == 0, log.output
    kinds = [entry["kind"] for entry in json.loads(log.output)["entries"]]
    assert "PRESCRIPTION_COMMITTED" in kinds
    assert "SESSION_OPENED" in kinds
    last = bench.ctl("--json", "log", "--count", "2")
    entries = json.loads(last.output)["entries"]
    assert len(entries) == 2
    assert entries[-1]["seq"] == json.loads(last.output)["next_seq"] - 1
    clock = bench.ctl("clock")
    assert clock.exit_code == 0, clock.output
    assert "pump time 2026-01-05T08:00" in clock.output


def test_a_patient_may_not_read_the_prescription(bench: Bench) -> None:
    result = bench.ctl("prescription", role="patient")
    assert result.exit_code == 1
    assert "refused: NOT_PERMITTED_FOR_ROLE" in result.output


# -- programming ------------------------------------------------------------------------------


def test_program_with_yes_commits_and_reads_back(fresh: Bench) -> None:
    result = fresh.ctl("program", str(EXAMPLES / "morphine-flex.toml"), "--yes")
    assert result.exit_code == 0, result.output
    out = result.output
    # The review: as asked and as programmed, every step with rate and dose rate.
    for text in ("0.3 mL/day", "0.5 mL/day", "4 mg/day", "5 mg/day", "22:00", "(matches)"):
        assert text in out, text
    assert "applied: commit prescription: state flex" in out
    assert "read back: the pump's prescription is the one reviewed" in out
    state, _, rx = fresh.pump_state()
    assert state is TherapyState.FLEX
    assert rx is not None
    assert rx.drug_name == "morphine"
    assert [s.rate_nl_per_day for s in rx.steps] == [300_000, 500_000, 400_000, 300_000]


def test_program_without_yes_and_without_a_terminal_commits_nothing(bench: Bench) -> None:
    result = bench.ctl("program", str(EXAMPLES / "baclofen-continuous.toml"))
    assert result.exit_code == 1, result.output
    assert "not committed: no terminal to confirm on and --yes not given" in result.output
    assert "(matches)" in result.output  # the review was still shown
    _, _, rx = bench.pump_state()
    assert rx == RUNNING


def test_program_commits_after_the_digest_is_typed(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ctl_command, "_stdin_is_tty", lambda: True)
    path = str(EXAMPLES / "baclofen-continuous.toml")
    cancelled = bench.runner.invoke(
        main,
        ["ctl", "--port", bench.url, "--keys", str(bench.keys), "--timeout", "0.3",
         "program", path],
        input="yes\n",
    )  # fmt: skip
    assert cancelled.exit_code == 1, cancelled.output
    assert "not committed: cancelled" in cancelled.output
    assert bench.pump_state()[2] == RUNNING
    review = bench.ctl("--json", "program", path, "--review-only")
    digest = json.loads(review.output)["review"]["digest_pump"]
    # The stage lifetime the pump announced reaches the user (the profile: 600 s).
    assert json.loads(review.output)["review"]["stage_lifetime_s"] == 600
    typed = bench.runner.invoke(
        main,
        ["ctl", "--port", bench.url, "--keys", str(bench.keys), "--timeout", "0.3",
         "program", path],
        input=digest[:8] + "\n",
    )  # fmt: skip
    assert typed.exit_code == 0, typed.output
    assert "within 600 s of staging" in typed.output
    rx = bench.pump_state()[2]
    assert rx is not None
    assert rx.drug_name == "baclofen"


def test_a_prescription_the_pump_refuses_exits_1_with_reason_and_limit(
    fresh: Bench, tmp_path: Path
) -> None:
    # The 60 mcg flex error in spirit: a rate 25x too high for one step.
    text = (EXAMPLES / "morphine-flex.toml").read_text().replace('"0.5 mL/day"', '"25 mL/day"')
    path = tmp_path / "too-fast.toml"
    path.write_text(text)
    result = fresh.ctl("program", str(path), "--yes")
    assert result.exit_code == 1, result.output
    assert (
        "stage prescription refused: RATE_ABOVE_MAX — a rate is above the pump's maximum "
        "(field STEP_RATE, limit 24 mL/day)" in result.output
    )
    assert "steps[].rate" in result.output
    assert fresh.pump_state()[2] is None


def test_bad_prescription_file_is_one_line_exit_2(fresh: Bench, tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    text = (EXAMPLES / "morphine-flex.toml").read_text().replace('"0.5 mL/day"', '"0.5 mL/dy"')
    path.write_text(text)
    result = fresh.ctl("program", str(path), "--yes")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert (
        "steps[1].rate: '0.5 mL/dy' is not a rate; write e.g. 0.5 mL/day, 480 uL/day or "
        "480000 nL/day"
    ) in lines[0]


# -- therapy commands and their outcomes --------------------------------------------------------


def test_patient_bolus_in_lockout_is_refused_with_reason(bench: Bench) -> None:
    result = bench.ctl("patient-bolus", role="patient")
    assert result.exit_code == 1, result.output
    assert "patient bolus refused: LOCKOUT_ACTIVE — a patient bolus inside the lockout" in (
        result.output
    )
    # The seconds left of the 1 h lockout the commit started (protocol.md 12), not a time.
    left = re.search(r"\(field PATIENT_BOLUS_LOCKOUT, (1 h|59 min( \d+ s)?) left\)", result.output)
    assert left, result.output
    assert "applied" not in result.output
    assert bench.pump_state()[0] is TherapyState.CONTINUOUS


def test_clinician_bolus_applied_with_the_pumps_ack(bench: Bench) -> None:
    result = bench.ctl("--json", "bolus", "--dose", "50uL", "--duration", "10min")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["outcome"] == "applied"
    assert document["reply"]["state"] == "CLINICIAN_BOLUS"
    state, last, _ = bench.pump_state()
    assert state is TherapyState.CLINICIAN_BOLUS
    assert last == document["command_id"]


@pytest.mark.hazard("C1")
def test_lost_reply_resolved_through_status_is_reported_applied(bench: Bench) -> None:
    bench.link.drop_reply_to = Opcode.CLINICIAN_BOLUS
    result = bench.ctl("bolus", "--dose", "0.05mL", "--duration", "600s", retries=1)
    assert bench.link.dropped == ["reply to CLINICIAN_BOLUS"]
    assert result.exit_code == 0, result.output
    match = re.search(
        r"applied: clinician bolus \(reply lost; pump status shows last command (\d+), "
        r"this command\)",
        result.output,
    )
    assert match, result.output
    state, last, _ = bench.pump_state()
    assert state is TherapyState.CLINICIAN_BOLUS
    assert last == int(match.group(1))
    with bench.server.locked() as device:
        started = [e for e in device.pump.log() if e.kind is EventKind.CLINICIAN_BOLUS_STARTED]
    assert len(started) == 1  # applied exactly once


@pytest.mark.hazard("C1")
def test_lost_request_resolved_through_status_is_reported_not_applied(bench: Bench) -> None:
    bench.link.drop_request = Opcode.CLINICIAN_BOLUS
    result = bench.ctl("bolus", "--dose", "0.05mL", "--duration", "600s", retries=1)
    assert bench.link.dropped == ["request CLINICIAN_BOLUS"]
    assert result.exit_code == 1, result.output
    assert re.search(
        r"not applied: clinician bolus \(reply lost; pump status shows last command 1, "
        r"not this command \d+\)",
        result.output,
    ), result.output
    assert bench.pump_state()[0] is TherapyState.CONTINUOUS


@pytest.mark.hazard("C1")
def test_lost_reply_retried_in_session_is_applied_once(bench: Bench) -> None:
    bench.link.drop_reply_to = Opcode.STOP_THERAPY
    result = bench.ctl("--json", "stop", retries=3)
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["outcome"] == "applied"
    assert document["attempts"] == 2
    assert bench.pump_state()[0] is TherapyState.STOPPED
    with bench.server.locked() as device:
        stops = [e for e in device.pump.log() if e.kind is EventKind.THERAPY_STOPPED]
    assert len(stops) == 1


def test_refill_prints_predicted_residual_and_discrepancy(bench: Bench) -> None:
    result = bench.ctl(
        "refill", "--withdrawn", "15mL", "--volume", "20mL", "--concentration", "10mg/mL"
    )
    assert result.exit_code == 0, result.output
    assert "applied: refill begin" in result.output
    assert "applied: refill complete" in result.output
    assert re.search(
        r"predicted residual 20 mL, withdrawn 15 mL: difference 5 mL less", result.output
    )
    assert "DISCREPANCY: the pump logged a refill discrepancy" in result.output


def test_stop_start_alarm_test_and_set_clock(bench: Bench) -> None:
    assert bench.ctl("stop").exit_code == 0
    assert bench.pump_state()[0] is TherapyState.STOPPED
    refused = bench.ctl("patient-bolus", role="patient")
    assert refused.exit_code == 1
    assert "refused" in refused.output
    started = bench.ctl("start")
    assert started.exit_code == 0, started.output
    assert "applied: start therapy: state continuous" in started.output
    assert bench.ctl("alarm-test").exit_code == 0
    clock = bench.ctl("set-clock", "2026-02-01T09:30:00")
    assert clock.exit_code == 0, clock.output
    assert "applied: set clock to 2026-02-01T09:30:00" in clock.output
    no_alarm = bench.ctl("ack-alarm", "low-reservoir")
    assert no_alarm.exit_code == 1
    assert "refused: NO_SUCH_ALARM" in no_alarm.output


def test_capture_records_the_sessions_traffic(bench: Bench, tmp_path: Path) -> None:
    capture = tmp_path / "ctl.jsonl"
    result = bench.ctl("--capture", str(capture), "status")
    assert result.exit_code == 0, result.output
    records = list(read_capture(capture))
    assert records[0].source == "ctl"
    frames = [r for r in records if r.kind == "frame"]
    opcodes = [r.fields["header"]["opcode"] for r in frames]
    assert opcodes[:4] == ["OPEN_SESSION", "CHALLENGE", "AUTHENTICATE", "SESSION_OPENED"]
    assert "READ_STATUS" in opcodes
    assert "STATUS" in opcodes


# -- usage errors -----------------------------------------------------------------------------


def test_bad_url_is_one_line_exit_2(tmp_path: Path) -> None:
    keys = tmp_path / "k.keys"
    write_key_file(keys, generate_keys(SERIAL, secrets.token_bytes(64)))
    result = CliRunner().invoke(
        main, ["ctl", "--port", "nosuch://x", "--keys", str(keys), "status"]
    )
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "cannot open 'nosuch://x'" in result.output


def test_missing_device_is_one_line_exit_2(tmp_path: Path) -> None:
    keys = tmp_path / "k.keys"
    write_key_file(keys, generate_keys(SERIAL, secrets.token_bytes(64)))
    result = CliRunner().invoke(
        main, ["ctl", "--port", str(tmp_path / "ttyNONE"), "--keys", str(keys), "status"]
    )
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_bad_key_file_is_one_line_exit_2(bench: Bench, tmp_path: Path) -> None:
    bad = tmp_path / "bad.keys"
    bad.write_text("{not json")
    bad.chmod(0o600)
    result = CliRunner().invoke(main, ["ctl", "--port", bench.url, "--keys", str(bad), "status"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: key file {bad}: not JSON")


def test_a_key_file_others_can_read_is_refused_exit_2(bench: Bench, tmp_path: Path) -> None:
    readable = tmp_path / "readable.keys"
    write_key_file(readable, generate_keys(SERIAL, secrets.token_bytes(64)))
    readable.chmod(0o644)
    result = CliRunner().invoke(
        main, ["ctl", "--port", bench.url, "--keys", str(readable), "status"]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: key file {readable} has mode 0644: group or others can access it; "
        f"run: chmod 600 {readable}"
    ]


def test_wrong_key_is_refused_exit_1(bench: Bench, tmp_path: Path) -> None:
    other = tmp_path / "other.keys"
    write_key_file(other, generate_keys(SERIAL, secrets.token_bytes(64)))
    result = CliRunner().invoke(
        main, ["ctl", "--port", bench.url, "--keys", str(other), "--timeout", "0.3", "status"]
    )
    assert result.exit_code == 1, result.output
    assert (
        "read status: no answer: the pump refused the session: AUTHENTICATION_FAILED — "
        "the key is not this pump's key for this role" in result.output
    )


def test_missing_port_is_one_line_exit_2() -> None:
    result = CliRunner().invoke(main, ["ctl", "status"])
    assert result.exit_code == 2
    assert "--port is required" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_dose_is_one_line_exit_2(bench: Bench) -> None:
    result = bench.ctl("bolus", "--dose", "0.0000005mL", "--duration", "10min")
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "--dose: '0.0000005mL' is not a whole number of nL" in result.output


def test_a_silent_pump_is_reported_unreachable_not_applied(tmp_path: Path) -> None:
    keys = tmp_path / "k.keys"
    write_key_file(keys, generate_keys(SERIAL, secrets.token_bytes(64)))
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        result = CliRunner().invoke(
            main,
            ["ctl", "--port", f"socket://127.0.0.1:{port}", "--keys", str(keys),
             "--timeout", "0.1", "--retries", "1", "stop"],
        )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert result.output.startswith("not applied: stop therapy: never reached the pump (")
    assert "unreachable" in result.output


# -- issue 12: detailed reads and service procedures ------------------------------------------


def test_detail_catheter_and_patient_view(bench: Bench) -> None:
    """0.4 mL/day from 20 mL with a 2 mL threshold: low after 18 mL = 45 days, at
    2026-02-19 08:00; empty after 50 days, 2026-02-24 08:00."""
    detail = bench.ctl("detail")
    assert detail.exit_code == 0, detail.output
    assert "low reservoir" in detail.output
    assert "2026-02-19T08:00" in detail.output
    assert "2026-02-24T08:00" in detail.output
    assert "projected" in detail.output  # ERI not reached: a projection at the current rate
    document = json.loads(bench.ctl("--json", "detail").output)
    assert document["ok"] is True
    assert document["reply"]["eri_reached"] is False
    catheter = bench.ctl("catheter")
    assert catheter.exit_code == 0, catheter.output
    assert "110 cm" in catheter.output
    view = bench.ctl("--json", "patient-view", role="patient")
    assert view.exit_code == 0, view.output
    assert json.loads(view.output)["reply"]["boluses_left_24h"] == 4
    refused = bench.ctl("detail", role="patient")
    assert refused.exit_code == 1
    assert "refused: NOT_PERMITTED_FOR_ROLE" in refused.output


def test_set_catheter_and_the_service_commands(bench: Bench) -> None:
    """90 cm x 2 600 nL/cm = 234 000 nL. A peristaltic pump has no valve to reset, and
    there is no memory error to clear: both refused, with the reason."""
    applied = bench.ctl("set-catheter", "--length", "90cm", "--not-primed")
    assert applied.exit_code == 0, applied.output
    assert "applied: set catheter" in applied.output
    assert "catheter dead volume" in applied.output
    document = json.loads(bench.ctl("--json", "catheter").output)
    assert document["reply"]["length_cm"] == 90
    assert document["reply"]["dead_volume_nl"] == 234_000
    assert document["reply"]["primed"] is False
    valve = bench.ctl("reset-flow-valve")
    assert valve.exit_code == 1
    assert "refused: NO_FLOW_VALVE" in valve.output
    memory = bench.ctl("clear-memory-error")
    assert memory.exit_code == 1
    assert "refused: NO_SUCH_ALARM" in memory.output
    too_long = bench.ctl("set-catheter", "--length", "111", "--primed")
    assert too_long.exit_code == 1
    assert "refused: INVALID_FIELD" in too_long.output
    bad = bench.ctl("set-catheter", "--length", "ninety", "--primed")
    assert bad.exit_code == 2


# -- the drug library and concentration changes (issue 12) -------------------------------------


def test_the_every_hour_mis_entry_needs_override_and_the_review_shows_it(
    fresh: Bench, tmp_path: Path
) -> None:
    """Baclofen "60 mcg each morning" entered as every hour: 1 840 ug/day, above the drug
    library's 1 000 ug/day soft limit (docs/protocol.md section 10.3)."""
    text = (EXAMPLES / "baclofen-continuous.toml").read_text()
    path = tmp_path / "every-hour.toml"
    path.write_text(text.replace('"0.2 mL/day"', '"0.92 mL/day"'))
    refused = fresh.ctl("program", str(path), "--yes")
    assert refused.exit_code == 1, refused.output
    assert "SOFT_LIMIT_NEEDS_OVERRIDE" in refused.output
    assert "soft limit 1 mg/day" in refused.output
    assert fresh.pump_state()[2] is None
    applied = fresh.ctl("program", str(path), "--yes", "--override", "soft-limit")
    assert applied.exit_code == 0, applied.output
    assert re.search(r"overrides used\s+soft-limit", applied.output)
    assert "applied: commit prescription" in applied.output
    with fresh.server.locked() as device:
        kinds = [e.kind for e in device.pump.log()]
    assert EventKind.OVERRIDE_STAGED in kinds
    assert EventKind.OVERRIDE_COMMITTED in kinds


def test_refill_with_new_concentration_then_bridge_then_program(
    bench: Bench, tmp_path: Path
) -> None:
    """4 mg/day at 10 mg/mL, refilled at 25 mg/mL: the running prescription stays 4 mg/day;
    the bridge holds it until the old drug is out; the new one (0.16 mL/day) waits."""
    refill = bench.ctl(
        "refill", "--withdrawn", "20mL", "--volume", "20mL", "--concentration", "25mg/mL"
    )
    assert refill.exit_code == 0, refill.output
    assert bench.pump_state()[2] == RUNNING
    bridge = bench.ctl("bridge-bolus")
    assert bridge.exit_code == 0, bridge.output
    assert "applied: bridge bolus" in bridge.output
    assert "old drug out of the catheter at" in bridge.output
    text = (EXAMPLES / "baclofen-continuous.toml").read_text()
    path = tmp_path / "morphine-25.toml"
    path.write_text(
        text.replace('"baclofen"', '"morphine"')
        .replace('"2000 ug/mL"', '"25 mg/mL"')
        .replace('"0.2 mL/day"', '"0.16 mL/day"')
    )
    programmed = bench.ctl("program", str(path), "--yes")
    assert programmed.exit_code == 0, programmed.output
    with bench.server.locked() as device:
        status = device.pump.status()
    assert status.prescription == RUNNING  # in effect when the old drug is out
    assert status.waiting_prescription is not None
    assert status.bridging

"""``pumpemu serve --state`` as processes: one serve per file, refusals that leave the file
alone, no ACK without a save on a full file system, and a 50-kill crash campaign."""

from __future__ import annotations

import json
import os
import resource
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.crash_campaign import run_campaign
from emulator.device import DEVICE_STATE_MAGIC
from emulator.firmware.nvram import decode_record, encode_record
from hil.capture import read_capture
from hil.control import ControlClient, ControlError
from hil.key_files import write_key_file
from hil.links import SerialLink
from hil.programmer.core import Outcome
from hil.state_file import HEADER, MAC_LEN
from protocol.device_state import Role
from protocol.keys import PumpKeys, generate_keys
from protocol.messages import ClinicianBolus, Nak
from protocol.refusal import FieldId, RefusalCode
from tests.hil.e2e.conftest import ServeProcess
from tests.hil.e2e.test_serve_e2e import commit_rx, programmer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

Serve = Callable[..., ServeProcess]
KeyFile = tuple[PumpKeys, Path]


def error_lines(process: ServeProcess) -> list[str]:
    process.wait_stderr("<eof>", 10)
    return [line for line in process.stderr.splitlines() if line and line != "<eof>"]


def new_state(serve: Serve, keys: PumpKeys, key_file: Path, state: Path) -> None:
    """A state file with a committed prescription, written by a serve that stopped."""
    first = serve("--pty", "--keys", str(key_file), "--state", str(state), "--clock", "manual")
    link = SerialLink(first.first_line())
    try:
        with programmer(link, keys, Role.CLINICIAN) as clinician:
            commit_rx(clinician)
    finally:
        link.close()
    assert first.stop(signal.SIGTERM) == 0


def test_a_second_serve_on_the_same_state_file_exits_2_naming_the_file(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    _keys, key_file = pump_keys
    state = tmp_path / "pump.state"
    first = serve("--pty", "--keys", str(key_file), "--state", str(state), "--clock", "manual")
    first.first_line()
    first.wait_stderr("new pump; saving to")
    saved = state.read_bytes()
    second = serve("--pty", "--keys", str(key_file), "--state", str(state), "--clock", "manual")
    assert second.proc.wait(10) == 2
    lines = error_lines(second)
    assert len(lines) == 1, lines
    assert (
        f"--state: {state} is in use by another pumpemu serve (pid {first.proc.pid})" in (lines[0])
    )
    assert state.read_bytes() == saved  # the second one wrote nothing
    assert first.stop(signal.SIGTERM) == 0
    third = serve("--pty", "--keys", str(key_file), "--state", str(state), "--clock", "manual")
    third.first_line()
    assert "state resumed from" in third.wait_stderr("state ")
    assert third.stop(signal.SIGTERM) == 0


def test_a_restarted_serve_appends_to_its_capture(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    """The user report: a capture of 535 lines became 1 at a restart."""
    keys, key_file = pump_keys
    capture = tmp_path / "serve.jsonl"
    state = tmp_path / "pump.state"
    for _run in range(2):
        pump = serve(
            "--pty", "--keys", str(key_file), "--state", str(state), "--capture", str(capture)
        )
        link = SerialLink(pump.first_line())
        try:
            with programmer(link, keys, Role.CLINICIAN) as clinician:
                clinician.status()
        finally:
            link.close()
        assert pump.stop(signal.SIGTERM) == 0
    records = list(read_capture(capture))
    starts = [r for r in records if r.kind == "capture"]
    assert len(starts) == 2  # one marker per run, nothing truncated
    assert sum(r.kind == "frame" for r in records) >= 2 * 6  # both runs' handshakes and reads
    assert capture.stat().st_mode & 0o777 == 0o600


def refused_start(serve: Serve, key_file: Path, state: Path) -> str:
    before = state.read_bytes()
    pump = serve("--pty", "--keys", str(key_file), "--state", str(state))
    assert pump.proc.wait(10) == 2
    lines = error_lines(pump)
    assert len(lines) == 1, lines
    assert "Traceback" not in pump.stderr
    assert state.read_bytes() == before  # refused, never replaced by a fresh pump
    return lines[0]


def test_an_edited_rechecksummed_state_is_refused_and_left_alone(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    keys, key_file = pump_keys
    state = tmp_path / "pump.state"
    new_state(serve, keys, key_file, state)
    data = state.read_bytes()
    inner = data[HEADER.size : -MAC_LEN]
    record = decode_record(DEVICE_STATE_MAGIC, inner)
    record["session"] = {"failed_openings": 0, "lockout_left_ms": None}
    record["ledger"]["entries"] = []  # what the reported attack did, SHA-256 recomputed
    edited = encode_record(DEVICE_STATE_MAGIC, record)
    state.write_bytes(data[:12] + len(edited).to_bytes(4, "little") + edited + data[-MAC_LEN:])
    assert "MAC does not verify" in refused_start(serve, key_file, state)


def test_another_pumps_state_and_a_newer_format_are_refused_and_left_alone(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    keys, key_file = pump_keys
    state = tmp_path / "pump.state"
    new_state(serve, keys, key_file, state)
    foreign_keys = tmp_path / "foreign.keys"
    write_key_file(foreign_keys, generate_keys("PE-000042", os.urandom(64)))
    assert "belongs to another key file" in refused_start(serve, foreign_keys, state)
    data = state.read_bytes()
    state.write_bytes(data[:8] + (7).to_bytes(2, "little") + data[10:])
    assert "format version 7 is newer" in refused_start(serve, key_file, state)


def test_leftover_temporary_files_are_removed_at_start(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    keys, key_file = pump_keys
    state = tmp_path / "pump.state"
    new_state(serve, keys, key_file, state)
    leftover = tmp_path / f".{state.name}.99999.1.tmp"
    leftover.write_bytes(b"a save killed half way")
    pump = serve("--pty", "--keys", str(key_file), "--state", str(state), "--clock", "manual")
    pump.first_line()
    assert leftover.name in pump.wait_stderr("left by a save that was killed")
    assert not leftover.exists()
    assert pump.stop(signal.SIGTERM) == 0


def test_with_the_file_size_limit_reached_no_command_is_acked_that_a_restart_loses(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    """The user report: ``ulimit -f`` made saves fail, serve logged it and still ACKed."""
    keys, key_file = pump_keys
    state = tmp_path / "pump.state"
    new_state(serve, keys, key_file, state)
    limit = state.stat().st_size + 1_500

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    control = f"unix:{tmp_path / 'control.sock'}"
    args = ("--pty", "--keys", str(key_file), "--state", str(state), "--clock", "manual")
    limited = serve(*args, "--control", control, preexec_fn=small_files)
    link = SerialLink(limited.first_line())
    limited.wait_stderr("control API listening")
    acked: list[int] = []
    not_stored: list[int] = []
    advance_errors: list[str] = []
    try:
        with programmer(link, keys, Role.CLINICIAN) as clinician:
            client = ControlClient(control)
            for command_id in range(500, 560):
                result = clinician.request(
                    ClinicianBolus(command_id=command_id, dose_nl=1_000, duration_s=5)
                )
                if result.outcome is Outcome.APPLIED:
                    acked.append(command_id)
                else:
                    assert result.reply == Nak(
                        code=RefusalCode.NOT_STORED, field=FieldId.NONE, limit=0
                    )
                    not_stored.append(command_id)
                    if len(not_stored) >= 3:
                        break
                try:
                    client.advance("6s")  # the bolus ends; stored before it is answered
                except ControlError as exc:
                    advance_errors.append(str(exc))
    finally:
        link.close()
    assert all("could not be stored" in error for error in advance_errors), advance_errors
    assert acked, "the limit left no room for a single command"
    assert len(not_stored) == 3, "the file never reached its size limit"
    assert "state not saved: " in limited.wait_stderr("File too large")
    limited.proc.send_signal(signal.SIGKILL)
    limited.proc.wait(10)

    again = serve(*args, "--control", control)
    again.first_line()
    again.wait_stderr("control API listening")
    entries = ControlClient(control).log()["entries"]
    started = [e["value_b"] for e in entries if e["kind"] == "CLINICIAN_BOLUS_STARTED"]
    assert started == acked  # every ACKed command, once, in order; none of the refused
    status = ControlClient(control).truth()["firmware"]
    assert status["last_command_id"] == acked[-1]
    assert not set(not_stored) & set(started)
    assert again.stop(signal.SIGTERM) == 0


@pytest.mark.timeout(600)
def test_fifty_kills_lose_nothing(tmp_path: Path) -> None:
    figures = run_campaign(50, seed=2026, workdir=tmp_path)
    summary = json.dumps(figures.__dict__)
    assert figures.kills == 50, summary
    assert figures.acked_commands > 50, summary  # the campaign did real work
    assert (
        figures.lost_acked_commands,
        figures.double_applied,
        figures.time_went_back,
        figures.unloadable_states,
        figures.leftover_temp_files,
        figures.reported_not_applied_but_applied,
    ) == (0, 0, 0, 0, 0, 0), summary
    assert figures.failures == [], summary

"""``pumpemu ctl`` against ``pumpemu serve --pty``: two real processes on a real pty.

The issue-5 acceptance asks for the command-line programmer, not only the Python one, to
drive a served pump. Each ``ctl`` run is a separate process with a bounded timeout, as a
clinician's script or a CI job would run it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from hil.key_files import write_key_file
from protocol.keys import PumpKeys, generate_keys
from tests.hil.e2e.conftest import ServeProcess, pumpemu_command

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
RX = ROOT / "hil" / "examples" / "morphine-flex.toml"
CTL_TIMEOUT_S = 30.0

Serve = Callable[..., ServeProcess]
KeyFile = tuple[PumpKeys, Path]


def pumpemu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*pumpemu_command(), *args],
        capture_output=True,
        text=True,
        timeout=CTL_TIMEOUT_S,
        check=False,
        env=dict(os.environ, COLUMNS="120"),
    )


def test_ctl_drives_a_visit_against_a_served_pty(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    _, key_file = pump_keys
    control = f"unix:{tmp_path / 'control.sock'}"
    pump = serve("--pty", "--keys", str(key_file), "--clock", "manual", "--control", control)
    port = pump.first_line()
    pump.wait_stderr("control API listening")
    ctl = ("ctl", "--port", port, "--keys", str(key_file))

    status = pumpemu(*ctl, "status")
    assert status.returncode == 0, status.stderr
    assert "stopped" in status.stdout

    program = pumpemu(*ctl, "program", str(RX), "--yes")
    assert program.returncode == 0, program.stdout + program.stderr
    assert "applied" in program.stdout
    assert "read back" in program.stdout  # the programmer checked what the pump now runs

    # Right after programming the lockout runs: the patient's request is refused (exit 1),
    # with its reason, and nothing is applied.
    refused = pumpemu(*ctl, "--role", "patient", "patient-bolus")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "LOCKOUT_ACTIVE" in refused.stdout

    advanced = pumpemu("time", "advance", "4h", "--control", control)
    assert advanced.returncode == 0, advanced.stderr
    granted = pumpemu(*ctl, "--role", "patient", "patient-bolus")
    assert granted.returncode == 0, granted.stdout + granted.stderr
    assert "applied" in granted.stdout

    # A patient may not stop therapy: deny by default (C4), exit 1.
    denied = pumpemu(*ctl, "--role", "patient", "stop")
    assert denied.returncode == 1
    assert "NOT_PERMITTED_FOR_ROLE" in denied.stdout

    log = pumpemu(*ctl, "--json", "log", "--all")
    assert log.returncode == 0, log.stderr
    for kind in ("PRESCRIPTION_COMMITTED", "PATIENT_BOLUS_REFUSED", "PATIENT_BOLUS_GRANTED"):
        assert kind in log.stdout
    assert pump.stop() == 0
    assert "Traceback" not in pump.stderr


@pytest.mark.hazard("C4")
def test_ctl_with_another_pumps_key_is_refused(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    keys, key_file = pump_keys
    pump = serve("--pty", "--keys", str(key_file), "--clock", "manual")
    port = pump.first_line()
    impostor = generate_keys(keys.serial, os.urandom(64))  # same serial, other keys
    impostor_file = tmp_path / "impostor.keys"
    write_key_file(impostor_file, impostor)

    result = pumpemu("ctl", "--port", port, "--keys", str(impostor_file), "--retries", "1",
                     "status")  # fmt: skip
    assert result.returncode == 1
    assert "AUTHENTICATION_FAILED" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    pump.wait_stderr("AUTHENTICATION_FAILED")
    assert pump.stop() == 0

"""The contract suite (tests/contract/) on the real-time backends: a pty served in-process,
and ``pumpemu serve`` reached by URL with its control API, as a device team would run it
against their own pump (docs/contract.md). Each run is a pytest subprocess, bounded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from protocol.keys import PumpKeys
from tests.hil.e2e.conftest import ServeProcess

ROOT = Path(__file__).resolve().parents[3]
RUN_TIMEOUT_S = 300


def contract(*options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/contract",
         *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )  # fmt: skip


@pytest.mark.e2e
def test_the_contract_holds_over_a_real_pty() -> None:
    run = contract("--pump-backend", "pty")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
    assert "skipped" not in run.stdout  # the pty backend has a control API: nothing skipped


@pytest.mark.e2e
def test_the_contract_holds_against_pumpemu_serve_by_url(
    serve: object, pump_keys: tuple[PumpKeys, Path], tmp_path: Path
) -> None:
    _, key_file = pump_keys
    control = f"unix:{tmp_path / 'control.sock'}"
    start = serve  # the e2e conftest's fixture: starts and always kills
    pump: ServeProcess = start(  # type: ignore[operator]
        "--pty", "--keys", str(key_file), "--clock", "manual", "--control", control
    )
    port = pump.first_line()
    pump.wait_stderr("control API listening")
    run = contract("--pump-backend", "url", "--pump-url", port, "--pump-keys", str(key_file),
                   "--pump-control", control)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "skipped" not in run.stdout


@pytest.mark.e2e
def test_without_a_control_api_plant_tests_are_skipped_with_the_reason(
    serve: object, pump_keys: tuple[PumpKeys, Path]
) -> None:
    _, key_file = pump_keys
    pump: ServeProcess = serve("--pty", "--keys", str(key_file), "--clock", "manual")  # type: ignore[operator]
    port = pump.first_line()
    run = contract("--pump-backend", "url", "--pump-url", port, "--pump-keys", str(key_file),
                   "-rs")  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "1 skipped" in run.stdout
    assert "has no control API" in run.stdout

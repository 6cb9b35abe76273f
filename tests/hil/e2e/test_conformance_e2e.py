"""End to end: ``pumpemu serve --conformance`` as a subprocess judging real programmers over a
real pty, and the demo's capture judged afterwards.

- ``strict`` exits 1 after a session that broke a rule, 0 otherwise; the JUnit file is
  parsed.
- The demo and the ``pumpemu ctl`` visit (the steps of tests/hil/e2e/test_ctl_against_serve.py,
  on a pump whose clock was set) report no violation.
"""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from hil.capture import read_capture
from hil.cli import main
from hil.conformance import RULES
from hil.conformance.capture import judge_capture
from hil.control import ControlClient
from hil.key_files import load_keys
from hil.links import SerialLink
from hil.programmer.client import Programmer
from hil.programmer.core import RetryPolicy
from protocol.codec import prescription_digest
from protocol.device_state import Role
from protocol.keys import PumpKeys
from protocol.messages import DeviceInfo, Status
from protocol.refusal import RefusalCode
from tests.hil.conformance.rig import RX as PRESCRIPTION
from tests.hil.e2e.conftest import ServeProcess, pumpemu_command

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

Serve = Callable[..., ServeProcess]
KeyFile = tuple[PumpKeys, Path]
ROOT = Path(__file__).resolve().parents[3]
RX = ROOT / "hil" / "examples" / "morphine-flex.toml"
QUICK = RetryPolicy(reply_timeout_ms=500, attempts=3, reopen_attempts=2, busy_wait_ms=2_000)
START = "2026-03-01T08:30:00"


def junit_failures(report: Path) -> set[str]:
    root = ET.parse(report / "conformance-junit.xml").getroot()
    cases = root.findall("testsuite/testcase")
    assert [case.get("name") for case in cases] == [rule.id for rule in RULES]
    return {case.get("name", "") for case in cases if case.find("failure") is not None}


def serve_strict(serve: Serve, key_file: Path, report: Path, *extra: str) -> ServeProcess:
    pump = serve(
        "--pty", "--keys", str(key_file), "--start-time", START,
        "--conformance", "strict", "--conformance-report", str(report), *extra,
    )  # fmt: skip
    pump.wait_stderr("conformance (strict)")
    return pump


def test_strict_exits_1_after_sessions_that_broke_rules(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    keys, key_file = pump_keys
    report = tmp_path / "report"
    control = f"unix:{tmp_path / 'control.sock'}"
    pump = serve_strict(serve, key_file, report, "--control", control)
    pump.wait_stderr("control API listening")
    link = SerialLink(pump.first_line())
    role_key = keys.key_for(Role.CLINICIAN)
    try:
        # A programmer that commits a digest it computed itself, with nothing reviewed.
        with Programmer(link, keys.serial, Role.CLINICIAN, role_key, policy=QUICK) as bad:
            refused = bad.commit(prescription_digest(PRESCRIPTION))
            assert refused.refusal is RefusalCode.NOTHING_STAGED
        # Another that reads and never closes its session.
        leaves = Programmer(link, keys.serial, Role.CLINICIAN, role_key, policy=QUICK)
        assert isinstance(leaves.info().reply, DeviceInfo)
        with ControlClient(control) as api:
            so_far = api.request("conformance")
    finally:
        link.close()
    assert so_far["enabled"] is True
    assert [v["rule"] for v in so_far["violations"]] == [
        "COMMIT-WITHOUT-STAGE",
        "SESSION-LEFT-OPEN",
    ]
    pump.wait_stderr("conformance: COMMIT-WITHOUT-STAGE (critical):")  # logged as it happened
    assert pump.stop() == 1
    assert "conformance: SESSION-LEFT-OPEN (warning):" in pump.stderr  # found at the end
    assert "conformance: 2 violation(s) of COMMIT-WITHOUT-STAGE, SESSION-LEFT-OPEN" in pump.stderr
    assert "--conformance strict" in pump.stderr
    assert junit_failures(report) == {"COMMIT-WITHOUT-STAGE", "SESSION-LEFT-OPEN"}
    document = json.loads((report / "conformance.json").read_text())
    assert document["passed"] is False
    assert document["sessions"] == 2


def test_strict_exits_0_after_a_conformant_session(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    keys, key_file = pump_keys
    report = tmp_path / "report"
    pump = serve_strict(serve, key_file, report)
    link = SerialLink(pump.first_line())
    try:
        role_key = keys.key_for(Role.CLINICIAN)
        with Programmer(link, keys.serial, Role.CLINICIAN, role_key, policy=QUICK) as clinician:
            assert isinstance(clinician.info().reply, DeviceInfo)
            assert isinstance(clinician.status().reply, Status)
    finally:
        link.close()
    assert pump.stop() == 0
    assert "conformance: 0 violation(s): no rule broken" in pump.stderr
    assert junit_failures(report) == set()


def pumpemu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*pumpemu_command(), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=dict(os.environ, COLUMNS="120"),
    )


def test_the_ctl_visit_breaks_no_rule(serve: Serve, pump_keys: KeyFile, tmp_path: Path) -> None:
    _, key_file = pump_keys
    report = tmp_path / "report"
    control = f"unix:{tmp_path / 'control.sock'}"
    pump = serve_strict(serve, key_file, report, "--clock", "manual", "--control", control)
    port = pump.first_line()
    pump.wait_stderr("control API listening")
    ctl = ("ctl", "--port", port, "--keys", str(key_file))
    assert pumpemu(*ctl, "status").returncode == 0
    assert pumpemu(*ctl, "program", str(RX), "--yes").returncode == 0
    assert pumpemu(*ctl, "--role", "patient", "patient-bolus").returncode == 1  # lockout
    assert pumpemu("time", "advance", "4h", "--control", control).returncode == 0
    assert pumpemu(*ctl, "--role", "patient", "patient-bolus").returncode == 0
    assert pumpemu(*ctl, "--role", "patient", "stop").returncode == 1  # not permitted
    assert pumpemu(*ctl, "--json", "log", "--all").returncode == 0
    assert pump.stop() == 0, pump.stderr
    assert junit_failures(report) == set()


def test_the_demo_breaks_no_rule(tmp_path: Path) -> None:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        main, ["demo", "--out", str(tmp_path), "--days", "3"]
    )
    assert result.exit_code == 0, result.output
    keys = load_keys(str(tmp_path / "pumpemu-demo.keys"))
    violations = judge_capture(read_capture(tmp_path / "pumpemu-demo-capture.jsonl"), keys)
    assert violations == (), [(v.rule, v.detail) for v in violations]


def test_proxy_conformance_on_a_lossy_link_finds_the_reference_programmer_conformant(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    keys, key_file = pump_keys
    pump = serve("--pty", "--keys", str(key_file), "--start-time", START)
    report = tmp_path / "proxy-report"
    proxy = ServeProcess(
        ["--a", "pty", "--b", pump.first_line(), "--seed", "11", "--corrupt", "5%",
         "--drop", "5%", "--duplicate", "5%", "--idle-ms", "20", "--quiet",
         "--conformance", "strict", "--keys", str(key_file),
         "--conformance-report", str(report)],
        tmp_path,
        subcommand="proxy",
    )  # fmt: skip
    try:
        first = proxy.first_line()
        link = SerialLink(first.removeprefix("a="))
        policy = RetryPolicy(
            reply_timeout_ms=80, attempts=6, reopen_attempts=6, busy_wait_ms=20_000
        )
        try:
            role_key = keys.key_for(Role.CLINICIAN)
            with Programmer(link, keys.serial, Role.CLINICIAN, role_key, policy=policy) as p:
                for index in range(60):
                    (p.alarm_test, p.status, p.start, p.stop)[index % 4]()
        finally:
            link.close()
        code = proxy.stop()
    finally:
        proxy.kill()
    assert "faults:" in proxy.stderr
    assert code == 0, proxy.stderr
    assert "conformance: 0 violation(s): no rule broken" in proxy.stderr
    assert junit_failures(report) == set()
    seen = json.loads((report / "conformance.json").read_text())
    assert seen["sessions"] >= 1
    assert seen["frames"]["requests"] >= 60  # it judged the whole run, retries included
    assert seen["unopened"] == 0
    assert pump.stop() == 0

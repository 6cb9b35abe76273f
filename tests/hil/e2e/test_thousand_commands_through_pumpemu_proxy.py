"""The issue-5 acceptance, literally: 1,000 therapy commands through ``pumpemu proxy``.

Three processes and two ptys: ``pumpemu serve --pty``, then ``pumpemu proxy`` between a new
pty and the pump's, then the reference programmer on the proxy's pty. The proxy corrupts,
drops and duplicates frames. Every command must end confirmed-applied or
reported-not-applied, and the pump's own event log, read through the control API, must
agree command id by command id: zero applied twice, zero silently lost (C1, C2).

tests/hil/test_lossy_link_exactly_once.py runs the same check in one process, on the same
proxy engine, where a failure is easier to debug.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from hil.control import ControlClient
from hil.links import SerialLink
from hil.programmer.client import Programmer
from hil.programmer.core import Outcome, Result, RetryPolicy
from protocol.device_state import Role
from protocol.keys import PumpKeys
from tests.hil.e2e.conftest import ServeProcess

pytestmark = [pytest.mark.e2e, pytest.mark.hazard("C1", "C2")]

COMMANDS = 1_000
ROOT = Path(__file__).resolve().parents[3]
COMMAND_EVENTS = {"ALARM_TEST", "THERAPY_STARTED", "THERAPY_STOPPED"}

Serve = Callable[..., ServeProcess]
KeyFile = tuple[PumpKeys, Path]


def fast_session_profile(tmp_path: Path) -> Path:
    """peristaltic-20 with a 2 s idle timeout and a log that holds the whole run.

    A session the programmer gave up on then expires in seconds, not minutes, and the
    oracle can see every application in the log.
    """
    text = (ROOT / "emulator" / "profiles" / "peristaltic-20.toml").read_text()
    text = re.sub(r"(?m)^idle_timeout_s = .*$", "idle_timeout_s = 2", text)
    text = re.sub(r"(?m)^log_capacity = .*$", "log_capacity = 20_000", text)
    text = re.sub(r'(?m)^name = "peristaltic-20"', 'name = "peristaltic-20-ci"', text)
    path = tmp_path / "fast-session.toml"
    path.write_text(text)
    return path


def start_proxy(pump_port: str, cwd: Path) -> ServeProcess:
    """``pumpemu proxy`` between a new pty (printed first as ``a=PATH``) and the pump's."""
    return ServeProcess(
        ["--a", "pty", "--b", pump_port, "--seed", "5", "--corrupt", "5%", "--drop", "5%",
         "--duplicate", "5%", "--idle-ms", "20", "--quiet"],
        cwd,
        subcommand="proxy",
    )  # fmt: skip


def test_a_thousand_commands_through_pumpemu_proxy(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    keys, key_file = pump_keys
    control = f"unix:{tmp_path / 'control.sock'}"
    pump = serve("--pty", "--keys", str(key_file), "--profile", str(fast_session_profile(tmp_path)),
                 "--control", control)  # fmt: skip
    pump_port = pump.first_line()
    proxy = start_proxy(pump_port, tmp_path)
    results: list[Result] = []
    try:
        first = proxy.first_line()
        assert first.startswith("a="), first
        link = SerialLink(first.removeprefix("a="))
        try:
            policy = RetryPolicy(
                reply_timeout_ms=60, attempts=6, reopen_attempts=6, busy_wait_ms=10_000
            )
            with Programmer(link, keys.serial, Role.CLINICIAN, keys.clinician,
                            policy=policy) as programmer:  # fmt: skip
                commands = (programmer.alarm_test, programmer.start, programmer.stop)
                for index in range(COMMANDS):
                    results.append(commands[index % len(commands)]())
        finally:
            link.close()
        with ControlClient(control) as api:
            entries = api.log(0)["entries"]
    finally:
        proxy.stop()
        proxy.kill()
    proxy_log = proxy.stderr

    outcomes = Counter(result.outcome for result in results)
    assert outcomes[Outcome.UNCERTAIN] == 0, outcomes
    assert set(outcomes) <= {Outcome.APPLIED, Outcome.REFUSED, Outcome.NOT_APPLIED}
    applied = Counter(e["value_b"] for e in entries if e["kind"] in COMMAND_EVENTS)
    ids = [getattr(result.request, "command_id") for result in results]  # noqa: B009
    assert len(set(ids)) == COMMANDS
    assert max(applied.values()) == 1, "a command id was applied twice"
    for result, command_id in zip(results, ids, strict=True):
        assert applied[command_id] == (1 if result.outcome is Outcome.APPLIED else 0), result
    # The alarm tests always apply once they get through: a third of the run at least.
    assert outcomes[Outcome.APPLIED] >= COMMANDS // 3
    # The proxy really misbehaved (its summary counts the faults it applied).
    total = re.search(r"faults: .*\(total (\d+)\)", proxy_log)
    assert total is not None, proxy_log
    assert int(total.group(1)) > COMMANDS * 0.05, proxy_log
    assert pump.stop() == 0

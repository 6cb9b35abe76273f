"""``pumpemu scenario run --backend url`` against a ``pumpemu serve`` over a pty
(docs/scenarios.md, "Backends"): with a TCP control API (token file) a built-in scenario
gives the wire backend's verdict and oracle figures; without one, what a real rig cannot do
is skipped with its reason, never passed, and the exit code says so."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hil.cli import main
from hil.key_files import write_key_file
from hil.scenario.command import builtin_scenarios
from hil.scenario.loader import load
from hil.scenario.model import Setup
from hil.scenario.runner import run
from hil.scenario.serve_backend import write_setup_state
from hil.scenario.url_backend import NO_PLANT, NO_TIME, NO_TRUTH
from protocol.keys import PumpKeys, generate_keys
from tests.hil.e2e.conftest import ServeProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
Serve = Callable[..., ServeProcess]
BUILTIN = {s.id: s for s in builtin_scenarios()}


def _pump(tmp_path: Path, setup: Setup) -> tuple[PumpKeys, Path, Path]:
    """A key file, and a serve --state file holding ``setup``'s pump."""
    keys = generate_keys("PE-URL-1", os.urandom(64))
    key_file = tmp_path / "pump.keys"
    write_key_file(key_file, keys)
    state = tmp_path / "pump.state"
    write_setup_state(setup, keys, state, os.urandom)
    return keys, key_file, state


def _scenario_run(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["scenario", "run", *args, "--json"], env=env)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.output)


@pytest.mark.parametrize(
    "scenario_id",
    [
        pytest.param("h05-permanent-stall", id="plant-fault-and-alarm-latency"),
        pytest.param("h17-catheter-leak-invisible-to-refill", id="truth-oracles-and-refill"),
    ],
)
def test_url_with_control_gives_the_wire_verdict_and_figures(
    serve: Serve, tmp_path: Path, scenario_id: str
) -> None:
    scenario = BUILTIN[scenario_id]
    _, key_file, state = _pump(tmp_path, scenario.setup)
    token = tmp_path / "control.token"
    pump = serve("--pty", "--keys", str(key_file), "--state", str(state), "--clock", "manual",
                 "--control", "127.0.0.1:0", "--control-token", str(token))  # fmt: skip
    port = pump.first_line()
    line = pump.wait_stderr("control API listening on 127.0.0.1:")
    address = line.split("listening on ")[1].split(";")[0]
    code, out = _scenario_run(
        "--builtin", "--only", scenario_id, "--backend", "url", "--port", port,
        "--keys", str(key_file), "--control", address, "--control-token", str(token),
    )  # fmt: skip
    (got,) = out["runs"]
    wire = run(scenario, "wire")
    assert (got["verdict"], got["error"]) == ("pass", "")
    assert code == 0
    assert got["backend"] == "url"
    assert got["figures"] == json.loads(json.dumps(wire.figures))
    shown = {True: "held", False: "failed", None: "skipped"}
    assert [f["verdict"] for f in got["findings"]] == [shown[f.ok] for f in wire.findings]


RIG = """\
id = "rig-visit"
title = "What a rig without a control API can run: requests now, nothing later"
hazards = ["H11"]

[setup.prescription]
drug = "morphine"
concentration = "10 mg/mL"
mode = "continuous"
rate = "0.5 mL/day"
low_reservoir_threshold = "2 mL"

[[steps]]
do = "program"
prescription = { drug = "morphine", concentration = "10 mg/mL", mode = "continuous", \
rate = "0.5 mL/day", low_reservoir_threshold = "7 mL" }
expect = { outcome = "refused", refusal = "INVALID_FIELD", field = "LOW_RESERVOIR_THRESHOLD" }

[[steps]]
do = "interrogate"
expect = { state = "CONTINUOUS" }

[[steps]]
do = "fault"
name = "tear"
fault = "leak"
params = { ppm = 500000 }

[[steps]]
at = "1d"
do = "clinician-bolus"
dose = "0.1 mL"
duration = "1 h"
expect = { outcome = "applied" }

[[oracles]]
check = "dose"
from = "0d"
to = "1d"
patient = "2%"

[[oracles]]
check = "exactly-once"
"""


def test_url_without_control_skips_what_a_rig_cannot_do(serve: Serve, tmp_path: Path) -> None:
    rig = tmp_path / "rig.toml"
    rig.write_text(RIG, encoding="utf-8")
    (scenario,) = load(rig)
    _, key_file, state = _pump(tmp_path, scenario.setup)
    # A real clock and no control API: a rig as a device team has it.
    port = serve("--pty", "--keys", str(key_file), "--state", str(state)).first_line()
    args = [str(rig), "--backend", "url", "--port", port, "--keys", str(key_file)]
    code, out = _scenario_run(*args, env={"PUMPEMU_CONTROL": ""})
    (got,) = out["runs"]
    assert got["verdict"] == "skip"
    assert code == 1  # skipped in part is not a pass
    by_what = [(f["where"], f["what"], f["verdict"], f["happened"]) for f in got["findings"]]
    held = [f for f in by_what if f[2] == "held"]
    skipped = {f[1]: f[3] for f in by_what if f[2] == "skipped"}
    assert not [f for f in by_what if f[2] == "failed"], by_what
    # The requests at 0d 00:00 ran on the rig, over the wire, and were judged.
    assert {f[1] for f in held} >= {"outcome", "refusal", "field", "state"}
    # The fault, the step a day later, and the dose oracle: skipped with their reasons.
    reasons = [f[3] for f in by_what if f[2] == "skipped"]
    assert f"skipped: {NO_PLANT}" in reasons
    assert f"skipped: at 1d 00:00: {NO_TIME}" in reasons
    assert skipped["dose"] == f"skipped: {NO_TRUTH}"
    assert "oracle2.exactly-once" in got["figures"]
    assert "oracle1.dose" not in got["figures"]  # no figure from a check not judged

    # Skips accepted on request; still reported as skip.
    code, again = _scenario_run(*args, "--allow-skips", env={"PUMPEMU_CONTROL": ""})
    assert code == 0
    assert again["runs"][0]["verdict"] == "skip"


def test_url_without_control_refuses_a_pump_not_in_the_setup(serve: Serve, tmp_path: Path) -> None:
    scenario = BUILTIN["h16-low-reservoir-alarm-at-4-ml"]  # continuous morphine at 0.5 mL/day
    stopped = BUILTIN["h03-priming-fills-dead-volume"].setup  # its pump is stopped
    _, key_file, state = _pump(tmp_path, stopped)
    port = serve("--pty", "--keys", str(key_file), "--state", str(state)).first_line()
    code, out = _scenario_run(
        "--builtin", "--only", scenario.id, "--backend", "url", "--port", port,
        "--keys", str(key_file), env={"PUMPEMU_CONTROL": ""},
    )  # fmt: skip
    (got,) = out["runs"]
    assert got["verdict"] == "error"
    assert "not the scenario's [setup] one" in got["error"]
    assert code == 1

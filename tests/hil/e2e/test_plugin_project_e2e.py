"""The pytest plugin as a test engineer meets it: a project outside the repository, with no
conftest.py, that uses the installed plugin's fixtures and markers, has a scenario file
collected as a test, runs under pytest-xdist (-n 2) and writes JUnit with the hazard
properties (docs/pytest-plugin.md)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

TEST_FILE = """
import pytest

from hil.programmer.core import Outcome


@pytest.mark.hazard("C4")
@pytest.mark.role("patient")
def test_a_patient_cannot_stop_therapy(programmer):
    assert programmer.stop().outcome is Outcome.REFUSED


@pytest.mark.hazard("H5")
@pytest.mark.needs_plant_control
def test_a_stall_is_seen(programmer, plant_faults, pump_clock):
    plant_faults.fault("stall")
    pump_clock.advance(3_600)
    assert programmer.status().outcome is Outcome.ANSWERED


def test_the_pump_fixture(pump):
    assert pump.status().state.name == "STOPPED"
"""

SCENARIO = """
id = "project-leak"
title = "A small leak for a day: the firmware sees nothing"
hazards = ["H17"]

[setup]
PRESCRIPTION

[[steps]]
at = "0d 01:00"
do = "fault"
fault = "leak"
params = { ppm = 100000 }

[[steps]]
at = "1d"
do = "advance"
expect = { alarms = [] }
"""


SCENARIO = SCENARIO.replace(
    "PRESCRIPTION",
    'prescription = { drug = "morphine", concentration = "10 mg/mL", mode = "continuous", '
    'rate = "0.5 mL/day", low_reservoir_threshold = "2 mL" }',
)


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_a_project_without_conftest_uses_the_plugin_under_xdist(tmp_path: Path) -> None:
    (tmp_path / "test_pump.py").write_text(TEST_FILE)
    (tmp_path / "leak.toml").write_text(SCENARIO)
    junit = tmp_path / "junit.xml"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
         f"--junitxml={junit}", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "4 passed" in run.stdout
    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == {
        "test_a_patient_cannot_stop_therapy",
        "test_a_stall_is_seen",
        "test_the_pump_fixture",
        "project-leak",
    }

    def properties(name: str) -> dict[str, str | None]:
        return {p.get("name") or "": p.get("value") for p in cases[name].iter("property")}

    assert properties("test_a_stall_is_seen")["hazards"] == "H5"
    assert properties("project-leak")["hazards"] == "H17"
    assert properties("project-leak")["seed"] is not None
    assert (
        "oracle" in (properties("project-leak")["figures"] or "")
        or properties("project-leak")["figures"] == "{}"
    )

"""hil/pytest_plugin.py: the hazard marker is checked and --hazard selects exactly.

pytester runs pytest in-process on a generated test file, with pumpemu's plugin loaded the
way an installed pumpemu loads it: through its pytest11 entry point."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hil.hazards import HAZARDS

SAMPLE = """
import pytest

@pytest.mark.hazard("H5")
def test_stall(): pass

@pytest.mark.hazard("H15")
def test_valve(): pass

@pytest.mark.hazard("H1", "H5")
def test_pocket_and_stall(): pass

@pytest.mark.hazard("H13")
def test_occlusion(): pass

def test_unmarked(): pass
"""


@pytest.mark.parametrize(
    ("args", "selected"),
    [
        (["--hazard", "H5"], {"test_stall", "test_pocket_and_stall"}),
        (["--hazard", "H1"], {"test_pocket_and_stall"}),
        (["--hazard", "H13", "--hazard", "H15"], {"test_valve", "test_occlusion"}),
        (["-m", "hazard", "-k", "H5"], {"test_stall", "test_pocket_and_stall"}),
        (
            ["-m", "hazard"],
            {"test_stall", "test_valve", "test_pocket_and_stall", "test_occlusion"},
        ),
        (["-k", "H1"], {"test_valve", "test_pocket_and_stall", "test_occlusion"}),
    ],
    ids=[
        "hazard-H5",
        "hazard-H1-exact",
        "two-hazards",
        "marker-and-keyword",
        "marker",
        "k-substring",
    ],
)
def test_selection_by_hazard(
    pytester: pytest.Pytester, args: list[str], selected: set[str]
) -> None:
    pytester.makepyfile(test_sample=SAMPLE)
    recorder = pytester.inline_run(*args)
    passed = {
        report.nodeid.split("::")[-1]
        for report in recorder.getreports("pytest_runtest_logreport")
        if report.when == "call" and report.passed
    }
    assert passed == selected


@pytest.mark.parametrize(
    "marker",
    ['"H18"', '"h5"', "", '"C6"', "5"],
    ids=["H18", "lower-case", "no-id", "C6", "not-a-string"],
)
def test_an_unknown_hazard_id_is_a_usage_error(pytester: pytest.Pytester, marker: str) -> None:
    pytester.makepyfile(
        test_typo=f"import pytest\n\n@pytest.mark.hazard({marker})\ndef test_x(): pass\n"
    )
    result = pytester.runpytest_inprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "needs IDs of docs/hazards.md" in result.stderr.str()


def test_an_unknown_hazard_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sample=SAMPLE)
    result = pytester.runpytest_inprocess("--hazard", "H99")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--hazard H99: not a hazard ID" in result.stderr.str()


def test_every_hazard_marker_in_this_repository_names_a_catalogued_hazard(
    request: pytest.FixtureRequest,
) -> None:
    """Our own suite runs with the plugin: a session that collected this test checked every
    marker already; here we check the plugin is the one registered."""
    plugin = request.config.pluginmanager.get_plugin("pumpemu")
    assert plugin is not None, "pumpemu's pytest11 entry point is not installed"
    assert set(HAZARDS) >= {"H1", "H17", "C1", "C5"}


def test_the_documented_example_runs_with_the_installed_plugin(pytester: pytest.Pytester) -> None:
    """docs/pytest-plugin.md's example, as a user's test file: no conftest.py."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "pytest-plugin.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", doc, re.DOTALL)
    pytester.makepyfile(test_user=code)
    recorder = pytester.inline_run()
    passed, skipped, failed = recorder.listoutcomes()
    assert (len(passed), len(skipped), len(failed)) == (2, 0, 0)


FAILING_SCENARIO = """
id = "wrong-state"
title = "expects a stopped pump that runs"
hazards = ["H11"]
[setup]
PRESCRIPTION
[[steps]]
at = "1d"
do = "interrogate"
expect = { state = "STOPPED" }
""".replace(
    "PRESCRIPTION",
    'prescription = { drug = "morphine", concentration = "10 mg/mL", mode = "continuous", '
    'rate = "0.5 mL/day", low_reservoir_threshold = "2 mL" }',
)


def test_a_scenario_file_is_a_test_whose_failure_reads_like_the_runner(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "wrong.toml").write_text(FAILING_SCENARIO)
    (pytester.path / "pyproject.toml").write_text('[project]\nname = "x"\n')  # not a scenario
    result = pytester.runpytest_inprocess("--hazard", "H11")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "scenario wrong-state [wire]: fail" in text
    assert "expected: STOPPED" in text
    assert "happened: CONTINUOUS" in text

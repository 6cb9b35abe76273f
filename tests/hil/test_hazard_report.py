"""Hazard traceability: hil/hazard_report.py, the plugin's --hazard-report and
``pumpemu hazards report``."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from hil.cli import main
from hil.hazard_report import CoverageRecord, build_rows, mitigations_from_doc, render
from hil.hazards import HAZARDS

DOC = Path(__file__).resolve().parents[2] / "docs" / "hazards.md"


def covered_all_but(missing: set[str]) -> list[CoverageRecord]:
    return [
        CoverageRecord(f"tests/test_x.py::test_{h}", (h,), "passed")
        for h in HAZARDS
        if h not in missing
    ]


def test_an_uncovered_hazard_is_listed_first_and_a_failed_test_does_not_cover() -> None:
    records = [
        *covered_all_but({"H5", "C3"}),
        CoverageRecord("tests/test_x.py::test_stall", ("H5",), "failed"),
    ]
    rows = build_rows(records, mitigations_from_doc(DOC.read_text()))
    uncovered = [row.hazard for row in rows if not row.covered]
    assert uncovered == ["H5", "C3"]
    assert [row.hazard for row in rows[:2]] == ["H5", "C3"]
    assert rows[0].tests[0].outcome == "failed"


def test_a_hazard_out_of_scope_needs_no_test() -> None:
    mitigations = dict.fromkeys(HAZARDS, "tested") | {"H2": "out of scope for the pump"}
    rows = build_rows(covered_all_but({"H2"}), mitigations)
    assert all(row.covered for row in rows)
    h2 = next(row for row in rows if row.hazard == "H2")
    assert not h2.in_scope


def test_every_mitigation_of_the_document_is_read() -> None:
    assert set(mitigations_from_doc(DOC.read_text())) == set(HAZARDS)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows = 0
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows += 1


@pytest.mark.parametrize("fmt", ["json", "md", "html"])
def test_each_format_names_every_hazard(fmt: str) -> None:
    rows = build_rows(covered_all_but({"H9"}), mitigations_from_doc(DOC.read_text()))
    text = render(rows, fmt)
    for hazard in HAZARDS:
        assert hazard in text
    if fmt == "json":
        assert json.loads(text)["uncovered"] == ["H9"]
    elif fmt == "html":
        parser = _Tags()
        parser.feed(text)
        assert parser.rows == len(HAZARDS) + 1  # a header row and one per hazard
    else:
        assert "not covered: H9" in text


PROJECT = """
import pytest

@pytest.mark.hazard("H5")
def test_stall(): pass

@pytest.mark.hazard("H1", "H13")
def test_pocket_and_occlusion(): pass

@pytest.mark.hazard("H13")
def test_occlusion_fails(): assert False
"""


def test_the_plugin_writes_the_report_of_a_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_project=PROJECT)
    report = pytester.path / "run.json"
    pytester.inline_run(f"--hazard-report={report}")
    data = json.loads(report.read_text())
    outcomes = {t["nodeid"].split("::")[-1]: t["outcome"] for t in data["tests"]}
    assert outcomes == {
        "test_stall": "passed",
        "test_pocket_and_occlusion": "passed",
        "test_occlusion_fails": "failed",
    }
    by_hazard = {row["hazard"]: row for row in data["report"]["hazards"]}
    assert by_hazard["H13"]["covered"] is True  # one passing test of two is enough
    assert by_hazard["H5"]["passed"] == 1
    assert "H17" in data["report"]["uncovered"]


def test_strict_fails_when_a_hazards_only_test_is_removed(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """Every hazard has a test; removing H5's only one makes --strict fail on H5."""
    tests = "\n".join(
        f'@pytest.mark.hazard("{h}")\ndef test_{h}(): pass\n' for h in HAZARDS if h != "H2"
    )
    pytester.makepyfile(test_all="import pytest\n\n" + tests)
    complete = tmp_path / "complete.json"
    pytester.inline_run(f"--hazard-report={complete}")
    pytester.makepyfile(test_all="import pytest\n\n" + tests.replace('("H5")', '("H6")'))
    without_h5 = tmp_path / "without-h5.json"
    pytester.inline_run(f"--hazard-report={without_h5}")
    runner = CliRunner()
    doc = ["--hazards-doc", str(DOC)]
    passing = runner.invoke(main, ["hazards", "report", "--from", str(complete), "--strict", *doc])
    assert passing.exit_code == 0, passing.output
    failing = runner.invoke(
        main, ["hazards", "report", "--from", str(without_h5), "--strict", *doc]
    )
    assert failing.exit_code == 1
    assert "not covered by a passing test: H5" in failing.output


def test_a_bad_report_file_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    result = CliRunner().invoke(main, ["hazards", "report", "--from", str(bad)])
    assert result.exit_code == 2
    assert "not a hazard report" in result.output
    assert "Traceback" not in result.output

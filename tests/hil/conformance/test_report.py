"""The reports: JSON, markdown and JUnit XML (parsed), one test case per rule."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from hil.conformance import REPORT_FILES, RULES, report_json, report_junit, write_reports
from hil.conformance.recorder import ConformanceRecorder
from tests.hil.conformance.rig import KEYS, Rig
from tests.hil.conformance.test_rules import bad_retry_new_id, good_retry_new_id


def test_junit_has_one_case_per_rule_failed_where_violated() -> None:
    rig = Rig()
    bad_retry_new_id(rig)
    root = ET.fromstring(report_junit(rig.finish()))
    [suite] = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [case.get("name") for case in cases] == [rule.id for rule in RULES]
    failed = {case.get("name") for case in cases if case.find("failure") is not None}
    assert failed == {"RETRY-NEW-ID"}
    assert suite.get("failures") == "1"
    assert suite.get("tests") == str(len(RULES))
    failure = next(c for c in cases if c.get("name") == "RETRY-NEW-ID").find("failure")
    assert failure is not None
    assert failure.get("type") == "critical"
    assert "ALARM_TEST" in (failure.text or "")


def test_a_clean_run_passes_every_case() -> None:
    rig = Rig()
    good_retry_new_id(rig)
    document = report_json(rig.finish())
    assert document["passed"] is True
    assert {rule["verdict"] for rule in document["rules"]} == {"passed"}
    root = ET.fromstring(report_junit(()))
    assert root.find("testsuite/testcase/failure") is None


def test_write_reports_writes_the_three_files(tmp_path: Path) -> None:
    rig = Rig()
    bad_retry_new_id(rig)
    paths = write_reports(tmp_path / "out", rig.finish())
    assert [p.name for p in paths] == list(REPORT_FILES)
    document = json.loads((tmp_path / "out" / "conformance.json").read_text())
    assert document["format"] == "pumpemu-conformance/1"
    [violation] = document["violations"]
    assert violation["rule"] == "RETRY-NEW-ID"
    assert [f["opcode"] for f in violation["frames"]] == ["ALARM_TEST", "ALARM_TEST"]
    markdown = (tmp_path / "out" / "conformance.md").read_text()
    assert "| RETRY-NEW-ID | critical | violated (1) |" in markdown
    ET.parse(tmp_path / "out" / "conformance-junit.xml")


def test_the_recorder_reports_verdicts_so_far_then_writes(tmp_path: Path) -> None:
    recorder = ConformanceRecorder(KEYS, mode="strict", report_dir=tmp_path)
    rig = Rig()
    rig.monitor = recorder._monitor
    rig.open()
    so_far = recorder.verdicts()
    assert so_far["violations"][0]["rule"] == "SESSION-LEFT-OPEN"  # open at this moment
    assert so_far["sessions"] == 1
    rig.close()
    assert recorder.verdicts()["passed"] is True
    assert recorder.finish(rig.now) == ()
    assert recorder.strict
    assert (tmp_path / "conformance-junit.xml").exists()


def test_the_recorder_logs_each_violation_once_as_it_is_found(tmp_path: Path) -> None:
    lines: list[str] = []
    recorder = ConformanceRecorder(KEYS, report_dir=tmp_path, log=lines.append)
    rig = Rig()
    rig.monitor.feed = recorder.feed  # type: ignore[method-assign]
    bad_retry_new_id(rig)
    assert len(lines) == 1
    assert lines[0].startswith("conformance: RETRY-NEW-ID (critical): ALARM_TEST with command id")
    recorder.finish(rig.now)
    assert len(lines) == 1

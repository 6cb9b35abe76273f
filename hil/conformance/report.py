"""Conformance reports: JSON, markdown and JUnit XML from a monitor's verdicts.

One report per run (docs/conformance.md, "Reports"). The JUnit file has one test suite,
``pumpemu-conformance``, with one test case per rule (``classname`` ``conformance``, name the
rule id), failed with one ``<failure>`` per violation of it, so a programmer team's CI shows
a broken rule as a failed test.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hil.conformance.rules import RULES, RuleInfo, Violation

__all__ = [
    "REPORT_FILES",
    "REPORT_FORMAT",
    "report_json",
    "report_junit",
    "report_markdown",
    "violation_json",
    "write_reports",
]

REPORT_FORMAT = "pumpemu-conformance/1"
REPORT_FILES = ("conformance.json", "conformance.md", "conformance-junit.xml")
"""The files ``write_reports`` writes into its directory."""


def violation_json(violation: Violation) -> dict[str, Any]:
    """One violation as the JSON report and the control API's ``conformance`` event show it."""
    return {
        "rule": violation.rule,
        "severity": violation.severity.value,
        "section": violation.section,
        "detail": violation.detail,
        "link_ms": violation.link_ms,
        "frames": [
            {
                "direction": f.direction,
                "seq": f.seq,
                "opcode": f.opcode,
                "link_ms": f.link_ms,
                "session": f.session,
            }
            for f in violation.frames
        ],
    }


def report_json(
    violations: Sequence[Violation], rules: Sequence[RuleInfo] = RULES
) -> dict[str, Any]:
    """The report as a JSON-ready document: every rule with its verdict, every violation."""
    broken = {v.rule for v in violations}
    return {
        "format": REPORT_FORMAT,
        "passed": not violations,
        "rules": [
            {
                "id": rule.id,
                "title": rule.title,
                "section": rule.section,
                "severity": rule.severity.value,
                "verdict": "violated" if rule.id in broken else "passed",
                "violations": sum(1 for v in violations if v.rule == rule.id),
            }
            for rule in rules
        ],
        "violations": [violation_json(v) for v in violations],
    }


def report_markdown(violations: Sequence[Violation], rules: Sequence[RuleInfo] = RULES) -> str:
    broken = {v.rule for v in violations}
    verdict = (
        "PASSED: no rule broken"
        if not violations
        else (f"FAILED: {len(broken)} rule(s) broken, {len(violations)} violation(s)")
    )
    lines = [
        "# pumpemu conformance report",
        "",
        verdict,
        "",
        "| rule | severity | verdict | section |",
        "|---|---|---|---|",
    ]
    for rule in rules:
        count = sum(1 for v in violations if v.rule == rule.id)
        mark = f"violated ({count})" if count else "passed"
        lines.append(f"| {rule.id} | {rule.severity.value} | {mark} | {rule.section} |")
    for violation in violations:
        lines += ["", f"## {violation.rule} at link time {violation.link_ms} ms", ""]
        lines.append(f"{violation.severity.value}: {violation.detail}")
        lines.append("")
        lines.append(f"Section: {violation.section}")
        if violation.frames:
            lines += [
                "",
                "| direction | session | SEQ | opcode | link ms |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {f.direction} | {f.session} | {f.seq} | {f.opcode} | {f.link_ms} |"
                for f in violation.frames
            ]
    return "\n".join(lines) + "\n"


def report_junit(violations: Sequence[Violation], rules: Sequence[RuleInfo] = RULES) -> str:
    """JUnit XML: one test case per rule, failed where violated."""
    failures = sum(1 for rule in rules if any(v.rule == rule.id for v in violations))
    suite = ET.Element(
        "testsuite",
        {
            "name": "pumpemu-conformance",
            "tests": str(len(rules)),
            "failures": str(failures),
            "errors": "0",
            "skipped": "0",
        },
    )
    for rule in rules:
        case = ET.SubElement(suite, "testcase", {"classname": "conformance", "name": rule.id})
        for violation in (v for v in violations if v.rule == rule.id):
            frames = ", ".join(
                f"{f.direction} session {f.session} SEQ {f.seq} {f.opcode} at {f.link_ms} ms"
                for f in violation.frames
            )
            failure = ET.SubElement(
                case,
                "failure",
                {"message": violation.detail, "type": violation.severity.value},
            )
            failure.text = f"{violation.section}\n{violation.detail}\nframes: {frames or 'none'}"
    suites = ET.Element("testsuites")
    suites.append(suite)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


def write_reports(
    directory: str | os.PathLike[str],
    violations: Sequence[Violation],
    rules: Sequence[RuleInfo] = RULES,
    *,
    extra: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write the three reports into ``directory`` (created if missing); their paths.
    ``extra`` adds fields to the JSON report (the recorder adds what the monitor saw)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    texts = (
        json.dumps({**report_json(violations, rules), **(extra or {})}, indent=2) + "\n",
        report_markdown(violations, rules),
        report_junit(violations, rules),
    )
    paths = []
    for name, text in zip(REPORT_FILES, texts, strict=True):
        path = folder / name
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        paths.append(path)
    return paths

"""Hazard traceability: hazard -> mitigation -> the tests that cover it -> their outcomes.

The artefact a reviewer of a safety case reads (docs/hazards.md, "Traceability"). The
pytest plugin records, for every test marked ``@pytest.mark.hazard``, its outcome
(``pytest --hazard-report FILE``); this module turns those records into one report as
JSON, markdown or HTML. A hazard in scope with no passing test is listed first, and makes a
strict report fail.

Pure functions of the records: no I/O here (the plugin and ``pumpemu hazards`` write files).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hil.hazards import HAZARDS

__all__ = [
    "FORMATS",
    "CoverageRecord",
    "HazardRow",
    "build_rows",
    "format_of",
    "mitigations_from_doc",
    "read_records",
    "render",
]

FORMATS = ("json", "md", "html")

OUT_OF_SCOPE_MARK = "out of scope"
"""A hazard whose mitigation in docs/hazards.md says this needs no test."""


@dataclass(frozen=True, slots=True)
class CoverageRecord:
    """One test (or scenario) that names hazards, and how it ended."""

    nodeid: str
    hazards: tuple[str, ...]
    outcome: str
    """passed, failed, skipped or error."""


@dataclass(frozen=True, slots=True)
class HazardRow:
    hazard: str
    name: str
    mitigation: str
    in_scope: bool
    tests: tuple[CoverageRecord, ...]

    @property
    def passed(self) -> int:
        return sum(1 for t in self.tests if t.outcome == "passed")

    @property
    def covered(self) -> bool:
        """At least one test of the hazard passed (an out-of-scope hazard needs none)."""
        return self.passed > 0 or not self.in_scope


def mitigations_from_doc(text: str) -> dict[str, str]:
    """Hazard ID -> the "what the emulator does" cell of docs/hazards.md's table."""
    rows = re.findall(r"^\| (H\d+|C\d+) \| [^|]+? \| (.+?) \|", text, re.MULTILINE)
    return dict(rows)


def read_records(data: Any) -> list[CoverageRecord]:
    """The records a ``--hazard-report`` JSON holds (its ``tests`` list)."""
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        raise ValueError("not a hazard report: no 'tests' list")
    records = []
    for item in data["tests"]:
        records.append(
            CoverageRecord(str(item["nodeid"]), tuple(item["hazards"]), str(item["outcome"]))
        )
    return records


def build_rows(records: list[CoverageRecord], mitigations: dict[str, str]) -> list[HazardRow]:
    """One row per catalogued hazard, uncovered in-scope hazards first, then in the
    catalogue's order."""
    rows = []
    for hazard, name in HAZARDS.items():
        mitigation = mitigations.get(hazard, "")
        rows.append(
            HazardRow(
                hazard=hazard,
                name=name,
                mitigation=mitigation,
                in_scope=OUT_OF_SCOPE_MARK not in mitigation.lower(),
                tests=tuple(r for r in records if hazard in r.hazards),
            )
        )
    order = {hazard: i for i, hazard in enumerate(HAZARDS)}
    return sorted(rows, key=lambda row: (row.covered, order[row.hazard]))


def render(rows: list[HazardRow], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(
            {
                "uncovered": [r.hazard for r in rows if not r.covered],
                "hazards": [
                    {
                        "hazard": r.hazard,
                        "name": r.name,
                        "mitigation": r.mitigation,
                        "in_scope": r.in_scope,
                        "covered": r.covered,
                        "passed": r.passed,
                        "tests": [{"nodeid": t.nodeid, "outcome": t.outcome} for t in r.tests],
                    }
                    for r in rows
                ],
            },
            indent=2,
        )
    if fmt == "md":
        return _markdown(rows)
    if fmt == "html":
        return _html(rows)
    raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


def _verdict(row: HazardRow) -> str:
    if not row.in_scope:
        return "out of scope"
    return f"covered ({row.passed} passed)" if row.covered else "NOT COVERED"


def _markdown(rows: list[HazardRow]) -> str:
    uncovered = [r.hazard for r in rows if not r.covered]
    lines = [
        "# Hazard traceability",
        "",
        f"{len(rows) - len(uncovered)} of {len(rows)} hazards covered"
        + (f"; not covered: {', '.join(uncovered)}" if uncovered else "")
        + ".",
        "",
        "| hazard | verdict | mitigation | tests (outcome) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        tests = "<br>".join(f"`{t.nodeid}` ({t.outcome})" for t in r.tests) or "-"
        mitigation = r.mitigation.replace("|", "\\|") or "-"
        lines.append(f"| {r.hazard} {r.name} | {_verdict(r)} | {mitigation} | {tests} |")
    return "\n".join(lines) + "\n"


def _html(rows: list[HazardRow]) -> str:
    uncovered = [r.hazard for r in rows if not r.covered]
    body = []
    for r in rows:
        tests = "".join(
            f"<li class='{html.escape(t.outcome)}'><code>{html.escape(t.nodeid)}</code> "
            f"({html.escape(t.outcome)})</li>"
            for t in r.tests
        )
        body.append(
            f"<tr class='{'covered' if r.covered else 'uncovered'}'>"
            f"<td>{html.escape(r.hazard)}</td><td>{html.escape(r.name)}</td>"
            f"<td>{html.escape(_verdict(r))}</td><td>{html.escape(r.mitigation)}</td>"
            f"<td><ul>{tests}</ul></td></tr>"
        )
    summary = f"{len(rows) - len(uncovered)} of {len(rows)} hazards covered" + (
        f"; not covered: {', '.join(uncovered)}" if uncovered else ""
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Hazard traceability</title><style>"
        "body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #999;padding:4px;vertical-align:top}"
        "tr.uncovered{background:#fdd}li.failed,li.error{color:#a00}"
        "</style></head><body><h1>Hazard traceability</h1>"
        f"<p>{html.escape(summary)}</p><table><thead><tr><th>ID</th><th>hazard</th>"
        "<th>verdict</th><th>mitigation</th><th>tests</th></tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table></body></html>\n"
    )


def format_of(path: Path) -> str:
    """The format a report file's suffix asks for (.json, .md, .html)."""
    suffix = path.suffix.lower().lstrip(".")
    return {"markdown": "md", "htm": "html"}.get(suffix, suffix)

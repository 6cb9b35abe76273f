"""Verdicts out: a rich table, per failure the step or oracle, what was expected, what
happened, and belief beside truth at that instant; JSON and JUnit XML for CI
(docs/scenarios.md, "Output")."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from xml.etree import ElementTree as ET

from rich.console import Console
from rich.table import Table
from rich.text import Text

from hil.scenario.oracles import Finding, Sample, fmt_time
from hil.scenario.runner import RunResult

VERDICT_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow", "error": "bold red"}


def _sample_json(sample: Sample | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    return {
        "t": fmt_time(sample.t_ms),
        "t_ms": sample.t_ms,
        "state": sample.state,
        "reservoir_belief_nl": sample.reservoir_belief_nl,
        "reservoir_truth_nl": sample.reservoir_truth_nl if sample.truth_read else None,
        "delivered_believed_nl": sample.believed_nl,
        "delivered_to_patient_nl": sample.patient_nl if sample.truth_read else None,
    }


def _finding_json(f: Finding) -> dict[str, Any]:
    return {
        "where": f.where,
        "what": f.what,
        "verdict": {True: "held", False: "failed", None: "skipped"}[f.ok],
        "expected": f.expected,
        "happened": f.happened,
        "belief_vs_truth": _sample_json(f.at),
    }


def to_json(results: Sequence[RunResult]) -> dict[str, Any]:
    return {
        "ok": all(r.verdict == "pass" for r in results),
        "counts": {v: sum(r.verdict == v for r in results) for v in VERDICT_STYLE},
        "runs": [
            {
                "id": r.scenario.id,
                "title": r.scenario.title,
                "file": r.scenario.path,
                "hazards": list(r.scenario.hazards),
                "seed": r.scenario.seed,
                "sweep": dict(r.scenario.sweep),
                "backend": r.backend,
                "verdict": r.verdict,
                "error": r.error,
                "findings": [_finding_json(f) for f in r.findings],
                "figures": r.figures,
            }
            for r in results
        ],
    }


def print_table(results: Sequence[RunResult], console: Console) -> None:
    table = Table(title="scenario verdicts", show_lines=False)
    table.add_column("verdict")
    table.add_column("scenario")
    table.add_column("hazards")
    table.add_column("backend")
    table.add_column("checks", justify="right")
    for r in results:
        held = sum(f.ok is True for f in r.findings)
        style = VERDICT_STYLE[r.verdict]
        table.add_row(
            f"[{style}]{r.verdict.upper()}[/]",
            r.scenario.id,
            " ".join(r.scenario.hazards),
            r.backend,
            f"{held}/{len(r.findings)}",
        )
    console.print(table)

    def line(text: str, style: str = "") -> None:
        # Evidence lines are never wrapped or read as markup: a reviewer greps them.
        console.print(Text(text, style=style), soft_wrap=True)

    for r in results:
        if r.verdict == "error":
            line(f"ERROR {r.scenario.id} [{r.backend}]: {r.error}", "bold red")
        for f in r.findings:
            if f.ok is True:
                continue
            label = "FAILED" if f.ok is False else "SKIPPED"
            line(f"{label} {r.scenario.id} [{r.backend}]: {f.where}: {f.what}", "bold")
            line(f"    expected: {f.expected}")
            line(f"    happened: {f.happened}")
            if f.at is not None:
                line(f"    {f.at.describe()}")
    counts = to_json(results)["counts"]
    console.print(", ".join(f"{n} {v}" for v, n in counts.items() if n))


def write_junit(results: Sequence[RunResult], path: str) -> None:
    suite = ET.Element(
        "testsuite",
        name="pumpemu scenarios",
        tests=str(len(results)),
        failures=str(sum(r.verdict == "fail" for r in results)),
        errors=str(sum(r.verdict == "error" for r in results)),
        skipped=str(sum(r.verdict == "skip" for r in results)),
    )
    for r in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"scenario.{r.backend}",
            name=r.scenario.id,
            file=r.scenario.path,
        )
        failed = [f for f in r.findings if f.ok is False]
        skipped = [f for f in r.findings if f.ok is None]
        if r.verdict == "error":
            ET.SubElement(case, "error", message=r.error)
        elif failed:
            text = "\n".join(
                f"{f.where}: {f.what}: expected {f.expected}; happened {f.happened}"
                + (f"; {f.at.describe()}" if f.at else "")
                for f in failed
            )
            ET.SubElement(case, "failure", message=f"{len(failed)} check(s) failed").text = text
        elif skipped:
            ET.SubElement(case, "skipped", message="; ".join(f.happened for f in skipped))
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def dumps(results: Sequence[RunResult]) -> str:
    return json.dumps(to_json(results), indent=2, sort_keys=False)

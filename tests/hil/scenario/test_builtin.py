"""The built-in scenario library: it covers every in-scope hazard of docs/hazards.md and
passes on the wire backend (the default test suite runs it all, in about a second)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hil.cli import main
from hil.hazard_report import OUT_OF_SCOPE_MARK, mitigations_from_doc
from hil.hazards import HAZARDS
from hil.scenario.command import builtin_paths, builtin_scenarios
from hil.scenario.runner import run

ROOT = Path(__file__).resolve().parents[3]


def in_scope_hazards() -> set[str]:
    """Every hazard docs/hazards.md does not mark out of scope (hil/hazard_report.py's rule)."""
    text = (ROOT / "docs" / "hazards.md").read_text(encoding="utf-8")
    mitigations = mitigations_from_doc(text)
    return {h for h in HAZARDS if OUT_OF_SCOPE_MARK not in mitigations.get(h, "").lower()}


def test_every_in_scope_hazard_has_a_builtin_scenario() -> None:
    covered = {h for s in builtin_scenarios() for h in s.hazards}
    missing = sorted(in_scope_hazards() - covered)
    assert missing == []
    assert len(in_scope_hazards()) >= 20


def test_builtin_ids_are_unique_and_files_are_package_data() -> None:
    scenarios = builtin_scenarios()
    assert len({s.id for s in scenarios}) == len(scenarios)
    paths = builtin_paths()
    assert all(p.parent == ROOT / "hil" / "scenario" / "builtin" for p in paths)
    assert len(paths) >= 20


def test_docs_hazards_md_links_each_hazard_to_its_scenarios() -> None:
    text = (ROOT / "docs" / "hazards.md").read_text(encoding="utf-8")
    for scenario in builtin_scenarios():
        assert scenario.id in text, scenario.id


def test_run_builtin_on_the_wire_backend_passes() -> None:
    result = CliRunner().invoke(main, ["scenario", "run", "--builtin", "--json"])
    report = json.loads(result.output)
    failed = [
        (r["id"], [f for f in r["findings"] if f["verdict"] != "held"])
        for r in report["runs"]
        if r["verdict"] != "pass"
    ]
    assert failed == []
    assert result.exit_code == 0
    assert report["counts"]["pass"] == len(builtin_scenarios())


@pytest.mark.parametrize("scenario", builtin_scenarios(), ids=lambda s: s.id)
def test_api_backend_passes_or_skips_only_for_the_link(scenario: object) -> None:
    result = run(scenario, "api")  # type: ignore[arg-type]
    if result.verdict == "skip":
        reasons = {f.happened for f in result.findings if f.ok is None}
        assert all("link" in r or "roles" in r for r in reasons), reasons
        assert all(f.ok is not False for f in result.findings)
    else:
        assert result.verdict == "pass", [f for f in result.findings if not f.ok]


def test_list_shows_every_builtin() -> None:
    result = CliRunner().invoke(main, ["scenario", "list", "--json"])
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["id"] for r in rows] == [s.id for s in builtin_scenarios()]
    assert all(r["hazards"] and r["title"] for r in rows)

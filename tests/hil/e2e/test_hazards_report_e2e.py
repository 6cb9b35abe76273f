"""``pumpemu hazards report --strict`` on this repository: every hazard in scope has a
passing test (docs/hazards.md, "Traceability"). The run is pytest's, so it is bounded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.e2e
def test_every_hazard_in_scope_has_a_passing_test(tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    run = subprocess.run(
        [sys.executable, "-c", "from hil.cli import main; main()", "hazards", "report",
         "--strict", "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["uncovered"] == []
    assert all(row["passed"] > 0 for row in report["hazards"] if row["in_scope"])

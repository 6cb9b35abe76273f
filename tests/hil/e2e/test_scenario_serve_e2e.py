"""Built-in scenarios on the serve backend: a ``pumpemu serve`` subprocess over a pty, the
real serial path (docs/scenarios.md, "Backends"). One scenario per hazard class passes
there with the same verdicts and oracle figures as on the wire backend."""

from __future__ import annotations

import pytest

from hil.scenario.command import builtin_scenarios
from hil.scenario.runner import run

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SUBSET = [
    "h05-permanent-stall",  # motor
    "h12-stall-restart-no-catch-up",  # restart after a stall
    "h13-occlusion-undetected-no-drug-reaches-patient",  # catheter, plant vs firmware
    "h11-misprogramming-refused-with-limits",  # programming limits
    "h16-low-reservoir-alarm-at-4-ml",  # alarms
    "h08-memory-error-blocks-updates",  # memory
    "h06-early-depletion-raises-eri",  # battery
    "c4-patient-role-cannot-stop-or-program",  # roles over a real session
]
BUILTIN = {s.id: s for s in builtin_scenarios()}


@pytest.mark.parametrize("scenario_id", SUBSET)
def test_builtin_scenario_passes_on_serve_with_the_wire_figures(scenario_id: str) -> None:
    scenario = BUILTIN[scenario_id]
    served = run(scenario, "serve")
    failed = [(f.where, f.what, f.expected, f.happened) for f in served.findings if not f.ok]
    assert served.verdict == "pass", (served.error, failed)
    wire = run(scenario, "wire")
    assert served.figures == wire.figures
    assert [f.ok for f in served.findings] == [f.ok for f in wire.findings]


def test_serve_reports_what_it_cannot_do_as_skipped() -> None:
    served = run(BUILTIN["c1-reply-lost-after-bolus-no-second-dose"], "serve")
    assert served.verdict == "skip"
    reasons = {f.happened for f in served.findings if f.ok is None}
    assert any("no fault proxy" in r for r in reasons)
    assert all(f.ok is not False for f in served.findings)

"""The campaign report's sweep (docs/campaigns.md, "Report"), written where a test wants
it: a leak of swept size for a day (H17). The dose oracle's lower bound holds for the small
leaks and fails for the large one, so the report shows a distribution, a figure against the
swept size, and failed runs with their --rerun command. It is text here, not a .toml file
in tests/, because the pytest plugin would collect such a file and its two failing runs
(hil/pytest_plugin.py collects scenario files).
"""

from __future__ import annotations

from pathlib import Path

LEAK_SWEEP = """\
id = "report-leak"
title = "A leak of a sweep of sizes for a day: the patient gets less, the firmware sees nothing"
hazards = ["H17"]

[setup.prescription]
drug = "morphine"
concentration = "10 mg/mL"
mode = "continuous"
rate = "0.5 mL/day"
low_reservoir_threshold = "2 mL"

[[steps]]
at = "0d 01:00"
do = "fault"
name = "tear"
fault = "leak"
params = { ppm = 100000 }

[[oracles]]
check = "dose"
from = "0d 02:00"
to = "1d"
believed = "1%"
patient_at_least = "70%"

[[oracles]]
check = "reservoir"
max_gap = "0.1 mL"

[sweep]
seed = { from = 1, to = 2 }
"steps.0.params.ppm" = [100000, 200000, 500000]
"""


def write_leak_sweep(directory: Path) -> Path:
    path = directory / "leak-sweep.toml"
    path.write_text(LEAK_SWEEP, encoding="utf-8")
    return path


def seeded_leak_sweep(campaign_id: str, advance_to: str, seeds: int) -> str:
    """A campaign's worth of runs with no oracle: a leak of four sizes from 01:00, the pump
    advanced to ``advance_to``, over ``seeds`` seeds (4 x ``seeds`` runs, all passing)."""
    return f"""
id = "{campaign_id}"
title = "A leak until {advance_to}, {seeds} seeds and four sizes"
hazards = ["H17"]

[setup]
prescription = {{ drug = "morphine", concentration = "10 mg/mL", mode = "continuous", \
rate = "0.5 mL/day", low_reservoir_threshold = "2 mL" }}

[[steps]]
at = "0d 01:00"
do = "fault"
fault = "leak"
params = {{ ppm = 100000 }}

[[steps]]
at = "{advance_to}"
do = "advance"

[sweep]
seed = {{ from = 1, to = {seeds} }}
"steps.0.params.ppm" = [50000, 100000, 200000, 400000]
"""

"""How fast scenarios run (issue 13's acceptance figures).

Figures, in one run:
- ``builtin_wire_s``: wall time to run the whole built-in library (hil/scenario/builtin/) on
  the wire backend: the reference programmer and the device over an in-memory link, every
  programmer step in its own authenticated session;
- ``api_30day_per_s``: 30-day scenarios per second on one core, api backend, for the
  library's 30-day story (hil/scenario/builtin/h17-catheter-leak.toml: continuous morphine,
  a leak from day 5, a refill at day 30, six 4-day dose windows, two more oracles).
  Parsing is done once, outside the timing; each run builds its pump;
- ``api_busy_30day_per_s``: the same for a dense month (``BUSY_MONTH`` below: a 4-step
  flex schedule, 58 patient boluses, a clinician bolus, a leak, a refill; the dose per day,
  the reservoir every 6 h: about 250 samples of belief beside truth);
- ``pump_only_busy_30day_per_s``: the dense month's pump calls alone, with no runner, no
  samples and no oracles: the floor the runner adds to;
- ``wire_vs_api_ratio``: the 30-day story on the wire backend, time per run over api's;
- ``load_average``: the 1-minute load when the run ended (a 2-core machine shared with other
  jobs gives lower figures than an idle one).

Target: ``api_30day_per_s`` >= 150. Usage: ``python benchmarks/scenarios.py [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Run as a script, this directory comes first on sys.path, and benchmarks/serial.py would
# shadow pyserial for hil.links: drop it (``python -m benchmarks.scenarios`` needs nothing).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from hil.scenario.backends import build_pump  # noqa: E402
from hil.scenario.command import builtin_scenarios  # noqa: E402
from hil.scenario.loader import loads  # noqa: E402
from hil.scenario.model import Scenario  # noqa: E402
from hil.scenario.runner import run  # noqa: E402

_BOLUS = '[[steps]]\nat = "{day}d {hour:02d}:00"\ndo = "patient-bolus"\n'
_LEAK = '[[steps]]\nat = "5d 03:00"\ndo = "fault"\nfault = "leak"\nparams = { ppm = 200_000 }\n'
TIMELINE = "\n".join(
    (_LEAK if (day, hour) == (5, 3) else _BOLUS.format(day=day, hour=hour))
    for day in range(1, 30)
    for hour in (3, 9, 19)
    if hour != 3 or day == 5
)
BUSY_MONTH = f"""
id = "bench-30-days"
title = "a clinical month"
end = "30d 12:00"
[setup]
prescription = {{ drug = "morphine", concentration = "10 mg/mL", mode = "flex", \
low_reservoir_threshold = "2 mL", steps = [{{ start = "00:00", rate = "0.3 mL/day" }}, \
{{ start = "06:00", rate = "0.5 mL/day" }}, {{ start = "12:00", rate = "0.4 mL/day" }}, \
{{ start = "22:00", rate = "0.3 mL/day" }}], patient_bolus = {{ dose = "0.02 mL", \
duration = "10 min", lockout = "3 h", max_per_24h = 4 }} }}
[[steps]]
at = "0d 10:00"
do = "clinician-bolus"
dose = "0.05 mL"
duration = "30 min"
{TIMELINE}
[[steps]]
at = "30d 10:00"
do = "refill"
name = "refill"
volume = "20 mL"
[[oracles]]
check = "dose"
per = "1d"
to = "30d"
believed = "1%"
[[oracles]]
check = "reservoir"
every = "6h"
max_gap = "1 mL"
[[oracles]]
check = "exactly-once"
[[oracles]]
check = "refill-discrepancy"
step = "refill"
flagged = false
"""


def per_run_s(scenario: Scenario, backend: str, runs: int) -> float:
    result = run(scenario, backend)
    if result.verdict != "pass":  # a benchmark of a broken run measures nothing
        raise SystemExit(f"the benchmark scenario did not pass on {backend}: {result.findings}")
    start = time.perf_counter()
    for _ in range(runs):
        run(scenario, backend)
    return (time.perf_counter() - start) / runs


def pump_only_s(scenario: Scenario, runs: int) -> float:
    """The scenario's pump calls with nothing around them (patient boluses and time)."""

    def once() -> None:
        pump = build_pump(scenario.setup)
        for step in scenario.steps:
            pump.advance_to(scenario.setup.clock_ms + step.at_ms)
            if step.do == "patient-bolus":
                pump.patient_bolus(command_id=step.index + 1)
        pump.advance_to(scenario.setup.clock_ms + scenario.end_ms)

    once()
    start = time.perf_counter()
    for _ in range(runs):
        once()
    return (time.perf_counter() - start) / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--runs", type=int, default=60, help="runs per backend (default 60)")
    args = parser.parse_args()
    library = builtin_scenarios()
    start = time.perf_counter()
    verdicts = [run(s, "wire").verdict for s in library]
    builtin_wire_s = time.perf_counter() - start
    if set(verdicts) != {"pass"}:
        raise SystemExit(f"the built-in library does not pass on wire: {verdicts}")
    (month,) = [s for s in library if s.id == "h17-catheter-leak-invisible-to-refill"]
    (busy,) = loads(BUSY_MONTH, "bench-busy-month.toml")
    api_s = per_run_s(month, "api", args.runs)
    wire_s = per_run_s(month, "wire", max(args.runs // 4, 5))
    busy_s = per_run_s(busy, "api", max(args.runs // 4, 5))
    floor_s = pump_only_s(busy, max(args.runs // 4, 5))
    figures = {
        "builtin_scenarios": len(library),
        "builtin_wire_s": round(builtin_wire_s, 3),
        "api_30day_per_s": round(1 / api_s, 1),
        "wire_30day_per_s": round(1 / wire_s, 1),
        "wire_vs_api_ratio": round(wire_s / api_s, 2),
        "api_busy_30day_per_s": round(1 / busy_s, 1),
        "pump_only_busy_30day_per_s": round(1 / floor_s, 1),
        "target_api_30day_per_s": 150,
        "load_average": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>24}: {value}")


if __name__ == "__main__":
    main()

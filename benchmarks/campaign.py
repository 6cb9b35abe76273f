"""A campaign of 1,000 thirty-day scenarios (issue 14's acceptance figures).

The campaign is a sweep of the built-in 30-day story (hil/scenario/builtin/
h17-catheter-leak.toml: continuous morphine, a leak from day 5, a refill at day 30) over
1,000 seeds, written to a temporary file and run by ``pumpemu campaign`` (hil/campaign/) on
the api backend, in one run:

- ``campaign_1000x30d_s``: wall time of the whole campaign on 2 local worker processes
  (their start-up included), the best of ``--repeat`` (7) campaigns;
- ``runs_per_s``: 1,000 / that;
- ``one_worker_s``: the same campaign on 1 worker, the best of as many;
- ``two_worker_samples_s`` / ``one_worker_samples_s``: every campaign's wall time. The
  campaigns alternate (2 workers, 1, 2, 1, ...), so a machine that speeds up or slows down
  during the benchmark (another job, a core's clock) touches both sizes alike, and the best
  of each is the figure least disturbed by whatever else the machine ran, as with
  ``timeit``;
- ``parallel_efficiency``: ``one_worker_s / campaign_1000x30d_s`` (2.0 would be perfect on
  two cores);
- ``cpu_ratio_two_vs_one``: CPU seconds (the parent and its workers, user and system) of
  the best 2-worker campaign over the best 1-worker one: the work a second worker adds
  (1.0: none). Unlike the wall-time ratio it holds on a machine loaded by others, where the second
  core is not free;
- ``load_average``: the 1-minute load when the run ended.

Workers start as ``pumpemu campaign run`` starts them (hil/local_pool.py, printed as
``start_method``): forked on Linux from a parent that runs no other thread, so they inherit
the run stack the parent loaded; spawned elsewhere, each importing it (``--start-method``
forces one or the other, to compare).

Inside each timed region, the same for both runs: starting the pool (the worker processes,
and for spawned ones their interpreter start and imports), each worker parsing the sweep file and
building the runs it is given, running all 1,000 runs, sending the result lines back, the
parent appending every line to a fresh JSONL results file, and shutting the pool down. Outside
it: writing the sweep file and the parent's plan (``expand``: the run ids), done once per
run before the clock starts, and the parent's import of the few run modules its plan had
not loaded (``parent_preload_s``, once per process, whatever the number of workers: the
command pays it once too). Both runs go through ``run_campaign``, the code
``pumpemu campaign run`` uses; neither has a progress bar (the command draws one only on a
terminal).

Targets: ``campaign_1000x30d_s`` at most 10 on a 2-core machine, ``parallel_efficiency`` at
least 1.7. Usage: ``python benchmarks/campaign.py [--json] [--runs N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this directory comes first on sys.path, and benchmarks/serial.py would
# shadow pyserial for hil.links: drop it.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from hil.campaign.command import RUN_STACK  # noqa: E402
from hil.campaign.plan import expand  # noqa: E402
from hil.campaign.runner import run_campaign  # noqa: E402
from hil.local_pool import local_pool, start_method  # noqa: E402

STORY = (
    Path(__file__).resolve().parents[1] / "hil" / "scenario" / "builtin" / "h17-catheter-leak.toml"
)


def sweep_file(directory: Path, runs: int) -> Path:
    text = STORY.read_text(encoding="utf-8")
    text = "\n".join(line for line in text.splitlines() if not line.startswith("seed ="))
    path = directory / "campaign.toml"
    path.write_text(text + f"\n\n[sweep]\nseed = {{ from = 1, to = {runs} }}\n")
    return path


def _cpu_s() -> float:
    """CPU time of this process and of its children that have ended (the pool's workers,
    once the pool is shut down), user and system."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def campaign_s(path: Path, workers: int, out: Path, method: str) -> tuple[float, float, int]:
    """Wall time, CPU time (parent and workers) and runs passed of one campaign."""
    specs = expand([path])
    cpu = _cpu_s()
    start = time.perf_counter()
    with local_pool(workers, preload=RUN_STACK, method=method) as pool:
        outcome = run_campaign(specs, pool, out, workers=workers)
    seconds = time.perf_counter() - start
    cpu = _cpu_s() - cpu
    passed = sum(line["verdict"] == "pass" for line in outcome.results)
    return seconds, cpu, passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--runs", type=int, default=1_000, help="runs in the campaign (1000)")
    parser.add_argument(
        "--repeat", type=int, default=7, help="campaigns of each size, interleaved (7)"
    )
    parser.add_argument(
        "--start-method",
        choices=["fork", "spawn"],
        default=None,
        help="how workers start (default: what pumpemu campaign run picks here)",
    )
    args = parser.parse_args()
    # Chosen once, before any campaign: the command decides it the same way, at its start.
    method = args.start_method or start_method()
    samples: dict[int, list[tuple[float, float, int]]] = {2: [], 1: []}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        path = sweep_file(directory, args.runs)
        expand([path])  # the planner's own imports, as the command has them before its pool
        preload = time.perf_counter()
        if method == "fork":
            for name in RUN_STACK:
                importlib.import_module(name)
        preload_s = time.perf_counter() - preload
        for rep in range(args.repeat):
            for workers in (2, 1):  # interleaved: a drift of the machine hits both alike
                out = directory / f"w{workers}-{rep}.jsonl"
                samples[workers].append(campaign_s(path, workers, out, method))
    two_s, two_cpu_s, passed_two = min(samples[2])
    one_s, one_cpu_s, passed_one = min(samples[1])
    figures = {
        "runs": args.runs,
        "start_method": method,
        "campaign_1000x30d_s": round(two_s, 2),
        "runs_per_s": round(args.runs / two_s, 1),
        "one_worker_s": round(one_s, 2),
        "parallel_efficiency": round(one_s / two_s, 2),
        "cpu_ratio_two_vs_one": round(two_cpu_s / one_cpu_s, 2),
        "two_worker_samples_s": [round(sample[0], 2) for sample in samples[2]],
        "one_worker_samples_s": [round(sample[0], 2) for sample in samples[1]],
        "passed": [passed_two, passed_one],
        "parent_preload_s": round(preload_s, 3),
        "load_average": round(os.getloadavg()[0], 2),
        "target_campaign_1000x30d_s": 10,
        "target_parallel_efficiency": 1.7,
    }
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"{key:32} {value}")


if __name__ == "__main__":
    main()

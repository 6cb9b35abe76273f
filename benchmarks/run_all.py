"""Every benchmark in one run, one JSON object with every figure (issue 15).

Run: ``.venv/bin/python benchmarks/run_all.py --json`` (one object keyed by benchmark) or
without ``--json`` (a table per benchmark). Each benchmark runs as its own process with
``--json`` (so one cannot warm or slow another), one after another, and the figures are
gathered under its name: ``{"codec": {...}, "delivery": {...}, ...}``. A benchmark that
fails is reported with its exit status and the end of its stderr, and the run goes on.

The default sizes keep the whole run to a few minutes; ``--full`` uses each benchmark's
acceptance size (the crash campaign's 1,000 kills alone take about half an hour).
``--only NAME`` (repeatable) runs a subset.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 4 * 3_600

QUICK: dict[str, list[str]] = {
    "codec": [],
    "delivery": [],
    "engine": [],
    "session": [],
    "serial": [],
    "cli": ["--runs", "5"],
    "lossy_link": ["--commands", "10000"],
    "decode_memory": ["--mb", "5"],
    "crash_campaign": ["--kills", "20"],
    "campaign": ["--runs", "200"],
}
"""Each benchmark and its arguments in the default (quick) run."""

FULL: dict[str, list[str]] = {
    **QUICK,
    "cli": ["--runs", "10", "--demo"],
    "lossy_link": ["--commands", "100000"],
    "decode_memory": ["--mb", "50"],
    "crash_campaign": ["--kills", "1000"],
    "campaign": ["--runs", "1000"],
}
"""The acceptance sizes of the issues that set each target."""


def discovered() -> list[str]:
    """Every benchmark script here (a module with a main), this one excepted."""
    return sorted(
        path.stem
        for path in HERE.glob("*.py")
        if path.stem not in ("__init__", "run_all") and "def main(" in path.read_text()
    )


def run_one(name: str, args: list[str]) -> dict[str, object]:
    command = [sys.executable, str(HERE / f"{name}.py"), "--json", *args]
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {TIMEOUT_S} s"}
    seconds = round(time.perf_counter() - started, 1)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}", "stderr": done.stderr[-2000:]}
    try:
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": "no JSON object on its last line", "stdout": done.stdout[-2000:]}
    return {**figures, "benchmark_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--full", action="store_true", help="acceptance sizes (slow)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME")
    args = parser.parse_args()
    sizes = FULL if args.full else QUICK
    names = args.only or discovered()
    unknown = sorted(set(names) - set(discovered()))
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(discovered())})")
    results: dict[str, dict[str, object]] = {}
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results[name] = run_one(name, sizes.get(name, []))
    if args.json:
        print(json.dumps(results))
        return
    for name, figures in results.items():
        print(f"== {name}")
        for key, value in figures.items():
            print(f"  {key:40} {value}")
    if any("error" in figures for figures in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()

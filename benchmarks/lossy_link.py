"""Therapy commands through a lossy link: how many apply, and that none is lost or doubled.

Run: ``.venv/bin/python benchmarks/lossy_link.py --commands 100000 --json`` (one JSON
object) or without ``--json`` (a table). ``--faults P`` sets each of drop, corrupt and
duplicate to P percent (default 10). The reference programmer uses its default
``RetryPolicy`` (what ``pumpemu ctl`` uses) against the emulated pump in the two-peer
simulation on a manual clock (``hil.lossy_campaign``), so a run is deterministic per
``--seed`` and takes seconds of real time for months of pump time.

Targets (issue 10), at N = 100,000 and 10% faults: ``double_applied``, ``silently_lost``
and ``locked_out`` are 0, and ``uncertain`` is at most 0.01% of N. The ratio printed
(``seconds_per_command`` against ``perfect_link_seconds_per_command``, the same commands
over a perfect link measured in the same run) says what the faults cost.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from hil.lossy_campaign import run_lossy_campaign


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=10_000, help="therapy commands to send")
    parser.add_argument(
        "--faults", type=float, default=10.0, help="percent of frames dropped, and corrupted, "
        "and duplicated (each), default 10"
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.commands < 1 or not 0 <= args.faults <= 100:
        parser.error("--commands must be >= 1 and --faults 0..100")
    p = args.faults / 100

    def progress(done: int) -> None:
        if not args.json or sys.stderr.isatty():
            print(f"\r{done:,}/{args.commands:,} commands", end="", file=sys.stderr, flush=True)

    baseline_n = min(args.commands, 2_000)
    start = time.perf_counter()
    run_lossy_campaign(baseline_n, drop=0, corrupt=0, duplicate=0, seed=args.seed)
    perfect = (time.perf_counter() - start) / baseline_n
    start = time.perf_counter()
    result = run_lossy_campaign(
        args.commands, drop=p, corrupt=p, duplicate=p, seed=args.seed, progress=progress
    )
    elapsed = time.perf_counter() - start
    print("", end="\r", file=sys.stderr)
    out: dict[str, object] = {
        **result.as_dict(),
        "faults_percent": args.faults,
        "seed": args.seed,
        "uncertain_percent": round(100 * result.uncertain / result.commands, 4),
        "elapsed_s": round(elapsed, 2),
        "seconds_per_command": elapsed / result.commands,
        "perfect_link_seconds_per_command": perfect,
        "cost_ratio_vs_perfect_link": round(elapsed / result.commands / perfect, 2),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:34} {value}")
    ok = (
        result.double_applied == 0
        and result.silently_lost == 0
        and result.locked_out == 0
        and result.uncertain * 10_000 <= result.commands
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

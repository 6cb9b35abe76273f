"""Engine-only micro benchmark: the event-driven DeliveryEngine vs the ReferenceStepper.

A 10-step daily flex schedule (set_basal at each step boundary), 250 nL strokes. Prints:
- the engine's time for 1 simulated year, advancing only at step boundaries (how the
  firmware drives it) and, as a worst case, advancing to every single stroke;
- the ReferenceStepper's time for 7 days at 1000 ms ticks;
- the speed-up per simulated day.
It also checks that both deliver the same strokes over the 7 days, so a fast wrong engine
cannot post a good number. Run: ``.venv/bin/python benchmarks/engine.py [--json]``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator

from emulator.delivery import MS_PER_DAY, DeliveryEngine
from emulator.reference_stepper import ReferenceStepper

HOUR = 3_600_000
STROKE_NL = 250
# (start of step within the day, rate in nL/day): 10 steps, all on whole seconds so the
# 1000 ms stepper is exact and the two must agree stroke for stroke.
FLEX = [
    (0 * HOUR, 400_000),
    (2 * HOUR, 250_000),
    (4 * HOUR, 0),
    (6 * HOUR, 1_200_000),
    (8 * HOUR, 900_000),
    (10 * HOUR + 1_000, 333_333),
    (13 * HOUR, 777_777),
    (16 * HOUR, 1_500_000),
    (19 * HOUR, 600_001),
    (22 * HOUR, 123_457),
]


def boundaries(days: int) -> Iterator[tuple[int, int]]:
    """(time, rate) of every step start, in order, then the end as (end, -1)."""
    for day in range(days):
        for offset, rate in FLEX:
            yield day * MS_PER_DAY + offset, rate
    yield days * MS_PER_DAY, -1


def run_engine(days: int, per_stroke: bool) -> tuple[float, int]:
    engine = DeliveryEngine(STROKE_NL, 0)
    total = 0
    start = time.perf_counter()
    for t, rate in boundaries(days):
        if per_stroke:
            while (nxt := engine.next_stroke_ms()) is not None and nxt <= t:
                total += engine.advance(nxt).count
        total += engine.advance(t).count
        if rate >= 0:
            engine.set_basal(rate)
    return time.perf_counter() - start, total


def run_stepper(days: int) -> tuple[float, int]:
    stepper = ReferenceStepper(STROKE_NL, 0, tick_ms=1000)
    total = 0
    start = time.perf_counter()
    for t, rate in boundaries(days):
        total += stepper.advance(t).count
        if rate >= 0:
            stepper.set_basal(rate)
    return time.perf_counter() - start, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    _, week_engine_n = run_engine(7, per_stroke=False)
    week_stepper_s, week_stepper_n = run_stepper(7)
    if week_engine_n != week_stepper_n:
        raise SystemExit(f"engine {week_engine_n} != stepper {week_stepper_n} strokes in 7 days")
    year_s, year_n = run_engine(365, per_stroke=False)
    year_per_stroke_s, year_per_stroke_n = run_engine(365, per_stroke=True)
    if year_n != year_per_stroke_n:
        raise SystemExit(f"slicing changed the total: {year_n} != {year_per_stroke_n}")
    speedup = (week_stepper_s / 7) / (year_s / 365)
    result = {
        "engine_year_s": round(year_s, 6),
        "engine_year_per_stroke_s": round(year_per_stroke_s, 6),
        "engine_year_strokes": year_n,
        "stepper_week_tick1000_s": round(week_stepper_s, 6),
        "week_strokes": week_stepper_n,
        "speedup_per_simulated_day": round(speedup, 1),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"engine, 1 year, advance at 3650 step boundaries: {year_s * 1e3:9.2f} ms")
    print(f"engine, 1 year, advance to each of {year_n} strokes: {year_per_stroke_s * 1e3:9.2f} ms")
    print(f"stepper, 7 days at 1000 ms ticks:               {week_stepper_s * 1e3:9.2f} ms")
    print(f"speed-up per simulated day (boundaries only):   {speedup:9.1f}x")


if __name__ == "__main__":
    main()

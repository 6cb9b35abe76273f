"""How fast and how lean the event-driven pump is (issue 3's acceptance figures).

Scenario, the same for every figure: a peristaltic-40 pump (seeded stroke-to-stroke
variation on, ``stroke_seed``; its 7-year design life ends service, then a new pump is
implanted) on a 10-step daily flex schedule
(0.30-0.48 mL/day of morphine 5 mg/mL), 6 patient boluses a day (08:00, 10:00, ..., 18:00;
20 uL over 10 min, 1 h lockout), and a refill every 30 days (at 21:00, to 40 mL).

Sampling. This machine is shared, and its speed drifts by up to 1.6x from one second to the
next. The reference week below runs for seconds, so everything else is sampled in lockstep
with it: after each of its 7 simulated days come 3 engine weeks, a year, a faulted year and
a (1-step, 48-step) pair of years. Times are the best of their 7 samples (the code's speed
in the machine's faster moments, as timeit advises); the speed-up compares like with like
(below).

Figures:
- ``year_s`` / ``decade_s``: wall time to simulate 365 / 3650 days with the exact engine
  (``decade_s``: one run);
- ``speedup_vs_reference``: measured, not extrapolated. The same pump and the same 7 days
  driven by the reference stepper (emulator/reference_stepper.py) in place of the engine,
  divided by the engine's median week of the 21 sampled over the same span (the stepper's
  week is one run through whatever the machine did meanwhile, so the engine's typical
  week, not its best, is its match). The stepper is a drop-in engine replacement, injected
  through ``Pump(engine_factory=...)``, so everything else (firmware, plant, event loop) is
  the same code, except that the stepper is driven as before flex plans existed: told each
  flex step's rate at its boundary (``follow_plans=False``, so the pump steps there), since
  its tick-by-tick look-ahead would otherwise walk to far horizons. It runs with
  ``tick_ms=100`` (``reference_tick_ms``). The engine resolves
  1 ms, so any coarser tick favours the stepper (fewer ticks to walk); 100 ms is the finest
  tick that keeps the whole benchmark under ~30 s (7 days at 1 ms would be 10x the ticks,
  minutes, and is not run). The stepper is exact when every settings change falls on a tick
  boundary: in this scenario flex steps start on multiples of 8640 s, boluses at whole hours
  and refills at 21:00, and the run checks it (every flex start and every bolus grant and
  completion in the log is a multiple of the tick). The stepper reports each stroke at the
  end of the tick it falls in, so stroke times may lag by < 1 tick; volumes are exact. The
  run checks that both deliver the same volume (firmware count and plant truth) and log the
  same events with the same values, and stops if not;
- ``memory_decade_vs_year``: tracemalloc peak of the 10-year run over the 1-year run; near
  1 because the event log and the bolus history are bounded;
- ``year_catheter_faults_s``: the same year with catheter faults in it (``CATHETER_FAULTS``:
  a leak from day 40, repaired on day 100, an inflammatory mass growing over 6 weeks from
  day 150 to a full block, repaired on day 250): the fluid path's cost under faults, which
  are integrated in closed form per step (emulator/fluid/catheter.py), never per second.
  The run checks that fluid and drug mass balance exactly at the end;
- ``year_1_step_s`` / ``year_48_steps_s``: the same year with the same daily volume on a
  1-step and a 48-step (every 30 min) flex schedule (on the same pump with
  ``max_flex_steps`` raised to 48 for this figure only: the shipped profiles allow 10, the
  engine has no limit of its own), measured alternately, best of 7 each. Flex boundaries
  are not pump steps (the engine integrates the schedule in closed form, emulator/rate_plan.py), so
  ``steps_48_vs_1`` (their ratio) stays near 1 (target < 1.10).

Usage: ``python benchmarks/delivery.py [--json]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterator

from emulator.faults import CatheterLeak, CatheterRepair, Fault, InflammatoryMass
from emulator.firmware.firmware import Engine
from emulator.firmware.results import Refused
from emulator.profile import load_profile
from emulator.pump import Pump
from emulator.reference_stepper import ReferenceStepper
from protocol.device_state import EventKind, TherapyState
from protocol.prescription import FlexStep, InfusionMode, PatientBolusLimits, Prescription, Repeat
from protocol.units import MS_PER_DAY, MS_PER_HOUR

PRESCRIPTION = Prescription(
    drug_name="morphine",
    concentration_ug_per_ml=5_000,
    mode=InfusionMode.FLEX,
    repeat=Repeat.DAILY,
    steps=tuple(FlexStep(i * 8_640, 300_000 + 20_000 * i) for i in range(10)),
    patient_bolus=PatientBolusLimits(
        dose_nl=20_000, duration_s=600, lockout_s=3_600, max_per_24h=6
    ),
    low_reservoir_threshold_nl=2_000_000,
)
BOLUS_HOURS = (8, 10, 12, 14, 16, 18)
REFILL_HOUR = 21
STROKE_SEED = 20_261_206
CATHETER_FAULTS: dict[int, Fault] = {
    40: CatheterLeak(ppm=200_000),
    100: CatheterRepair(),
    150: InflammatoryMass(grow_s=42 * 86_400),
    250: CatheterRepair(),
}
"""Day -> fault injected at that day's midnight, for ``year_catheter_faults_s``."""


def flex(steps: int) -> Prescription:
    """PRESCRIPTION's volume per day on ``steps`` equal-length steps (rates alternate +-10 %
    around the mean, so every boundary changes the rate)."""
    length = 86_400 // steps
    mean = 390_000
    rates = [mean + (mean // 10 if i % 2 else -mean // 10) for i in range(steps)]
    if steps % 2:
        rates[-1] = mean  # an odd count: one step at the mean keeps the daily volume
    return dataclasses.replace(
        PRESCRIPTION,
        steps=tuple(FlexStep(i * length, rates[i]) for i in range(steps)),
    )


def implant(
    start_ms: int,
    engine_factory: Callable[[int, int], Engine] | None,
    prescription: Prescription = PRESCRIPTION,
) -> Pump:
    # The seeded stroke-to-stroke variation is on (emulator/stroke_accuracy.py): the figures
    # include its cost.
    conc = PRESCRIPTION.concentration_ug_per_ml  # the drug really in the pump (plant truth)
    profile = load_profile("peristaltic-40")
    if len(prescription.steps) > profile.max_flex_steps:
        profile = dataclasses.replace(profile, max_flex_steps=len(prescription.steps))
    if engine_factory is None:
        pump = Pump(
            profile,
            start_ms=start_ms,
            drug_concentration_ug_per_ml=conc,
            stroke_seed=STROKE_SEED,
        )
    else:
        pump = Pump(
            profile,
            start_ms=start_ms,
            engine_factory=engine_factory,
            drug_concentration_ug_per_ml=conc,
            stroke_seed=STROKE_SEED,
        )
    staged = pump.stage(prescription)
    if isinstance(staged, Refused):
        raise SystemExit(f"scenario prescription refused: {staged}")
    if not pump.commit(staged.digest, command_id=1).ok:
        raise SystemExit("commit refused")
    return pump


def simulate(
    days: int,
    engine_factory: Callable[[int, int], Engine] | None = None,
    faults: dict[int, Fault] | None = None,
    prescription: Prescription = PRESCRIPTION,
) -> Pump:
    """Run the scenario for ``days`` days and return the (last) pump.

    The battery reaches end of service after about 5 years; the clinician then implants a
    new pump, as in practice, so ten years are ten years of therapy, not five of idling.
    ``faults`` (day -> fault) are injected at those days' midnights.
    """
    pump = None
    for pump in day_by_day(days, engine_factory, faults, prescription):  # noqa: B007
        pass
    return implant(0, engine_factory, prescription) if pump is None else pump


def day_by_day(
    days: int,
    engine_factory: Callable[[int, int], Engine] | None = None,
    faults: dict[int, Fault] | None = None,
    prescription: Prescription = PRESCRIPTION,
) -> Iterator[Pump]:
    """``simulate``, one day at a time: the pump at the end of each day (the last day ends
    at ``days`` midnights)."""
    pump = implant(0, engine_factory, prescription)
    for day in range(days):
        midnight = day * MS_PER_DAY
        if faults and day in faults:
            pump.advance_to(midnight)
            pump.inject(faults[day])
        for hour in BOLUS_HOURS:
            pump.advance_to(midnight + hour * MS_PER_HOUR)
            pump.patient_bolus()
        if day % 30 == 29:
            pump.advance_to(midnight + REFILL_HOUR * MS_PER_HOUR)
            if pump.status().state is TherapyState.END_OF_SERVICE:
                pump = implant(pump.now_ms, engine_factory, prescription)
            elif not (pump.refill_begin().ok and pump.refill_complete(40_000_000).ok):
                raise SystemExit(f"refill refused on day {day}")
        if day == days - 1:
            pump.advance_to(days * MS_PER_DAY)
        yield pump


def timed(
    days: int,
    engine_factory: Callable[[int, int], Engine] | None = None,
    faults: dict[int, Fault] | None = None,
    prescription: Prescription = PRESCRIPTION,
) -> float:
    gc.collect()
    start = time.perf_counter()
    simulate(days, engine_factory, faults, prescription)
    return time.perf_counter() - start


def check_catheter_year() -> None:
    """Stop unless the faulted year conserves fluid and drug exactly and the faults bit."""
    truth = simulate(365, faults=CATHETER_FAULTS).plant_truth()
    if truth.balance_nl() or truth.balance_pg():
        raise SystemExit(
            f"fluid path out of balance: {truth.balance_nl()} nL, {truth.balance_pg()} pg"
        )
    if not truth.leaked_pg:
        raise SystemExit("the leak in the faulted year lost nothing")


def peak_memory(days: int) -> int:
    gc.collect()
    tracemalloc.start()
    pump = simulate(days)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del pump
    return peak


REFERENCE_TICK_MS = 100
BOLUS_EVENTS = (EventKind.PATIENT_BOLUS_GRANTED, EventKind.PATIENT_BOLUS_COMPLETED)


def stepper(stroke_nl: int, start_ms: int) -> Engine:
    # follow_plans=False: the stepper is told each flex step's rate at its boundary, and the
    # pump steps there, as every engine was driven before flex plans. A plan-following
    # stepper would look ahead tick by tick to far horizons and inflate the speed-up.
    return ReferenceStepper(stroke_nl, start_ms, tick_ms=REFERENCE_TICK_MS, follow_plans=False)


def check_like_for_like(exact: Pump, stepped: Pump) -> None:
    """Stop unless the stepper run is a fair, exact comparison (see the module docstring)."""
    tick = REFERENCE_TICK_MS
    off_grid = [s.start_s for s in PRESCRIPTION.steps if s.start_s * 1_000 % tick]
    off_grid += [e.time_ms for e in stepped.log() if e.kind in BOLUS_EVENTS and e.time_ms % tick]
    if off_grid:
        raise SystemExit(f"settings changes off the {tick} ms tick grid: {off_grid}")
    if not any(e.kind is EventKind.PATIENT_BOLUS_GRANTED for e in stepped.log()):
        raise SystemExit("no bolus in the comparison window")
    belief = (exact.status().delivered_nl, stepped.status().delivered_nl)
    truth = (exact.plant_truth().pumped_nl, stepped.plant_truth().pumped_nl)
    if belief[0] != belief[1] or truth[0] != truth[1]:
        raise SystemExit(f"engine and stepper disagree: delivered {belief}, pumped {truth} nL")
    events = [[(e.kind, e.detail, e.value_a, e.value_b) for e in p.log()] for p in (exact, stepped)]
    if events[0] != events[1]:
        raise SystemExit("engine and stepper logs differ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    simulate(7)  # warm imports and caches
    check_catheter_year()
    # The reference week runs for seconds, and this shared machine's speed drifts by up to
    # 1.6x from one second to the next. So everything else is sampled in lockstep with it:
    # after each of the stepper's 7 days, 3 engine weeks, a year, a faulted year and a
    # (1-step, 48-step) pair. The speed-up compares the stepper's week with the engine's
    # median week over the same span; the times are the best samples (the code's speed in
    # the machine's faster moments, as timeit advises).
    one_step, many_steps = flex(1), flex(48)
    engine_weeks: list[float] = []
    years: list[float] = []
    faulted_years: list[float] = []
    pairs: list[tuple[float, float]] = []
    stepper_week_s = 0.0
    stepped = None
    reference = day_by_day(7, stepper)
    for _ in range(7):
        gc.collect()
        started = time.perf_counter()
        stepped = next(reference)
        stepper_week_s += time.perf_counter() - started
        engine_weeks += [timed(7) for _ in range(3)]
        years.append(timed(365))
        faulted_years.append(timed(365, faults=CATHETER_FAULTS))
        pairs.append((timed(365, prescription=one_step), timed(365, prescription=many_steps)))
    assert stepped is not None
    year_s = min(years)
    year_faults_s = min(faulted_years)
    year_1_s = min(pair[0] for pair in pairs)
    year_48_s = min(pair[1] for pair in pairs)
    decade_s = timed(3_650)
    engine_week_s = statistics.median(engine_weeks)
    exact = simulate(7)
    check_like_for_like(exact, stepped)
    week_nl = exact.status().delivered_nl
    speedup = stepper_week_s / engine_week_s
    year_peak = peak_memory(365)
    decade_peak = peak_memory(3_650)
    result = {
        "year_s": round(year_s, 4),
        "decade_s": round(decade_s, 4),
        "speedup_vs_reference": round(speedup, 1),
        "engine_week_s": round(engine_week_s, 5),
        "reference_week_s": round(stepper_week_s, 3),
        "reference_tick_ms": REFERENCE_TICK_MS,
        "week_delivered_nl": week_nl,
        "week_volumes_match": True,
        "memory_year_peak_bytes": year_peak,
        "memory_decade_peak_bytes": decade_peak,
        "memory_decade_vs_year": round(decade_peak / year_peak, 3),
        "year_catheter_faults_s": round(year_faults_s, 4),
        "year_1_step_s": round(year_1_s, 4),
        "year_48_steps_s": round(year_48_s, 4),
        "steps_48_vs_1": round(year_48_s / year_1_s, 3),
    }
    if args.json:
        print(json.dumps(result))
        return
    print("pumpemu delivery benchmark (peristaltic-40, 10-step flex, 6 boluses/day, refill/30 d)")
    print(f"  1 year simulated in   {year_s:8.3f} s   (target <= 0.06)")
    print(f"  1 year with a leak, an inflammatory mass and repairs: {year_faults_s:8.3f} s")
    print(f"  10 years simulated in {decade_s:8.3f} s")
    print(
        f"  1 year on 1 / 48 flex steps: {year_1_s:.3f} / {year_48_s:.3f} s"
        f" -> ratio {year_48_s / year_1_s:.3f} (target < 1.10)"
    )
    print(
        f"  7 days: engine {engine_week_s * 1e3:.2f} ms, reference stepper "
        f"({REFERENCE_TICK_MS} ms ticks) {stepper_week_s:.2f} s -> speed-up {speedup:,.0f}x "
        "(measured; target >= 5000)"
    )
    print(
        f"  both delivered {week_nl} nL in the 7 days, with identical logs "
        f"(settings changes on the {REFERENCE_TICK_MS} ms tick grid, checked)"
    )
    print(
        f"  peak memory: 1 year {year_peak / 1024:.0f} KiB, 10 years {decade_peak / 1024:.0f} KiB"
        f" -> ratio {decade_peak / year_peak:.3f} (target <= 1.2)"
    )


if __name__ == "__main__":
    main()

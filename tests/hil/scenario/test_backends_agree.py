"""The same file gives the same verdicts and oracle figures on the api and wire backends
(docs/scenarios.md, "Backends"): a property over generated scenarios, written as TOML so
the loader is exercised too."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.scenario.loader import loads
from hil.scenario.runner import RunResult, run

STEPS = [
    'do = "clinician-bolus"\ndose = "{dose} uL"\nduration = "{minutes} min"',
    'do = "patient-bolus"',
    'do = "stop"',
    'do = "start"',
    'do = "cancel-bolus"',
    'do = "alarm-test"',
    'do = "interrogate"',
    'do = "acknowledge"\nalarm = "motor-stall"',
    'do = "prime"\nvolume = "{dose} uL"',
    'do = "refill"\nvolume = "18 mL"\ninjected = "{injected} mL"\npocket = "{pocket} mL"',
    'do = "program"\nprescription = {{ drug = "morphine", concentration = "10 mg/mL", '
    'mode = "flex", low_reservoir_threshold = "3 mL", '
    'steps = [{{ start = "00:00", rate = "0.{rate} mL/day" }}, '
    '{{ start = "08:00", rate = "0.{rate2} mL/day" }}] }}',
    'do = "fault"\nfault = "stall"\nparams = {{ recover_after_s = "{minutes} min" }}',
    'do = "fault"\nfault = "stall"',
    'do = "fault"\nfault = "repair"\nparams = {{ part = "motor" }}',
    'do = "fault"\nfault = "leak"\nparams = {{ ppm = {ppm} }}',
    'do = "fault"\nfault = "occlusion"',
    'do = "fault"\nfault = "repair"\nparams = {{ part = "catheter" }}',
    'do = "fault"\nfault = "magnet"\nparams = {{ scan_s = "{minutes} min", recovery_s = "1 h" }}',
    'do = "fault"\nfault = "reset"',
    'do = "fault"\nfault = "bias"\nparams = {{ ppm = {ppm} }}',
    'do = "fault"\nfault = "pocket-fill"\nparams = {{ volume_nl = "{pocket} mL" }}',
    'do = "fault"\nfault = "battery-drain"\nparams = {{ nah = {nah} }}',
    'do = "fault"\nfault = "memory-corruption"',
    'do = "clear-memory-error"',
    'do = "reset-flow-valve"',
    'do = "fault"\nfault = "cap-inject"\n'
    'params = {{ volume_nl = "{dose} uL", concentration_ug_per_ml = 10_000 }}',
]


@st.composite
def scenarios(draw: st.DrawFn) -> str:
    rate = draw(st.integers(1, 9))
    profile = draw(st.sampled_from(["peristaltic-20", "peristaltic-40", "valve-gated-20"]))
    lines = [
        'id = "generated"',
        'title = "generated"',
        f"seed = {draw(st.integers(0, 2**32))}",
        'end = "4d"',
        "[setup]",
        f'profile = "{profile}"',
        f'reservoir = {{ volume = "{draw(st.integers(1, 20))} mL" }}',
        f"catheter = {{ primed = {str(draw(st.booleans())).lower()} }}",
        'prescription = { drug = "morphine", concentration = "10 mg/mL", mode = "continuous", '
        f'rate = "0.{rate} mL/day", low_reservoir_threshold = "2 mL", patient_bolus = '
        '{ dose = "0.02 mL", duration = "10 min", lockout = "1 h", max_per_24h = 4 } }',
    ]
    t = 0
    faults: list[str] = []
    refills: list[str] = []
    for index in range(draw(st.integers(0, 7))):
        t += draw(st.integers(0, 18 * 3_600))
        template = draw(st.sampled_from(STEPS))
        body = template.format(
            dose=draw(st.integers(1, 400)),
            minutes=draw(st.integers(1, 240)),
            injected=draw(st.integers(5, 18)),
            pocket=draw(st.integers(0, 3)),
            rate=draw(st.integers(1, 9)),
            rate2=draw(st.integers(1, 9)),
            ppm=draw(st.integers(1, 900_000)),
            nah=draw(st.integers(0, 700_000_000)),
        )
        name = f"s{index}"
        if "fault" in body:
            faults.append(name)
        if "refill" in body:
            refills.append(name)
        lines += ["[[steps]]", f'at = "{t}s"', f'name = "{name}"', body]
    lines += [
        "[[oracles]]",
        'check = "dose"',
        'per = "12h"',
        'patient = "1%"',
        "[[oracles]]",
        'check = "reservoir"',
        'every = "6h"',
        'max_gap = "1 mL"',
        "[[oracles]]",
        'check = "exactly-once"',
    ]
    for name in faults[:2]:
        lines += [
            "[[oracles]]",
            'check = "alarm-latency"',
            f'fault = "{name}"',
            'alarm = "MOTOR_STALL"',
            'within = "1 h"',
        ]
    for name in refills[:2]:
        lines += [
            "[[oracles]]",
            'check = "refill-discrepancy"',
            f'step = "{name}"',
            "flagged = false",
        ]
    return "\n".join(lines) + "\n"


def _evidence(result: RunResult) -> tuple[object, ...]:
    return (
        result.verdict,
        result.error,
        result.figures,
        [(f.where, f.what, f.ok, f.expected, f.happened, f.at) for f in result.findings],
        [(r.result, r.state_after) for r in result.records],
    )


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_api_and_wire_agree(text: str) -> None:
    (scenario,) = loads(text, "generated.toml")
    api, wire = run(scenario, "api"), run(scenario, "wire")
    assert _evidence(api) == _evidence(wire)


def test_the_generator_reaches_failures_and_passes() -> None:
    """The property compares more than empty runs: a known generated file fails on both."""
    (scenario,) = loads(
        'id = "g"\ntitle = "g"\nend = "3d"\n[setup]\n'
        'prescription = { drug = "morphine", concentration = "10 mg/mL", mode = "continuous", '
        'rate = "0.5 mL/day", low_reservoir_threshold = "2 mL" }\n'
        '[[steps]]\nat = "1d"\nname = "leak"\ndo = "fault"\nfault = "leak"\n'
        "params = { ppm = 500000 }\n"
        '[[oracles]]\ncheck = "dose"\nper = "12h"\npatient = "1%"\n'
        '[[oracles]]\ncheck = "alarm-latency"\nfault = "leak"\nalarm = "MOTOR_STALL"\n'
        'within = "1 h"\n',
        "g.toml",
    )
    api, wire = run(scenario, "api"), run(scenario, "wire")
    assert api.verdict == wire.verdict == "fail"
    assert _evidence(api) == _evidence(wire)


def test_memory_corruption_believed_dose_agrees() -> None:
    """Found by the property above: the firmware found a corrupted record at its next step,
    and the backends step at different instants, so the dose believed before the memory
    error differed. It is now found at the first counted stroke (emulator/pump.py)."""
    (scenario,) = loads(
        'id = "g"\ntitle = "g"\nseed = 0\nend = "4d"\n[setup]\nprofile = "peristaltic-20"\n'
        'reservoir = { volume = "1 mL" }\ncatheter = { primed = false }\n'
        'prescription = { drug = "morphine", concentration = "10 mg/mL", mode = "continuous", '
        'rate = "0.1 mL/day", low_reservoir_threshold = "2 mL", patient_bolus = { dose = '
        '"0.02 mL", duration = "10 min", lockout = "1 h", max_per_24h = 4 } }\n'
        '[[steps]]\nat = "0s"\nname = "s0"\ndo = "fault"\nfault = "memory-corruption"\n'
        '[[oracles]]\ncheck = "dose"\nper = "12h"\npatient = "1%"\n'
        '[[oracles]]\ncheck = "reservoir"\nevery = "6h"\nmax_gap = "1 mL"\n'
        '[[oracles]]\ncheck = "exactly-once"\n'
        '[[oracles]]\ncheck = "alarm-latency"\nfault = "s0"\nalarm = "MOTOR_STALL"\n'
        'within = "1 h"\n',
        "generated.toml",
    )
    assert _evidence(run(scenario, "api")) == _evidence(run(scenario, "wire"))

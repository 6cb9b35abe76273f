"""The scenario file format (docs/scenarios.md): what it accepts, and one `file:line`
error with exit code 2 for what it does not."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from hil.cli import main
from hil.fault_builders import FAULTS
from hil.hazards import is_hazard_id
from hil.proxy.faults import FaultKind
from hil.scenario.loader import Runs, ScenarioError, loads, parse_time
from hil.scenario.model import Scenario

ROOT = Path(__file__).resolve().parents[3]
RX = (
    'prescription = { drug = "morphine", concentration = "10 mg/mL", mode = "continuous", '
    'rate = "0.5 mL/day", low_reservoir_threshold = "2 mL" }'
)
HEAD = 'id = "t"\ntitle = "t"\n'


def _one(text: str) -> Scenario:
    (scenario,) = loads(text, "t.toml")
    return scenario


# -- what is wrong, and where ---------------------------------------------------------------

BAD = [
    pytest.param(HEAD + "seed = 1.5\n", 3, "seed must be an integer", id="wrong-type-seed"),
    pytest.param(HEAD + 'hazards = ["H99"]\n', 3, "unknown hazard 'H99'", id="unknown-hazard"),
    pytest.param(
        HEAD + '[[steps]]\nat = "1d"\ndo = "fault"\nfault = "melt"\n',
        6,
        "unknown fault 'melt'",
        id="unknown-fault",
    ),
    pytest.param(
        HEAD + '[[steps]]\nat = "1d"\ndo = "fault"\nfault = "leak"\n',
        6,
        "needs parameter 'ppm'",
        id="fault-missing-parameter",
    ),
    pytest.param(
        HEAD + '[[steps]]\ndo = "fault"\nfault = "leak"\nparams = { ppm = 2_000_000 }\n',
        6,
        "ppm must be 1..1000000",
        id="fault-parameter-out-of-range",
    ),
    pytest.param(HEAD + '[[steps]]\ndo = "bolus"\n', 4, "unknown step 'bolus'", id="unknown-step"),
    pytest.param(
        HEAD + '[[steps]]\nat = "2d"\ndo = "advance"\n[[steps]]\nat = "1d 08:00"\ndo = "advance"\n',
        7,
        "time going backwards",
        id="time-backwards",
    ),
    pytest.param(
        HEAD + '[[steps]]\nat = "1 fortnight"\ndo = "advance"\n',
        4,
        "is not a duration",
        id="bad-time",
    ),
    pytest.param(
        HEAD + '[[steps]]\ndo = "clinician-bolus"\ndose = 5\nduration = "1 h"\n',
        5,
        "dose must be a string with its unit",
        id="wrong-type-dose",
    ),
    pytest.param(
        HEAD + '[[steps]]\ndo = "clinician-bolus"\ndose = "0.0000005 mL"\nduration = "1 h"\n',
        5,
        "not a whole number of nL",
        id="inexact-dose",
    ),
    pytest.param(HEAD + "[sweep]\nseed = []\n", 4, "expands to nothing", id="empty-sweep"),
    pytest.param(
        HEAD + "[sweep]\nseed = { from = 5, to = 1 }\n",
        4,
        "expands to nothing",
        id="empty-range-sweep",
    ),
    pytest.param(
        HEAD + '[sweep]\n"setup.nothing.here" = [1]\n', 4, "names nothing", id="sweep-bad-key"
    ),
    pytest.param(HEAD + "colour = 1\n", 3, "unknown key 'colour'", id="unknown-key"),
    pytest.param(
        HEAD + '[[steps]]\ndo = "stop"\nexpect = { outcome = "done" }\n',
        5,
        "outcome must be one of",
        id="bad-outcome",
    ),
    pytest.param(
        HEAD + '[[steps]]\ndo = "stop"\nexpect = { refusal = "NOPE" }\n',
        5,
        "unknown refusal code 'NOPE'",
        id="bad-refusal",
    ),
    pytest.param(
        HEAD + '[[oracles]]\ncheck = "vibes"\n', 4, "unknown oracle 'vibes'", id="unknown-oracle"
    ),
    pytest.param(
        HEAD + '[[oracles]]\ncheck = "alarm-latency"\nfault = "x"\nalarm = "MOTOR_STALL"\n'
        'within = "1 h"\n',
        5,
        "no step named 'x'",
        id="oracle-names-no-step",
    ),
    pytest.param(HEAD + '[setup]\nprofile = "nope-99"\n', 4, "no profile", id="bad-profile"),
    pytest.param(
        HEAD + '[setup]\nprescription = { drug = "morphine" }\n',
        4,
        "concentration",
        id="bad-prescription",
    ),
    pytest.param(
        HEAD + '[[steps]]\ndo = "link-fault"\nkind = "teleport"\nduration = "1s"\n',
        5,
        "unknown link fault 'teleport'",
        id="unknown-link-fault",
    ),
    pytest.param('id = "t"\ntitle = \n', 2, "not valid TOML", id="toml-syntax"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD)
def test_bad_file_is_one_line_with_its_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        loads(text, "t.toml")
    error = str(caught.value)
    assert "\n" not in error
    assert error.startswith(f"t.toml:{line}: "), error
    assert message in error


@pytest.mark.parametrize(("text", "line", "message"), BAD)
def test_cli_check_exits_2_with_the_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    for command in (["scenario", "check", str(path)], ["scenario", "run", str(path)]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2, result.output
        assert f"bad.toml:{line}: " in result.output
        assert "Traceback" not in result.output


def test_missing_file_and_empty_directory_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["scenario", "check", str(tmp_path / "none.toml")])
    assert result.exit_code == 2
    assert "no such file" in result.output
    result = CliRunner().invoke(main, ["scenario", "check", str(tmp_path)])
    assert result.exit_code == 2
    assert "no .toml" in result.output


def test_check_counts_runs(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(HEAD + "[sweep]\nseed = [1, 2, 3]\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["scenario", "check", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "3 run(s) in 1 file(s)" in result.output


# -- what it accepts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2d 08:00", (2 * 86_400 + 8 * 3_600) * 1_000),
        ("08:30", 8.5 * 3_600 * 1_000),
        ("0d 00:00:30", 30_000),
        ("36h", 36 * 3_600 * 1_000),
        ("10 min", 600_000),
        ("1.5 h", 5_400_000),
    ],
    ids=["day-and-time", "time-on-day-0", "seconds", "hours", "minutes", "decimal-hours"],
)
def test_times(text: str, ms: float) -> None:
    assert parse_time(text) == ms


def test_relative_times_add_up_and_steps_get_lines_and_names() -> None:
    scenario = _one(
        HEAD
        + '[[steps]]\nafter = "6h"\ndo = "advance"\n'
        + '[[steps]]\nafter = "30 min"\ndo = "interrogate"\n'
        + '[[steps]]\nat = "1d"\ndo = "stop"\nname = "halt"\n'
    )
    assert [s.at_ms for s in scenario.steps] == [21_600_000, 23_400_000, 86_400_000]
    assert [s.name for s in scenario.steps] == ["advance-1", "interrogate-2", "halt"]
    assert [s.line for s in scenario.steps] == [3, 6, 9]
    assert scenario.end_ms == 86_400_000


def test_every_registry_fault_loads_with_its_parameters() -> None:
    """Faults come from hil/control.py's registry: a fault added there works at once."""
    samples = {"part": '"motor"', "recover_after_s": '"6h"', "scan_s": '"45 min"'}
    for name, spec in FAULTS.items():
        params = ", ".join(
            f"{p} = {samples.get(p, '1')}" for p, (required, _) in spec.params.items() if required
        )
        scenario = _one(
            HEAD + f'[[steps]]\ndo = "fault"\nfault = "{name}"\nparams = {{ {params} }}\n'
        )
        assert scenario.steps[0].params["fault"] == name


def test_duration_and_volume_parameters_are_parsed_by_the_one_parser() -> None:
    scenario = _one(
        HEAD + '[[steps]]\ndo = "fault"\nfault = "stall"\nparams = { recover_after_s = "6h" }\n'
        '[[steps]]\ndo = "fault"\nfault = "pocket-fill"\nparams = { volume_nl = "5 mL" }\n'
    )
    assert scenario.steps[0].params["params"] == {"recover_after_s": 21_600}
    assert scenario.steps[1].params["params"] == {"volume_nl": 5_000_000}


@pytest.mark.parametrize("kind", [k.value for k in FaultKind])
def test_every_proxy_fault_kind_loads(kind: str) -> None:
    scenario = _one(HEAD + f'[[steps]]\ndo = "link-fault"\nkind = "{kind}"\nduration = "1 min"\n')
    assert scenario.steps[0].params["spec"].kind.value == kind
    assert scenario.steps[0].params["duration_ms"] == 60_000


def test_a_dose_by_mass_uses_the_concentration_in_force() -> None:
    scenario = _one(
        HEAD + f"[setup]\n{RX}\n"
        '[[steps]]\ndo = "clinician-bolus"\ndose = "1 mg"\nduration = "1 h"\n'
        '[[steps]]\ndo = "refill"\nvolume = "20 mL"\nconcentration = "20 mg/mL"\n'
        '[[steps]]\ndo = "clinician-bolus"\ndose = "1 mg"\nduration = "1 h"\n'
    )
    assert scenario.steps[0].params["dose_nl"] == 100_000
    assert scenario.steps[2].params["dose_nl"] == 50_000


def test_sweep_expands_with_ids_seeds_and_values() -> None:
    runs = loads(
        HEAD + f'[setup]\nreservoir = {{ volume = "10 mL" }}\n{RX}\n'
        '[[steps]]\ndo = "clinician-bolus"\ndose = "0.1 mL"\nduration = "1 h"\n'
        '[sweep]\nseed = { from = 1, to = 3 }\n"steps.0.dose" = ["0.1 mL", "0.2 mL"]\n'
        '"setup.reservoir.volume" = ["5 mL"]\n',
        "t.toml",
    )
    assert len(runs) == 6
    assert len({r.id for r in runs}) == 6
    assert runs[0].id == "t[seed=1,dose=0.1 mL,volume=5 mL]"
    assert sorted({r.seed for r in runs}) == [1, 2, 3]
    assert {r.steps[0].params["dose_nl"] for r in runs} == {100_000, 200_000}
    assert {r.setup.reservoir_nl for r in runs} == {5_000_000}


def _sweep_text(seeds: list[int], doses: list[int]) -> str:
    return (
        HEAD
        + f'[setup]\nreservoir = {{ volume = "10 mL" }}\n{RX}\n'
        '[[steps]]\ndo = "clinician-bolus"\ndose = "0.1 mL"\nduration = "1 h"\n'
        f"[sweep]\nseed = {seeds}\n"
        f'"steps.0.dose" = {[f"{d} uL" for d in doses]}\n'.replace("'", '"')
    )


@given(
    seeds=st.lists(st.integers(0, 99), min_size=1, max_size=3, unique=True),
    doses=st.lists(st.integers(1, 99), min_size=1, max_size=3, unique=True),
)
def test_runs_builds_any_point_alone_in_product_order(seeds: list[int], doses: list[int]) -> None:
    runs = Runs(_sweep_text(seeds, doses), "t.toml")
    points = list(itertools.product(seeds, doses))
    assert len(runs) == len(points)
    for index in reversed(range(len(points))):  # any order: each point is built alone
        seed, dose = points[index]
        run = runs[index]
        assert run.id == f"t[seed={seed},dose={dose} uL]"
        assert (run.seed, run.steps[0].params["dose_nl"]) == (seed, dose * 1_000)
    assert runs[-1].id == runs[len(points) - 1].id
    with pytest.raises(IndexError):
        runs[len(points)]


def test_runs_reports_a_bad_point_when_it_is_built_and_load_at_once() -> None:
    text = _sweep_text([1], [5]).replace('"5 uL"', '"5 uL", "lots"')
    runs = Runs(text, "t.toml")  # the sweep's keys and size are checked here
    assert runs[0].steps[0].params["dose_nl"] == 5_000
    with pytest.raises(ScenarioError, match=r"^t\.toml:\d+: .*lots"):
        runs[1]
    with pytest.raises(ScenarioError, match=r"^t\.toml:\d+: .*lots"):
        loads(text, "t.toml")


def test_hazard_ids_are_the_table_of_docs_hazards_md() -> None:
    text = (ROOT / "docs" / "hazards.md").read_text(encoding="utf-8")
    ids = re.findall(r"^\| (H\d+|C\d+) \|", text, re.MULTILINE)
    assert len(set(ids)) == 22
    assert all(is_hazard_id(i) for i in ids)
    assert not is_hazard_id("H18")
    assert not is_hazard_id("C6")


def test_the_run_goes_on_to_every_oracle_window() -> None:
    scenario = _one(
        HEAD + '[[steps]]\nat = "1d"\ndo = "interrogate"\n'
        '[[oracles]]\ncheck = "dose"\nto = "5d"\npatient = "2%"\n'
    )
    assert scenario.end_ms == 5 * 86_400_000


def test_a_swept_value_may_hold_any_character_but_the_id_may_not() -> None:
    runs = loads(
        HEAD + '[setup]\nreservoir = { concentration = "10 mg/mL" }\n'
        '[sweep]\n"setup.reservoir.concentration" = ["10 mg/mL", "2 mg/mL"]\n',
        "t.toml",
    )
    assert [r.id for r in runs] == ["t[concentration=10 mg/mL]", "t[concentration=2 mg/mL]"]
    with pytest.raises(ScenarioError, match=r"t.toml:1: id 'a/b' must be"):
        loads('id = "a/b"\ntitle = "t"\n', "t.toml")

"""`pumpemu scenario run`: verdict table, JSON, JUnit, exit codes, determinism."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner

from hil.cli import main
from hil.key_files import write_key_file
from protocol.keys import generate_keys

PASSING = """\
id = "ok"
title = "a quiet day"
hazards = ["H11"]
[setup]
prescription = { drug = "morphine", concentration = "10 mg/mL", mode = "continuous", \
rate = "0.5 mL/day", low_reservoir_threshold = "2 mL" }
[[steps]]
at = "1d"
do = "interrogate"
expect = { state = "CONTINUOUS" }
[[oracles]]
check = "dose"
patient = "2%"
"""
FAILING = PASSING.replace('id = "ok"', 'id = "bad"').replace(
    'state = "CONTINUOUS"', 'state = "STOPPED"'
)
LINKED = PASSING.replace('id = "ok"', 'id = "linked"') + (
    '[[steps]]\nat = "1d"\ndo = "link-fault"\nkind = "drop"\nduration = "1 min"\n'
)


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_all_pass_exits_0_with_a_table(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["scenario", "run", _write(tmp_path, "ok.toml", PASSING)])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output
    assert "1 pass" in result.output


def test_a_failure_exits_1_with_step_expected_happened_and_belief_vs_truth(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, "bad.toml", FAILING)
    result = CliRunner().invoke(main, ["scenario", "run", path, "--backend", "api"])
    assert result.exit_code == 1
    assert "FAILED bad [api]" in result.output
    assert "bad.toml:6: step 1 'interrogate-1'" in result.output
    assert "expected: STOPPED" in result.output
    assert "happened: CONTINUOUS" in result.output
    assert "reservoir belief" in result.output
    assert "vs truth" in result.output


def test_a_skip_is_not_a_pass(tmp_path: Path) -> None:
    path = _write(tmp_path, "linked.toml", LINKED)
    result = CliRunner().invoke(main, ["scenario", "run", path, "--backend", "api", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["runs"][0]["verdict"] == "skip"
    assert report["ok"] is False
    assert CliRunner().invoke(main, ["scenario", "run", path]).exit_code == 0  # wire runs it


def test_json_and_junit(tmp_path: Path) -> None:
    ok = _write(tmp_path, "ok.toml", PASSING)
    bad = _write(tmp_path, "bad.toml", FAILING)
    junit = tmp_path / "out.xml"
    result = CliRunner().invoke(main, ["scenario", "run", ok, bad, "--json", "--junit", str(junit)])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["counts"] == {"pass": 1, "fail": 1, "skip": 0, "error": 0}
    run = report["runs"][1]
    failed = [f for f in run["findings"] if f["verdict"] == "failed"]
    assert failed[0]["belief_vs_truth"]["state"] == "CONTINUOUS"
    assert run["figures"]["oracle1.dose"][0]["programmed_pg"] == 5_000_000_000
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "2"
    assert suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert "expected STOPPED; happened CONTINUOUS" in (failure.text or "")


def test_the_same_file_and_seed_give_the_same_report(tmp_path: Path) -> None:
    path = _write(tmp_path, "ok.toml", PASSING)
    outputs = {
        CliRunner().invoke(main, ["scenario", "run", path, "--json", "--builtin"]).output
        for _ in range(2)
    }
    assert len(outputs) == 1


def test_filters_and_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["scenario", "run", "--builtin", "--hazard", "H5", "--json"])
    assert result.exit_code == 0
    assert all("H5" in r["hazards"] for r in json.loads(result.output)["runs"])
    result = CliRunner().invoke(main, ["scenario", "run", "--builtin", "--only", "zzz"])
    assert result.exit_code == 2
    assert "no scenario matches" in result.output
    assert CliRunner().invoke(main, ["scenario", "run"]).exit_code == 2


def test_a_setup_the_pump_refuses_is_an_error_verdict(tmp_path: Path) -> None:
    text = PASSING.replace('rate = "0.5 mL/day"', 'rate = "20 mL/day"')
    result = CliRunner().invoke(main, ["scenario", "run", _write(tmp_path, "s.toml", text)])
    assert result.exit_code == 1
    assert "setup: the pump refused the setup prescription: DAILY_DOSE_ABOVE_MAX" in result.output


def test_a_skipped_step_decides_the_verdict_over_later_failures(tmp_path: Path) -> None:
    text = LINKED.replace('expect = { state = "CONTINUOUS" }', 'expect = { state = "STOPPED" }')
    result = CliRunner().invoke(
        main, ["scenario", "run", _write(tmp_path, "s.toml", text), "--backend", "api", "--json"]
    )
    run = json.loads(result.output)["runs"][0]
    assert run["verdict"] == "skip"
    verdicts = sorted(f["verdict"] for f in run["findings"])
    assert verdicts == ["failed", "held", "skipped"]  # shown, but not blamed on the pump
    assert result.exit_code == 1


def test_clear_memory_error_runs_on_api_and_wire_alike(tmp_path: Path) -> None:
    # The memory error suspends delivery from 1 ms after the fault until the restart 65 min
    # later: 4.5 % of the day's dose, so this story's dose oracle allows 5 %.
    text = PASSING.replace('id = "ok"', 'id = "h8"').replace('patient = "2%"', 'patient = "5%"') + (
        '[[steps]]\nat = "1d"\ndo = "fault"\nfault = "memory-corruption"\n'
        '[[steps]]\nat = "1d 01:00"\ndo = "clear-memory-error"\n'
        'expect = { outcome = "applied", state = "STOPPED", log = ["ALARM_CLEARED"] }\n'
        '[[steps]]\nat = "1d 01:05"\ndo = "start"\nexpect = { state = "CONTINUOUS" }\n'
        '[[oracles]]\ncheck = "exactly-once"\n'
    )
    path = _write(tmp_path, "h8.toml", text)
    runs = [
        json.loads(
            CliRunner().invoke(main, ["scenario", "run", path, "--backend", b, "--json"]).output
        )["runs"][0]
        for b in ("api", "wire")
    ]
    assert [r["verdict"] for r in runs] == ["pass", "pass"], runs
    assert runs[0]["figures"] == runs[1]["figures"]
    assert runs[0]["figures"]["oracle2.exactly-once"]["commands_checked"] == 2


def test_a_program_step_with_an_override_runs_on_api_and_wire_alike(tmp_path: Path) -> None:
    """The H9 mis-entry story, told with the clinician's override: 1 mL/day at 10 mg/mL
    (10 mg/day) from the running 5 mg/day is +100 %, beyond morphine's 30 % change limit:
    refused without the override, applied with it, on both backends."""
    rx = (
        'prescription = { drug = "morphine", concentration = "10 mg/mL", mode = "continuous", '
        'rate = "1 mL/day", low_reservoir_threshold = "2 mL" }'
    )
    text = PASSING.replace('id = "ok"', 'id = "override"').replace(
        'expect = { state = "CONTINUOUS" }', ""
    ) + (
        f'[[steps]]\nat = "1d 00:05"\ndo = "program"\n{rx}\n'
        'expect = { outcome = "refused", refusal = "DOSE_CHANGE_NEEDS_OVERRIDE" }\n'
        f'[[steps]]\nat = "1d 00:10"\ndo = "program"\n{rx}\noverride = "dose-change"\n'
        'expect = { outcome = "applied", log = ["OVERRIDE_COMMITTED"] }\n'
    )
    text = text.replace('[[oracles]]\ncheck = "dose"\npatient = "2%"\n', "")
    path = _write(tmp_path, "override.toml", text)
    runs = [
        json.loads(
            CliRunner().invoke(main, ["scenario", "run", path, "--backend", b, "--json"]).output
        )["runs"][0]
        for b in ("api", "wire")
    ]
    assert [r["verdict"] for r in runs] == ["pass", "pass"], runs


def test_an_unknown_override_is_a_file_error(tmp_path: Path) -> None:
    text = PASSING.replace('id = "ok"', 'id = "bad-override"') + (
        '[[steps]]\nat = "1d 00:05"\ndo = "program"\noverride = "hard-limit"\n'
        'prescription = { drug = "morphine", concentration = "10 mg/mL", mode = "continuous", '
        'rate = "1 mL/day", low_reservoir_threshold = "2 mL" }\n'
    )
    result = CliRunner().invoke(main, ["scenario", "check", _write(tmp_path, "b.toml", text)])
    assert result.exit_code == 2
    assert "override 'hard-limit': one of soft-limit, dose-change" in result.output


def test_allow_skips_accepts_a_skip_but_never_a_failure(tmp_path: Path) -> None:
    linked = _write(tmp_path, "linked.toml", LINKED)
    bad = _write(tmp_path, "bad.toml", FAILING)
    skipped = CliRunner().invoke(
        main, ["scenario", "run", linked, "--backend", "api", "--allow-skips", "--json"]
    )
    assert skipped.exit_code == 0
    assert json.loads(skipped.output)["runs"][0]["verdict"] == "skip"
    failed = CliRunner().invoke(
        main, ["scenario", "run", linked, bad, "--backend", "api", "--allow-skips"]
    )
    assert failed.exit_code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--port", "/dev/null"], "--port is for --backend url", id="port-on-wire"),
        pytest.param(["--keys", "k.keys"], "--keys is for --backend url", id="keys-on-wire"),
        pytest.param(
            ["--control", "127.0.0.1:7001"], "--control is for --backend url", id="control-on-wire"
        ),
        pytest.param(["--backend", "url"], "--backend url needs --port URL", id="url-no-port"),
        pytest.param(
            ["--backend", "url", "--port", "/dev/null"], "needs --keys FILE", id="url-no-keys"
        ),
        pytest.param(
            ["--backend", "url", "--port", "/dev/null", "--keys", "k.keys", "--jobs", "2"],
            "one run at a time",
            id="url-with-jobs",
        ),
        pytest.param(
            ["--backend", "url", "--port", "/dev/null", "--keys", "missing.keys"],
            "missing.keys",
            id="url-missing-key-file",
        ),
    ],
)
def test_url_options_are_checked_before_anything_runs(
    tmp_path: Path, args: list[str], message: str
) -> None:
    path = _write(tmp_path, "ok.toml", PASSING)
    result = CliRunner().invoke(main, ["scenario", "run", path, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_control_environment_variable_does_not_stop_other_backends(tmp_path: Path) -> None:
    path = _write(tmp_path, "ok.toml", PASSING)
    result = CliRunner().invoke(
        main, ["scenario", "run", path, "--backend", "api"], env={"PUMPEMU_CONTROL": "unix:/nope"}
    )
    assert result.exit_code == 0, result.output


def test_an_oracle_on_a_skipped_step_is_skipped_with_the_reason(tmp_path: Path) -> None:
    text = LINKED.replace('id = "linked"', 'id = "refill-in-window"') + (
        '[[steps]]\nat = "1d"\ndo = "refill"\nname = "refill"\nvolume = "20 mL"\n'
        '[[oracles]]\ncheck = "refill-discrepancy"\nstep = "refill"\nflagged = false\n'
    )
    path = _write(tmp_path, "refill.toml", text)
    result = CliRunner().invoke(main, ["scenario", "run", path, "--backend", "api", "--json"])
    run = json.loads(result.output)["runs"][0]
    oracle = next(f for f in run["findings"] if f["what"] == "refill-discrepancy")
    assert oracle["verdict"] == "skipped"
    assert oracle["happened"].startswith("skipped: its step 'refill' was skipped (inside the")
    assert "oracle2.refill-discrepancy" not in run["figures"]
    assert run["verdict"] == "skip"
    wire = CliRunner().invoke(main, ["scenario", "run", path, "--json"])  # wire runs the step
    judged = json.loads(wire.output)["runs"][0]["findings"]
    assert [f["verdict"] for f in judged if f["where"].endswith("(refill-discrepancy)")] in (
        ["held"],
        ["failed"],
    )


def test_a_control_api_that_cannot_be_reached_is_one_line_exit_2(tmp_path: Path) -> None:
    keys = tmp_path / "pump.keys"
    write_key_file(keys, generate_keys("PE-T", bytes(range(64))))
    path = _write(tmp_path, "ok.toml", PASSING)
    result = CliRunner().invoke(
        main,
        ["scenario", "run", path, "--backend", "url", "--port", "/dev/null", "--keys",
         str(keys), "--control", f"unix:{tmp_path / 'nobody.sock'}"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "cannot reach the control API" in result.output
    assert len(result.output.strip().splitlines()) == 1

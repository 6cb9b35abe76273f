"""``pumpemu ctl trial`` and ``program --from-trial`` without a pump: the record file, the
conversion shown, and every usage error as one line, exit 2 (hil/ctl/trial_command.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from emulator.trial import TrialRecord
from hil.cli import main
from hil.ctl.trial_command import trial


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["ctl", *args])
    return result.exit_code, result.stdout, result.stderr


def test_every_trial_subcommand_has_help_with_an_example() -> None:
    assert sorted(trial.commands) == ["record", "show"]
    for name in trial.commands:
        code, out, _ = run("trial", name, "--help")
        assert code == 0, name
        assert "Example" in out, name
        assert "pumpemu ctl" in out, name


def test_single_shot_record_writes_the_file_and_shows_the_conversion(tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    code, stdout, stderr = run(
        "trial", "record", "--single-shot", "75ug", "--drug", "Lioresal",
        "--effect-duration", "10h", "--at", "2026-03-01T09:30:00",
        "--outcome", "effective", "--out", str(out),
    )  # fmt: skip
    assert code == 0, stderr
    record = TrialRecord.loads(out.read_text())
    assert (record.dose_pg, record.effect_duration_s) == (75_000_000, 36_000)
    # Effect over 8 h: the screening dose per day (assumed exception from the labeling).
    assert "implant starting dose: 75 µg/day" in stdout
    code, stdout, _ = run("--json", "trial", "show", str(out), "--concentration", "500ug/mL")
    assert code == 0
    shown = json.loads(stdout)
    assert shown["conversion"]["daily_mass_pg"] == 75_000_000
    assert shown["rate_nl_per_day"] == 150_000


def test_a_rate_that_does_not_carry_the_dose_exactly_is_rounded_down_and_said(
    tmp_path: Path,
) -> None:
    """100 ug/day at 3000 ug/mL is 33_333.3 nL/day: 33_333 nL/day = 99.999 ug/day."""
    out = tmp_path / "t.json"
    assert run("trial", "record", "--single-shot", "50ug", "--drug", "baclofen",
               "--outcome", "effective", "--out", str(out))[0] == 0  # fmt: skip
    code, stdout, _ = run("trial", "show", str(out), "--concentration", "3000ug/mL")
    assert code == 0
    assert "0.033333 mL/day = 99.999 µg/day (rounded down by 0.001 µg/day" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("trial", "record", "--single-shot", "50ug", "--outcome", "effective", "--out", "x"),
         "--single-shot needs --drug"),
        (("trial", "record", "--single-shot", "50 mL", "--drug", "baclofen",
          "--outcome", "effective", "--out", "x"), "--single-shot: '50 mL' is not a mass"),
        (("trial", "record", "--drug", "baclofen", "--outcome", "effective", "--out", "x"),
         "--drug applies to --single-shot only"),
        (("program", "--from-trial", "missing.json", "--concentration", "2mg/mL"),
         "missing.json: cannot read the trial record"),
        (("program", "--from-trial", "t.json"), "--from-trial needs --concentration"),
        (("program",), "give a prescription FILE, or --from-trial RECORD"),
        (("program", "rx.toml", "--concentration", "2mg/mL"),
         "--concentration applies to --from-trial only"),
        (("trial", "show", "bad.json"), "bad.json: not a JSON trial record"),
        (("trial", "show", "clonidine.json"), "no documented rule"),
        (("program", "rx.toml", "--low-reservoir-threshold", "4 mL"),
         "--low-reservoir-threshold applies to --from-trial only"),
        (("trial", "record", "--from-bolus", "--drug", "baclofen", "--outcome", "effective",
          "--out", "x"), "--from-bolus reads the dose, drug and time from the pump"),
    ],
    ids=[
        "no-drug", "volume-for-mass", "drug-without-shot", "missing-record",
        "no-concentration", "no-file", "concentration-without-trial", "bad-json",
        "no-rule", "threshold-without-trial", "from-bolus-with-drug",
    ],
)  # fmt: skip
def test_usage_errors_are_one_line_exit_2(
    args: tuple[str, ...], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "t.json").write_text("{}")
    assert run("trial", "record", "--single-shot", "50ug", "--drug", "clonidine",
               "--outcome", "effective", "--out", "clonidine.json")[0] == 0  # fmt: skip
    code, _, stderr = run(*args)
    assert code == 2
    assert message in stderr
    assert len(stderr.strip().splitlines()) == 1

"""The trial, then the implant programmed from it, through ``pumpemu ctl`` against two
``pumpemu serve`` processes (issue 12's acceptance: "A trial followed by an implant
programmed from it runs through ctl against serve").

Every ``ctl`` and ``time`` run is its own process with a bounded timeout; the serve fixture
kills whatever is left (tests/hil/e2e/conftest.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from hil.key_files import write_key_file
from protocol.keys import PumpKeys, generate_keys
from tests.hil.e2e.conftest import ServeProcess
from tests.hil.e2e.test_ctl_against_serve import pumpemu

pytestmark = pytest.mark.e2e

Serve = Callable[..., ServeProcess]
KeyFile = tuple[PumpKeys, Path]

TRIAL_RX = """\
format = "pumpemu-prescription/1"
drug = "morphine"
concentration = "1 mg/mL"
mode = "continuous"
rate = "0.2 mL/day"          # 0.2 mg/day on the trial pump
low_reservoir_threshold = "1 mL"
"""


def test_a_trial_then_an_implant_programmed_from_it(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    """Continuous morphine trial at 1 mg/mL x 0.2 mL/day = 0.2 mg/day (200_000_000 pg/day).
    The documented rule for a continuous trial is the same daily mass, so the implant at
    2 mg/mL (2_000 pg/nL) runs 200_000_000 / 2_000 = 100_000 nL/day = 0.1 mL/day; at
    10 mg/mL it would need 0.02 mL/day, below the implant's minimum rate, and is refused.

    Then a single-shot baclofen screening bolus of 50 ug whose effect lasted 6 h: twice the
    bolus per day, 100 ug/day; at 2000 ug/mL that is 50_000 nL/day."""
    _, trial_keys = pump_keys
    control = f"unix:{tmp_path / 'trial.sock'}"
    trial_pump = serve(
        "--pty", "--keys", str(trial_keys), "--clock", "manual", "--control", control,
        "--profile", "trial-external", "--stroke-seed", "7",
    )  # fmt: skip
    port = trial_pump.first_line()
    trial_pump.wait_stderr("control API listening")
    on_trial = ("ctl", "--port", port, "--keys", str(trial_keys))

    info = pumpemu(*on_trial, "--json", "info")
    assert info.returncode == 0, info.stderr
    assert "trial-external" in info.stdout

    rx_file = tmp_path / "trial-rx.toml"
    rx_file.write_text(TRIAL_RX)
    programmed = pumpemu(*on_trial, "program", str(rx_file), "--yes")
    assert programmed.returncode == 0, programmed.stdout + programmed.stderr
    assert "read back: the pump's prescription is the one reviewed" in programmed.stdout

    advanced = pumpemu("time", "advance", "3d", "--control", control)
    assert advanced.returncode == 0, advanced.stderr
    # 3 days at 0.2 mL/day: the firmware counts 600_000 nL; the seeded plant moved that
    # within one stroke's spread (+/-5 % of 50 nL, plus rounding: 3 nL), no bias.
    truth = pumpemu("truth", "--control", control, "--json")
    assert truth.returncode == 0, truth.stderr
    seen = json.loads(truth.stdout)
    assert seen["firmware"]["delivered_nl"] == 600_000
    assert abs(seen["plant"]["pumped_nl"] - 600_000) <= 3

    record_file = tmp_path / "trial.json"
    recorded = pumpemu(
        *on_trial, "trial", "record", "--outcome", "effective", "--out", str(record_file),
        "--note", "pain 7 -> 3",
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert "implant starting dose: 200 µg/day" in recorded.stdout
    record = json.loads(record_file.read_text())
    assert record["kind"] == "continuous"
    assert record["dose_pg"] == 200_000_000
    assert "trial-external" in record["device"]
    assert trial_pump.stop() == 0
    assert "Traceback" not in trial_pump.stderr

    # The implant: another pump, another key file, the SynchroMed II-like profile.
    implant_keys = tmp_path / "implant.keys"
    write_key_file(implant_keys, generate_keys("PE-000777", os.urandom(64)))
    implant = serve("--pty", "--keys", str(implant_keys), "--clock", "manual")
    on_implant = ("ctl", "--port", implant.first_line(), "--keys", str(implant_keys))

    # At 10 mg/mL the dose needs 0.02 mL/day, below the implant's 0.048 mL/day minimum: the
    # pump refuses at stage time and nothing is committed.
    too_strong = pumpemu(
        *on_implant, "program", "--from-trial", str(record_file),
        "--concentration", "10mg/mL", "--yes",
    )  # fmt: skip
    assert too_strong.returncode == 1
    assert "implant: 10 mg/mL -> 0.02 mL/day = 200 µg/day" in too_strong.stdout
    assert "RATE_BELOW_MIN" in too_strong.stdout
    assert f"in {record_file}: steps[].rate" in too_strong.stdout

    from_trial = pumpemu(
        *on_implant, "program", "--from-trial", str(record_file),
        "--concentration", "2mg/mL", "--yes",
    )  # fmt: skip
    assert from_trial.returncode == 0, from_trial.stdout + from_trial.stderr
    assert "implant: 2 mg/mL -> 0.1 mL/day = 200 µg/day" in from_trial.stdout
    assert "read back: the pump's prescription is the one reviewed" in from_trial.stdout
    assert_running(on_implant, "morphine", 2_000, 100_000, 200_000_000)

    shot_file = tmp_path / "baclofen.json"
    shot = pumpemu(
        "ctl", "trial", "record", "--single-shot", "50ug", "--drug", "baclofen",
        "--effect-duration", "6h", "--outcome", "effective", "--out", str(shot_file),
    )  # fmt: skip
    assert shot.returncode == 0, shot.stdout + shot.stderr
    from_shot = pumpemu(
        *on_implant, "program", "--from-trial", str(shot_file),
        "--concentration", "2000ug/mL", "--yes",
    )  # fmt: skip
    assert from_shot.returncode == 0, from_shot.stdout + from_shot.stderr
    assert_running(on_implant, "baclofen", 2_000, 50_000, 100_000_000)
    assert implant.stop() == 0
    assert "Traceback" not in implant.stderr


def assert_running(
    ctl: tuple[str, ...], drug: str, conc: int, rate: int, daily_mass_pg: int
) -> None:
    """The implant's committed prescription, read back through ctl, delivers exactly the
    converted daily mass: rate (nL/day) x concentration (pg/nL)."""
    read = pumpemu(*ctl, "--json", "prescription")
    assert read.returncode == 0, read.stderr
    rx = json.loads(read.stdout)["reply"]["prescription"]
    assert rx["drug_name"] == drug
    assert rx["mode"] == "CONTINUOUS"
    assert rx["concentration_ug_per_ml"] == conc
    assert [s["rate_nl_per_day"] for s in rx["steps"]] == [rate]
    assert rate * conc == daily_mass_pg


def test_a_failed_trial_programs_nothing(serve: Serve, pump_keys: KeyFile, tmp_path: Path) -> None:
    """A trial recorded not effective converts to no dose: usage error, nothing sent (H11)."""
    _, key_file = pump_keys
    record_file = tmp_path / "failed.json"
    made = pumpemu(
        "ctl", "trial", "record", "--single-shot", "100ug", "--drug", "baclofen",
        "--outcome", "not-effective", "--out", str(record_file),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    pump = serve("--pty", "--keys", str(key_file), "--clock", "manual")
    port = pump.first_line()
    refused = pumpemu(
        "ctl", "--port", port, "--keys", str(key_file), "program", "--from-trial",
        str(record_file), "--concentration", "2000ug/mL", "--yes",
    )  # fmt: skip
    assert refused.returncode == 2
    assert "not effective" in refused.stderr
    status = pumpemu("ctl", "--port", port, "--keys", str(key_file), "--json", "status")
    assert json.loads(status.stdout)["reply"]["state"] == "STOPPED"
    assert pump.stop() == 0


SCREENING_RX = """\
format = "pumpemu-prescription/1"
drug = "baclofen"
concentration = "50 ug/mL"   # the screening ampoule's strength
mode = "stopped"
low_reservoir_threshold = "1 mL"
"""


def test_a_screening_bolus_through_the_trial_pump_is_recorded_from_its_log(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path
) -> None:
    """A 1 mL clinician bolus of baclofen 50 ug/mL over 1 h through the trial catheter is a
    50 ug screening dose (1_000_000 nL = 20_000 strokes of 50 nL, all delivered); its
    effect lasted 6 h, so the implant starts at twice it, 100 ug/day."""
    _, key_file = pump_keys
    control = f"unix:{tmp_path / 'trial.sock'}"
    pump = serve(
        "--pty", "--keys", str(key_file), "--clock", "manual", "--control", control,
        "--profile", "trial-external",
    )  # fmt: skip
    on_trial = ("ctl", "--port", pump.first_line(), "--keys", str(key_file))
    pump.wait_stderr("control API listening")
    rx_file = tmp_path / "screening.toml"
    rx_file.write_text(SCREENING_RX)
    assert pumpemu(*on_trial, "program", str(rx_file), "--yes").returncode == 0
    bolus = pumpemu(*on_trial, "bolus", "--dose", "1mL", "--duration", "1h")
    assert bolus.returncode == 0, bolus.stdout + bolus.stderr
    assert pumpemu("time", "advance", "2h", "--control", control).returncode == 0
    record_file = tmp_path / "screening.json"
    recorded = pumpemu(
        *on_trial, "trial", "record", "--from-bolus", "--effect-duration", "6h",
        "--outcome", "effective", "--out", str(record_file),
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert "implant starting dose: 100 µg/day" in recorded.stdout
    record = json.loads(record_file.read_text())
    assert (record["kind"], record["drug"], record["dose_pg"]) == (
        "single-shot", "baclofen", 50_000_000,
    )  # fmt: skip
    assert "clinician bolus of 1 mL" in record["device"]
    assert pump.stop() == 0
    assert "Traceback" not in pump.stderr

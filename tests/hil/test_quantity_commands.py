"""Every command and file that takes a duration, a volume or a fraction reads it with the one
grammar (docs/quantities.md; issue 16 item 6).

Table-driven: each *target* is one command option or file key. Every accepted spelling is run
through it and the exact integer that reaches the pump (or the parser feeding it) is
checked; every wrong spelling is run through the command line and must give one line and
exit code 2 with nothing sent. No pump is started: the control client and the programmer are
replaced by recorders at the point where the command would send, so these are unit tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from hil import control_command
from hil.cli import main
from hil.control import compare_rows
from hil.ctl import command as ctl_command
from hil.ctl import prescription_file
from hil.proxy.faults import Window, parse_fault
from hil.scenario.loader import loads

DAY = 86_400

DURATIONS_S = [
    ("90s", 90),
    ("90 s", 90),
    ("2m", 120),
    ("2 min", 120),
    ("2min", 120),
    ("1h30m", 5_400),
    ("1h 30m", 5_400),
    ("1.5h", 5_400),
    ("3d", 3 * DAY),
    ("2d 08:00", 2 * DAY + 8 * 3_600),
]
"""Every accepted way to write a duration, with its value in seconds."""

VOLUMES_NL = [
    ("0.05 mL", 50_000),
    ("0.05mL", 50_000),
    ("50 uL", 50_000),
    ("50µL", 50_000),
    ("50000 nL", 50_000),
]
"""Every accepted way to write a volume, with its value in nL."""

FRACTIONS_PPM = [("5%", 50_000), ("0.5 %", 5_000), ("50000 ppm", 50_000)]

WRONG_DURATIONS = [
    "2 parsecs",
    "-5 min",
    "5%%",
    "",
    "1e3s",
    "1h 08:00",
    "99999999999999999999d",
]
WRONG_VOLUMES = ["2 parsecs", "-5 mL", "5%%", "", "0.0000005 mL", "9" * 30 + " nL"]
WRONG_FRACTIONS = ["5%%", "-5%", "", "lots", "0.00001 %"]


# -- recorders ------------------------------------------------------------------------------


class _ControlRecorder:
    """Stands in for ControlClient: records what a command would send to the control API."""

    def __init__(self, sent: list[tuple[str, dict[str, Any]]]) -> None:
        self.sent = sent

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        self.sent.append((op, fields))
        return {"advanced_ms": fields.get("ms", 0), "now_ms": 0, "pump_clock_ms": 0}

    def fault(self, name: str, **params: Any) -> dict[str, Any]:
        self.sent.append((name, params))
        return {"applied": {"type": "Fault", **params}, "now_ms": 0, "pump_clock_ms": 0}

    def cap_aspirate(self, volume_nl: int) -> dict[str, Any]:
        self.sent.append(("cap-aspirate", {"volume_nl": volume_nl}))
        return {"result": "CSF", "drug_nl": 0, "drug_pg": 0, "csf_nl": 0, "now_ms": 0,
                "pump_clock_ms": 0}  # fmt: skip


class _ProgrammerRecorder:
    """Stands in for the programmer: records the call a ctl command would make."""

    def __init__(self, sent: list[tuple[str, dict[str, Any]]]) -> None:
        self.sent = sent

    def __getattr__(self, name: str) -> Callable[..., None]:
        def call(*args: Any) -> None:
            self.sent.append((name, {"args": args}))

        return call


class _UnreachableError(Exception):
    """Raised where a command would open the link: it got past its option parsing."""


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    log: list[tuple[str, dict[str, Any]]] = []

    def call_control(_control: str, _token: Path | None, action: Any) -> dict[str, Any]:
        result: dict[str, Any] = action(_ControlRecorder(log))
        return result

    def run_ctl(_ctx: Any, _action: str, call: Callable[[Any], Any]) -> None:
        call(_ProgrammerRecorder(log))

    original_parse = ctl_command._parse

    def record_parse(option: str, parse: Callable[[str], int], text: str) -> int:
        value = original_parse(option, parse, text)
        log.append(("ctl-option", {option: value}))
        return value

    def unreachable(_self: Any) -> Iterator[None]:
        raise _UnreachableError

    monkeypatch.setattr(control_command, "_call", call_control)
    monkeypatch.setattr(ctl_command, "_command", run_ctl)
    monkeypatch.setattr(ctl_command, "_parse", record_parse)
    monkeypatch.setattr(ctl_command.Ctl, "connect", unreachable)
    return log


CTL = ["ctl", "--port", "loop://", "--keys", "/nonexistent.keys"]


def _run(args: list[str]) -> Result:
    return CliRunner().invoke(main, args)


# -- targets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One place a quantity is written: how to run it with a spelling, and how to read the
    integer that reached the pump (None for a spelling that must be refused)."""

    name: str
    run: Callable[[str, Path], Result | int]
    read: Callable[[list[tuple[str, dict[str, Any]]], Result | int], int]


def _cli(args: Callable[[str, Path], list[str]]) -> Callable[[str, Path], Result | int]:
    return lambda text, tmp: _run(args(text, tmp))


def _sent(key: str) -> Callable[[list[tuple[str, dict[str, Any]]], Result | int], int]:
    def read(log: list[tuple[str, dict[str, Any]]], _result: Result | int) -> int:
        (_, fields) = log[-1]
        value: int = fields[key]
        return value

    return read


def _arg(index: int) -> Callable[[list[tuple[str, dict[str, Any]]], Result | int], int]:
    def read(log: list[tuple[str, dict[str, Any]]], _result: Result | int) -> int:
        calls = [fields for name, fields in log if name != "ctl-option"]
        value: int = calls[-1]["args"][index]
        return value

    return read


def _ctl_option(option: str) -> Callable[[list[tuple[str, dict[str, Any]]], Result | int], int]:
    def read(log: list[tuple[str, dict[str, Any]]], _result: Result | int) -> int:
        value: int = next(f[option] for name, f in log if name == "ctl-option" and option in f)
        return value

    return read


def _returned(_log: list[tuple[str, dict[str, Any]]], result: Result | int) -> int:
    assert isinstance(result, int)
    return result


def _trial_record(text: str, tmp: Path) -> Result:
    out = tmp / "trial.json"
    args = ["trial", "record", "--single-shot", "50ug", "--drug", "baclofen"]
    return _run(
        [*CTL, *args, "--effect-duration", text, "--outcome", "effective", "--out", str(out)]
    )


def _trial_seconds(text: str, tmp: Path) -> int:
    """The effect duration the trial record holds (a single shot: nothing is sent)."""
    result = _trial_record(text, tmp)
    assert result.exit_code == 0, result.output
    value: int = json.loads((tmp / "trial.json").read_text())["effect_duration_s"]
    return value


PRESCRIPTION = """\
format = "pumpemu-prescription/1"
drug = "morphine"
concentration = "10 mg/mL"
mode = "continuous"
rate = "0.5 mL/day"
low_reservoir_threshold = "{threshold}"

[patient_bolus]
dose = "{dose}"
duration = "{duration}"
lockout = "3 h"
max_per_24h = 4
"""


def _prescription(**values: str) -> str:
    return PRESCRIPTION.format(**{"threshold": "2 mL", "dose": "0.02 mL", "duration": "10 min",
                                  **values})  # fmt: skip


def _program(text: str, tmp: Path) -> Result:
    path = tmp / "rx.toml"
    path.write_text(text, encoding="utf-8")
    return _run([*CTL, "program", str(path), "--yes"])


SCENARIO = """\
id = "g"
title = "g"
end = "30d"
[setup]
reservoir = {{ volume = "{reservoir}" }}
prescription = {{ drug = "morphine", concentration = "10 mg/mL", mode = "continuous", rate = "0.5 mL/day", low_reservoir_threshold = "2 mL" }}
[[steps]]
after = "{after}"
name = "s"
do = "fault"
fault = "leak"
params = {{ ppm = "{ppm}" }}
"""  # noqa: E501 (one TOML line, as a scenario file has it)


def _scenario(**values: str) -> str:
    return SCENARIO.format(**{"reservoir": "20 mL", "after": "1h", "ppm": "5%", **values})


def _scenario_check(text: str, tmp: Path) -> Result:
    path = tmp / "s.toml"
    path.write_text(text, encoding="utf-8")
    return _run(["scenario", "check", str(path)])


DURATION_TARGETS = [
    Target(
        "time-advance",
        _cli(lambda t, _: ["time", "advance", t]),
        lambda log, r: _sent("ms")(log, r) // 1_000,
    ),
    Target("fault-stall", _cli(lambda t, _: ["fault", "stall", "--recover-after", t]),
           _sent("recover_after_s")),
    Target("fault-stall-long-name",
           _cli(lambda t, _: ["fault", "stall", "--recover-after-s", t]),
           _sent("recover_after_s")),
    Target("fault-magnet-scan", _cli(lambda t, _: ["fault", "magnet", "--scan", t]),
           _sent("scan_s")),
    Target("fault-magnet-recovery",
           _cli(lambda t, _: ["fault", "magnet", "--scan", "0s", "--recovery", t]),
           _sent("recovery_s")),
    Target("fault-inflammatory-mass",
           _cli(lambda t, _: ["fault", "inflammatory-mass", "--grow", t]), _sent("grow_s")),
    Target("fault-kink-period",
           _cli(lambda t, _: ["fault", "kink", "--period", t, "--closed", "1s"]),
           _sent("period_s")),
    Target("ctl-bolus-duration",
           _cli(lambda t, _: [*CTL, "bolus", "--dose", "0.05mL", "--duration", t]), _arg(1)),
    Target("ctl-trial-effect-duration", _trial_seconds, _returned),
    Target("prescription-file-bolus-duration",
           lambda t, _: prescription_file.parse(_prescription(duration=t))
           .prescription.patient_bolus.duration_s,  # type: ignore[union-attr]
           _returned),
    Target("scenario-file-after",
           lambda t, _: loads(_scenario(after=t))[0].steps[0].at_ms // 1_000, _returned),
    Target("proxy-window",
           lambda t, _: _window_start(parse_fault("drop", f"{t}..").trigger) // 1_000,
           _returned),
]  # fmt: skip


def _window_start(trigger: object) -> int:
    assert isinstance(trigger, Window)
    return trigger.start_ms


DURATION_WRONG_CLI: list[tuple[str, Callable[[str, Path], Result]]] = [
    ("time-advance", lambda t, _: _run(["time", "advance", t])),
    ("fault-stall", lambda t, _: _run(["fault", "stall", "--recover-after", t])),
    ("fault-magnet-scan", lambda t, _: _run(["fault", "magnet", "--scan-s", t])),
    ("ctl-bolus-duration",
     lambda t, _: _run([*CTL, "bolus", "--dose", "0.05mL", "--duration", t])),
    ("ctl-trial-effect-duration", _trial_record),
    ("prescription-file", lambda t, tmp: _program(_prescription(duration=t), tmp)),
    ("scenario-file", lambda t, tmp: _scenario_check(_scenario(after=t), tmp)),
    ("proxy-window", lambda t, _: _run(["proxy", "--a", "pty", "--b", "pty", "--drop", f"{t}.."])),
    ("proxy-delay", lambda t, _: _run(["proxy", "--a", "pty", "--b", "pty",
                                       "--delay", f"@1,by={t}"])),
]  # fmt: skip

VOLUME_TARGETS = [
    Target("ctl-bolus-dose",
           _cli(lambda t, _: [*CTL, "bolus", "--dose", t, "--duration", "10min"]), _arg(0)),
    Target("ctl-prime", _cli(lambda t, _: [*CTL, "prime", "--volume", t]), _arg(0)),
    Target("ctl-refill-withdrawn",
           _cli(lambda t, _: [*CTL, "refill", "--withdrawn", t, "--volume", "20mL",
                              "--concentration", "10mg/mL"]),
           _ctl_option("--withdrawn")),
    Target("fault-pocket-fill", _cli(lambda t, _: ["fault", "pocket-fill", "--volume", t]),
           _sent("volume_nl")),
    Target("fault-pocket-fill-long-name",
           _cli(lambda t, _: ["fault", "pocket-fill", "--volume-nl", t]), _sent("volume_nl")),
    Target("fault-cap-inject",
           _cli(lambda t, _: ["fault", "cap-inject", "--volume", t, "--concentration",
                              "10mg/mL"]),
           _sent("volume_nl")),
    Target("fault-cap-aspirate", _cli(lambda t, _: ["fault", "cap-aspirate", "--volume", t]),
           _sent("volume_nl")),
    Target("prescription-file-bolus-dose",
           lambda t, _: prescription_file.parse(_prescription(dose=t))
           .prescription.patient_bolus.dose_nl,  # type: ignore[union-attr]
           _returned),
    Target("scenario-file-reservoir",
           lambda t, _: loads(_scenario(reservoir=t))[0].setup.reservoir_nl or 0, _returned),
]  # fmt: skip

VOLUME_WRONG_CLI: list[tuple[str, Callable[[str, Path], Result]]] = [
    ("ctl-bolus-dose", lambda t, _: _run([*CTL, "bolus", "--dose", t, "--duration", "10min"])),
    ("ctl-prime", lambda t, _: _run([*CTL, "prime", "--volume", t])),
    ("ctl-refill-volume", lambda t, _: _run([*CTL, "refill", "--withdrawn", "1mL", "--volume", t,
                                             "--concentration", "10mg/mL"])),
    ("fault-pocket-fill", lambda t, _: _run(["fault", "pocket-fill", "--volume", t])),
    ("fault-cap-aspirate", lambda t, _: _run(["fault", "cap-aspirate", "--volume", t])),
    ("prescription-file", lambda t, tmp: _program(_prescription(dose=t), tmp)),
    ("scenario-file", lambda t, tmp: _scenario_check(_scenario(reservoir=t), tmp)),
]  # fmt: skip

FRACTION_TARGETS = [
    Target("fault-leak", _cli(lambda t, _: ["fault", "leak", "--ppm", t]), _sent("ppm")),
    Target("fault-occlusion", _cli(lambda t, _: ["fault", "occlusion", "--delivered", t]),
           _sent("delivered_ppm")),
    Target("fault-bias", _cli(lambda t, _: ["fault", "bias", "--ppm", t]), _sent("ppm")),
    Target("scenario-file-fault-param",
           lambda t, _: loads(_scenario(ppm=t))[0].steps[0].params["params"]["ppm"], _returned),
    Target("proxy-rate",
           lambda t, _: round(parse_fault("drop", t).trigger.probability * 1_000_000),  # type: ignore[union-attr]
           _returned),
]  # fmt: skip

FRACTION_WRONG_CLI: list[tuple[str, Callable[[str, Path], Result]]] = [
    ("fault-leak", lambda t, _: _run(["fault", "leak", "--ppm", t])),
    ("scenario-file", lambda t, tmp: _scenario_check(_scenario(ppm=t), tmp)),
    ("proxy-rate", lambda t, _: _run(["proxy", "--a", "pty", "--b", "pty", "--drop", t])),
]


def _cases(
    targets: list[Target], spellings: list[tuple[str, int]]
) -> list[Any]:  # pytest.param objects
    return [
        pytest.param(target, text, value, id=f"{target.name}:{text}")
        for target in targets
        for text, value in spellings
    ]


def _wrong(
    commands: list[tuple[str, Callable[[str, Path], Result]]], spellings: list[str]
) -> list[Any]:
    return [
        pytest.param(run, text, id=f"{name}:{text[:24] or 'empty'}")
        for name, run in commands
        for text in spellings
    ]


# -- the tables -----------------------------------------------------------------------------


def _accepted(target: Target, text: str, value: int, tmp_path: Path, sent: list[Any]) -> None:
    result = target.run(text, tmp_path)
    if isinstance(result, Result):
        # refill reads the pump before it sends: it stops where it would open the link
        assert result.exit_code == 0 or isinstance(result.exception, _UnreachableError), (
            result.output
        )
    assert target.read(sent, result) == value


@pytest.mark.parametrize(("target", "text", "seconds"), _cases(DURATION_TARGETS, DURATIONS_S))
def test_every_duration_spelling_reaches_the_pump_exactly(
    target: Target, text: str, seconds: int, tmp_path: Path, sent: list[Any]
) -> None:
    _accepted(target, text, seconds, tmp_path, sent)


@pytest.mark.parametrize(("target", "text", "nl"), _cases(VOLUME_TARGETS, VOLUMES_NL))
def test_every_volume_spelling_reaches_the_pump_exactly(
    target: Target, text: str, nl: int, tmp_path: Path, sent: list[Any]
) -> None:
    _accepted(target, text, nl, tmp_path, sent)


@pytest.mark.parametrize(("target", "text", "ppm"), _cases(FRACTION_TARGETS, FRACTIONS_PPM))
def test_every_fraction_spelling_reaches_the_pump_exactly(
    target: Target, text: str, ppm: int, tmp_path: Path, sent: list[Any]
) -> None:
    _accepted(target, text, ppm, tmp_path, sent)


def _refused(
    run: Callable[[str, Path], Result], text: str, tmp_path: Path, sent: list[Any]
) -> None:
    result = run(text, tmp_path)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    assert [entry for entry in sent if entry[0] != "ctl-option"] == []  # nothing was sent


@pytest.mark.parametrize(("run", "text"), _wrong(DURATION_WRONG_CLI, WRONG_DURATIONS))
def test_every_wrong_duration_is_one_line_and_exit_2(
    run: Callable[[str, Path], Result], text: str, tmp_path: Path, sent: list[Any]
) -> None:
    _refused(run, text, tmp_path, sent)


@pytest.mark.parametrize(("run", "text"), _wrong(VOLUME_WRONG_CLI, WRONG_VOLUMES))
def test_every_wrong_volume_is_one_line_and_exit_2(
    run: Callable[[str, Path], Result], text: str, tmp_path: Path, sent: list[Any]
) -> None:
    _refused(run, text, tmp_path, sent)


@pytest.mark.parametrize(("run", "text"), _wrong(FRACTION_WRONG_CLI, WRONG_FRACTIONS))
def test_every_wrong_fraction_is_one_line_and_exit_2(
    run: Callable[[str, Path], Result], text: str, tmp_path: Path, sent: list[Any]
) -> None:
    _refused(run, text, tmp_path, sent)


def test_plain_integers_still_work_where_they_always_did(sent: list[Any]) -> None:
    """Backwards compatible (docs/quantities.md): a bare number keeps the unit the option's
    long name ends with, and `time advance 90` is seconds."""
    assert _run(["fault", "leak", "--ppm", "250000"]).exit_code == 0
    assert _run(["fault", "magnet", "--scan-s", "1800"]).exit_code == 0
    assert _run(["fault", "pocket-fill", "--volume-nl", "1000000"]).exit_code == 0
    assert _run(["fault", "bias", "--ppm", "-20000"]).exit_code == 0
    assert _run(["time", "advance", "90"]).exit_code == 0
    assert sent == [
        ("leak", {"ppm": 250_000}),
        ("magnet", {"scan_s": 1_800}),
        ("pocket-fill", {"volume_nl": 1_000_000}),
        ("bias", {"ppm": -20_000}),
        ("advance", {"ms": 90_000}),
    ]


# -- one display style ----------------------------------------------------------------------


def test_truth_prints_volumes_in_ml_and_the_pump_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/quantities.md, "Display": the truth table shows mL and mass units, exactly, and
    the instant as the pump clock (ISO 8601) with the elapsed emulator time."""
    plant = {"reservoir_nl": 19_958_400, "pumped_nl": 41_600, "delivered_nl": 31_200,
             "lost_nl": 10_400, "delivered_pg": 31_200_000, "systemic_pg": 10_400_000,
             "motor": "STALLED", "catheter": "LEAKING", "battery_nah": 699_981_680,
             "balance_nl": 0, "balance_pg": 0}  # fmt: skip
    firmware = {"reservoir_estimate_nl": 19_958_400, "delivered_nl": 41_600,
                "motor_stall_detected": True, "battery_nah": 699_981_680,
                "state": "SUSPENDED_BY_ALARM", "alarms": []}  # fmt: skip
    response = {"now_ms": 3_600_000, "pump_clock_ms": 1_772_352_000_000, "plant": plant,
                "firmware": firmware, "compare": compare_rows(plant, firmware)}  # fmt: skip
    monkeypatch.setattr(control_command, "_call", lambda *_args: response)
    out = _run(["truth"]).output
    assert out.splitlines()[0] == "now 2026-03-01T08:00:00 (+0d 01:00)"
    assert "reservoir                               19.9584 mL       19.9584 mL" in out
    assert "drug into the CSF                     (not sensed)          31.2 µg" in out
    assert " nL" not in out
    assert " pg" not in out

"""``pumpemu ctl``'s units and words: exact parsing, exact display, honest outcome lines."""

from __future__ import annotations

from datetime import datetime

import pytest
from click.testing import CliRunner

from hil import quantities as q
from hil.cli import main
from hil.ctl import render
from hil.ctl.command import ctl
from hil.programmer.core import Outcome, Result
from protocol.device_state import TherapyState
from protocol.messages import Ack, ClinicianBolus, Nak, Opcode, ReadStatus, Status
from protocol.refusal import FieldId, RefusalCode


@pytest.mark.parametrize(
    ("text", "nl"),
    [
        ("0.05mL", 50_000),
        ("0.05 mL", 50_000),
        ("50uL", 50_000),
        ("50 µL", 50_000),
        ("50 μl", 50_000),  # Greek mu as well as the micro sign
        ("50000nL", 50_000),
        ("20 mL", 20_000_000),
        ("0.000001 mL", 1),
        ("0.0500000 mL", 50_000),
    ],
)
def test_volumes_are_exact(text: str, nl: int) -> None:
    assert q.parse_volume(text) == nl


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0.0000005 mL", "not a whole number of nL"),
        ("0.5 nL", "not a whole number of nL"),
        ("1e3 nL", "is not a volume"),
        ("-1 mL", "is negative"),
        (".5 mL", "is not a volume"),
        ("5", "is not a volume"),
        ("5 mg", "is not a volume"),
        ("0.1.2 mL", "is not a volume"),
        ("1" * 30 + " nL", "too many digits"),
        ("", "is not a volume"),
    ],
)
def test_bad_volumes_are_refused(text: str, reason: str) -> None:
    with pytest.raises(q.QuantityError, match=reason):
        q.parse_volume(text)


def test_no_float_rounding_anywhere() -> None:
    # 0.1 + 0.2 style traps: as floats these would not be exact.
    assert q.parse_volume("0.3 mL") == 300_000
    assert q.parse_rate("0.048 mL/day") == 48_000
    assert q.parse_rate("24 mL/day") == 24_000_000
    assert q.parse_concentration("0.001 mg/mL") == 1
    assert q.parse_mass_rate("19.2 ug/day") == 19_200_000
    assert q.parse_mass("60 mcg") == 60_000_000
    with pytest.raises(q.QuantityError, match="not a whole number of ug/mL"):
        q.parse_concentration("0.0005 mg/mL")


@pytest.mark.parametrize(
    ("text", "ug_per_ml"),
    [("25mg/mL", 25_000), ("25000ug/mL", 25_000), ("500 mcg/mL", 500), ("2 µg/mL", 2)],
)
def test_concentrations(text: str, ug_per_ml: int) -> None:
    assert q.parse_concentration(text) == ug_per_ml


def test_rates_and_durations_and_offsets() -> None:
    assert q.parse_rate("0.5 mL/day") == 500_000
    assert q.parse_rate("480 uL/day") == 480_000
    for bad in ("0.5 mL/dy", "0.5 mL/h", "0.5 mL", "0.5 mg/day"):
        with pytest.raises(q.QuantityError, match="is not a rate"):
            q.parse_rate(bad)
    assert q.parse_duration("10min") == 600
    assert q.parse_duration("1.5h") == 5_400
    assert q.parse_duration("1 day") == 86_400
    with pytest.raises(q.QuantityError, match="whole number of seconds"):
        q.parse_duration("0.5s")
    assert q.parse_offset("08:30", weekly=False) == 30_600
    assert q.parse_offset("Tue 00:00", weekly=True) == 86_400
    with pytest.raises(q.QuantityError, match="a weekly step starts on a day"):
        q.parse_offset("08:00", weekly=True)
    with pytest.raises(q.QuantityError, match="a daily step has no day"):
        q.parse_offset("Mon 08:00", weekly=False)


def test_pump_time() -> None:
    assert q.parse_pump_time("2026-01-05T08:00:00") == 1_767_600_000_000
    assert q.pump_time(1_767_600_000_000) == "2026-01-05T08:00:00"
    assert q.parse_pump_time(q.pump_time(1_767_600_000_250)) == 1_767_600_000_250
    assert q.parse_pump_time("now", datetime(1970, 1, 2)) == 86_400_000
    with pytest.raises(q.QuantityError, match="zone offset"):
        q.parse_pump_time("2026-01-05T08:00:00+01:00")
    with pytest.raises(q.QuantityError, match="not an ISO 8601"):
        q.parse_pump_time("tomorrow")


def test_display_is_exact() -> None:
    assert q.volume(50_000) == "0.05 mL"
    assert q.volume(391_667) == "0.391667 mL"
    assert q.rate(12_500_000) == "12.5 mL/day"
    assert q.mass(12_500_000_000) == "12.5 mg"
    assert q.mass(60_000_000) == "60 µg"
    assert q.mass(1) == "0.000001 µg"
    assert q.concentration(25_000) == "25 mg/mL"
    assert q.concentration(500) == "500 µg/mL"
    assert q.duration(5_400) == "1 h 30 min"
    assert q.offset(86_400 + 3_600, weekly=True) == "Tue 01:00"


def test_every_refusal_code_has_a_meaning() -> None:
    assert set(render.MEANINGS) == set(RefusalCode)


def test_refusal_line_names_code_meaning_field_and_limit() -> None:
    nak = Nak(code=RefusalCode.RATE_ABOVE_MAX, field=FieldId.STEP_RATE, limit=24_000_000)
    assert render.describe_refusal(nak) == (
        "refused: RATE_ABOVE_MAX — a rate is above the pump's maximum "
        "(field STEP_RATE, limit 24 mL/day)"
    )
    daily = Nak(code=RefusalCode.DAILY_DOSE_ABOVE_MAX, field=FieldId.DAILY_DOSE, limit=15 * 10**9)
    assert "limit 15 mg/day" in render.describe_refusal(daily)
    lockout = Nak(code=RefusalCode.LOCKOUT_ACTIVE, field=FieldId.PATIENT_BOLUS_LOCKOUT, limit=1_800)
    assert render.describe_refusal(lockout).endswith("(field PATIENT_BOLUS_LOCKOUT, 30 min left)")
    # A value that cannot be seconds left is never shown as a time.
    odd = Nak(
        code=RefusalCode.LOCKOUT_ACTIVE,
        field=FieldId.PATIENT_BOLUS_LOCKOUT,
        limit=1_767_603_600_000,
    )
    assert "not seconds left" in render.describe_refusal(odd)
    # The unit follows the code (protocol.md 12), not the field: a clinician bolus or a refill
    # over the daily dose names its own field, and the limit is still a mass per day.
    bolus_dose = Nak(
        code=RefusalCode.DAILY_DOSE_ABOVE_MAX, field=FieldId.BOLUS_DOSE, limit=15 * 10**9
    )
    assert render.describe_refusal(bolus_dose).endswith("(field BOLUS_DOSE, limit 15 mg/day)")
    refill = Nak(
        code=RefusalCode.DAILY_DOSE_ABOVE_MAX, field=FieldId.NEW_CONCENTRATION, limit=19_200_000
    )
    assert "limit 19.2 µg/day" in render.describe_refusal(refill)
    too_fast = Nak(code=RefusalCode.RATE_ABOVE_MAX, field=FieldId.BOLUS_DURATION, limit=900)
    assert render.describe_refusal(too_fast).endswith(
        "(field BOLUS_DURATION, shortest duration 15 min)"
    )
    plain = Nak(code=RefusalCode.THERAPY_STOPPED, field=FieldId.NONE, limit=0)
    assert render.describe_refusal(plain).endswith("a bolus needs running therapy")


def _status(last: int) -> Status:
    return Status(
        state=TherapyState.CLINICIAN_BOLUS,
        rate_nl_per_day=400_000,
        reservoir_nl=19_950_000,
        battery_percent=99,
        active_alarms=frozenset(),
        last_command_id=last,
        pump_time_ms=0,
    )


def test_verdicts_say_exactly_what_is_known() -> None:
    request = ClinicianBolus(command_id=7, dose_nl=50_000, duration_s=600)
    ack = Ack(
        command_id=7,
        request=Opcode.CLINICIAN_BOLUS,
        state=TherapyState.CLINICIAN_BOLUS,
        reservoir_nl=19_950_000,
        value=1_767_600_600_000,
    )
    applied = render.verdict("clinician bolus", Result(request, Outcome.APPLIED, ack, 1))
    assert applied.ok
    assert applied.line == (
        "applied: clinician bolus: state clinician bolus, reservoir 19.95 mL, "
        "bolus ends at 2026-01-05T08:10:00 (pump time)"
    )
    resolved = render.verdict(
        "clinician bolus", Result(request, Outcome.APPLIED, _status(7), 4, True)
    )
    assert resolved.line.startswith(
        "applied: clinician bolus (reply lost; pump status shows last command 7, this command)"
    )
    lost = render.verdict(
        "clinician bolus", Result(request, Outcome.NOT_APPLIED, _status(6), 4, True)
    )
    assert not lost.ok
    assert lost.line.startswith(
        "not applied: clinician bolus (reply lost; pump status shows last command 6, "
        "not this command 7)"
    )
    uncertain = render.verdict(
        "clinician bolus",
        Result(request, Outcome.UNCERTAIN, None, 12, False, "the pump stopped answering"),
    )
    assert not uncertain.ok
    assert uncertain.line.startswith("UNCERTAIN: could not reach the pump to confirm")
    assert "read its status before retrying" in uncertain.line
    unanswered = render.verdict(
        "read status", Result(ReadStatus(), Outcome.NOT_APPLIED, None, 0, False, "unreachable")
    )
    assert unanswered.line == "read status: no answer: unreachable"
    assert not unanswered.ok


def test_every_subcommand_has_help_with_an_example() -> None:
    runner = CliRunner()
    group = runner.invoke(main, ["ctl", "--help"])
    assert group.exit_code == 0
    assert "Examples:" in group.output
    assert sorted(ctl.commands) == sorted(
        [
            "info", "status", "alarms", "log", "prescription", "clock", "program", "bolus",
            "patient-bolus", "prime", "refill", "stop", "start", "cancel-bolus", "ack-alarm",
            "alarm-test", "set-clock", "bridge-bolus", "trial",
            # issue 12
            "detail", "catheter", "patient-view", "clear-memory-error", "reset-flow-valve",
            "set-catheter",
        ]
    )  # fmt: skip
    for name in ctl.commands:
        result = runner.invoke(main, ["ctl", name, "--help"])
        assert result.exit_code == 0, name
        assert "Example" in result.output, name
        assert "pumpemu ctl" in result.output, name


def test_a_refused_session_is_not_reported_as_a_refused_command() -> None:
    request = ClinicianBolus(command_id=7, dose_nl=50_000, duration_s=600)
    nak = Nak(code=RefusalCode.LOCKED_OUT, field=FieldId.NONE, limit=240)
    line = render.verdict(
        "clinician bolus", Result(request, Outcome.NOT_APPLIED, nak, 0, False, "x")
    ).line
    assert line == (
        "not applied: clinician bolus: never reached the pump (the pump refused the session: "
        "LOCKED_OUT — a lockout is running and no challenge was pending; open again (4 min left))"
    )


@pytest.mark.parametrize(
    ("nak", "line"),
    [
        (
            Nak(
                code=RefusalCode.CONCENTRATION_OUT_OF_RANGE, field=FieldId.CONCENTRATION, limit=500
            ),
            "refused: CONCENTRATION_OUT_OF_RANGE — the concentration is outside the drug's range "
            "(mg entered for mcg?) (field CONCENTRATION, limit 500 µg/mL)",
        ),
        (
            Nak(code=RefusalCode.SOFT_LIMIT_NEEDS_OVERRIDE, field=FieldId.DAILY_DOSE, limit=10**9),
            "soft limit 1 mg/day",
        ),
        (
            Nak(code=RefusalCode.UNKNOWN_DRUG, field=FieldId.DRUG_NAME, limit=0),
            "refused: UNKNOWN_DRUG — the drug is not in the pump's drug library under any name "
            "(field DRUG_NAME)",
        ),
    ],
    ids=["concentration", "soft-limit", "unknown-drug"],
)
def test_drug_library_refusals_read_in_human_units(nak: Nak, line: str) -> None:
    assert line in render.describe_refusal(nak)

"""hil/logs.py: -v/-q/--log-level/--log-format of the long-running commands."""

from __future__ import annotations

import json

import pytest

from hil.logs import LogConfig, instant_fields, level_of
from hil.pump_text import stamp_line

LINES = [
    ("[2026-03-01T08:00:01 (+0d 00:00:01)] session opened (clinician)", "info"),
    ("state not saved: disk full", "warning"),
    ("stopped (SIGTERM) after 3.1 s; pump time 2026-03-01T08:00:03.100 (+0d", "warning"),
    ("serve loop failed: OSError: gone", "error"),
]


@pytest.mark.parametrize(("line", "level"), LINES, ids=[level for _, level in LINES])
def test_each_line_has_its_level(line: str, level: str) -> None:
    assert level_of(line) == level


@pytest.mark.parametrize(
    ("verbose", "quiet", "level", "shown"),
    [
        (0, 0, None, 4),  # info and up
        (0, 1, None, 3),  # -q: warnings and errors
        (0, 2, None, 1),  # -qq: errors
        (0, 5, None, 1),  # no quieter than errors
        (1, 0, None, 4),  # -v: debug too (no debug line here)
        (0, 0, "error", 1),  # --log-level wins over -v/-q
        (2, 0, "warning", 3),
    ],
    ids=["default", "q", "qq", "q5", "v", "level-error", "level-beats-v"],
)
def test_the_level_filters(
    capsys: pytest.CaptureFixture[str], verbose: int, quiet: int, level: str | None, shown: int
) -> None:
    log = LogConfig.from_options("serve", verbose, quiet, level, "text")
    for line, _ in LINES:
        log(line)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == shown
    assert all(line.startswith("pumpemu serve: ") for line in err)


def test_json_lines_carry_time_program_level_and_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = LogConfig("serve", "info", "json")
    log("state not saved: disk full")
    (record,) = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert record["program"] == "serve"
    assert record["level"] == "warning"
    assert record["message"] == "state not saved: disk full"
    assert record["time"].endswith("Z")


def test_json_lines_of_a_stamped_line_carry_both_timelines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = LogConfig("serve", "info", "json")
    log(stamp_line("alarm raised: MOTOR_STALL (critical)", 1_772_352_000_250, 3_600_250))
    (record,) = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert record["message"] == (
        "[2026-03-01T08:00:00.250 (+0d 01:00:00.250)] alarm raised: MOTOR_STALL (critical)"
    )
    assert record["pump_clock_ms"] == 1_772_352_000_250
    assert record["pump_clock"] == "2026-03-01T08:00:00.250"
    assert record["internal_ms"] == 3_600_250
    assert record["elapsed"] == "+0d 01:00:00.250"


def test_a_plain_line_names_no_instant() -> None:
    assert instant_fields("state not saved: disk full") == {}


def test_a_stamped_line_reads_in_text_as_every_instant_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    LogConfig("serve", "info", "text")(stamp_line("session opened (clinician)", 1_000, 1_000))
    err = capsys.readouterr().err
    assert err == "pumpemu serve: [1970-01-01T00:00:01 (+0d 00:00:01)] session opened (clinician)\n"


def test_a_bad_level_or_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        LogConfig("serve", "loud")
    with pytest.raises(ValueError, match="log format"):
        LogConfig("serve", "info", "xml")


def test_shows_says_what_the_threshold_lets_through() -> None:
    log = LogConfig.from_options("campaign", 0, 1, None, "text")  # -q: warnings and up
    assert [level for level in ("debug", "info", "warning", "error") if log.shows(level)] == [
        "warning",
        "error",
    ]

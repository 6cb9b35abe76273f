"""The dashboard's model: events in, panel texts out (no terminal)."""

from __future__ import annotations

from typing import Any

import pytest

from hil.watch.model import RECENT, Dashboard, plant_faults


def status(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event": "status",
        "seq": 1,
        "now_ms": 3_600_000,
        "now": "T+0d01:00:00.000",
        "pump_clock_ms": 1_772_352_000_000,
        "pump_clock": "2026-03-01T08:00:00",
        "elapsed": "+0d 01:00",
        "clock": "manual",
        "serial": "PE-000042",
        "state": "RUNNING",
        "session": {"state": "OPEN", "role": "CLINICIAN"},
        "alarms": [],
        "sounding": None,
        "plant": {"motor": "OK", "catheter": "OK", "leak_ppm": 0, "bias_ppm": 100},
        "firmware": {"prescription": None},
        "compare": [
            {"quantity": "reservoir", "unit": "nL", "firmware": 19_000_000, "plant": 18_000_000},
            {"quantity": "reached the patient", "unit": "nL", "firmware": None, "plant": 5},
        ],
    }
    body.update(changes)
    return body


def test_before_any_status_the_pump_panel_says_it_is_waiting() -> None:
    assert "waiting for the pump at unix:/x" in Dashboard("unix:/x").pump_text().plain


def test_the_pump_panel_shows_state_session_and_role() -> None:
    board = Dashboard("a")
    board.apply(status())
    text = board.pump_text().plain
    assert "PE-000042" in text
    assert "therapy RUNNING" in text
    assert "session OPEN (clinician)" in text
    assert "2026-03-01T08:00:00 (+0d 01:00)  clock manual" in text
    assert "T+" not in text


def test_a_status_from_an_older_serve_without_the_pump_clock_shows_its_now() -> None:
    board = Dashboard("a")
    board.apply(status(pump_clock_ms=None))
    assert "T+0d01:00:00.000  clock manual" in board.pump_text().plain


def test_alarms_show_the_tone_each_sounds_and_what_sounds_now() -> None:
    board = Dashboard("a")
    board.apply(
        status(
            alarms=[
                {
                    "kind": "MOTOR_STALL",
                    "severity": "CRITICAL",
                    "tone": "3 s two-tone",
                    "acknowledged": False,
                },
                {
                    "kind": "LOW_RESERVOIR",
                    "severity": "NON_CRITICAL",
                    "tone": "1 s single tone",
                    "acknowledged": True,
                },
            ],
            sounding="3 s two-tone",
        )
    )
    text = board.alarms_text().plain
    assert "SOUNDING: 3 s two-tone" in text
    assert "MOTOR_STALL (critical): 3 s two-tone, sounding" in text
    assert "LOW_RESERVOIR (non_critical): 1 s single tone, acknowledged" in text
    board.apply(status())
    assert board.alarms_text().plain == "no alarms"


def test_belief_is_shown_beside_truth_and_unsensed_quantities_say_so() -> None:
    board = Dashboard("a")
    board.apply(status())
    lines = board.truth_text().plain.splitlines()
    reservoir = next(line for line in lines if line.startswith("reservoir"))
    assert reservoir.split()[-2:] == ["19,000,000", "18,000,000"]
    assert "(not sensed)" in next(line for line in lines if line.startswith("reached"))
    assert all(len(line) <= 66 for line in lines)  # fits half of a 150-column terminal
    styled = {str(span.style) for span in board.truth_text().spans}
    assert "bold yellow" in styled  # the reservoir belief differs from the truth


@pytest.mark.parametrize(
    ("firmware", "plant", "differs"),
    [
        pytest.param(5, 5, False, id="equal-numbers"),
        pytest.param(5, 6, True, id="unequal-numbers"),
        pytest.param(None, 6, False, id="not-sensed"),
        pytest.param("ok", "OK", False, id="motor-ok"),
        pytest.param("stall detected", "STALLED", False, id="stall-seen"),
        pytest.param("ok", "STALLED", True, id="stall-unseen"),
        pytest.param("stall detected", "OK", True, id="stall-believed-after-repair"),
    ],
)
def test_a_row_is_highlighted_only_where_belief_and_truth_disagree(
    firmware: object, plant: object, differs: bool
) -> None:
    board = Dashboard("a")
    row = {"quantity": "q", "unit": "", "firmware": firmware, "plant": plant}
    board.apply(status(compare=[row]))
    styles = [str(span.style) for span in board.truth_text().spans]
    assert ("bold yellow" in styles) is differs


@pytest.mark.parametrize(
    ("plant", "expected"),
    [
        pytest.param({"motor": "OK", "catheter": "OK"}, [], id="none"),
        pytest.param({"motor": "STALLED", "catheter": "OK"}, ["motor STALLED"], id="stall"),
        pytest.param(
            {"catheter": "LEAKING", "leak_ppm": 250_000},
            ["catheter LEAKING", "leak 25 %"],
            id="leak",
        ),
        pytest.param({"valve_closed": True}, ["valve closed"], id="valve"),
        pytest.param({"pocket_nl": 1_000_000}, ["pocket holds 1,000,000 nL"], id="pocket"),
        pytest.param({"bias_ppm": 100}, [], id="the-pumps-own-bias"),
        pytest.param({"bias_ppm": -20_000}, ["stroke bias -20,000 ppm (was +100)"], id="bias"),
    ],
)
def test_plant_faults_in_force(plant: dict[str, Any], expected: list[str]) -> None:
    assert plant_faults(plant, bias_before=100) == expected


def test_the_first_status_fixes_the_pumps_own_bias() -> None:
    board = Dashboard("a")
    board.apply(status())
    assert board.faults_text().plain == "no plant fault in force"
    board.apply(status(plant={"motor": "OK", "catheter": "OK", "bias_ppm": 5_100}))
    assert board.faults_text().plain == "stroke bias +5,100 ppm (was +100)"


def test_frames_are_listed_newest_last_and_bounded() -> None:
    board = Dashboard("a")
    for seq in range(RECENT + 3):
        board.apply(
            {
                "event": "frame",
                "direction": "rx",
                "now_ms": 0,
                "sealed": True,
                "header": {"opcode": "GET_STATUS", "seq": seq},
            }
        )
    board.apply(
        {
            "event": "frame",
            "direction": "tx",
            "now_ms": 0,
            "sealed": False,
            "header": {"opcode": "CHALLENGE", "seq": 99},
            "message": {"type": "Challenge", "a": 1},
        }
    )
    lines = board.frames_text().plain.splitlines()
    assert len(lines) == RECENT
    assert lines[-2].endswith(f"programmer -> pump seq {RECENT + 2} GET_STATUS (sealed)")
    assert lines[-1].endswith("pump -> programmer seq 99 CHALLENGE a=1")


def test_violations_are_counted_and_listed() -> None:
    board = Dashboard("a")
    assert board.conformance_text().plain == "no violations so far"
    board.apply({"event": "conformance", "rule": "R7", "severity": "critical", "detail": "x"})
    text = board.conformance_text().plain
    assert "1 violation(s)" in text
    assert "critical R7: x" in text


def test_events_log_faults_time_state_drops_and_the_end() -> None:
    board = Dashboard("a")
    board.apply(
        {
            "event": "log",
            "now_ms": 1000,
            "text": "alarm raised: MOTOR_STALL (critical)",
            "entry": {"kind": "ALARM_RAISED"},
        }
    )
    board.apply({"event": "fault", "now_ms": 0, "fault": "MotorStall", "applied": {}})
    board.apply({"event": "time", "now_ms": 86_400_000, "advanced_ms": 86_400_000})
    board.apply({"event": "state", "now_ms": 5, "from": "RUNNING", "to": "SUSPENDED_BY_ALARM"})
    board.apply({"event": "dropped", "count": 4, "first_seq": 3, "last_seq": 6})
    board.apply({"event": "end", "reason": "serve is stopping"})
    board.apply({"event": "something-newer"})
    lines = board.events_text().plain.splitlines()
    # No pump clock known yet (no status, no time event with one): the elapsed time alone.
    assert lines == [
        "+0d 00:00:01 alarm raised: MOTOR_STALL (critical)",
        "+0d 00:00 fault injected: MotorStall",
        "+1d 00:00 time advanced 1 d",
        "+0d 00:00:00.005 therapy RUNNING -> SUSPENDED_BY_ALARM",
        "4 event(s) dropped: this view was too slow",
        "stream ended: serve is stopping",
    ]
    assert board.dropped == 4
    board.apply(status())
    assert "ENDED: serve is stopping" in board.pump_text().plain


def test_event_lines_show_the_pump_clock_once_a_status_told_it() -> None:
    """A log event carries its entry's pump-clock stamp; a fault or a frame carries only
    ``now_ms``, placed on the pump clock by the offset the last status gave."""
    board = Dashboard("a")
    board.apply(status())  # 2026-03-01T08:00:00 at internal 1 h
    board.apply(
        {
            "event": "log",
            "now_ms": 3_601_000,
            "text": "alarm raised: MOTOR_STALL (critical)",
            "entry": {"kind": "ALARM_RAISED", "time_ms": 1_772_352_001_000},
        }
    )
    board.apply({"event": "fault", "now_ms": 3_600_250, "fault": "MotorStall", "applied": {}})
    board.apply(
        {
            "event": "time",
            "now_ms": 90_000_000,
            "advanced_ms": 86_400_000,
            "pump_clock_ms": 1_772_438_400_000,
        }
    )
    board.apply({"event": "state", "now_ms": 90_000_000, "from": "A", "to": "B"})
    assert board.events_text().plain.splitlines() == [
        "2026-03-01T08:00:01 (+0d 01:00:01) alarm raised: MOTOR_STALL (critical)",
        "2026-03-01T08:00:00.250 (+0d 01:00:00.250) fault injected: MotorStall",
        "2026-03-02T08:00:00 (+1d 01:00) time advanced 1 d",
        "2026-03-02T08:00:00 (+1d 01:00) therapy A -> B",
    ]


def test_frame_lines_are_stamped_like_every_event() -> None:
    board = Dashboard("a")
    board.apply(status())
    board.apply(
        {
            "event": "frame",
            "now_ms": 3_600_000,
            "direction": "rx",
            "header": {"seq": 7, "opcode": "STATUS"},
        }
    )
    assert board.frames_text().plain == (
        "2026-03-01T08:00:00 (+0d 01:00) programmer -> pump seq 7 STATUS"
    )

"""``pumpemu demo`` plays the whole visit through a real pty and writes what it promises."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from hil.cli import main
from hil.demo.visit import VISIT_LOCAL_MS

ISO = re.compile(r"\b(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\b")
"""A pump-clock instant as the demo prints it (docs/quantities.md, "Instants")."""

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo")
    # A wide console keeps each table cell on one line, so the phrases below stay whole.
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        main, ["demo", "--out", str(out), "--days", "12"]
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def test_demo_writes_capture_keys_and_plot(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    png = out / "pumpemu-demo.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "pumpemu-demo.keys").stat().st_mode & 0o077 == 0
    records = [json.loads(line) for line in (out / "pumpemu-demo-capture.jsonl").open()]
    frames = [r for r in records if r["kind"] == "frame"]
    assert any(r["header"]["opcode"] == "OPEN_SESSION" for r in frames)
    assert sum(1 for r in frames if r["sealed"]) > 100  # the visit ran inside sealed sessions


def test_demo_shows_the_visit_in_tables(demo_run: tuple[Path, str]) -> None:
    _, output = demo_run
    for expected in (
        "refused: LOCKOUT_ACTIVE",  # a patient bolus inside the lockout (docs/domain.md section 2)
        "NOT_PERMITTED_FOR_ROLE",  # the patient may not stop therapy (C4)
        "within the 1 mL",  # the refill discrepancy check
        "motor recovered",  # the MRI stall and its recovery (H14)
        "plant truth",
    ):
        assert expected in output


def test_demo_times_are_on_the_pump_clock_the_visit_set(demo_run: tuple[Path, str]) -> None:
    """The demo sets the pump clock; log stamps and predictions are on it (docs/protocol.md
    section 1) and print as every instant does (docs/quantities.md): the visit's own entries
    at its start, the MRI stall 10 days on, the predictions weeks ahead, nothing from the 45
    days before the visit."""
    _, output = demo_run
    visit = datetime.fromtimestamp(VISIT_LOCAL_MS // 1000, UTC).replace(tzinfo=None)
    stamps = [datetime.fromisoformat(t) for t in ISO.findall(output)]
    assert stamps
    assert min(stamps) >= visit, min(stamps)
    assert max(stamps) < visit + timedelta(days=365), max(stamps)
    assert visit.isoformat() in output  # the visit's own entries (clock set, refill, commit)
    mri = visit + timedelta(days=10)
    assert any(mri <= t < mri + timedelta(minutes=1) for t in stamps)  # the stall, at once
    assert "day " not in output.split("Event log")[-1]  # no second style for instants


def test_demo_capture_opens_with_the_key_file(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    result = CliRunner().invoke(
        main,
        [
            "decode",
            str(out / "pumpemu-demo-capture.jsonl"),
            "--keys",
            str(out / "pumpemu-demo.keys"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "PATIENT_BOLUS_REQUEST" in result.output


def test_demo_refuses_an_unusable_output_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(main, ["demo", "--out", str(blocker / "sub")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_demo_json_is_one_document_with_ids_and_a_quiet_stderr(tmp_path: Path) -> None:
    """--json -q: the summary as one JSON object on stdout (README.md, "pumpemu demo
    --json"), nothing on stderr (no bar, no headline)."""
    result = CliRunner().invoke(
        main, ["demo", "--out", str(tmp_path), "--days", "12", "--json", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    (line,) = result.stdout.splitlines()
    summary = json.loads(line)
    assert Path(summary["files"]["capture"]).is_file()
    assert [step["id"] for step in summary["steps"]] == list(range(1, len(summary["steps"]) + 1))
    assert any(step["outcome"] == "refused: LOCKOUT_ACTIVE" for step in summary["steps"])
    seqs = [event["id"] for event in summary["events"]]
    assert seqs == sorted(set(seqs))
    assert "MOTOR_STALL" in {event["kind"] for event in summary["events"]}
    after = summary["after"]
    assert after["reservoir_belief_nl"] != after["reservoir_truth_nl"]  # belief vs truth
    assert summary["review"]["daily_volume_nl"] > 0

"""The batch commands' logs (hil/logs.py; docs/architecture.md, "Command output"): -q leaves
the result alone, -v adds a line per run, --log-format json writes JSON lines on stderr,
and stdout is the same at every level. ``demo`` and ``replay`` are checked in
tests/hil/test_demo.py and tests/hil/e2e/test_replay_e2e.py (they serve a pty)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from hil.cli import main

SWEEP = Path(__file__).parent / "campaign" / "sweep.toml"
ONLY = ["scenario", "run", "--builtin", "--backend", "api", "--only", "h05"]


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code in (0, 1), result.output
    return result


def test_scenario_run_logs_a_json_line_per_run_with_v() -> None:
    quiet = invoke(*ONLY, "--json")
    verbose = invoke(*ONLY, "--json", "-v", "--log-format", "json")
    records = [json.loads(line) for line in verbose.stderr.splitlines()]
    assert {r["program"] for r in records} == {"scenario"}
    runs = [r["message"] for r in records if r["message"].startswith("run ")]
    ids = [run["id"] for run in json.loads(verbose.stdout)["runs"]]
    assert len(runs) == len(ids) >= 1
    assert all(any(f"run {i}: " in line for line in runs) for i in ids)
    assert quiet.stderr == ""
    assert json.loads(quiet.stdout)["counts"] == json.loads(verbose.stdout)["counts"]


@pytest.mark.parametrize("flags", [["-q"], ["--log-level", "error"]], ids=["q", "level-error"])
def test_scenario_run_quiet_keeps_the_table(flags: list[str]) -> None:
    result = invoke(*ONLY, *flags)
    assert result.stderr == ""
    assert "h05" in result.stdout


@pytest.mark.e2e  # campaign run starts a process pool
def test_campaign_run_q_prints_only_the_summary_and_v_each_run(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    quiet = invoke(
        "campaign", "run", str(SWEEP), "--workers", "1", "--out", str(out), "--json", "-q"
    )
    assert quiet.stderr == ""  # neither the "runs on" line nor a bar
    summary = json.loads(quiet.stdout)
    verbose = invoke(
        "campaign", "run", str(SWEEP), "--workers", "1", "--out", str(out), "--fresh",
        "--json", "-v", "--log-format", "json",
    )  # fmt: skip
    records = [json.loads(line) for line in verbose.stderr.splitlines()]
    per_run = [r for r in records if r["level"] == "debug" and r["message"].startswith("run ")]
    assert len(per_run) == summary["runs"]
    assert any(r["level"] == "info" and "runs on" in r["message"] for r in records)
    assert json.loads(verbose.stdout)["verdicts"] == summary["verdicts"]

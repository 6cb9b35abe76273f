"""Ctrl-C in the middle of a campaign on forked workers: the finished runs are kept and the
same command resumes without running them again (docs/campaigns.md "Interrupted
campaigns")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hil.campaign.leak_sweep import seeded_leak_sweep

# 1,000 runs of four years each: long enough to be stopped in the middle.
SWEEP = seeded_leak_sweep("interrupted", "1500d 02:00", 250)

COMMAND = [sys.executable, "-c", "from hil.cli import main; main()", "campaign", "run",
           "sweep.toml", "--out", "out.jsonl", "--workers", "2"]  # fmt: skip


def ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


@pytest.mark.e2e
@pytest.mark.timeout(600)
@pytest.mark.skipif(sys.platform == "win32", reason="a process group's Ctrl-C is POSIX")
def test_ctrl_c_keeps_the_finished_runs_and_the_same_command_resumes(tmp_path: Path) -> None:
    (tmp_path / "sweep.toml").write_text(SWEEP)
    out = tmp_path / "out.jsonl"
    campaign = subprocess.Popen(
        COMMAND,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        # A shell's background job ignores SIGINT; a terminal's foreground job does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and out.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert out.exists()
        assert out.stat().st_size, "no run finished within 120 s"
        os.killpg(campaign.pid, signal.SIGINT)  # Ctrl-C reaches the parent and its workers
        stdout, stderr = campaign.communicate(timeout=120)
    finally:
        if campaign.poll() is None:
            os.killpg(campaign.pid, signal.SIGKILL)
            campaign.wait(timeout=30)
    assert campaign.returncode == 1, stderr[-3000:]
    assert "interrupted" in stderr
    kept = ids(out)  # every line whole: json.loads reads each one
    assert 0 < len(kept) < 1000, stdout
    assert len(set(kept)) == len(kept)

    again = subprocess.run(
        [*COMMAND, "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=480,
        check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout)
    assert summary["resumed"] == len(kept)  # not run again
    assert summary["verdicts"] == {"pass": 1000}
    final = ids(out)
    assert len(final) == len(set(final)) == 1000
    assert final[: len(kept)] == kept  # the kept lines, as they were

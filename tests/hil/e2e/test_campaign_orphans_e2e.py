"""A campaign's local workers never outlive it: a CI job's timeout that kills only the
`pumpemu campaign` process leaves no worker running (hil/local_pool.py, docs/campaigns.md
"Interrupted campaigns")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hil.campaign.leak_sweep import seeded_leak_sweep

SWEEP = seeded_leak_sweep("orphans", "1500d 02:00", 250)


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.e2e
@pytest.mark.timeout(120)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl are Linux's")
def test_workers_die_with_a_killed_campaign(tmp_path: Path) -> None:
    (tmp_path / "sweep.toml").write_text(SWEEP)
    campaign = subprocess.Popen(
        [sys.executable, "-c", "from hil.cli import main; main()", "campaign", "run",
         "sweep.toml", "--out", "out.jsonl", "--workers", "2"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = children(campaign.pid)
            time.sleep(0.05)
        assert len(workers) == 2, workers
        campaign.kill()  # the parent only, as a job runner's timeout does
        campaign.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in workers if alive(pid)] == []
    finally:
        campaign.kill()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

"""A campaign of 200 runs on a local process pool and on a Dask LocalCluster on loopback:
the same JSONL, order aside (docs/campaigns.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hil.campaign.leak_sweep import seeded_leak_sweep

SWEEP = seeded_leak_sweep("campaign-200", "0d 02:00", 50)


def campaign(tmp_path: Path, out: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from hil.cli import main; main()", "campaign", "run",
         str(tmp_path / "sweep.toml"), "--out", str(tmp_path / out), "--workers", "2",
         "--json", *extra],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=tmp_path,
    )  # fmt: skip


def lines(path: Path) -> list[str]:
    return sorted(path.read_text().splitlines())


@pytest.mark.e2e
@pytest.mark.timeout(900)  # 400 runs in all on a loaded 2-core machine
def test_200_runs_on_a_dask_localcluster_match_the_process_pool(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    (tmp_path / "sweep.toml").write_text(SWEEP)
    pool = campaign(tmp_path, "pool.jsonl")
    assert pool.returncode == 0, pool.stderr[-3000:]
    assert json.loads(pool.stdout)["verdicts"] == {"pass": 200}
    dask = campaign(tmp_path, "dask.jsonl", "--cluster", "local")
    assert dask.returncode == 0, dask.stderr[-3000:]
    assert lines(tmp_path / "pool.jsonl") == lines(tmp_path / "dask.jsonl")
    assert len(lines(tmp_path / "dask.jsonl")) == 200

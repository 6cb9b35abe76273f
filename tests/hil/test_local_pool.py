"""The local process pool: forked where that is safe, spawned elsewhere (hil/local_pool.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from hil import local_pool as pool_module
from hil.local_pool import WorkerStartError, local_pool, start_method

SWEEP = Path(__file__).parent / "campaign" / "sweep.toml"


@pytest.mark.e2e  # it starts a thread
def test_a_process_with_another_thread_spawns() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert start_method() == "spawn"
    finally:
        stop.set()
        thread.join(timeout=10)


@pytest.mark.parametrize(
    ("platform", "threads", "expected"),
    [
        ("linux", 1, "fork"),
        ("linux", 2, "spawn"),
        ("darwin", 1, "spawn"),
        ("win32", 1, "spawn"),
    ],
    ids=["linux-one-thread", "linux-two-threads", "macos", "windows"],
)
def test_fork_only_on_linux_with_one_thread(
    monkeypatch: pytest.MonkeyPatch, platform: str, threads: int, expected: str
) -> None:
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setattr(threading, "active_count", lambda: threads)
    assert start_method() == expected


@pytest.mark.e2e
def test_a_spawned_pool_is_started_when_returned() -> None:
    with local_pool(2, method="spawn") as pool:
        # The first task ran before local_pool returned: a worker is up.
        assert len(pool._processes) >= 1
        assert pool.submit(os.getpid).result(timeout=60) != os.getpid()


@pytest.mark.e2e
def test_the_campaign_command_forks_its_workers_and_they_run_the_sweep(tmp_path: Path) -> None:
    # A fresh process runs one thread, so on Linux it forks; the lines are the campaign's.
    done = subprocess.run(
        [sys.executable, "-c", "from hil.cli import main; main()", "campaign", "run",
         str(SWEEP), "--out", str(tmp_path / "out.jsonl"), "--workers", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["verdicts"] == {"pass": 8}
    expected = "forked from this one" if sys.platform.startswith("linux") else "spawned"
    assert f"2 local process(es), {expected}" in done.stderr


def test_workers_that_cannot_start_are_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoProcesses(ProcessPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
            raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(pool_module, "ProcessPoolExecutor", NoProcesses)
    with pytest.raises(WorkerStartError, match=r"could not start 2 worker process\(es\) \(spawn\)"):
        local_pool(2, method="spawn")

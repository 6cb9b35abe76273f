"""The local process pool: forked where that is safe, spawned elsewhere (hil/local_pool.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from hil.local_pool import LocalPool, WorkerStartError, local_pool, start_method

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
    def no_processes(self: LocalPool, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(LocalPool, "submit", no_processes)
    with pytest.raises(WorkerStartError, match=r"could not start 2 worker process\(es\) \(spawn\)"):
        local_pool(2, method="spawn")


def _worker_signals() -> tuple[object, int]:
    """In a worker: its SIGINT handler, and the signal the kernel sends it when its parent
    dies (prctl PR_GET_PDEATHSIG)."""
    import ctypes  # noqa: PLC0415

    death = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(2, ctypes.byref(death), 0, 0, 0)
    return signal.getsignal(signal.SIGINT), death.value


@pytest.mark.e2e
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_worker_leaves_ctrl_c_to_the_parent_and_dies_with_it() -> None:
    with local_pool(1, method="spawn") as pool:
        handler, death = pool.submit(_worker_signals).result(timeout=60)
    assert handler == signal.SIG_IGN
    assert death == signal.SIGKILL


def stopped_by(pool: LocalPool) -> None:
    """Ctrl-C in the middle of a ``with`` block over the pool."""
    with pool:
        raise KeyboardInterrupt


@pytest.mark.e2e
@pytest.mark.timeout(60)  # a pool that waited for the task would take 600 s
def test_leaving_the_block_on_ctrl_c_stops_the_workers_mid_task() -> None:
    pool = local_pool(1, method="spawn")
    running = pool.submit(time.sleep, 600)
    workers = list(pool._processes.values())
    with pytest.raises(KeyboardInterrupt):
        stopped_by(pool)
    assert all(not worker.is_alive() for worker in workers)
    assert running.done()

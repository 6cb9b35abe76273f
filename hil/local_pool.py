"""The local process pool behind ``pumpemu campaign run`` and ``pumpemu scenario run -j``.

A worker's start-up is the part of a campaign two workers cannot share (docs/campaigns.md,
"Workers"). A *spawned* worker is a fresh interpreter that imports the pump, the scenario
runner and the codec again (about 0.25 s on the 2-core machine the project is measured on,
where a 30-day run costs 1.4 ms). A *forked* worker starts as a copy of the parent, which
has already imported all of that to plan the campaign: it is ready in a few milliseconds.

Forking is safe only in a process that runs no other thread: a thread that held a lock
(logging, an I/O buffer, the allocator) at the moment of the fork leaves it held for ever
in the child (CPython gh-84559, the reason Python 3.14 stopped forking by default). So the
pool forks only on Linux, only when this process has one thread, and it starts all its
workers at once, before anything (the pool's own manager thread, the progress bar's
refresher) starts a thread. Anywhere else it spawns: macOS, where forking is unsafe with the
system frameworks, Windows, which cannot fork, and a process that already runs threads (a
test under pytest-xdist, a program that embeds the runner).

Each worker, forked or spawned, first leaves SIGINT to the parent (a terminal's Ctrl-C
reaches the whole process group; the parent cancels what is queued and stops the workers,
``LocalPool.stop``) and, on Linux, asks the kernel to kill it when the parent dies
(``PR_SET_PDEATHSIG``): a forked worker holds the parent's end of the pool's pipes, so it
would never see them close, and a parent killed by a CI job's timeout would leave its
workers running for ever, holding the job's output open.
"""

from __future__ import annotations

import ctypes
import importlib
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType

from hil.errors import HilError

__all__ = ["LocalPool", "WorkerStartError", "local_pool", "start_method", "started_as"]


class WorkerStartError(HilError):
    """The pool's worker processes could not start (out of processes or memory, or a
    worker that died on start-up)."""


def start_method() -> str:
    """``"fork"`` where forking this process is safe (Linux, no other thread), else
    ``"spawn"``."""
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"


def started_as(method: str) -> str:
    """How the workers of a pool with start ``method`` start, as the commands log it."""
    return "forked from this one" if method == "fork" else "spawned"


PR_SET_PDEATHSIG = 1
"""prctl(2): the signal this process gets when the thread that created it ends."""


def _worker_start(parent_pid: int) -> None:
    """The first thing each worker does (the pool's ``initializer``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's (LocalPool.stop)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        # The pool is made and its workers started by the thread that calls local_pool
        # (the main thread of both commands), so "the thread that created it" is the parent.
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before the request was made
            os._exit(1)


class LocalPool(ProcessPoolExecutor):
    """A process pool that a ``with`` block leaving on an exception (Ctrl-C) stops at once,
    rather than waiting for every task already handed to a worker."""

    def stop(self) -> None:
        """Cancel every task not started and end the workers now, mid-task: what they were
        running is thrown away (a campaign runs it again when resumed)."""
        terminate = getattr(super(), "terminate_workers", None)  # Python 3.14+
        if terminate is not None:
            terminate()
            return
        processes = list(self._processes.values())
        # (typeshed types this attribute as the wake-up object: it is the manager thread)
        manager: threading.Thread | None = getattr(self, "_executor_manager_thread", None)
        self.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=10)
        if manager is not None:
            # It sees the workers gone and fails what they held: every future is done
            # when this returns.
            manager.join(timeout=10)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if exc_type is not None:
            self.stop()
        return super().__exit__(exc_type, exc, tb)


def local_pool(
    workers: int, *, preload: Sequence[str] = (), method: str | None = None
) -> LocalPool:
    """A pool of ``workers`` processes, started before this returns.

    ``preload``: modules a task needs, imported here first so that forked workers inherit
    them rather than each importing them (spawned workers import them on their first task,
    as always). ``method``: the start method; by default ``start_method()``.
    """
    chosen = method or start_method()
    if chosen == "fork":
        for name in preload:
            importlib.import_module(name)
    pool = LocalPool(
        workers,
        mp_context=multiprocessing.get_context(chosen),
        initializer=_worker_start,
        initargs=(os.getpid(),),
    )
    # A first task starts the workers now: under fork, every one of them at once and before
    # the pool's manager thread (CPython gh-90622), so no fork ever happens while a thread
    # runs; under spawn, a worker that cannot start fails here, before any run is sent.
    try:
        pool.submit(os.getpid).result()
    except (BrokenProcessPool, OSError) as exc:
        pool.shutdown(wait=False, cancel_futures=True)
        raise WorkerStartError(
            f"could not start {workers} worker process(es) ({chosen}): {exc}"
        ) from None
    return pool

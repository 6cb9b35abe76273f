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
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from hil.errors import HilError

__all__ = ["WorkerStartError", "local_pool", "start_method"]


class WorkerStartError(HilError):
    """The pool's worker processes could not start (out of processes or memory, or a
    worker that died on start-up)."""


def start_method() -> str:
    """``"fork"`` where forking this process is safe (Linux, no other thread), else
    ``"spawn"``."""
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"


def local_pool(
    workers: int, *, preload: Sequence[str] = (), method: str | None = None
) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes, started before this returns.

    ``preload``: modules a task needs, imported here first so that forked workers inherit
    them rather than each importing them (spawned workers import them on their first task,
    as always). ``method``: the start method; by default ``start_method()``.
    """
    chosen = method or start_method()
    if chosen == "fork":
        for name in preload:
            importlib.import_module(name)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(chosen))
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

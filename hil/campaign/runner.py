"""Running a campaign on any ``concurrent.futures.Executor``: a local process pool or a
Dask cluster's executor, the same code for both.

Results go to a JSONL file, one line per finished run, appended and flushed as each run
finishes, so an interrupted campaign (Ctrl-C, a lost worker, a killed job) keeps what it
finished, and running it again with the same file resumes: runs whose id already has a
line are not run again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, as_completed
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

from hil.campaign.execute import execute_batch
from hil.campaign.plan import RunSpec
from hil.errors import UsageError

__all__ = ["CampaignOutcome", "read_results", "run_campaign", "task_sizes"]


@dataclass
class CampaignOutcome:
    """What a campaign did: every result line it holds, and what it could not finish."""

    results: list[dict[str, Any]] = field(default_factory=list)
    """Every line of the results file, resumed ones included."""
    resumed: int = 0
    """Lines that were already in the file: runs not run again."""
    lost: list[tuple[str, str]] = field(default_factory=list)
    """(run id, why) for runs whose worker failed: no line written, run again to retry."""
    interrupted: bool = False
    foreign: int = 0
    """Lines of the file whose id is no run of this campaign (another campaign's results):
    kept in the file, counted nowhere here."""


def read_results(path: Path) -> list[dict[str, Any]]:
    """The result lines already in ``path`` (none if it does not exist). A last line cut
    short by a kill is dropped: its run will run again."""
    if not path.exists():
        return []
    lines = []
    with path.open(encoding="utf-8") as file:
        for number, text in enumerate(file, start=1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                if not text.endswith("\n"):
                    break  # the line a kill cut short
                raise UsageError(f"{path}:{number}: not a result line") from None
            if not isinstance(line, dict) or "id" not in line:
                raise UsageError(f"{path}:{number}: not a result line")
            lines.append(line)
    return lines


def _append(file: Any, lines: list[dict[str, Any]]) -> None:
    # The lines of one finished task, flushed at once: a killed campaign keeps every line
    # of every task that came back (the kernel has them). One write per task, not per line:
    # the lines arrive together. Synced to the disk at the end, not per task: that only
    # matters for a power cut.
    file.write("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))
    file.flush()


SMALLEST_TASK = 8
"""Runs in the last tasks of a campaign: small enough that the workers finish together
(8 thirty-day runs are about 12 ms of work), large enough that sending one costs little."""

LARGEST_TASK = 64
"""Runs in the first tasks: a task's results are written when all of it finishes, so this
bounds what an interrupted campaign loses and how long the progress bar waits."""


def task_sizes(count: int, workers: int) -> list[int]:
    """How ``count`` runs are cut into tasks for ``workers`` workers: large tasks first and
    smaller ones as the campaign nears its end (guided self-scheduling), each a quarter of
    one worker's share of what is left, between ``SMALLEST_TASK`` and ``LARGEST_TASK`` (and
    down to one run when the whole campaign is less than four tasks of the smallest size per
    worker).

    Why not one size: each task costs the parent (which shares the cores with the
    workers) a submission, a wake-up and a result to unpickle, about 0.7 ms, while the
    last tasks decide how long the first worker to finish waits for the others. A thousand
    runs on two workers are 32 tasks, against 125 at a fixed 8 per task.
    """
    share = 4 * max(workers, 1)
    # A small campaign is cut finer (down to a run a task): every worker gets some of it.
    smallest = max(1, min(SMALLEST_TASK, count // share))
    sizes = []
    left = count
    while left > 0:
        size = min(left, max(smallest, min(LARGEST_TASK, left // share)))
        sizes.append(size)
        left -= size
    return sizes


def run_campaign(
    specs: Sequence[RunSpec],
    executor: Executor,
    results_path: Path,
    *,
    backend: str = "api",
    on_result: Callable[[dict[str, Any]], None] | None = None,
    workers: int = 1,
    batch: int | None = None,
) -> CampaignOutcome:
    """Run every spec not already in ``results_path`` on ``executor`` (which has
    ``workers`` workers), in tasks cut by ``task_sizes``, or of ``batch`` runs each when
    given; append each task's results as it finishes. Ctrl-C cancels what has not started
    and returns with ``interrupted``."""
    done = read_results(results_path)
    ids = {spec.id for spec in specs}
    ours = [line for line in done if line["id"] in ids]
    finished = {line["id"] for line in ours}
    outcome = CampaignOutcome(results=ours, resumed=len(ours), foreign=len(done) - len(ours))
    todo = [spec for spec in specs if spec.id not in finished]
    if not todo:
        return outcome
    # Rewrite what was read first: drops a line a kill cut short, keeps every whole one.
    with results_path.open("w", encoding="utf-8") as file:
        for line in done:
            file.write(json.dumps(line, sort_keys=True) + "\n")
        file.flush()
        if batch is None:
            sizes = task_sizes(len(todo), workers)
        else:
            sizes = [max(batch, 1)] * -(-len(todo) // max(batch, 1))
        starts = accumulate(sizes, initial=0)  # one more than sizes: the end, unused
        groups = [
            list(todo[start : start + size]) for start, size in zip(starts, sizes, strict=False)
        ]
        futures: dict[Future[list[dict[str, Any]]], list[RunSpec]] = {
            executor.submit(execute_batch, group, backend): group for group in groups
        }
        try:
            for future in as_completed(futures):
                group = futures[future]
                try:
                    lines = future.result()
                except Exception as exc:  # a lost worker: retried by the next resume
                    why = f"{type(exc).__name__}: {exc}"
                    outcome.lost.extend((spec.id, why) for spec in group)
                    continue
                _append(file, lines)
                for line in lines:
                    outcome.results.append(line)
                    if on_result is not None:
                        on_result(line)
        except KeyboardInterrupt:
            outcome.interrupted = True
            for future in futures:
                future.cancel()
        os.fsync(file.fileno())
    return outcome

"""Campaigns: expansion, results lines, resume, rerun, and executors (hil/campaign/)."""

from __future__ import annotations

import json
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from hil.campaign.command import lost_warnings
from hil.campaign.execute import execute
from hil.campaign.plan import RunSpec, expand
from hil.campaign.runner import (
    LARGEST_TASK,
    SMALLEST_TASK,
    read_results,
    run_campaign,
    task_sizes,
)
from hil.cli import main
from hil.errors import UsageError

SWEEP = Path(__file__).with_name("sweep.toml")


class InlineExecutor(Executor):
    """Runs each submitted call at once, in this thread (no thread, no process)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


def test_a_sweep_expands_into_runs_with_their_own_ids_and_seeds() -> None:
    specs = expand([SWEEP])
    assert len(specs) == 8  # 4 seeds x 2 leak sizes
    assert len({s.id for s in specs}) == 8
    assert {s.seed for s in specs} == {1, 2, 3, 4}
    assert all(s.hazards == ("H17",) for s in specs)


def test_a_duplicate_id_is_a_usage_error(tmp_path: Path) -> None:
    copy = tmp_path / "copy.toml"
    copy.write_text(SWEEP.read_text())
    with pytest.raises(UsageError, match="also"):
        expand([SWEEP, copy])


def test_each_run_is_one_deterministic_line() -> None:
    spec = expand([SWEEP])[0]
    first, again = execute(spec), execute(spec)
    assert first == again  # no timing, no host: the same spec gives the same line
    assert first["verdict"] == "pass"
    assert first["parameters"]
    assert json.loads(json.dumps(first)) == first


def test_results_are_written_as_runs_finish_and_a_campaign_resumes(tmp_path: Path) -> None:
    specs = expand([SWEEP])
    out = tmp_path / "results.jsonl"
    first = run_campaign(specs[:3], InlineExecutor(), out)
    assert len(read_results(out)) == 3
    assert first.resumed == 0
    # A kill mid-write leaves half a line: it is dropped and that run runs again.
    with out.open("a") as file:
        file.write('{"id": "half')
    seen: list[str] = []
    second = run_campaign(
        specs, InlineExecutor(), out, on_result=lambda line: seen.append(line["id"])
    )
    assert second.resumed == 3
    assert sorted(seen) == sorted(s.id for s in specs[3:])  # the finished three: not again
    lines = read_results(out)
    assert sorted(line["id"] for line in lines) == sorted(s.id for s in specs)


def test_a_lost_worker_loses_only_its_run(tmp_path: Path) -> None:
    specs = expand([SWEEP])[:3]

    class Flaky(InlineExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
            group = args[0]
            if any(isinstance(s, RunSpec) and s.id == specs[1].id for s in group):
                future: Future[Any] = Future()
                future.set_exception(RuntimeError("worker died"))
                return future
            return super().submit(fn, *args, **kwargs)

    outcome = run_campaign(specs, Flaky(), tmp_path / "r.jsonl", batch=1)
    assert [run_id for run_id, _ in outcome.lost] == [specs[1].id]
    assert len(read_results(tmp_path / "r.jsonl")) == 2


@pytest.mark.e2e
def test_a_thread_pool_gives_the_same_lines(tmp_path: Path) -> None:
    specs = expand([SWEEP])
    inline = run_campaign(specs, InlineExecutor(), tmp_path / "a.jsonl")
    with ThreadPoolExecutor(2) as pool:
        threaded = run_campaign(specs, pool, tmp_path / "b.jsonl")
    key = lambda line: line["id"]  # noqa: E731
    assert sorted(inline.results, key=key) == sorted(threaded.results, key=key)


def test_rerun_reproduces_a_recorded_run(tmp_path: Path) -> None:
    specs = expand([SWEEP])
    out = tmp_path / "results.jsonl"
    run_campaign(specs[:2], InlineExecutor(), out)
    result = CliRunner().invoke(
        main, ["campaign", "run", str(SWEEP), "--out", str(out), "--rerun", specs[1].id]
    )
    assert result.exit_code == 0, result.output
    assert "identical to the result recorded" in result.output


def test_rerun_of_an_unknown_id_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["campaign", "run", str(SWEEP), "--rerun", "nope"])
    assert result.exit_code == 2
    assert "no run has that id" in result.output


@given(count=st.integers(0, 5_000), workers=st.integers(1, 64))
def test_task_sizes_cover_every_run_largest_first(count: int, workers: int) -> None:
    sizes = task_sizes(count, workers)
    assert sum(sizes) == count
    assert all(1 <= size <= LARGEST_TASK for size in sizes)
    assert sizes == sorted(sizes, reverse=True)  # the tail is where the workers even out
    assert len(sizes) >= min(count, workers)  # no worker left without a task


@pytest.mark.parametrize(
    ("count", "workers", "tasks"),
    [(1000, 2, 32), (8, 2, 8), (200, 2, 17)],
    ids=["benchmark-campaign", "eight-runs", "two-hundred"],
)
def test_task_sizes_of_known_campaigns(count: int, workers: int, tasks: int) -> None:
    sizes = task_sizes(count, workers)
    assert len(sizes) == tasks
    assert sizes[0] == min(LARGEST_TASK, max(1, count // (4 * workers)))
    if count >= 4 * workers * SMALLEST_TASK:
        assert min(sizes[:-1]) == SMALLEST_TASK


def test_lines_of_another_campaign_are_kept_but_not_counted(tmp_path: Path) -> None:
    specs = expand([SWEEP])
    out = tmp_path / "results.jsonl"
    stranger = {"id": "another-campaign", "verdict": "fail"}
    out.write_text(json.dumps(stranger) + "\n")
    outcome = run_campaign(specs[:2], InlineExecutor(), out)
    assert outcome.foreign == 1
    assert outcome.resumed == 0
    assert sorted(line["id"] for line in outcome.results) == sorted(s.id for s in specs[:2])
    assert stranger in read_results(out)  # the user's data stays in the file
    again = run_campaign(specs[:2], InlineExecutor(), out)  # nothing left to run
    assert (again.resumed, again.foreign, len(again.results)) == (2, 1, 2)


@pytest.mark.e2e  # a process pool
def test_the_summary_counts_only_this_campaigns_runs(
    tmp_path: Path,
) -> None:
    # The summary counts this campaign's runs only, so a pass of another campaign in --out
    # cannot stand in for one of these.
    specs = expand([SWEEP])
    out = tmp_path / "results.jsonl"
    out.write_text(json.dumps({"id": "another-campaign", "verdict": "pass"}) + "\n")
    result = CliRunner().invoke(
        main, ["campaign", "run", str(SWEEP), "--out", str(out), "--workers", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.splitlines()[-1])
    assert summary["runs"] == len(specs)
    assert sum(summary["verdicts"].values()) == len(specs)  # the stranger is not counted
    assert "1 line(s) in" in result.output  # the warning (CliRunner mixes stderr in)


@pytest.mark.parametrize(
    ("lost", "expected"),
    [
        ([("a", "worker died")], ["lost 1 run(s) (a): worker died"]),
        (
            [(f"r{i}", "BrokenProcessPool: gone") for i in range(800)],
            ["lost 800 run(s) (r0, r1, r2 and 797 more): BrokenProcessPool: gone"],
        ),
        (
            [("a", "x"), ("b", "y"), ("c", "x")],
            ["lost 2 run(s) (a, c): x", "lost 1 run(s) (b): y"],
        ),
    ],
    ids=["one", "a-broken-pool", "two-causes"],
)
def test_lost_runs_are_one_warning_per_cause(
    lost: list[tuple[str, str]], expected: list[str]
) -> None:
    suffix = "; run the same command again to run them"
    assert lost_warnings(lost) == [line + suffix for line in expected]

"""``pumpemu campaign``: run scenario sweeps many at a time (docs/campaigns.md).

Exit codes: 0 when every run passed; 1 when a run failed, was skipped in part, errored, was
lost with its worker, or the campaign was interrupted (run it again to resume); 2 for a bad
file or option.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from hil.errors import UsageError
from hil.logs import LogConfig, log_options

EPILOG = """\b
Examples:
  pumpemu campaign run sweeps/ --out results.jsonl          all local cores
  pumpemu campaign run sweep.toml --workers 2 --junit campaign.xml
  pumpemu campaign run sweep.toml --cluster tcp://scheduler:8786
  pumpemu campaign run sweep.toml --cluster local --workers 4   a Dask LocalCluster
  pumpemu campaign run sweep.toml --rerun 'leak[seed=3,ppm=200000]'   one run again
  pumpemu campaign run sweep.toml --report campaign-report   an HTML page with the plots
"""

DEFAULT_OUT = "campaign-results.jsonl"

RUN_STACK = ("hil.campaign.execute", "hil.scenario.runner", "hil.scenario.backends")
"""What a worker needs to run a scenario on the api backend: loaded by this process before
it forks its workers (planning loaded most of it already)."""


@click.group("campaign", epilog=EPILOG)
def campaign() -> None:
    """Run scenario sweeps many at a time, on local cores or a Dask cluster."""


def _files(paths: tuple[str, ...], builtin: bool) -> list[Path]:
    from hil.scenario.command import builtin_paths  # noqa: PLC0415 (heavy; on use)
    from hil.scenario.loader import scenario_files  # noqa: PLC0415

    files = [*(builtin_paths() if builtin else []), *scenario_files(paths)]
    if not files:
        raise UsageError("give scenario FILES or directories, or --builtin")
    return files


@contextmanager
def _executor(workers: int, cluster: str | None, backend: str) -> Iterator[tuple[Executor, str]]:
    """A process pool, or a Dask cluster's executor: ``run_campaign`` takes either."""
    if cluster is None:
        from hil.local_pool import local_pool, start_method, started_as  # noqa: PLC0415
        from hil.scenario.backends import backend_modules  # noqa: PLC0415

        # Started here, before the progress bar's thread: a forked worker inherits the run
        # stack this process loaded to plan the campaign (hil/local_pool.py).
        method = start_method()
        stack = (*RUN_STACK, *backend_modules(backend))
        # Left on an exception, the pool stops its workers at once (LocalPool.__exit__).
        with local_pool(workers, preload=stack, method=method) as pool:
            yield pool, f"{workers} local process(es), {started_as(method)}"
        return
    try:
        # Optional (the cluster extra), and typed only in part: used through Any.
        distributed: Any = importlib.import_module("distributed")
    except ImportError:
        raise UsageError(
            "--cluster needs Dask distributed: pip install 'pumpemu[cluster]'"
        ) from None
    if cluster == "local":
        local = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
        client = distributed.Client(local)
        where = f"a Dask LocalCluster of {workers} worker(s) on loopback"
    else:
        try:
            client = distributed.Client(cluster, timeout=30)
        except OSError as exc:
            raise UsageError(f"--cluster {cluster}: cannot connect: {exc}") from None
        local = None
        where = f"the Dask cluster at {cluster}"
    try:
        yield client.get_executor(pure=False), where
    finally:
        client.close()
        if local is not None:
            local.close()


@campaign.command("run", epilog=EPILOG)
@click.argument("paths", nargs=-1)
@click.option("--builtin", is_flag=True, help="Include the built-in scenario library.")
@click.option(
    "--backend",
    type=click.Choice(["api", "wire"]),
    default="api",
    show_default=True,
    help="api: emulator.Pump directly (fastest); wire: through the protocol.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 1024),
    default=None,
    help="Processes (or LocalCluster workers). Default: every core.",
)
@click.option(
    "--cluster",
    metavar="ADDR|local",
    default=None,
    help="Run on a Dask cluster (tcp://HOST:PORT) or a Dask LocalCluster ('local').",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(DEFAULT_OUT),
    show_default=True,
    help="Results, one JSON line per run; an existing file is resumed.",
)
@click.option("--fresh", is_flag=True, help="Start over: replace --out instead of resuming.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--rerun", metavar="ID", help="Run one run again in this process and compare.")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Also write DIR/index.html: one self-contained page with the summary, each oracle "
    "figure's distribution across a sweep (and against its one swept parameter), and the "
    "runs that did not pass with their --rerun command.",
)
@log_options
def run_command(  # noqa: PLR0917 (click passes every option as an argument)
    paths: tuple[str, ...],
    builtin: bool,
    backend: str,
    workers: int | None,
    cluster: str | None,
    out: Path,
    fresh: bool,
    junit: Path | None,
    as_json: bool,
    rerun: str | None,
    report_dir: Path | None,
    verbose: int,
    quiet: int,
    log_level: str | None,
    log_format: str,
) -> None:
    """Expand scenario FILES (sweeps included) into runs and execute them in parallel.

    Runs go to workers in tasks of up to 64; each finished task's runs are lines of --out
    at once, so an interrupted campaign keeps its results and the same command resumes
    it. The same files give the same lines on a process pool and on a cluster (order
    aside).

    Logs go to stderr (-q: no progress bar, only the summary on stdout; -v: a line per
    finished run; --log-format json: JSON lines); the summary on stdout is the same.
    """
    log = LogConfig.from_options("campaign", verbose, quiet, log_level, log_format)
    from hil.campaign.plan import expand  # noqa: PLC0415

    started = time.monotonic()  # the report's "this invocation took" (a display figure)
    specs = expand(_files(paths, builtin))
    if rerun is not None and report_dir is not None:
        raise UsageError("--report draws a whole campaign: leave it out with --rerun")
    if rerun is not None:
        _rerun(specs, rerun, backend, out)
        return
    if fresh and out.exists():
        out.unlink()
    count = workers or os.cpu_count() or 1
    summary = _run(specs, backend, count, cluster, out, log)
    if junit is not None:
        _write_junit(summary["results"], junit)
    verdicts = Counter(line["verdict"] for line in summary["results"])
    report = {
        "runs": len(specs),
        "resumed": summary["resumed"],
        "verdicts": dict(sorted(verdicts.items())),
        "not_passed": sorted(
            line["id"] for line in summary["results"] if line["verdict"] != "pass"
        ),
        "lost": summary["lost"],
        "interrupted": summary["interrupted"],
        "results": str(out),
    }
    if report_dir is not None:
        from hil.campaign.html_report import CampaignInfo, write_report  # noqa: PLC0415

        info = CampaignInfo(
            results_path=str(out),
            backend=backend,
            seconds=int(time.monotonic() - started),
            resumed=summary["resumed"],
            lost=tuple(summary["lost"]),
            interrupted=summary["interrupted"],
        )
        ids = {spec.id for spec in specs}
        written = write_report(
            [line for line in summary["results"] if line["id"] in ids], info, report_dir
        )
        report["report"] = str(written)
    if as_json:
        click.echo(json.dumps(report))
    else:
        _print_summary(report)
    ok = (
        verdicts.get("pass", 0) == len(specs) and not summary["lost"] and not summary["interrupted"]
    )
    sys.exit(0 if ok else 1)


def _run(  # noqa: PLR0917 (the campaign's settings, passed on from its options)
    specs: list[Any], backend: str, workers: int, cluster: str | None, out: Path, log: LogConfig
) -> dict[str, Any]:
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from hil.campaign.runner import read_results, run_campaign  # noqa: PLC0415

    already = len({line["id"] for line in read_results(out)} & {s.id for s in specs})
    with _executor(workers, cluster, backend) as (executor, where):
        from hil.console import make_console  # noqa: PLC0415 (rich: on use)

        console = make_console(sys.stderr)
        log(f"{len(specs)} runs on {where}; {already} already in {out}", "info")
        progress = Progress(
            TextColumn("campaign"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            # A bar is an info-level line: -q (or JSON logs, for a collector) has none.
            disable=not console.is_terminal or not log.shows("info") or log.fmt == "json",
        )

        def finished(line: dict[str, Any]) -> None:
            progress.advance(task)
            log(f"run {line['id']}: {line['verdict']}", "debug")

        with progress:
            task = progress.add_task("runs", total=len(specs), completed=already)
            outcome = run_campaign(
                specs, executor, out, backend=backend, on_result=finished, workers=workers
            )
        stop = getattr(executor, "stop", None)  # the local pool (hil/local_pool.py)
        if outcome.interrupted and stop is not None:
            stop()  # the runs in the workers' hands are thrown away: resumed next time
    if outcome.interrupted:
        log(
            f"interrupted: {len(outcome.results)} of {len(specs)} runs kept in {out}; run the "
            "same command again to resume",
            "warning",
        )
    if outcome.foreign:
        log(
            f"{outcome.foreign} line(s) in {out} are no run of these files (another "
            "campaign's results?): kept in the file, not counted here",
            "warning",
        )
    for line in lost_warnings(outcome.lost):
        log(line, "warning")
    for run_id, why in outcome.lost:
        log(f"lost {run_id}: {why}", "debug")
    return {
        "results": outcome.results,
        "resumed": outcome.resumed,
        "lost": [run_id for run_id, _why in outcome.lost],
        "interrupted": outcome.interrupted,
    }


def lost_warnings(lost: list[tuple[str, str]]) -> list[str]:
    """One warning per cause of lost runs: a worker that dies breaks a local pool, and
    every run not yet written is lost with it (hundreds of runs, one reason)."""
    by_cause: dict[str, list[str]] = {}
    for run_id, why in lost:
        by_cause.setdefault(why, []).append(run_id)
    lines = []
    for why, ids in by_cause.items():
        count = len(ids)
        shown = ", ".join(ids[:3]) + (f" and {count - 3} more" if count > 3 else "")
        lines.append(
            f"lost {count} run(s) ({shown}): {why}; run the same command again to run them"
        )
    return lines


def _print_summary(report: dict[str, Any]) -> None:
    verdicts = ", ".join(f"{count} {verdict}" for verdict, count in report["verdicts"].items())
    click.echo(
        f"{report['runs']} runs: {verdicts or 'none finished'} (results in {report['results']})"
    )
    if report["resumed"]:
        click.echo(f"{report['resumed']} resumed from an earlier run of the campaign")
    for run_id in report["not_passed"]:
        click.echo(f"  not passed: {run_id}")
    if "report" in report:
        click.echo(f"report: {report['report']}")


def _rerun(specs: list[Any], run_id: str, backend: str, out: Path) -> None:
    from hil.campaign.execute import execute  # noqa: PLC0415
    from hil.campaign.runner import read_results  # noqa: PLC0415

    spec = next((s for s in specs if s.id == run_id), None)
    if spec is None:
        raise UsageError(f"--rerun {run_id}: no run has that id in these files")
    line = execute(spec, backend)
    click.echo(json.dumps(line, sort_keys=True))
    recorded = next((r for r in read_results(out) if r["id"] == run_id), None)
    if recorded is None:
        click.echo(f"(no result for {run_id} in {out} to compare with)", err=True)
        sys.exit(0 if line["verdict"] == "pass" else 1)
    if recorded == json.loads(json.dumps(line, sort_keys=True)):
        click.echo(f"identical to the result recorded in {out}", err=True)
        sys.exit(0 if line["verdict"] == "pass" else 1)
    differ = sorted(k for k in set(recorded) | set(line) if recorded.get(k) != line.get(k))
    click.echo(f"DIFFERS from the result recorded in {out}: {', '.join(differ)}", err=True)
    sys.exit(1)


def _write_junit(results: list[dict[str, Any]], path: Path) -> None:
    suite = ET.Element(
        "testsuite",
        name="pumpemu campaign",
        tests=str(len(results)),
        failures=str(sum(r["verdict"] == "fail" for r in results)),
        errors=str(sum(r["verdict"] == "error" for r in results)),
        skipped=str(sum(r["verdict"] == "skip" for r in results)),
    )
    for line in results:
        case = ET.SubElement(suite, "testcase", classname=Path(line["file"]).stem, name=line["id"])
        properties = ET.SubElement(case, "properties")
        for name, value in (("hazards", ",".join(line["hazards"])), ("seed", str(line["seed"]))):
            ET.SubElement(properties, "property", name=name, value=value)
        if line["verdict"] == "fail":
            failed = line.get("failed", [])
            text = "\n".join(
                f"{f['where']}: {f['what']}: expected {f['expected']}, happened {f['happened']}"
                for f in failed
            )
            ET.SubElement(case, "failure", message=f"{len(failed)} check(s) failed").text = text
        elif line["verdict"] == "error":
            ET.SubElement(case, "error", message=line.get("error", "")[:200])
        elif line["verdict"] == "skip":
            ET.SubElement(case, "skipped", message="a step could not run on this backend")
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)

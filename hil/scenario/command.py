"""``pumpemu scenario``: check, run and list fault scenarios (docs/scenarios.md).

Exit codes: 0 when every run passed (every expectation and oracle held, nothing skipped;
with ``--allow-skips``, skipped in part is accepted too); 1 when a run failed, was skipped
in part or could not be set up; 2 for a bad file or option
(one ``file:line: what is wrong`` line, never a traceback).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import click

from hil.control_catalogue import CONTROL_ENV
from hil.control_command import control_options
from hil.errors import HilError, UsageError
from hil.json_output import echo_json, json_option
from hil.logs import LogConfig, log_options
from hil.scenario.model import BACKENDS, Scenario

if TYPE_CHECKING:
    from hil.pump_at_url import PumpAtUrl

# The loader, the runner and the reports are imported when a scenario command runs, not
# when pumpemu starts: every other subcommand (serve, ctl) would pay ~0.1 s for them.

BUILTIN_PACKAGE = "hil.scenario"
BUILTIN_DIR = "builtin"


def builtin_paths() -> list[Path]:
    """The built-in scenario library's files (package data, hil/scenario/builtin/)."""
    root = resources.files(BUILTIN_PACKAGE).joinpath(BUILTIN_DIR)
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".toml"))


def builtin_scenarios() -> list[Scenario]:
    from hil.scenario import loader  # noqa: PLC0415 (lazy, see above)

    return [sc for path in builtin_paths() for sc in loader.load(path)]


def _load(paths: Sequence[str], builtin: bool) -> list[Scenario]:
    from hil.scenario import loader  # noqa: PLC0415 (lazy, see above)

    if not paths and not builtin:
        raise UsageError("give scenario FILES or directories, or --builtin")
    scenarios = builtin_scenarios() if builtin else []
    for path in loader.scenario_files(paths):
        scenarios.extend(loader.load(path))
    return scenarios


@click.group("scenario")
def scenario() -> None:
    """Fault scenarios: months of pump time in seconds, each ending in a verdict.

    \b
    Examples:
      pumpemu scenario check my-scenarios/
      pumpemu scenario run --builtin
      pumpemu scenario run leak.toml --backend api --json
      pumpemu scenario run my-scenarios/ --junit scenarios.xml
      pumpemu scenario list

    The file format, the backends and every oracle: docs/scenarios.md.
    """


@scenario.command("check")
@click.argument("paths", nargs=-1, required=True)
@json_option(
    'one JSON object: {"files": [path, ...], "runs": [{"id", "file", "title", "hazards"}, '
    "...]} (a bad file is still one line on stderr and exit 2)"
)
def check(paths: tuple[str, ...], as_json: bool) -> None:
    """Validate scenario FILES (or directories of them) without running them.

    A bad file is one line, FILE:LINE: what is wrong, and exit code 2.

    \b
    Example:
      pumpemu scenario check my-scenarios/ leak.toml
      pumpemu scenario check my-scenarios/ --json
    """
    scenarios = _load(paths, builtin=False)
    from hil.scenario.loader import scenario_files  # noqa: PLC0415 (lazy, see above)

    files = [str(path) for path in scenario_files(paths)]
    if as_json:
        runs = [
            {"id": sc.id, "file": sc.path, "title": sc.title, "hazards": list(sc.hazards)}
            for sc in scenarios
        ]
        echo_json({"files": files, "runs": runs})
        return
    click.echo(f"ok: {len(scenarios)} run(s) in {len(files)} file(s)")


@scenario.command("list")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='JSON lines: one object per scenario, {"id", "hazards", "title"}.',
)
def list_builtin(as_json: bool) -> None:
    """List the built-in scenario library: id, hazards, title.

    \b
    Example:
      pumpemu scenario list --json
    """
    from rich.table import Table  # noqa: PLC0415 (lazy, see above)

    from hil.console import make_console  # noqa: PLC0415

    scenarios = builtin_scenarios()
    if as_json:
        for sc in scenarios:
            click.echo(json.dumps({"id": sc.id, "hazards": list(sc.hazards), "title": sc.title}))
        return
    table = Table(title="built-in scenarios")
    table.add_column("id")
    table.add_column("hazards")
    table.add_column("title")
    for sc in scenarios:
        table.add_row(sc.id, " ".join(sc.hazards), sc.title)
    make_console().print(table)


@scenario.command("record")
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--keys", "keys_file", required=True, metavar="FILE", help="The pump's key file.")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Write the scenario here (default: stdout).",
)
@click.option(
    "--id", "scenario_id", default="recorded-session", show_default=True, help="The scenario's id."
)
@json_option(
    'one JSON object of what was written: {"id", "capture", "out", "bytes"}, and with no '
    '--out the scenario itself as "toml"'
)
def record_command(
    capture: str, keys_file: str, out: str | None, scenario_id: str, as_json: bool
) -> None:
    """Turn a JSONL capture of a programmer's session into a scenario file.

    Each request becomes a step at its time, with the pump's reply as its expectation;
    fill in [setup] with the pump's state before the capture.

    \b
    Example:
      pumpemu ctl --port /dev/pts/5 --keys pe.keys --capture visit.jsonl bolus ...
      pumpemu scenario record visit.jsonl --keys pe.keys --out visit.toml
      pumpemu scenario record visit.jsonl --keys pe.keys --out visit.toml --json
    """
    from hil.key_files import load_keys  # noqa: PLC0415 (lazy, see above)
    from hil.scenario.record_command import record_capture  # noqa: PLC0415

    text = record_capture(capture, load_keys(keys_file), scenario_id)
    if out is not None:
        Path(out).write_text(text, encoding="utf-8")
    if as_json:
        document: dict[str, object] = {
            "id": scenario_id,
            "capture": capture,
            "out": out,
            "bytes": len(text.encode("utf-8")),
        }
        if out is None:
            document["toml"] = text
        echo_json(document)
    elif out is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {out}")


@scenario.command("run")
@click.argument("paths", nargs=-1)
@click.option("--builtin", is_flag=True, help="Run the built-in scenario library too.")
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="wire",
    show_default=True,
    help="wire: the reference programmer and the device over an in-memory link; "
    "api: emulator.Pump directly (fastest); serve: a pumpemu serve subprocess on a pty; "
    "url: the pump at --port with --keys (and --control for faults, time and truth).",
)
@click.option(
    "--port",
    metavar="URL",
    help="url backend: the pump's port, as pumpemu ctl --port takes it (a device path, "
    "socket://HOST:PORT, rfc2217://HOST:PORT).",
)
@click.option(
    "--keys",
    "keys_file",
    metavar="FILE",
    help="url backend: the pump's key file (pumpemu keys new), as pumpemu ctl --keys.",
)
@control_options(
    default=None,
    what="url backend: the pump's control API (pumpemu serve --control), as pumpemu "
    f"fault/time/truth take it; or set {CONTROL_ENV}. Without it, plant faults, steps after "
    "0d 00:00 and the oracles that need plant truth are skipped with the reason.",
)
@click.option(
    "--allow-skips",
    is_flag=True,
    help="Exit 0 when no run failed or errored, even if some were skipped in part (a rig "
    "without --control); the verdicts still say skip.",
)
@click.option("--only", "only", metavar="TEXT", help="Run only scenarios whose id contains TEXT.")
@click.option("--hazard", "hazard", metavar="ID", help="Run only scenarios for this hazard id.")
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Run scenarios in this many processes (a campaign, a sweep); the verdicts and "
    "figures are the same as with one.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Also write DIR/index.html: one self-contained page with every run's timeline, "
    "verdicts and plots (belief vs truth).",
)
@click.option(
    "--junit",
    "junit",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Also write JUnit XML to FILE.",
)
@log_options
def run_command(  # noqa: PLR0917 (click passes every option as an argument)
    paths: tuple[str, ...],
    builtin: bool,
    backend: str,
    port: str | None,
    keys_file: str | None,
    control: str | None,
    token_file: Path | None,
    allow_skips: bool,
    only: str | None,
    hazard: str | None,
    jobs: int,
    as_json: bool,
    report_dir: str | None,
    junit: str | None,
    verbose: int,
    quiet: int,
    log_level: str | None,
    log_format: str,
) -> None:
    """Run scenario FILES (or directories) and print a verdict per run.

    Exit 0 only when every expectation and every oracle of every run held; 1 when one
    failed or was skipped (with --allow-skips: when one failed or errored); 2 for a bad
    file or option.

    The url backend drives the pump at --port as a clinic would, one run at a time, on
    the pump as it finds it (its committed prescription must be the file's [setup] one).
    With --control, faults, time and truth go through the control API; without it the
    pump is a real rig: what it cannot do is reported skipped with the reason.

    Logs go to stderr: with -v, what runs where and a line per finished run; JSON lines
    with --log-format json. By default (and with -q) stderr carries only warnings.

    \b
    Examples:
      pumpemu scenario run --builtin
      pumpemu scenario run leak.toml --backend api --json
      pumpemu scenario run my-scenarios/ --junit scenarios.xml
      pumpemu scenario run sweep.toml --backend api --jobs 2
      pumpemu scenario run h05.toml --backend url --port /dev/pts/7 --keys pe.keys \\
          --control unix:/tmp/pump.sock
      pumpemu scenario run visit.toml --backend url --port /dev/ttyUSB0 --keys pe.keys
    """
    from hil.console import make_console  # noqa: PLC0415 (lazy, see above)
    from hil.scenario import report  # noqa: PLC0415
    from hil.scenario.runner import run  # noqa: PLC0415

    scenarios = _load(paths, builtin)
    if only:
        scenarios = [s for s in scenarios if only in s.id]
    if hazard:
        scenarios = [s for s in scenarios if hazard in s.hazards]
    if not scenarios:
        raise UsageError("no scenario matches")
    if backend != "url" and _from_environment("control"):
        control = None  # PUMPEMU_CONTROL is for pumpemu fault/time/truth too: not an error
    log = LogConfig.from_options("scenario", verbose, quiet, log_level, log_format)
    target = _target(backend, port, keys_file, control, token_file, jobs)
    where = _processes(jobs) if target is None and jobs > 1 else "this process"
    # Debug, as the per-run lines: by default stderr stays empty, as it always was.
    log(f"{len(scenarios)} run(s) on the {backend} backend in {where}", "debug")
    if target is not None:
        try:
            results = [run(sc, backend, target=target) for sc in scenarios]
        finally:
            target.close()
    elif jobs > 1 and len(scenarios) > 1:
        from hil.local_pool import local_pool  # noqa: PLC0415 (lazy)
        from hil.scenario.backends import backend_modules  # noqa: PLC0415

        chunk = max(1, len(scenarios) // (4 * jobs))
        # Forked where safe (hil/local_pool.py): the runner is loaded already.
        with local_pool(jobs, preload=backend_modules(backend)) as pool:
            results = list(pool.map(run, scenarios, [backend] * len(scenarios), chunksize=chunk))
    else:
        results = [run(sc, backend) for sc in scenarios]
    for result in results:  # -v: per-run detail (the table or JSON on stdout has it all)
        held = sum(f.ok is True for f in result.findings)
        checks = f"{held}/{len(result.findings)} checks held"
        log(f"run {result.scenario.id}: {result.verdict} ({checks})", "debug")
    if as_json:
        click.echo(report.dumps(results))
    else:
        report.print_table(results, make_console())
    if junit:
        report.write_junit(results, junit)
    if report_dir:
        from hil.scenario.html_report import write_report  # noqa: PLC0415 (lazy)

        written = write_report(results, report_dir)
        if not as_json:
            click.echo(f"report: {written}")
    accepted = ("pass", "skip") if allow_skips else ("pass",)
    sys.exit(0 if all(r.verdict in accepted for r in results) else 1)


def _from_environment(parameter: str) -> bool:
    source = click.get_current_context().get_parameter_source(parameter)
    return source is click.core.ParameterSource.ENVIRONMENT


def _processes(jobs: int) -> str:
    """Where --jobs runs go, as the log says it: how the workers start (hil/local_pool.py)."""
    from hil.local_pool import start_method, started_as  # noqa: PLC0415 (lazy)

    return f"{jobs} processes, {started_as(start_method())}"


def _target(  # noqa: PLR0917 (the url backend's options, checked together)
    backend: str,
    port: str | None,
    keys_file: str | None,
    control: str | None,
    token_file: Path | None,
    jobs: int,
) -> PumpAtUrl | None:
    """The url backend's pump, connected; a usage error for its options elsewhere."""
    from hil.key_files import load_keys  # noqa: PLC0415 (lazy, see above)
    from hil.pump_at_url import connect_pump  # noqa: PLC0415

    given = [
        name
        for name, value in (("--port", port), ("--keys", keys_file), ("--control", control))
        if value
    ]
    if backend != "url":
        if given:
            raise UsageError(f"{given[0]} is for --backend url (this run is on {backend})")
        return None
    if not port:
        raise UsageError("--backend url needs --port URL, e.g. --port /dev/ttyUSB0")
    if not keys_file:
        raise UsageError("--backend url needs --keys FILE: the pump's key file")
    if jobs > 1:
        raise UsageError("--backend url runs on one pump: one run at a time (leave out --jobs)")
    try:
        return connect_pump(port, load_keys(keys_file), control, token_file)
    except HilError as exc:  # a control API that cannot be reached is a bad option too
        raise UsageError(str(exc)) from None

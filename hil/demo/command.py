"""``pumpemu demo``: the main job, in one command.

It implants an emulated pump that has already run 45 days of therapy and serves it on a
pseudo-terminal in this process. The reference programmer then drives a realistic clinic
visit through that real serial path, with a secure session per programmer:
- interrogate, refill with the discrepancy check;
- stage a flex prescription, review what the pump computed, commit;
- patient boluses, one refused in the lockout;
- fast-forward 30 days with an MRI scan that stalls the rotor, and its recovery;
- read the event log.

It writes the traffic capture, the key file that opens it, and a plot of the reservoir
(firmware estimate vs plant truth) and cumulative dose.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hil.errors import UsageError
from hil.json_output import echo_json, json_option
from hil.logs import LogConfig, log_options
from hil.quantities import concentration, mass, pump_time, rate, volume
from protocol.device_state import EventKind, LogEntry, Role
from protocol.prescription import FlexStep, InfusionMode, Prescription, Repeat
from protocol.refusal import RefusalCode
from protocol.units import MS_PER_DAY, S_PER_HOUR

if TYPE_CHECKING:
    from protocol.keys import PumpKeys

if TYPE_CHECKING:
    from rich.console import Console

    from emulator.faults import Fault
    from emulator.pump import Pump
    from hil.demo.recorder import Recorder
    from hil.demo.visit import (
        VisitReport,
    )
    from hil.programmer.client import Programmer
    from hil.serve import PumpServer

SERIAL = "PE-DEMO-0001"
HISTORY_DAYS = 45
POLICY_SETTINGS = {"reply_timeout_ms": 2_000, "attempts": 3, "reopen_attempts": 2}
"""The programmer's RetryPolicy (built on use: the programmer loads the codec)."""

EARLIER = Prescription(
    drug_name="morphine",
    concentration_ug_per_ml=10_000,
    mode=InfusionMode.CONTINUOUS,
    repeat=Repeat.DAILY,
    steps=(FlexStep(0, 300_000),),
    patient_bolus=None,
    low_reservoir_threshold_nl=2_000_000,
)
"""What the pump ran before the visit: 0.3 mL/day of morphine 10 mg/mL."""


def implanted_pump(profile: str = "peristaltic-20") -> Pump:
    """A peristaltic-20 pump (or ``profile``, a name or file) 45 days into a continuous
    prescription, as the patient arrives."""
    from emulator.pump import Pump  # noqa: PLC0415
    from hil.demo.visit import VISIT_LOCAL_MS  # noqa: PLC0415

    pump = Pump(profile)
    pump.set_clock(VISIT_LOCAL_MS - HISTORY_DAYS * MS_PER_DAY, command_id=1)
    staged = pump.stage(EARLIER)
    if not staged.ok:
        raise RuntimeError(f"the demo's earlier prescription was refused: {staged}")
    pump.commit(staged.digest, command_id=2)
    pump.advance(HISTORY_DAYS * 86_400)
    return pump


class ServerBench:
    """The demo's ``Bench``: time and the pump, through the running server's lock."""

    def __init__(self, server: PumpServer) -> None:
        self._server = server

    def now_ms(self) -> int:
        return self._server.now_ms()

    def advance_to(self, time_ms: int) -> None:
        self._server.advance(max(time_ms - self._server.now_ms(), 0))

    @contextmanager
    def pump(self) -> Iterator[Pump]:
        with self._server.locked() as device:
            yield device.pump

    def inject(self, fault: Fault) -> None:
        self._server.inject(fault)


def programmer_factory(
    path: str, keys: PumpKeys, role: Role
) -> Callable[[], AbstractContextManager[Programmer]]:
    from hil.links import SerialLink  # noqa: PLC0415
    from hil.programmer.client import Programmer  # noqa: PLC0415
    from hil.programmer.core import RetryPolicy  # noqa: PLC0415

    @contextmanager
    def open_programmer() -> Iterator[Programmer]:
        link = SerialLink(path)
        try:
            with Programmer(
                link, keys.serial, role, keys.key_for(role), policy=RetryPolicy(**POLICY_SETTINGS)
            ) as p:
                yield p
        finally:
            link.close()

    return open_programmer


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for the capture, the key file and the plot.",
)
@click.option(
    "--days", type=click.IntRange(1, 365), default=30, show_default=True,
    help="Days of therapy to fast-forward after the visit.",
)  # fmt: skip
@click.option(
    "--plot-format", type=click.Choice(["png", "svg"]), default="png", show_default=True,
    help="Image format of the plot.",
)  # fmt: skip
@json_option(
    'the end summary as one JSON object instead of tables: {"serial", "port", "files", '
    '"seconds", "steps", "review", "after", "events"} (README.md, "pumpemu demo --json")'
)
@log_options
def demo(  # noqa: PLR0917 (click passes every option as an argument)
    out: Path,
    days: int,
    plot_format: str,
    as_json: bool,
    verbose: int,
    quiet: int,
    log_level: str | None,
    log_format: str,
) -> None:
    """Play a clinic visit against an emulated pump over a real pty, and summarise it.

    \b
    Writes into --out:
      pumpemu-demo-capture.jsonl   every frame both ways (decode it, see below)
      pumpemu-demo.keys            the emulated pump's key file (mode 0600)
      pumpemu-demo-start.state     the pump as the visit began (serve --state), to replay
      pumpemu-demo.png             reservoir and dose: firmware belief vs plant truth

    Logs go to stderr: -q drops the progress bar, -v adds the server's line per session
    event, --log-format json writes them as JSON lines. The summary (tables, or --json) is
    on stdout either way.

    \b
    Example:
      pumpemu demo --out /tmp/visit
      pumpemu demo --out /tmp/visit --json -q
      pumpemu decode /tmp/visit/pumpemu-demo-capture.jsonl --keys /tmp/visit/pumpemu-demo.keys
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    from emulator.clock import ManualClock  # noqa: PLC0415
    from emulator.device import PumpDevice  # noqa: PLC0415
    from hil.capture import CaptureWriter  # noqa: PLC0415
    from hil.console import make_console  # noqa: PLC0415
    from hil.demo.plot import write_plot  # noqa: PLC0415
    from hil.demo.recorder import Recorder  # noqa: PLC0415
    from hil.demo.visit import run_visit  # noqa: PLC0415
    from hil.key_files import write_key_file  # noqa: PLC0415
    from hil.links import PtyLink  # noqa: PLC0415
    from hil.serve import PumpServer  # noqa: PLC0415
    from hil.state_file import seal_state, write_state_file  # noqa: PLC0415
    from protocol.keys import generate_keys  # noqa: PLC0415

    log = LogConfig.from_options("demo", verbose, quiet, log_level, log_format)
    console = make_console()
    # The bar is an info line on stderr when stdout is a JSON document; never with -q.
    bar_console = make_console(sys.stderr) if as_json else console
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output directory {out}: {exc.strerror}") from exc
    started = time.monotonic()
    keys = generate_keys(SERIAL, secrets.token_bytes(64))
    key_path = out / "pumpemu-demo.keys"
    capture_path = out / "pumpemu-demo-capture.jsonl"
    plot_path = out / f"pumpemu-demo.{plot_format}"
    write_key_file(key_path, keys, force=True)

    pump = implanted_pump()
    clock = ManualClock(pump.now_ms)
    device = PumpDevice(pump, keys, secrets.token_bytes)
    # The pump as the visit begins, for pumpemu serve --state: the capture replays against
    # it without a difference (pumpemu replay, docs/capture.md).
    start = out / "pumpemu-demo-start.state"
    write_state_file(start, seal_state(keys, device.snapshot()))
    link = PtyLink()
    recorder = Recorder()
    if as_json:
        log(f"pump {SERIAL} served on {link.path}", "info")
    else:
        console.print(f"[bold]pumpemu demo[/]: pump {SERIAL} served on [cyan]{link.path}[/]")
    with (
        CaptureWriter(capture_path, source="demo") as capture,
        PumpServer(
            device, link, clock, capture=capture, log=lambda line: log(line, "debug")
        ) as server,
        Progress(
            TextColumn("fast-forward"),
            BarColumn(),
            TextColumn("day {task.completed:>3.0f}"),
            TimeElapsedColumn(),
            console=bar_console,
            transient=True,
            disable=not (bar_console.is_terminal and log.shows("info") and log.fmt == "text"),
        ) as progress,  # fmt: skip
    ):
        task = progress.add_task("days", total=days)
        report = run_visit(
            ServerBench(server),
            programmer_factory(link.path, keys, Role.CLINICIAN),
            programmer_factory(link.path, keys, Role.PATIENT),
            recorder,
            days=days,
            progress=lambda day: progress.update(task, completed=day),
        )
        truth = device.pump.plant_truth()
        belief = device.pump.status()
    write_plot(recorder.samples, recorder.markers, plot_path, f"pumpemu demo: {SERIAL}")
    if as_json:
        paths = {"capture": capture_path, "keys": key_path, "plot": plot_path, "start_state": start}
        echo_json(
            {"serial": SERIAL, "port": link.path, "seconds": round(time.monotonic() - started, 1)}
            | _files(paths)
            | summary_json(report, recorder, belief.reservoir_estimate_nl, truth.reservoir_nl)
        )
        return
    render(console, report, recorder, belief.reservoir_estimate_nl, truth.reservoir_nl)
    console.print(
        f"\nWrote [cyan]{capture_path}[/], [cyan]{key_path}[/] and [cyan]{plot_path}[/] "
        f"in {time.monotonic() - started:.1f} s.\n"
        f"Read the sealed traffic with: pumpemu decode {capture_path} --keys {key_path}"
    )


def render(
    console: Console, report: VisitReport, recorder: Recorder, estimate_nl: int, truth_nl: int
) -> None:
    """The summary: tables, not a wall of text."""
    from rich.table import Table  # noqa: PLC0415

    from hil.demo.visit import NOTABLE, PRESCRIPTION  # noqa: PLC0415
    from protocol.messages import NEVER_MS  # noqa: PLC0415

    visit = Table(title="The visit, through the serial path", title_justify="left")
    for column in ("step", "outcome", "detail"):
        visit.add_column(column)
    for step in report.steps:
        style = "green" if step.outcome in ("applied", "answered") else "yellow"
        visit.add_row(step.what, f"[{style}]{step.outcome}[/]", step.detail)
    console.print(visit)

    if report.staged is not None:
        review = Table(title="Review before commit: asked vs computed by the pump",
                       title_justify="left")  # fmt: skip
        review.add_column("item")
        review.add_column("asked")
        review.add_column("pump computed")
        review.add_row(
            "drug",
            f"{PRESCRIPTION.drug_name} {concentration(PRESCRIPTION.concentration_ug_per_ml)}",
            "",
        )
        for flex in PRESCRIPTION.steps:
            hours, rest = divmod(flex.start_s, S_PER_HOUR)
            review.add_row(f"step {hours:02d}:{rest // 60:02d}", rate(flex.rate_nl_per_day), "")
        review.add_row("daily volume", "", volume(report.staged.daily_volume_nl))
        review.add_row("daily mass, boluses included", "", mass(report.staged.daily_mass_pg))
        for label, at in (  # predictions are on the pump clock (docs/quantities.md, "Instants")
            ("low reservoir (2 mL) predicted", report.staged.low_reservoir_at_ms),
            ("empty predicted", report.staged.empty_at_ms),
        ):
            review.add_row(label, "", "never" if at == NEVER_MS else pump_time(at))
        review.add_row("digest", "", report.staged.digest.hex()[:16] + "...")
        console.print(review)

    samples = recorder.samples
    month = Table(title="After the fast-forward: belief vs truth", title_justify="left")
    month.add_column("")
    month.add_column("firmware believes")
    month.add_column("plant truth")
    month.add_row("reservoir", volume(estimate_nl), volume(truth_nl))
    if samples:
        final = samples[-1]
        month.add_row(
            "dose delivered since the visit", mass(final.dose_belief_pg), mass(final.dose_truth_pg)
        )
    console.print(month)

    events = Table(title="Event log (notable entries since the visit)", title_justify="left")
    events.add_column("seq", justify="right")
    events.add_column("when")
    events.add_column("event")
    # Stamps are on the pump clock as it read at each entry, which the visit set; shown as
    # every command shows an instant (docs/quantities.md, "Instants").
    for first, last, count in _runs(
        e for e in report.log if e.seq >= report.first_seq and e.kind in NOTABLE
    ):
        when = pump_time(first.time_ms)
        seqs = str(first.seq)
        text = _describe(first)
        if count > 1:
            when += f" .. {pump_time(last.time_ms)}"
            seqs += f"..{last.seq}"
            text += f" (x{count})"
        events.add_row(seqs, when, text)
    console.print(events)


def _files(paths: dict[str, Path]) -> dict[str, Any]:
    return {"files": {name: str(path) for name, path in sorted(paths.items())}}


def summary_json(
    report: VisitReport, recorder: Recorder, estimate_nl: int, truth_nl: int
) -> dict[str, Any]:
    """demo --json: what ``render`` shows, in integer units (README.md, "pumpemu demo
    --json"). Steps are numbered from 1; events carry their log seq as ``id``."""
    from protocol.messages import NEVER_MS  # noqa: PLC0415

    steps = [
        {"id": n, "what": step.what, "outcome": step.outcome, "detail": step.detail}
        for n, step in enumerate(report.steps, start=1)
    ]
    review = None
    if report.staged is not None:
        start = report.start_pump_ms

        def since(at: int) -> int | None:  # ms after the visit began, or None for never
            return None if at == NEVER_MS else at - start

        review = {
            "daily_volume_nl": report.staged.daily_volume_nl,
            "daily_mass_pg": report.staged.daily_mass_pg,
            "low_reservoir_after_ms": since(report.staged.low_reservoir_at_ms),
            "empty_after_ms": since(report.staged.empty_at_ms),
            "digest": report.staged.digest.hex(),
        }
    final = recorder.samples[-1] if recorder.samples else None
    after = {
        "reservoir_belief_nl": estimate_nl,
        "reservoir_truth_nl": truth_nl,
        "dose_belief_pg": final.dose_belief_pg if final else None,
        "dose_truth_pg": final.dose_truth_pg if final else None,
    }
    from hil.demo.visit import NOTABLE  # noqa: PLC0415

    events = [
        {
            "id": entry.seq,
            "kind": entry.kind.name,
            "after_ms": entry.time_ms - report.start_pump_ms,
            "text": _describe(entry),
        }
        for entry in report.log
        if entry.seq >= report.first_seq and entry.kind in NOTABLE
    ]
    return {"steps": steps, "review": review, "after": after, "events": events}


def _runs(entries: Iterable[LogEntry]) -> Iterator[tuple[LogEntry, LogEntry, int]]:
    """Consecutive entries of the same kind and detail, as (first, last, count)."""
    first: LogEntry | None = None
    last: LogEntry | None = None
    count = 0
    for entry in entries:
        if (
            first is not None
            and last is not None
            and (entry.kind, entry.detail) == (first.kind, first.detail)
        ):
            last, count = entry, count + 1
            continue
        if first is not None and last is not None:
            yield first, last, count
        first, last, count = entry, entry, 1
    if first is not None and last is not None:
        yield first, last, count


def _describe(entry: LogEntry) -> str:
    from hil.serve import describe_event  # noqa: PLC0415

    described = describe_event(entry)
    if described is not None:
        return described
    name = entry.kind.name.lower().replace("_", " ")
    if entry.kind in (EventKind.PATIENT_BOLUS_REFUSED, EventKind.COMMAND_REFUSED):
        return f"{name}: {RefusalCode(entry.detail).name}"
    if entry.kind is EventKind.PATIENT_BOLUS_GRANTED:
        return f"{name}: {volume(entry.value_a)}"
    return name

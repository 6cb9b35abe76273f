"""``pumpemu proxy``: a seeded link-fault injector between two serial links.

The command only wires things together: it parses the fault specs (faults.py), opens the
two sides (a pyserial URL or device path, or ``pty`` for a new pty pair whose path it
prints), runs a ``FaultProxy`` (runner.py) until Ctrl-C or SIGTERM, and prints one stderr
line per fault and a summary at the end. User errors are one line and exit code 2.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from hil.command_error import CommandError
from hil.conformance.options import conformance_options
from hil.errors import UsageError
from hil.logs import LogConfig, log_options

if TYPE_CHECKING:
    from hil.links import Link

if TYPE_CHECKING:
    from hil.capture import CaptureWriter
    from hil.conformance.recorder import ConformanceRecorder
    from hil.proxy.engine import (
        Listener,
        ProxyEvent,
    )
    from hil.proxy.faults import FaultKind, FaultSpec
    from hil.proxy.runner import FaultProxy

PTY = "pty"

# Copies for the option declarations, so --help loads neither the engine nor the codec
# behind it (tests/hil/test_cli_lazy_imports.py checks each against hil.proxy).
MAX_SEED = 2**64 - 1
"""hil.proxy.faults.MAX_SEED."""
MAX_BAUD = 4_000_000
"""hil.links.MAX_BAUD (pyserial loads on use)."""
DEFAULT_IDLE_MS = 100
"""hil.proxy.engine.DEFAULT_IDLE_MS."""
MAX_IDLE_MS = 60_000
"""hil.proxy.engine.MAX_IDLE_MS."""

EPILOG = """\b
Fault SPEC: TRIGGER[,KEY=VALUE]...
  TRIGGER  0.05, 5% or 50000 ppm  each frame with that probability (seeded)
           @7            the 7th frame (of each direction the fault applies to)
           2s..5s        every frame from 2 s to 5 s after start (also 2s.. and ..5s)
  dir=a2b|b2a|both       direction (default both)
  corrupt  bits=N        bits flipped (default 1)
  delay    by=DURATION   how long the frame is held (default 100ms)
  split    pieces=N,gap=DURATION  (default 2 pieces, 10ms apart)
  junk     bytes=N       random bytes sent before the frame (default 8)
  disconnect for=DURATION  nothing forwarded either way (default 1s)
  DURATION is 250ms, 2s, 1.5s, 2 min, 1m30s (a unit is required; docs/quantities.md).

\b
Examples:
  pumpemu proxy --a pty --b pty --drop 0.05 --seed 7
      two new ptys (paths printed as a=... and b=...), 5% of frames dropped
  pumpemu proxy --a pty --b /dev/ttyUSB0 --corrupt 0.02,bits=3 --delay @5,by=2s
      a programmer on the pty, a real rig on USB
  pumpemu proxy --a pty --b socket://127.0.0.1:7000 --disconnect 10s..11s,for=3s
  pumpemu proxy --a pty --b pty --faults faults.toml
"""


def _fault_option(kind: str, what: str, example: str) -> click.Option:
    return click.Option(
        [f"--{kind}"],
        multiple=True,
        metavar="SPEC",
        help=f"{what} Repeatable. Example: --{kind} {example}",
    )


_FAULT_HELP: dict[str, tuple[str, str]] = {
    # Keyed by hil.proxy.faults.FaultKind's values (a StrEnum: a member finds its entry).
    "drop": ("Drop the frame.", "0.05"),
    "corrupt": ("Flip bits=N random bits of the frame.", "@3,bits=2"),
    "duplicate": ("Send the frame twice.", "5%,dir=b2a"),
    "delay": ("Hold the frame back by=DURATION (later frames wait behind it).", "@2,by=1s"),
    "truncate": ("Cut the frame at a random point.", "0.01"),
    "split": ("Send the frame in pieces=N with gap=DURATION between.", "0.1,gap=20ms"),
    "junk": ("Send bytes=N random bytes before the frame.", "@4,bytes=3"),
    "disconnect": (
        "Forward nothing either way for=DURATION, from this frame on.",
        "@10,for=2s",
    ),
}


def _open_side(name: str, url: str, baud: int) -> Link:
    from hil.links import PtyLink, open_link  # noqa: PLC0415

    if url == PTY:
        try:
            return PtyLink()
        except OSError as error:
            raise UsageError(f"--{name} pty: cannot create a pty: {error.strerror}") from None
    try:
        return open_link(url, baudrate=baud, spin_us=0)
    except UsageError as error:
        raise UsageError(f"--{name}: {error}") from None


def collect_faults(
    faults_file: str | None, cli_specs: dict[FaultKind, tuple[str, ...]]
) -> tuple[list[FaultSpec], int | None]:
    """The file's faults (in file order) then the command line's; and the file's seed."""
    from hil.proxy.faults import FaultKind, load_fault_file, parse_fault  # noqa: PLC0415

    faults: list[FaultSpec] = []
    seed: int | None = None
    if faults_file is not None:
        config = load_fault_file(faults_file)
        faults.extend(config.faults)
        seed = config.seed
    for kind in FaultKind:
        faults.extend(parse_fault(kind, text) for text in cli_specs.get(kind, ()))
    return faults, seed


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM set ``stop`` instead of raising: the proxy then stops
    between two waits and prints its summary, with no traceback from wherever the main
    thread happened to be when the signal came."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        # Signals reach only the main thread; an embedding caller stops us another way.
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old_handler in previous.items():
            signal.signal(sig, old_handler)


def _event_logger(log: LogConfig) -> Listener:
    from hil.proxy.engine import FaultApplied, FrameLost  # noqa: PLC0415

    def log_event(event: ProxyEvent) -> None:
        if isinstance(event, FaultApplied | FrameLost):
            log(event.describe())

    return log_event


@click.command(epilog=EPILOG, context_settings={"max_content_width": 100})
@log_options
@click.option(
    "--a",
    "a_url",
    required=True,
    metavar="URL|pty",
    help="Side A: a device path (/dev/ttyUSB0), a pyserial URL (socket://host:port, loop://), "
    "or 'pty' to create a pty and print 'a=PATH' on stdout.",
)
@click.option(
    "--b",
    "b_url",
    required=True,
    metavar="URL|pty",
    help="Side B, as --a ('pty' prints 'b=PATH').",
)
@click.option(
    "--seed",
    type=click.IntRange(0, MAX_SEED),
    default=None,
    help="Seed for every random choice; the same seed and traffic give the same faults. "
    "Default: the fault file's seed, else a random one (printed, so a run can be repeated).",
)
@click.option(
    "--faults",
    "faults_file",
    metavar="FILE",
    default=None,
    help="A TOML fault file (docs/proxy.md), applied before the command-line faults.",
)
@click.option(
    "--baud",
    type=click.IntRange(1, MAX_BAUD),
    default=115_200,
    show_default=True,
    help="Baud rate for serial device sides.",
)
@click.option(
    "--idle-ms",
    type=click.IntRange(1, MAX_IDLE_MS),
    default=DEFAULT_IDLE_MS,
    show_default=True,
    help="Silence after which bytes held as a possible frame start are forwarded as noise.",
)
@click.option(
    "--capture",
    "capture_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Append a JSONL capture: each direction before and after the faults, each fault.",
)
@conformance_options(
    "Judge the programmer on --conformance-side against docs/conformance.md's rules "
    "(needs --keys); write the reports on exit."
)
@click.option(
    "--conformance-side",
    type=click.Choice(["a", "b"]),
    default="a",
    show_default=True,
    help="The side the programmer is on.",
)
@click.option(
    "--keys",
    "keys_file",
    metavar="FILE",
    help="The pump's key file, for --conformance to open sealed frames.",
)
def proxy(
    *,
    a_url: str,
    b_url: str,
    seed: int | None,
    faults_file: str | None,
    baud: int,
    idle_ms: int,
    capture_path: Path | None,
    verbose: int = 0,
    quiet: int = 0,
    log_level: str | None = None,
    log_format: str = "text",
    conformance: str | None = None,
    conformance_report: Path | None = None,
    conformance_side: str = "a",
    keys_file: str | None = None,
    **fault_options: tuple[str, ...],
) -> None:
    """Inject link faults, frame by frame, between two serial links A and B.

    Bytes flow both ways. Each whole frame may be dropped, corrupted, duplicated, delayed,
    truncated, split, preceded by junk, or start a disconnect; bytes that are not part of
    a frame pass through unchanged. Every fault is logged to stderr with its time,
    direction and frame number, and a summary is printed on exit (Ctrl-C or SIGTERM).
    """
    from hil.capture import CaptureError, CaptureWriter  # noqa: PLC0415
    from hil.proxy.conformance import conformance_listener  # noqa: PLC0415
    from hil.proxy.faults import FaultKind  # noqa: PLC0415

    # The fault options (one per kind, added below) arrive as keyword arguments.
    cli_specs = {kind: tuple(fault_options.get(kind.value, ())) for kind in FaultKind}
    try:
        faults, file_seed = collect_faults(faults_file, cli_specs)
    except UsageError as error:
        raise CommandError(str(error)) from None
    if seed is None:
        seed = file_seed if file_seed is not None else secrets.randbelow(2**31)
    recorder = _conformance_recorder(conformance, conformance_report, keys_file)
    log = LogConfig.from_options("proxy", verbose, quiet, log_level, log_format)

    try:
        capture = CaptureWriter(capture_path, source="proxy") if capture_path else None
    except (CaptureError, OSError) as error:
        raise CommandError(f"cannot write the capture {capture_path}: {error}") from None
    stop = threading.Event()
    with _stop_on_signals(stop), capture or contextlib.nullcontext():
        links: list[Link] = []
        try:
            for name, url in (("a", a_url), ("b", b_url)):
                links.append(_open_side(name, url, baud))
        except UsageError as error:
            for link in links:
                link.close()
            raise CommandError(str(error)) from None
        a, b = links
        try:
            runner = _run(
                a,
                b,
                a_url=a_url,
                b_url=b_url,
                faults=faults,
                seed=seed,
                idle_ms=idle_ms,
                log=log,
                stop=stop,
                capture=capture,
                extra_listeners=(
                    () if recorder is None else (conformance_listener(recorder, conformance_side),)
                ),
            )
        finally:
            a.close()
            b.close()
    if recorder is not None:
        _finish_conformance(recorder)
    if runner.error is not None:
        raise _StoppedError(str(runner.error))


def _conformance_recorder(
    mode: str | None, report: Path | None, keys_file: str | None
) -> ConformanceRecorder | None:
    from hil.conformance.recorder import DEFAULT_REPORT_DIR, ConformanceRecorder  # noqa: PLC0415
    from hil.key_files import load_keys  # noqa: PLC0415

    if mode is None:
        if report is not None:
            raise CommandError("--conformance-report DIR needs --conformance [report|strict]")
        return None
    if keys_file is None:
        raise CommandError(
            "--conformance needs --keys FILE: the pump's key file, to open sealed frames"
        )
    try:
        keys = load_keys(keys_file)
    except UsageError as error:
        raise CommandError(str(error)) from None
    return ConformanceRecorder(
        keys,
        mode=mode,
        report_dir=report or DEFAULT_REPORT_DIR,
        log=lambda line: click.echo(f"proxy: {line}", err=True),
    )


def _finish_conformance(recorder: ConformanceRecorder) -> None:
    try:
        violations = recorder.finish()
    except OSError as error:
        raise _StoppedError(f"conformance reports not written: {error}") from None
    broken = sorted({v.rule for v in violations})
    click.echo(
        f"proxy: conformance: {len(violations)} violation(s)"
        + (f" of {', '.join(broken)}" if broken else ": no rule broken")
        + f"; reports in {recorder.report_dir}/",
        err=True,
    )
    if recorder.strict and violations:
        raise _StoppedError(
            f"--conformance strict: {len(violations)} violation(s) of the programmer "
            "conformance rules (docs/conformance.md)"
        )


def _run(
    a: Link,
    b: Link,
    *,
    a_url: str,
    b_url: str,
    faults: list[FaultSpec],
    seed: int,
    idle_ms: int,
    log: LogConfig,
    stop: threading.Event,
    capture: CaptureWriter | None = None,
    extra_listeners: tuple[Listener, ...] = (),
) -> FaultProxy:
    """Announce the sides, forward until ``stop`` (or a side is lost), print the summary."""
    from hil.proxy.capture import capture_listener  # noqa: PLC0415
    from hil.proxy.runner import FaultProxy  # noqa: PLC0415

    # The created pty paths come first and alone on stdout, so a script can read them.
    for name, url, link in (("a", a_url, a), ("b", b_url, b)):
        if url == PTY:
            click.echo(f"{name}={link.name}")
    sys.stdout.flush()
    shown = "; ".join(str(f) for f in faults) or "none"
    log(f"a={a.name} b={b.name} seed={seed} faults: {shown}")
    runner = FaultProxy(
        a,
        b,
        faults,
        seed=seed,
        idle_ms=idle_ms,
        listeners=(
            _event_logger(log),
            *(() if capture is None else (capture_listener(capture),)),
            *extra_listeners,
        ),
        log=log,
    )
    runner.start()
    try:
        # Short waits keep the main thread free to run the signal handler.
        while not stop.is_set() and not runner.wait(0.2):
            pass
    finally:
        runner.stop()
        for line in runner.summary():
            log(line, "warning")  # the summary: kept by -q, as the old --quiet did
    return runner


class _StoppedError(click.ClickException):
    """The proxy stopped because a side was lost for good."""

    exit_code = 1


# The fault options sit after --faults in --help, one per kind, commonest first.
_at = next(i for i, p in enumerate(proxy.params) if p.name == "faults_file") + 1
proxy.params[_at:_at] = [_fault_option(k, *text) for k, text in _FAULT_HELP.items()]

# hil.links.MAX_BAUD, for --baud without loading pyserial (tests/hil/test_cli_lazy_imports.py).
MAX_BAUD = 4_000_000

__all__ = ["EPILOG", "collect_faults", "proxy"]

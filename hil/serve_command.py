"""``pumpemu serve``: one emulated pump on a pty, a serial port/URL, or a loopback TCP port.

The command only wires things together: options become a ``Pump``, a ``PumpDevice``, a
link, a clock, and a ``PumpServer`` (hil/serve.py) with an optional ``ControlServer``
(hil/control.py). It then waits for Ctrl-C or SIGTERM and shuts down cleanly: no traceback,
the capture closed, a one-line summary on stderr, exit code 0. Every user error is one line
on stderr and exit code 2.
"""

from __future__ import annotations

import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from hil.clock import ScaledClock, SystemClock
from hil.command_error import CommandError
from hil.conformance.options import conformance_options
from hil.control_catalogue import DEFAULT_CONTROL
from hil.errors import HilError, UsageError
from hil.logs import LogConfig, log_options
from hil.pty_name import PtyName
from hil.spin import DEFAULT_SPIN_US

if TYPE_CHECKING:
    from hil.conformance.rules import Violation
    from hil.links import Link

if TYPE_CHECKING:
    from emulator.clock import Clock
    from emulator.device import PumpDevice
    from hil.capture import CaptureWriter
    from hil.conformance.recorder import ConformanceRecorder
    from hil.control import (
        ControlServer,
    )
    from hil.serve import (
        PumpServer,
    )
    from hil.state_file import StateFile

MAX_BAUD = 4_000_000
"""hil.links.MAX_BAUD, for --baud without loading pyserial (tests/hil/test_cli_lazy_imports.py
checks the copy)."""

__all__ = ["parse_clock", "parse_start_time", "serve"]


MAX_CLOCK_FACTOR = 100_000
"""The fastest scaled clock: a day of pump time in 0.86 s of real time. Faster is what
--clock manual is for; without a bound, x99999999999999999999 ran the pump clock past the
u64 the protocol carries within seconds."""


def parse_clock(text: str, start_ms: int) -> Clock:
    """``real``, ``manual`` or ``xN`` (N times real time, N a whole number >= 1)."""
    from emulator.clock import ManualClock  # noqa: PLC0415

    value = text.strip().lower()
    if value == "real":
        return SystemClock(start_ms)
    if value == "manual":
        return ManualClock(start_ms)
    if value.startswith("x") and value[1:].isdigit() and 1 <= len(value) - 1 <= 7:
        factor = int(value[1:])
        if 1 <= factor <= MAX_CLOCK_FACTOR:
            return ScaledClock(factor, start_ms)
    raise UsageError(
        f"--clock: expected real, manual or xN (N times real time, 1 <= N <= "
        f"{MAX_CLOCK_FACTOR}, e.g. x60), got {text!r}"
    )


def parse_start_time(text: str) -> int:
    """An ISO 8601 date-time as the pump's local clock: ms since 1970-01-01 local time.

    The pump keeps local time without a zone (docs/protocol.md SET_CLOCK): the wall-clock
    fields are used as given, and a UTC offset, if any, is ignored.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--start-time: not an ISO 8601 date-time: {text!r} (e.g. 2026-03-01T08:30:00)"
        ) from None
    local = moment.replace(tzinfo=UTC)
    ms = int(local.timestamp()) * 1000 + local.microsecond // 1000
    if ms < 0:
        raise UsageError(f"--start-time: {text!r} is before 1970")
    return ms


SERVE_EPILOG = """\b
Examples:
  pumpemu keys new --serial PE-000042 --out pe.keys
  pumpemu serve --pty --keys pe.keys
      (prints the pty path, e.g. /dev/pts/7, alone on the first line of stdout)
  pumpemu serve --pty --link ./pump.tty --keys pe.keys
      (a stable name: programmers open ./pump.tty; removed on exit)
  pumpemu serve --port /dev/ttyUSB0 --keys pe.keys --baud 115200
  pumpemu serve --tcp 127.0.0.1:5555 --keys pe.keys --clock x60
      (a programmer opens socket://127.0.0.1:5555)
  pumpemu serve --pty --keys pe.keys --clock manual --control
      (control API on a Unix socket only you can open, then: pumpemu time advance 30d)
  pumpemu serve --pty --keys pe.keys --clock manual --control 127.0.0.1:7001
  pumpemu time advance 30d --control 127.0.0.1:7001
      (TCP: serve writes a token file only you can read; the commands find it)
  pumpemu serve --pty --keys pe.keys --capture serve.jsonl --profile valve-gated-20
  pumpemu serve --pty --keys pe.keys --state pe.state
      (resumes the pump saved in pe.state, or starts fresh and creates it)
  sudo pumpemu serve --pty --keys pe.keys --low-latency
      (a timing rig: idle CPUs poll instead of halting, see docs/serve.md)

\b
Clocks: real (pump time = real time), xN (N times faster), manual (time moves only
through the control API: pumpemu time advance). See docs/serve.md.
"""


@click.command("serve", epilog=SERVE_EPILOG)
@log_options
@click.option("--pty", "use_pty", is_flag=True, help="Serve on a new pty; print its path.")
@click.option(
    "--link",
    "link_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --pty: make PATH a symbolic link to the pty (a stable name, as socat's "
    "link=), removed on exit.",
)
@click.option("--port", "port_url", metavar="URL", help="Serve on a serial device or pyserial URL.")
@click.option(
    "--tcp",
    "tcp",
    metavar="HOST:PORT",
    help="Listen on TCP (loopback only); programmers open socket://HOST:PORT.",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow --tcp on a non-loopback address (the pump becomes reachable from the network).",
)
@click.option(
    "--profile",
    default="peristaltic-20",
    show_default=True,
    metavar="NAME|FILE",
    help="Pump profile: a built-in name or a profile file.",
)
@click.option(
    "--stroke-seed",
    "stroke_seed",
    type=click.IntRange(0, (1 << 64) - 1),
    metavar="N",
    help="Seed the profile's stroke-to-stroke variation (plant truth; docs/pump-model.md). "
    "A pump resumed from --state keeps the seed it was built with.",
)
@click.option(
    "--keys", "keys_file", metavar="FILE", help="The pump's key file (pumpemu keys new). Required."
)
@click.option(
    "--clock",
    "clock_text",
    default="real",
    show_default=True,
    metavar="real|xN|manual",
    help="Pump time source.",
)
@click.option(
    "--baud",
    type=click.IntRange(1, MAX_BAUD),
    help="Pace bytes at this wire rate (8N1) in both directions, as a real UART would.",
)
@click.option(
    "--capture",
    "capture_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append a JSONL traffic capture to FILE, never truncated (pumpemu decode reads it).",
)
@click.option(
    "--control",
    "control_address",
    is_flag=False,
    flag_value=DEFAULT_CONTROL,
    metavar="[unix:PATH|HOST:PORT]",
    help="Listen for the control API. Alone: a Unix socket in a private per-user directory "
    "(mode 0600). unix:PATH: that socket (0600). HOST:PORT: loopback TCP, every request "
    "needing the token serve writes to a 0600 file.",
)
@click.option(
    "--control-token",
    "control_token_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="With a TCP --control: write the token to FILE (default: control-PORT.token in "
    "the per-user directory; see docs/serve.md).",
)
@click.option(
    "--start-time",
    metavar="ISO8601",
    help="Set the pump's local clock at start, e.g. 2026-03-01T08:30:00.",
)
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Resume the pump saved in FILE (if it exists) and keep FILE up to date: therapy, "
    "event log, exactly-once memory, lockout.",
)
@click.option(
    "--low-latency",
    is_flag=True,
    help="Keep idle CPUs polling instead of halting while serving (a Linux PM QoS request "
    "of 0 us on /dev/cpu_dma_latency; needs root or a udev rule): round trips skip two slow "
    "wake-ups, about half their cost on an idle virtual machine. System-wide: every CPU "
    "polls while serve runs, connected or not, which costs power.",
)
@click.option(
    "--spin-us",
    type=click.IntRange(0, 50_000),
    default=DEFAULT_SPIN_US,
    show_default=True,
    metavar="US",
    help="After bytes arrive, keep polling the link up to this many microseconds (yielding "
    "the CPU) before blocking, so a programmer's next request is answered without a slow "
    "wake-up. Costs at most one window per read that brought bytes, fewer when windows "
    "find nothing; an idle link costs nothing. A window longer than the programmer's pause "
    "between requests keeps serve busy throughout. 0: always block. Ignored with --baud.",
)
@conformance_options(
    "Judge the programmer against docs/conformance.md's rules and write a report "
    "(JSON, markdown, JUnit) when serve stops."
)
@click.pass_context
def serve(ctx: click.Context, /, **options: Any) -> None:
    """Serve one emulated pump to a programmer over a pty, a serial port or TCP.

    Choose exactly one of --pty, --port and --tcp. With --pty the path a programmer
    should open is printed alone on the first line of stdout (with --tcp, the
    socket:// URL). Sessions, security events and alarms are logged to stderr. Stop
    with Ctrl-C or SIGTERM: the capture is closed and a summary line is printed.
    """
    from emulator.errors import ProfileError  # noqa: PLC0415
    from emulator.firmware.nvram import SnapshotError  # noqa: PLC0415

    profile_given = ctx.get_parameter_source("profile") is not click.core.ParameterSource.DEFAULT
    opts = ServeOptions(**options, profile_given=profile_given)
    chosen = [
        name
        for name, on in (("--pty", opts.use_pty), ("--port", opts.port_url), ("--tcp", opts.tcp))
        if on
    ]
    if len(chosen) != 1:
        raise CommandError(
            "choose exactly one of --pty, --port URL or --tcp HOST:PORT"
            + (f" (got {' and '.join(chosen)})" if chosen else "")
        )
    if opts.link_path is not None and not opts.use_pty:
        raise CommandError("--link PATH names a pty: it goes with --pty")
    if opts.keys_file is None:
        raise CommandError(
            "--keys FILE is required: every pump has its own key file; create one with: "
            "pumpemu keys new --serial PE-000001 --out pump.keys"
        )
    if opts.conformance_report is not None and opts.conformance is None:
        raise CommandError("--conformance-report DIR needs --conformance [report|strict]")
    try:
        _check_control_options(opts)
        _Serve(opts).run()
    except (HilError, ProfileError, SnapshotError) as exc:
        raise CommandError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """The options of ``pumpemu serve``, as click passes them."""

    use_pty: bool
    port_url: str | None
    tcp: str | None
    allow_remote: bool
    profile: str
    keys_file: str | None
    clock_text: str
    baud: int | None
    capture_file: Path | None
    control_address: str | None
    start_time: str | None
    state_file: Path | None = None
    link_path: Path | None = None
    verbose: int = 0
    quiet: int = 0
    log_level: str | None = None
    log_format: str = "text"
    profile_given: bool = False
    control_token_file: Path | None = None
    stroke_seed: int | None = None
    conformance: str | None = None
    conformance_report: Path | None = None
    low_latency: bool = False
    spin_us: int = DEFAULT_SPIN_US


def _check_control_options(opts: ServeOptions) -> None:
    """--control-token only goes with a TCP --control (a Unix socket relies on its mode)."""
    from hil.control import parse_control_address  # noqa: PLC0415

    if opts.control_token_file is None:
        return
    if opts.control_address is None:
        raise UsageError("--control-token FILE needs a TCP control API: --control HOST:PORT")
    if parse_control_address(opts.control_address).path is not None:
        raise UsageError(
            "--control-token is for a TCP --control HOST:PORT; a Unix-socket control API "
            "needs no token (only its owner can open the 0600 socket)"
        )


class _Serve:
    """One run of the command: build, serve until a signal, shut down, summarize."""

    def __init__(self, opts: ServeOptions) -> None:
        from hil.conformance.recorder import DEFAULT_REPORT_DIR, ConformanceRecorder  # noqa: PLC0415
        from hil.key_files import load_keys  # noqa: PLC0415
        from hil.state_file import StateFile  # noqa: PLC0415

        assert opts.keys_file is not None
        self.opts = opts
        self.log = LogConfig.from_options(
            "serve", opts.verbose, opts.quiet, opts.log_level, opts.log_format
        )
        self.keys = load_keys(opts.keys_file)
        local_start = parse_start_time(opts.start_time) if opts.start_time is not None else None
        # Locked before it is read and held until after the last save at stop: a second
        # serve on the same file stops here instead of overwriting this pump later.
        self.state: StateFile | None = None
        if opts.state_file is not None:
            self.state = StateFile(opts.state_file, self.keys)
            self.state.acquire()
        try:
            self._build(opts, local_start)
        except BaseException:
            if self.state is not None:
                self.state.release()
            raise
        self.stop = threading.Event()
        self.stop_reason: list[str] = []
        self.link: Link | None = None
        self.capture: CaptureWriter | None = None
        self.control: ControlServer | None = None
        self.token_file: Path | None = None
        self.pty_name: PtyName | None = None
        self.server: PumpServer | None = None
        self.save_error: str | None = None
        self.conformance: ConformanceRecorder | None = None
        if opts.conformance is not None:
            self.conformance = ConformanceRecorder(
                self.keys,
                mode=opts.conformance,
                report_dir=opts.conformance_report or DEFAULT_REPORT_DIR,
                log=self.log,
            )
        self.violations: tuple[Violation, ...] = ()

    def _build(self, opts: ServeOptions, local_start: int | None) -> None:
        from emulator.device import PumpDevice  # noqa: PLC0415
        from emulator.pump import Pump  # noqa: PLC0415
        from hil.serve import parse_tcp_address  # noqa: PLC0415

        restored = _load_state(opts, self.state)
        if restored is not None:
            self.device = restored
            self.pump = restored.pump
        else:
            self.pump = Pump(opts.profile, stroke_seed=opts.stroke_seed)
        self.clock = parse_clock(opts.clock_text, self.pump.now_ms)
        self.tcp = (
            parse_tcp_address(opts.tcp, what="--tcp", allow_remote=opts.allow_remote)
            if opts.tcp is not None
            else None
        )
        if restored is None:
            if local_start is not None:
                self.pump.set_clock(local_start)
            persist = self.state.write if self.state is not None else None
            self.device = PumpDevice(self.pump, self.keys, secrets.token_bytes, persist=persist)
        self.resumed = restored is not None
        if self.state is not None:
            for name in self.state.removed:
                self.log(f"removed {name}, left by a save that was killed")
            try:  # at once: the file exists from the start, and is known to be writable
                self.device.save()
            except OSError as exc:
                raise UsageError(
                    f"--state: cannot write {self.state.path}: {exc.strerror or exc}"
                ) from None

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop_reason.append(signal.Signals(signum).name)
        self.stop.set()

    def _open_link(self) -> tuple[Link, str]:
        """The link, and what to print on stdout's first line for a programmer to open."""
        from hil.links import PtyLink, open_link  # noqa: PLC0415
        from hil.serve import TcpListenerLink  # noqa: PLC0415

        if self.opts.use_pty:
            pty_link = PtyLink()
            if self.opts.link_path is not None:
                try:
                    self.pty_name = PtyName(self.opts.link_path, pty_link.path)
                except UsageError:
                    pty_link.close()
                    raise
                return pty_link, str(self.opts.link_path)
            return pty_link, pty_link.path
        if self.tcp is not None:
            tcp_link = TcpListenerLink(self.tcp[0], self.tcp[1], log=self.log)
            return tcp_link, tcp_link.name
        assert self.opts.port_url is not None
        return (
            open_link(self.opts.port_url, baudrate=self.opts.baud or 115_200, spin_us=0),
            "",
        )

    def run(self) -> None:
        from hil.capture import CaptureWriter  # noqa: PLC0415
        from hil.control import ControlServer  # noqa: PLC0415
        from hil.serve import PumpServer  # noqa: PLC0415

        opts = self.opts
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        started = time.monotonic()
        latency = None
        try:
            if opts.low_latency:
                from hil.cpu_latency import CpuLatencyRequest  # noqa: PLC0415

                latency = CpuLatencyRequest(0).acquire()  # released in finally
            self.link, announce = self._open_link()
            if opts.capture_file is not None:
                self.capture = CaptureWriter(opts.capture_file, "serve")
            server = PumpServer(
                self.device,
                self.link,
                self.clock,
                log=self.log,
                capture=self.capture,
                baud=opts.baud,
                conformance=self.conformance,
                spin_us=opts.spin_us,
            )
            self.server = server
            if opts.control_address is not None:
                self.control = ControlServer(server, opts.control_address, log=self.log)
            if announce:
                # Alone on the first line, flushed, so a script can read it before anything.
                sys.stdout.write(announce + "\n")
                sys.stdout.flush()
            pace = f", paced at {opts.baud} baud" if opts.baud else ""
            spin = f"; spin {server.spin_us} us" if server.spin_us else ""
            self.log(
                f"pump {self.keys.serial} ({self.pump.profile.name}) serving on "
                f"{self.link.name}; clock {server.clock_name()}{pace}{spin}"
            )
            if self.control is not None:
                self._announce_control(self.control)
            if self.capture is not None:
                self.log(f"capturing traffic to {self.capture.name}")
            if self.conformance is not None:
                self.log(
                    f"conformance ({self.conformance.mode}): judging the programmer; reports "
                    f"to {self.conformance.report_dir}/ when serve stops"
                )
            if latency is not None:
                self.log(
                    f"low latency: idle CPUs poll instead of halting ({latency.device} held "
                    "at 0 us until serve stops)"
                )
            if opts.state_file is not None:
                how = "resumed from" if self.resumed else "new pump; saving to"
                self.log(f"state {how} {opts.state_file} at pump time {self._pump_instant()}")
            server.start()
            while not self.stop.wait(0.2) and server.running:
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._shut_down()
            if latency is not None:
                latency.release()
        self._summarize(time.monotonic() - started)

    def _announce_control(self, control: ControlServer) -> None:
        """Write a TCP control API's token file, start it, and say where it listens."""
        from hil.control import default_token_file, ensure_control_dir, write_token_file  # noqa: PLC0415

        if control.token is None:
            control.start()
            self.log(
                f"control API listening on {control.address} (mode 0600: only this user can "
                "connect)"
            )
            return
        path = self.opts.control_token_file
        if path is None:
            ensure_control_dir()
            path = default_token_file(int(control.address.rsplit(":", 1)[1]))
        write_token_file(path, control.token)
        self.token_file = path
        control.start()
        self.log(
            f"control API listening on {control.address}; token in {path} (mode 0600; "
            "pumpemu fault/time/truth read it: --control-token FILE or "
            "PUMPEMU_CONTROL_TOKEN_FILE)"
        )

    def _shut_down(self) -> None:
        from hil.control import remove_token_file  # noqa: PLC0415

        if self.pty_name is not None:
            self.pty_name.remove()
        if self.control is not None:
            self.control.stop()
            if self.token_file is not None and self.control.token is not None:
                remove_token_file(self.token_file, self.control.token)
        if self.server is not None:
            self.server.stop()
        elif self.link is not None:
            self.link.close()
        if self.server is not None and self.opts.state_file is not None:
            try:
                self.server.save()
            except OSError as exc:
                self.save_error = f"state not saved to {self.opts.state_file}: {exc}"
        if self.capture is not None:
            self.capture.close(sim_ms=self.device.now_ms)
        if self.conformance is not None and self.server is not None:
            try:
                self.violations = self.conformance.finish(self.server.link_ms())
            except OSError as exc:
                self.save_error = f"conformance reports not written: {exc}"
        if self.state is not None:
            self.state.release()  # only after the last save

    def _pump_instant(self) -> str:
        """Now as every command shows an instant: pump clock, then elapsed internal time."""
        from hil import quantities as q  # noqa: PLC0415

        now = self.device.now_ms
        return q.instant(self.device.pump.clock_ms(now), now)

    def _summarize(self, elapsed_s: float) -> None:
        server = self.server
        assert server is not None
        stats = server.stats()
        why = self.stop_reason[0] if self.stop_reason else "link lost"
        summary = (
            f"stopped ({why}) after {elapsed_s:.1f} s; "
            f"pump time {self._pump_instant()}; "
            f"{stats.sessions_opened} session(s), {stats.security_events} security event(s), "
            f"{stats.alarms_raised} alarm(s); {stats.rx_bytes} bytes in, {stats.tx_bytes} out"
        )
        if stats.link_losses:
            summary += f"; link lost {stats.link_losses}x, back {stats.reconnects}x"
        if self.capture is not None:
            summary += f"; capture {self.capture.name}"
        if self.opts.state_file is not None and self.save_error is None:
            summary += f"; state saved to {self.opts.state_file}"
        self.log(summary)
        if self.conformance is not None and self.save_error is None:
            broken = sorted({v.rule for v in self.violations})
            self.log(
                f"conformance: {len(self.violations)} violation(s)"
                + (f" of {', '.join(broken)}" if broken else ": no rule broken")
                + f"; reports in {self.conformance.report_dir}/"
            )
        if self.save_error is not None:
            raise _RuntimeFailure(self.save_error)
        if server.error is not None:
            raise _RuntimeFailure(f"the serve loop ended: {server.error}")
        if self.conformance is not None and self.conformance.strict and self.violations:
            raise _RuntimeFailure(
                f"--conformance strict: {len(self.violations)} violation(s) of the "
                "programmer conformance rules (docs/conformance.md)"
            )


def _load_state(opts: ServeOptions, state: StateFile | None) -> PumpDevice | None:
    """The device saved in ``--state FILE`` (locked by ``state``), None for a fresh pump
    (no such file yet).

    UsageError (one line, exit 2, the file untouched) if it cannot be read, is corrupt,
    altered, another pump's or of a newer format, or conflicts with --profile or
    --start-time."""
    from emulator.profile import load_profile  # noqa: PLC0415

    if state is None:
        return None
    device = state.load(secrets.token_bytes)
    if device is None:
        return None
    path = state.path
    saved = device.pump.profile
    if opts.profile_given and load_profile(opts.profile) != saved:
        raise UsageError(
            f"--profile {opts.profile} conflicts with the pump saved in {path} "
            f"(profile {saved.name}); leave --profile out to resume it"
        )
    if opts.start_time is not None:
        raise UsageError(
            f"--start-time sets a new pump's clock; the pump saved in {path} keeps its own "
            "(set it with SET_CLOCK, or start without --state)"
        )
    return device


class _RuntimeFailure(click.ClickException):
    """The emulator could not go on (its link vanished for good): exit code 1."""

    exit_code = 1

"""``pumpemu ctl``: the reference programmer on the command line (docs/ctl.md).

Each invocation opens the link, authenticates in one role, runs one subcommand through the
blocking ``Programmer`` (hil/programmer/client.py), closes the session and exits:

- 0: the request was answered, or the command was applied;
- 1: the pump refused it, it was not applied, its outcome is uncertain, or a prescription
  was reviewed but not committed;
- 2: a usage error: bad option value, bad URL, busy port, bad key file, bad prescription file.

Outcomes are reported exactly as the programmer core resolves them (hil/ctl/render.py): a
lost reply is resolved through STATUS ("applied" / "not applied"), and only a pump that
cannot be reached at all gives "UNCERTAIN". A link that vanishes mid-command (a USB adapter
pulled) is reopened while the retry policy allows; bytes that could not be written count as
lost frames, so the outcome is still resolved honestly.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from hil import quantities as q
from hil.command_error import CommandError
from hil.ctl import prescription_file
from hil.errors import HilError
from protocol.device_state import AlarmKind, EventKind, LogEntry, Role
from protocol.refusal import RefusalCode
from protocol.units import U32_MAX

if TYPE_CHECKING:
    from hil.links import LinkClosedError, SerialLink
    from protocol.messages import (
        CurrentPrescription,
        EventLogPage,
        Status,
    )

if TYPE_CHECKING:
    from rich.console import Console

    from hil.capture import CaptureWriter
    from hil.ctl.render import Verdict
    from hil.programmer.client import Programmer
    from hil.programmer.core import Result, RetryPolicy

REOPEN_INTERVAL_S = 0.5
"""How often a vanished link is reopened while the programmer keeps retrying."""
DEFAULT_LOG_COUNT = 20


class CtlUsageError(CommandError):
    """A ctl usage error: one line on stderr, exit code 2."""


def _stdin_is_tty() -> bool:
    """Whether a person can answer the commit confirmation (tests patch this)."""
    return sys.stdin.isatty()


# -- the link, kept alive across a vanished port --------------------------------------------


class ResilientLink:
    """A ``SerialLink`` that survives the port vanishing: reads return nothing and writes are
    dropped while it is gone, and it is reopened every ``REOPEN_INTERVAL_S``. The programmer
    core sees only lost frames, which its retries and STATUS resolution already handle."""

    def __init__(self, link: SerialLink, warn: Callable[[str], None]) -> None:
        self._link = link
        self._warn = warn
        self._lost_at: float | None = None
        self._last_try = 0.0

    @property
    def name(self) -> str:
        return self._link.name

    def _lost(self, exc: LinkClosedError) -> None:
        if self._lost_at is None:
            self._warn(f"{exc}; reopening")
            self._lost_at = time.monotonic()

    def _try_reopen(self) -> bool:
        if self._lost_at is None:
            return True
        now = time.monotonic()
        if now - self._last_try < REOPEN_INTERVAL_S:
            return False
        self._last_try = now
        try:
            self._link.reopen()
        except HilError:
            return False
        self._warn(f"{self._link.name}: link back")
        self._lost_at = None
        return True

    def read(self, timeout_s: float) -> bytes:
        from hil.links import LinkClosedError  # noqa: PLC0415

        if not self._try_reopen():
            time.sleep(timeout_s)
            return b""
        try:
            return self._link.read(timeout_s)
        except LinkClosedError as exc:
            self._lost(exc)
            return b""

    def write(self, data: bytes) -> None:
        from hil.links import LinkClosedError  # noqa: PLC0415

        if not self._try_reopen():
            return
        try:
            self._link.write(data)
        except LinkClosedError as exc:
            self._lost(exc)

    def close(self) -> None:
        self._link.close()


# -- configuration and one session ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CtlConfig:
    port: str | None
    keys: str | None
    role: Role
    timeout_ms: int
    retries: int
    busy_wait_ms: int
    capture: str | None
    as_json: bool

    def policy(self) -> RetryPolicy:
        """The programmer's retry policy, built when a command connects: the group's
        callback also runs for ``pumpemu ctl CMD --help``, which must not load the
        programmer and the codec behind it (tests/hil/test_cli_lazy_imports.py)."""
        from hil.programmer.core import RetryPolicy  # noqa: PLC0415

        return RetryPolicy(
            reply_timeout_ms=self.timeout_ms, attempts=self.retries, busy_wait_ms=self.busy_wait_ms
        )


class Ctl:
    """One invocation: output helpers and the connection."""

    def __init__(self, config: CtlConfig) -> None:
        self.config = config
        self._console: Console | None = None
        self.programmer: Programmer | None = None
        self.capture: CaptureWriter | None = None
        self.failed = False

    @property
    def console(self) -> Console:
        """rich's console, made on first use (so --help loads no rich)."""
        if self._console is None:
            from hil.console import make_console  # noqa: PLC0415

            self._console = make_console()
        return self._console

    # -- output --

    def say(self, line: str) -> None:
        """A human line (not in --json mode, where stdout holds JSON only)."""
        if not self.config.as_json:
            click.echo(line)
        if self.capture is not None:
            self.capture.note(line, sim_ms=None)

    def show(self, *renderables: Any) -> None:
        if not self.config.as_json:
            for item in renderables:
                self.console.print(item)

    def warn(self, line: str) -> None:
        click.echo(f"warning: {line}", err=True)

    def emit_json(self, document: dict[str, Any]) -> None:
        if self.config.as_json:
            click.echo(json.dumps(document, indent=2, ensure_ascii=False))

    # -- requests --

    @property
    def pump(self) -> Programmer:
        assert self.programmer is not None, "connect() first"
        return self.programmer

    def request(self, action: str, call: Callable[[Programmer], Result]) -> Result:
        """Run one request; on Ctrl-C say honestly that its outcome is unknown."""
        try:
            return call(self.pump)
        except KeyboardInterrupt:
            click.echo(
                f"interrupted: whether {action} reached the pump is UNCERTAIN; "
                "read its status before retrying",
                err=True,
            )
            sys.exit(1)

    def verdict(self, action: str, result: Result) -> Verdict:
        """Say how ``action`` ended; remember a failure for the exit code."""
        from hil.ctl import render  # noqa: PLC0415

        outcome = render.verdict(action, result)
        if not outcome.ok:
            self.failed = True
        self.say(outcome.line)
        return outcome

    @contextmanager
    def connect(self) -> Iterator[Programmer]:
        from hil.capture import CaptureWriter  # noqa: PLC0415
        from hil.key_files import load_keys  # noqa: PLC0415
        from hil.links import open_link  # noqa: PLC0415
        from hil.programmer.client import Programmer  # noqa: PLC0415

        cfg = self.config
        if not cfg.port:
            raise CtlUsageError(
                "--port is required, e.g. --port socket://127.0.0.1:7000 or --port /dev/ttyUSB0"
            )
        if not cfg.keys:
            raise CtlUsageError("--keys is required: the pump's key file (pumpemu keys new)")
        try:
            keys = load_keys(cfg.keys)
            if cfg.capture:
                self.capture = CaptureWriter(cfg.capture, "ctl")
            link = open_link(cfg.port)
        except HilError as exc:
            if self.capture is not None:
                self.capture.close()
            raise CtlUsageError(str(exc)) from None
        resilient = ResilientLink(link, self.warn)
        capture = self.capture
        hook = None
        if capture is not None:

            def hook(direction: str, data: bytes) -> None:
                capture.record(direction, data, sim_ms=None)

        programmer = Programmer(
            resilient,
            keys.serial,
            cfg.role,
            keys.key_for(cfg.role),
            policy=cfg.policy(),
            on_traffic=hook,
        )
        self.programmer = programmer
        try:
            yield programmer
        finally:
            try:
                programmer.close()
            except KeyboardInterrupt:
                pass
            finally:
                resilient.close()
                if self.capture is not None:
                    self.capture.close()

    def finish(self) -> NoReturn:
        sys.exit(1 if self.failed else 0)


def _ctl(ctx: click.Context) -> Ctl:
    obj = ctx.find_object(Ctl)
    assert obj is not None
    return obj


_WIRE_UNITS: dict[Callable[[str], int], str] = {
    q.parse_volume: "nL",
    q.parse_duration: "s",
    q.parse_concentration: "µg/mL",
}
"""The unit each parser returns, which is the unit of the u32 field it fills on the wire."""


def _parse(option: str, parse: Callable[[str], int], text: str) -> int:
    """Read an option's quantity. One for a u32 wire field (docs/protocol.md) that the
    field cannot carry is the option's error, never a traceback when the message is built."""
    try:
        value = parse(text)
    except q.QuantityError as exc:
        raise CtlUsageError(f"{option}: {exc}") from None
    unit = _WIRE_UNITS.get(parse)
    if unit is not None and value > U32_MAX:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise CtlUsageError(
            f"{option}: {shown!r} is too large: the pump's field holds at most {U32_MAX:,} {unit}"
        )
    return value


# -- the group --------------------------------------------------------------------------------

CTL_EPILOG = """\b
Examples:
  pumpemu ctl --port socket://127.0.0.1:7000 --keys pe-000042.keys --role clinician status
  pumpemu ctl --port /dev/pts/7 --keys pe.keys program hil/examples/morphine-flex.toml
  pumpemu ctl --port /dev/pts/7 --keys pe.keys --role clinician bolus --dose 0.05mL --duration 10min
  pumpemu ctl --port /dev/pts/7 --keys pe.keys --role patient patient-bolus
  pumpemu ctl --port /dev/pts/7 --keys pe.keys --role clinician --json log --all

\b
Exit codes: 0 done; 1 refused, not applied, uncertain or not committed; 2 usage error.
"""


@click.group(epilog=CTL_EPILOG)
@click.option(
    "--port",
    metavar="URL",
    help="The pump's link: a device path (/dev/ttyUSB0, /dev/pts/7) or a pyserial URL "
    "(socket://127.0.0.1:7000, rfc2217://host:port, loop://).",
)
@click.option(
    "--keys",
    "keys_path",
    metavar="FILE",
    help="The pump's key file (pumpemu keys new); only the --role key is used.",
)
@click.option(
    "--role",
    type=click.Choice(["clinician", "patient"]),
    default="clinician",
    show_default=True,
    help="The role to open the session in. A patient may read status and the patient "
    "view and ask for a patient bolus, nothing else.",
)
@click.option(
    "--timeout",
    "timeout_s",
    default="1",
    show_default=True,
    metavar="S",
    help="Seconds to wait for each reply before sending the request again (e.g. 0.5).",
)
@click.option(
    "--retries",
    default=4,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Frames per request before its outcome is resolved through STATUS (in the same "
    "session, then in a new one if those replies are lost too).",
)
@click.option(
    "--busy-wait",
    "busy_wait_s",
    default="150",
    show_default=True,
    metavar="S",
    help="Seconds to keep retrying while the pump answers SESSION_BUSY (a session this "
    "programmer lost stays open until the pump's idle timeout); extended to the expiry "
    "the pump names, at most twice S in all.",
)
@click.option(
    "--capture",
    "capture_path",
    metavar="FILE",
    help="Append a JSONL capture of the traffic to FILE (read it with pumpemu decode).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables.")
@click.pass_context
def ctl(  # noqa: PLR0917 (click passes every option as an argument)
    ctx: click.Context,
    port: str | None,
    keys_path: str | None,
    role: str,
    timeout_s: str,
    retries: int,
    busy_wait_s: str,
    capture_path: str | None,
    as_json: bool,
) -> None:
    """Program and interrogate a pump: the reference programmer.

    Every command opens an authenticated session on --port with the --role key from
    --keys, does one thing, closes the session, and prints the outcome exactly: applied
    (with the pump's acknowledgement), refused (with the pump's reason and limit), not
    applied (a lost reply resolved through the pump's status), or UNCERTAIN (the pump
    could not be reached to confirm: read its status before retrying).
    """
    timeout_ms = _parse("--timeout", _milliseconds, timeout_s)
    busy_ms = _parse("--busy-wait", _milliseconds, busy_wait_s)
    if timeout_ms < 1:
        raise CtlUsageError("--timeout: must be at least 0.001 s")
    for option, ms in (("--timeout", timeout_ms), ("--busy-wait", busy_ms)):
        if ms > MAX_WAIT_MS:
            raise CtlUsageError(f"{option}: at most {MAX_WAIT_MS // 1000} s (a day)")
    config = CtlConfig(
        port, keys_path, Role[role.upper()], timeout_ms, retries, busy_ms, capture_path, as_json
    )
    ctx.obj = Ctl(config)


MAX_WAIT_MS = 86_400_000
"""--timeout and --busy-wait are at most a day: a clinician waits minutes, not years."""


def _milliseconds(text: str) -> int:
    """Seconds as a decimal (``0.5``) -> whole milliseconds, exactly."""
    whole, _, frac = text.strip().partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > 3:
        raise q.QuantityError(f"{text!r} is not a number of seconds with at most 3 decimals")
    return int(whole) * 1_000 + int((frac + "000")[:3])


# -- reads ------------------------------------------------------------------------------------


def _read(ctl_: Ctl, action: str, call: Callable[[Programmer], Result], kind: type) -> Any:
    """A read: the reply if it is of ``kind``; otherwise say why not and return None."""
    from hil.programmer.core import Outcome  # noqa: PLC0415

    result = ctl_.request(action, call)
    if result.outcome is Outcome.ANSWERED and isinstance(result.reply, kind):
        return result.reply
    if result.outcome is Outcome.ANSWERED:
        ctl_.failed = True
        got = type(result.reply).__name__ if result.reply is not None else "nothing"
        ctl_.say(f"{action}: unexpected reply {got}")
        ctl_.emit_json({"action": action, "ok": False, "message": f"unexpected reply {got}"})
        return None
    outcome = ctl_.verdict(action, result)
    ctl_.emit_json(outcome.as_json(result, action))
    return None


def _simple_read(
    action: str, call: Callable[[Programmer], Result], kind: type, table: Callable[[Any], Any]
) -> Callable[[click.Context], None]:
    from hil.capture import fields_of  # noqa: PLC0415

    def run(ctx: click.Context) -> None:
        ctl_ = _ctl(ctx)
        with ctl_.connect():
            reply = _read(ctl_, action, call, kind)
        if reply is not None:
            ctl_.show(table(reply))
            ctl_.emit_json({"action": action, "ok": True, "reply": fields_of(reply)})
        ctl_.finish()

    return run


def _connection_example(rest: str) -> str:
    return f"""\b
Example:
  pumpemu ctl --port socket://127.0.0.1:7000 --keys pe.keys --role clinician {rest}
"""


@ctl.command(epilog=_connection_example("info"))
@click.pass_context
def info(ctx: click.Context) -> None:
    """Show the pump's model, serial, firmware and profile limits (in human units)."""
    from hil.ctl import render  # noqa: PLC0415
    from hil.programmer.client import Programmer  # noqa: PLC0415
    from protocol.messages import DeviceInfo  # noqa: PLC0415

    _simple_read("read device info", Programmer.info, DeviceInfo, render.info_table)(ctx)


@ctl.command(epilog=_connection_example("status"))
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show the therapy state, rate, reservoir estimate, battery, alarms, last command id
    and pump time. A patient may read this and the patient view, nothing else."""
    from hil.ctl import render  # noqa: PLC0415
    from hil.programmer.client import Programmer  # noqa: PLC0415
    from protocol.messages import Status  # noqa: PLC0415

    _simple_read("read status", Programmer.status, Status, render.status_table)(ctx)


@ctl.command(epilog=_connection_example("alarms"))
@click.pass_context
def alarms(ctx: click.Context) -> None:
    """List the active alarms, their tone and whether they were acknowledged."""
    from hil.ctl import render  # noqa: PLC0415
    from hil.programmer.client import Programmer  # noqa: PLC0415
    from protocol.messages import AlarmList  # noqa: PLC0415

    _simple_read("read alarms", Programmer.alarms, AlarmList, render.alarms_table)(ctx)


@ctl.command(epilog=_connection_example("prescription"))
@click.pass_context
def prescription(ctx: click.Context) -> None:
    """Show the committed prescription: drug, concentration, every step with its rate,
    dose rate and what it delivers, and the patient-bolus limits."""
    from rich.console import Group  # noqa: PLC0415

    from hil.ctl import render  # noqa: PLC0415
    from hil.programmer.client import Programmer  # noqa: PLC0415
    from protocol.messages import CurrentPrescription  # noqa: PLC0415

    def table(reply: CurrentPrescription) -> Any:
        if reply.prescription is None:
            return render.prescription_table(None)
        return Group(
            render.prescription_table(reply.prescription), render.steps_table(reply.prescription)
        )

    _simple_read("read prescription", Programmer.prescription, CurrentPrescription, table)(ctx)


@ctl.command(epilog=_connection_example("clock"))
@click.pass_context
def clock(ctx: click.Context) -> None:
    """Show the pump's clock (local time, no zone) and how far it is from this computer's."""
    from hil.capture import fields_of  # noqa: PLC0415
    from hil.programmer.client import Programmer  # noqa: PLC0415
    from protocol.messages import Clock  # noqa: PLC0415

    ctl_ = _ctl(ctx)
    with ctl_.connect():
        reply = _read(ctl_, "read clock", Programmer.pump_clock, Clock)
    if reply is not None:
        here = q.parse_pump_time("now")
        drift_ms = reply.pump_time_ms - here
        sign = "ahead of" if drift_ms >= 0 else "behind"
        ctl_.say(f"pump time {q.pump_time(reply.pump_time_ms)}")
        ctl_.say(
            f"this computer {q.pump_time(here)} (the pump is {abs(drift_ms) // 1000} s {sign} it)"
        )
        ctl_.emit_json(
            {"action": "read clock", "ok": True, "reply": fields_of(reply), "drift_ms": drift_ms}
        )
    ctl_.finish()


def _log_page(start: int, count: int) -> Callable[[Programmer], Result]:
    return lambda p: p.event_log(start, count)


@dataclass(slots=True)
class _LogRead:
    entries: list[LogEntry]
    oldest: int
    next_seq: int


def _read_log(ctl_: Ctl, start: int | None, count: int | None) -> _LogRead | None:
    """Page through the log from ``start`` (None: the last ``count`` entries) until
    ``count`` entries (None: to the end) are read."""
    from protocol.messages import MAX_LOG_PAGE, EventLogPage  # noqa: PLC0415

    first: EventLogPage | None = _read(
        ctl_,
        "read event log",
        lambda p: p.event_log(0 if start is None else start, 1),
        EventLogPage,
    )
    if first is None:
        return None
    if start is None:
        want = count if count is not None else first.next_seq
        start = max(first.oldest_seq, first.next_seq - want)
    collected: list[LogEntry] = []
    cursor = start
    page = first
    while count is None or len(collected) < count:
        size = MAX_LOG_PAGE if count is None else min(MAX_LOG_PAGE, count - len(collected))
        page_or_none: EventLogPage | None = _read(
            ctl_, "read event log", _log_page(cursor, size), EventLogPage
        )
        if page_or_none is None:
            return None
        page = page_or_none
        fresh = [e for e in page.entries if e.seq >= cursor]
        if not fresh:
            break
        collected.extend(fresh)
        cursor = fresh[-1].seq + 1
        if cursor >= page.next_seq:
            break
    return _LogRead(collected, page.oldest_seq, page.next_seq)


@ctl.command(
    epilog="""\b
Examples:
  pumpemu ctl --port /dev/pts/7 --keys pe.keys log               the last 20 entries
  pumpemu ctl --port /dev/pts/7 --keys pe.keys log --count 100   the last 100
  pumpemu ctl --port /dev/pts/7 --keys pe.keys log --from 40 --count 10
  pumpemu ctl --port /dev/pts/7 --keys pe.keys log --all         everything the pump holds
"""
)
@click.option(
    "--from", "from_seq", type=click.IntRange(0, U32_MAX), help="First entry (seq) to show."
)
@click.option(
    "--count",
    type=click.IntRange(1, U32_MAX),
    help=f"How many entries (default {DEFAULT_LOG_COUNT}).",
)
@click.option(
    "--all", "read_all", is_flag=True, help="Every entry from --from (or the oldest) to the newest."
)
@click.pass_context
def log(ctx: click.Context, from_seq: int | None, count: int | None, read_all: bool) -> None:
    """Read the event log: programming, boluses, refills, alarms, stalls, security events.

    The pump answers 32 entries per request; this pages through as many as asked.
    """
    from hil.capture import plain  # noqa: PLC0415
    from hil.ctl import render  # noqa: PLC0415

    ctl_ = _ctl(ctx)
    if read_all and count is not None:
        raise CtlUsageError("--all and --count: give one of them")
    start: int | None = from_seq
    want: int | None = count if count is not None else DEFAULT_LOG_COUNT
    if read_all:
        start, want = (0 if from_seq is None else from_seq), None
    with ctl_.connect():
        read = _read_log(ctl_, start, want)
    if read is not None:
        ctl_.show(render.log_table(read.entries, read.oldest, read.next_seq))
        ctl_.emit_json(
            {
                "action": "read event log",
                "ok": True,
                "oldest_seq": read.oldest,
                "next_seq": read.next_seq,
                "entries": [plain(entry) for entry in read.entries],
            }
        )
    ctl_.finish()


# -- programming ------------------------------------------------------------------------------


@ctl.command(
    epilog="""\b
Examples:
  pumpemu ctl --port /dev/pts/7 --keys pe.keys program hil/examples/morphine-flex.toml
  pumpemu ctl --port /dev/pts/7 --keys pe.keys program rx.toml --review-only
  pumpemu ctl --port /dev/pts/7 --keys pe.keys program rx.toml --yes
  pumpemu ctl --port /dev/pts/7 --keys pe.keys program rx.toml --override soft-limit
  pumpemu ctl --port /dev/pts/7 --keys pe.keys program --from-trial trial.json \\
      --concentration 2000ug/mL

\b
The file format is in docs/ctl.md. --override (soft-limit, dose-change; repeat it for
both) sends STAGE_PRESCRIPTION_OVERRIDE: the pump then accepts a daily dose above the
drug's soft limit, or a change beyond the drug's relative limit, and the review shows
which were needed. No override lifts a hard limit. Without --yes, the commit needs the
first 8 hex digits of the pump's digest typed at the prompt; with no terminal and no --yes
nothing is committed (exit 1). --from-trial converts a trial record (pumpemu ctl trial
record) into a continuous prescription in dose units (docs/pump-model.md, "The trial").
"""
)
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--from-trial",
    "from_trial",
    metavar="RECORD",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Program from a trial record instead of FILE: the trial's dose, converted to the "
    "implant's starting daily dose, at --concentration.",
)
@click.option(
    "--concentration",
    metavar="C",
    help="With --from-trial: the implant's drug concentration (2000ug/mL, 10mg/mL).",
)
@click.option(
    "--drug",
    "drug",
    metavar="NAME",
    help="With --from-trial: the implant's drug name (default: the trial drug's generic "
    "name, whose limits the pump applies).",
)
@click.option(
    "--low-reservoir-threshold",
    "threshold",
    default="2 mL",
    show_default=True,
    metavar="V",
    help="With --from-trial: the low-reservoir alarm threshold.",
)
@click.option("--yes", is_flag=True, help="Commit without asking, after printing the review.")
@click.option("--review-only", is_flag=True, help="Stage and review, never commit (exit 0).")
@click.option(
    "--override",
    "overrides",
    multiple=True,
    type=click.Choice(["soft-limit", "dose-change"]),
    help="Override a drug-library soft limit: soft-limit, dose-change (repeatable).",
)
@click.pass_context
def program(  # noqa: PLR0915, PLR0917 (one linear clinical procedure, read top to bottom)
    ctx: click.Context,
    file: Path | None,
    from_trial: Path | None,
    concentration: str | None,
    drug: str | None,
    threshold: str,
    yes: bool,
    review_only: bool,
    overrides: tuple[str, ...],
) -> None:
    """Stage a prescription file (or one converted from a trial record), review it side by
    side with what the pump computed, and commit it only when confirmed.

    The review shows every setting as written and as programmed, every flex step with its
    rate (mL/day), dose rate (mg or µg per day) and what it delivers in its window, the
    patient-bolus limits, the pump's digest (checked against the programmer's own), its
    daily volume and mass, and its predicted low-reservoir and empty dates.
    """
    from hil.ctl import render  # noqa: PLC0415
    from hil.programmer.client import Programmer  # noqa: PLC0415
    from hil.programmer.core import Outcome  # noqa: PLC0415
    from protocol.codec import prescription_digest  # noqa: PLC0415
    from protocol.messages import (  # noqa: PLC0415
        CurrentPrescription,
        Nak,
        PrescriptionStaged,
        StagedWithOverride,
        Status,
    )

    ctl_ = _ctl(ctx)
    if yes and review_only:
        raise CtlUsageError("--yes and --review-only: give one of them")
    document: dict[str, Any] = {"action": "program", "file": str(file), "committed": False}
    if from_trial is not None:
        if file is not None:
            raise CtlUsageError("FILE and --from-trial: give one of them")
        if concentration is None:
            raise CtlUsageError("--from-trial needs --concentration: the implant's drug strength")
        from hil.ctl.trial_command import prescription_from_trial  # noqa: PLC0415 (a cycle)

        planned = prescription_from_trial(from_trial, concentration, drug, threshold)
        rx_file = planned.file
        document["file"] = str(from_trial)
        document["trial"] = planned.document
        for line in planned.lines:
            ctl_.say(line)
    else:
        if file is None:
            raise CtlUsageError("give a prescription FILE, or --from-trial RECORD")
        threshold_given = (
            ctx.get_parameter_source("threshold") is not click.core.ParameterSource.DEFAULT
        )
        for option, given in (
            ("--concentration", concentration is not None),
            ("--drug", drug is not None),
            ("--low-reservoir-threshold", threshold_given),
        ):
            if given:
                raise CtlUsageError(f"{option} applies to --from-trial only")
        try:
            rx_file = prescription_file.load(file)
        except HilError as exc:
            raise CtlUsageError(str(exc)) from None
    rx = rx_file.prescription
    with ctl_.connect():
        status_reply: Status | None = _read(ctl_, "read status", Programmer.status, Status)
        if status_reply is None:
            ctl_.finish()
        flags = 0
        for bit, name in render.OVERRIDE_NAMES.items():
            flags |= bit if name in overrides else 0
        staged_result = ctl_.request(
            "stage prescription",
            (lambda p: p.stage_override(rx, flags)) if flags else (lambda p: p.stage(rx)),
        )
        staged = staged_result.reply
        if staged_result.outcome is not Outcome.ANSWERED or not isinstance(
            staged, PrescriptionStaged | StagedWithOverride
        ):
            outcome = ctl_.verdict("stage prescription", staged_result)
            if isinstance(staged, Nak) and staged.field in render.FILE_KEYS:
                ctl_.say(f"  in {document['file']}: {render.FILE_KEYS[staged.field]}")
            ctl_.failed = True
            ctl_.emit_json({**document, "stage": outcome.as_json(staged_result, "stage")})
            ctl_.finish()
        pb = rx.patient_bolus
        review = render.Review(
            digest_ours=prescription_digest(rx),
            staged=staged,
            basal_24h_nl=rx.max_24h_volume_nl(),
            bolus_24h_nl=0 if pb is None else pb.dose_nl * pb.max_per_24h,
            pump_now_ms=status_reply.pump_time_ms,
        )
        document["review"] = render.review_json(rx_file, review)
        ctl_.show(*render.review_tables(rx_file, review))
        if not review.digest_matches:
            ctl_.failed = True
            ctl_.say(
                "not committed: the pump's digest differs from the programmer's, so the pump "
                "did not stage what the file asks"
            )
            ctl_.emit_json(document)
            ctl_.finish()
        if review_only:
            ctl_.say("review only: not committed; the pump keeps its current prescription")
            ctl_.emit_json(document)
            ctl_.finish()
        if not yes:
            if not _stdin_is_tty():
                ctl_.failed = True
                ctl_.say(
                    "not committed: no terminal to confirm on and --yes not given; the pump "
                    "keeps its current prescription"
                )
                ctl_.emit_json(document)
                ctl_.finish()
            answer = click.prompt(
                f"Type {review.confirmation} (the digest's first 8 hex digits) to commit "
                f"within {staged.stage_lifetime_s} s of staging, anything else to cancel",
                default="",
                show_default=False,
                err=True,
            )
            if answer.strip().lower() != review.confirmation:
                ctl_.failed = True
                ctl_.say("not committed: cancelled; the pump keeps its current prescription")
                ctl_.emit_json(document)
                ctl_.finish()
        digest = staged.digest
        commit = ctl_.request("commit prescription", lambda p: p.commit(digest))
        outcome = ctl_.verdict("commit prescription", commit)
        document["commit"] = outcome.as_json(commit, "commit prescription")
        if (
            commit.outcome is Outcome.REFUSED
            and isinstance(commit.reply, Nak)
            and commit.reply.code in (RefusalCode.NOTHING_STAGED, RefusalCode.STAGE_EXPIRED)
        ):
            ctl_.say("  the staged prescription is gone (session cut or expired); program again")
        if commit.outcome is Outcome.APPLIED:
            document["committed"] = True
            back: CurrentPrescription | None = _read(
                ctl_, "read back prescription", Programmer.prescription, CurrentPrescription
            )
            if back is not None:
                matches = back.prescription == rx
                document["read_back_matches"] = matches
                if matches:
                    ctl_.say("read back: the pump's prescription is the one reviewed")
                else:
                    ctl_.failed = True
                    ctl_.say(
                        "WARNING: read back: the pump's prescription differs from the one "
                        "reviewed; check it with: pumpemu ctl prescription"
                    )
    ctl_.emit_json(document)
    ctl_.finish()


# -- therapy commands -------------------------------------------------------------------------


def _command(ctx: click.Context, action: str, call: Callable[[Programmer], Result]) -> None:
    ctl_ = _ctl(ctx)
    with ctl_.connect():
        result = ctl_.request(action, call)
        outcome = ctl_.verdict(action, result)
    ctl_.emit_json(outcome.as_json(result, action))
    ctl_.finish()


@ctl.command(
    epilog=_connection_example("bolus --dose 0.05mL --duration 10min")
    + "  (also --dose 50uL or 50000nL; --duration 600s, 1h)\n"
)
@click.option("--dose", required=True, help="Volume: 0.05mL, 50uL or 50000nL (exact in nL).")
@click.option("--duration", required=True, help="Delivery time: 600s, 10min, 1.5h.")
@click.pass_context
def bolus(ctx: click.Context, dose: str, duration: str) -> None:
    """Give a clinician bolus of --dose over --duration, on top of the basal rate."""
    dose_nl = _parse("--dose", q.parse_volume, dose)
    seconds = _parse("--duration", q.parse_duration, duration)
    if dose_nl < 1 or seconds < 1:
        raise CtlUsageError("--dose and --duration must be above zero")
    _command(ctx, "clinician bolus", lambda p: p.clinician_bolus(dose_nl, seconds))


@ctl.command(
    "patient-bolus",
    epilog="""\b
Example:
  pumpemu ctl --port /dev/pts/7 --keys pe.keys --role patient patient-bolus
""",
)
@click.pass_context
def patient_bolus(ctx: click.Context) -> None:
    """Ask for one patient bolus within the limits the clinician set (dose, lockout,
    maximum per 24 h). A refusal says why and how long the lockout lasts."""
    from hil.programmer.client import Programmer  # noqa: PLC0415

    _command(ctx, "patient bolus", Programmer.patient_bolus)


@ctl.command(epilog=_connection_example("prime --volume 0.29mL"))
@click.option("--volume", required=True, help="The catheter's dead volume: 0.29mL, 286uL.")
@click.pass_context
def prime(ctx: click.Context, volume: str) -> None:
    """Prime the catheter: deliver --volume at the maximum rate (fills its dead volume)."""
    nl = _parse("--volume", q.parse_volume, volume)
    if nl < 1:
        raise CtlUsageError("--volume must be above zero")
    _command(ctx, "priming bolus", lambda p: p.prime(nl))


@ctl.command(
    "bridge-bolus",
    epilog=_connection_example("bridge-bolus")
    + """\b
After a refill with a new concentration (refill --concentration): the old drug still in
the pump and catheter goes on at the running rates, and the prescription committed next
(program it at the new concentration) takes effect when the old drug is out of the
catheter tip. The ACK says when that is predicted (docs/protocol.md section 10.3).
""",
)
@click.pass_context
def bridge_bolus(ctx: click.Context) -> None:
    """Bridge a concentration change: deliver the old drug in the path at the old rates
    before the new prescription takes effect."""
    from hil.programmer.client import Programmer  # noqa: PLC0415

    _command(ctx, "bridge bolus", Programmer.bridge_bolus)


@ctl.command(epilog=_connection_example("stop"))
@click.pass_context
def stop(ctx: click.Context) -> None:
    """Stop therapy: no delivery until start."""
    from hil.programmer.client import Programmer  # noqa: PLC0415

    _command(ctx, "stop therapy", Programmer.stop)


@ctl.command(epilog=_connection_example("start"))
@click.pass_context
def start(ctx: click.Context) -> None:
    """Start therapy with the committed prescription (no catch-up dose for the pause)."""
    from hil.programmer.client import Programmer  # noqa: PLC0415

    _command(ctx, "start therapy", Programmer.start)


@ctl.command("cancel-bolus", epilog=_connection_example("cancel-bolus"))
@click.pass_context
def cancel_bolus(ctx: click.Context) -> None:
    """Cancel the bolus being delivered; the basal rate continues."""
    from hil.programmer.client import Programmer  # noqa: PLC0415

    _command(ctx, "cancel bolus", Programmer.cancel_bolus)


_ALARMS = [kind.name.lower().replace("_", "-") for kind in AlarmKind]


@ctl.command("ack-alarm", epilog=_connection_example("ack-alarm low-reservoir"))
@click.argument("kind", type=click.Choice(_ALARMS, case_sensitive=False))
@click.pass_context
def ack_alarm(ctx: click.Context, kind: str) -> None:
    """Acknowledge an active alarm: silences its tone (it stays listed until its cause
    clears)."""
    alarm = AlarmKind[kind.upper().replace("-", "_")]
    _command(ctx, f"acknowledge {alarm.name}", lambda p: p.acknowledge_alarm(alarm))


# -- issue 12: detailed reads and service procedures (docs/ctl.md) -----------------------------


@ctl.command(epilog=_connection_example("detail"))
@click.pass_context
def detail(ctx: click.Context) -> None:
    """Show what the pump believes and forecasts: the projected replacement (ERI) and
    end-of-service dates at the current rate, the low-reservoir and empty dates, the
    patient-bolus lockout and count, and the drug delivered today, since the refill and
    in all. Clinician only."""
    from hil.ctl import render  # noqa: PLC0415
    from hil.programmer.client import Programmer  # noqa: PLC0415
    from protocol.messages import StatusDetail  # noqa: PLC0415

    _simple_read(
        "read status detail", Programmer.status_detail, StatusDetail, render.status_detail_table
    )(ctx)


@ctl.command(epilog=_connection_example("catheter"))
@click.pass_context
def catheter(ctx: click.Context) -> None:
    """Show the catheter as the pump was told it: length, dead volume, primed. The pump
    cannot measure a catheter. Clinician only."""
    from hil.ctl import render  # noqa: PLC0415
    from hil.programmer.client import Programmer  # noqa: PLC0415
    from protocol.messages import CatheterInfo  # noqa: PLC0415

    _simple_read("read catheter", Programmer.catheter, CatheterInfo, render.catheter_table)(ctx)


@ctl.command(
    "patient-view",
    epilog="""\b
Example:
  pumpemu ctl --port /dev/pts/7 --keys pe.keys --role patient patient-view
""",
)
@click.pass_context
def patient_view(ctx: click.Context) -> None:
    """Show what a patient device shows: when the next patient bolus may be asked for and
    how many are left in 24 h. A patient may read this and STATUS, nothing else."""
    from hil.ctl import render  # noqa: PLC0415
    from hil.programmer.client import Programmer  # noqa: PLC0415
    from protocol.messages import PatientView  # noqa: PLC0415

    _simple_read(
        "read patient view", Programmer.patient_view, PatientView, render.patient_view_table
    )(ctx)


@ctl.command("clear-memory-error", epilog=_connection_example("clear-memory-error"))
@click.pass_context
def clear_memory_error(ctx: click.Context) -> None:
    """End a memory error (H8): the pump rewrites its record and stays stopped. Then read
    the prescription and status back, check them, and start."""
    from hil.programmer.client import Programmer  # noqa: PLC0415

    _command(ctx, "clear memory error", Programmer.clear_memory_error)


@ctl.command("reset-flow-valve", epilog=_connection_example("reset-flow-valve"))
@click.pass_context
def reset_flow_valve(ctx: click.Context) -> None:
    """Reopen a valve-gated pump's flow-activated valve after an MRI (H15). A peristaltic
    pump refuses it: it has no such valve."""
    from hil.programmer.client import Programmer  # noqa: PLC0415

    _command(ctx, "reset flow valve", Programmer.reset_flow_valve)


def _length_cm(text: str) -> int:
    number = text.strip().removesuffix("cm").strip()
    if not number.isdigit():
        raise q.QuantityError(f"{text!r} is not a whole number of cm (90cm)")
    return int(number)


@ctl.command("set-catheter", epilog=_connection_example("set-catheter --length 90cm --not-primed"))
@click.option("--length", "length", required=True, help="The catheter's length: 90cm or 90.")
@click.option(
    "--primed/--not-primed",
    required=True,
    help="Whether the new catheter was filled with drug (else prime it afterwards).",
)
@click.pass_context
def set_catheter(ctx: click.Context, length: str, primed: bool) -> None:
    """Record the catheter after an implant or a revision: its length (the pump computes
    the dead volume) and whether it is primed. Changes nothing the pump delivers."""
    cm = _parse("--length", _length_cm, length)
    if not 1 <= cm <= 65_535:
        raise CtlUsageError("--length must be 1 to 65535 cm")
    _command(ctx, "set catheter", lambda p: p.set_catheter(cm, primed=primed))


@ctl.command("alarm-test", epilog=_connection_example("alarm-test"))
@click.pass_context
def alarm_test(ctx: click.Context) -> None:
    """Sound both alarm tones once, so the patient knows them."""
    from hil.programmer.client import Programmer  # noqa: PLC0415

    _command(ctx, "alarm test", Programmer.alarm_test)


@ctl.command(
    "set-clock",
    epilog="""\b
Examples:
  pumpemu ctl --port /dev/pts/7 --keys pe.keys set-clock now
  pumpemu ctl --port /dev/pts/7 --keys pe.keys set-clock 2026-01-05T08:00:00
""",
)
@click.argument("when", default="now", metavar="[ISO8601|now]")
@click.pass_context
def set_clock(ctx: click.Context, when: str) -> None:
    """Set the pump's clock to local time WHEN (default: this computer's local time now).
    The pump keeps local time with no zone: flex steps follow it."""
    ms = _parse("set-clock", q.parse_pump_time, when)
    _command(ctx, f"set clock to {q.pump_time(ms)}", lambda p: p.set_clock(ms))


# -- refill -----------------------------------------------------------------------------------


@ctl.command(
    epilog=_connection_example("refill --withdrawn 1.9mL --volume 20mL --concentration 25mg/mL")
)
@click.option("--withdrawn", required=True, help="Volume withdrawn from the reservoir: 1.9mL.")
@click.option("--volume", required=True, help="Volume now in the reservoir: 20mL.")
@click.option(
    "--concentration", required=True, help="Concentration of the new drug: 25mg/mL, 500ug/mL."
)
@click.pass_context
def refill(  # noqa: PLR0915 (one linear clinical procedure, read top to bottom)
    ctx: click.Context, withdrawn: str, volume: str, concentration: str
) -> None:
    """Record a refill: begin, compare the withdrawn residual with the pump's prediction,
    then complete with the new volume and concentration.

    A gap between withdrawn and predicted residual above the pump's threshold (1 mL for a
    20 mL pump, 2 mL for a 40 mL pump) is a discrepancy: pocket fill, over- or
    under-delivery. The pump logs it and this command prints it.
    """
    from hil.programmer.client import Programmer  # noqa: PLC0415
    from hil.programmer.core import Outcome  # noqa: PLC0415
    from protocol.messages import Ack, EventLogPage  # noqa: PLC0415

    withdrawn_nl = _parse("--withdrawn", q.parse_volume, withdrawn)
    volume_nl = _parse("--volume", q.parse_volume, volume)
    conc = _parse("--concentration", q.parse_concentration, concentration)
    if conc < 1:
        raise CtlUsageError("--concentration must be above zero")
    ctl_ = _ctl(ctx)
    document: dict[str, Any] = {"action": "refill", "ok": False}
    with ctl_.connect():
        head = _read(ctl_, "read event log", lambda p: p.event_log(0, 1), EventLogPage)
        if head is None:
            ctl_.emit_json(document)
            ctl_.finish()
        begin = ctl_.request("refill begin", Programmer.refill_begin)
        predicted: int | None = None
        if begin.outcome is Outcome.REFUSED and begin.refusal is RefusalCode.REFILL_IN_PROGRESS:
            ctl_.say("refill begin: a refill was already begun; completing it")
        else:
            outcome = ctl_.verdict("refill begin", begin)
            document["begin"] = outcome.as_json(begin, "refill begin")
            if begin.outcome is not Outcome.APPLIED:
                if begin.outcome is Outcome.UNCERTAIN:
                    ctl_.say("refill not completed; read the pump's status before retrying")
                ctl_.emit_json(document)
                ctl_.finish()
            if isinstance(begin.reply, Ack):
                predicted = begin.reply.value
        complete = ctl_.request(
            "refill complete", lambda p: p.refill_complete(withdrawn_nl, volume_nl, conc)
        )
        outcome = ctl_.verdict("refill complete", complete)
        document["complete"] = outcome.as_json(complete, "refill complete")
        if complete.outcome is not Outcome.APPLIED:
            ctl_.say(
                "the refill is NOT complete: the pump is still in refill and blocks therapy "
                "changes; run this refill command again"
                if complete.outcome is not Outcome.UNCERTAIN
                else "read the pump's status before retrying"
            )
            ctl_.emit_json(document)
            ctl_.finish()
        if isinstance(complete.reply, Ack):
            predicted = complete.reply.value
        document["ok"] = True
        if predicted is not None:
            gap = withdrawn_nl - predicted
            document["predicted_residual_nl"] = predicted
            document["withdrawn_nl"] = withdrawn_nl
            ctl_.say(
                f"predicted residual {q.volume(predicted)}, withdrawn {q.volume(withdrawn_nl)}: "
                f"difference {q.volume(abs(gap))} "
                + ("more than predicted" if gap > 0 else "less than predicted" if gap else "")
            )
        after = _read_log(ctl_, head.next_seq, None)
        if after is None:
            ctl_.say("discrepancy verdict unknown: the event log could not be read")
        else:
            flagged = [e for e in after.entries if e.kind is EventKind.REFILL_DISCREPANCY]
            document["discrepancy"] = bool(flagged)
            if flagged:
                ctl_.say(
                    "DISCREPANCY: the pump logged a refill discrepancy: investigate pocket "
                    "fill, over- or under-delivery before relying on the new volume"
                )
            else:
                ctl_.say("no discrepancy: the gap is within the pump's threshold")
    ctl_.emit_json(document)
    ctl_.finish()


# The trial subcommands register themselves on ``ctl`` (they use its helpers above).
from hil.ctl import trial_command  # noqa: E402, F401

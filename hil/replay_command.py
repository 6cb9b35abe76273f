"""``pumpemu replay``: play the programmer side of a capture against a pump and report where
its answers differ from the recording (hil/replay.py; docs/capture.md, "Replaying a capture
against a pump")."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hil.control_catalogue import DEFAULT_CONTROL
from hil.errors import HilError, UsageError
from hil.logs import LogConfig, log_options
from protocol.device_state import Role

if TYPE_CHECKING:
    from hil.links import Link
    from protocol.keys import PumpKeys
    from protocol.messages import Message

if TYPE_CHECKING:
    from hil.control import (
        ControlClient,
    )
    from hil.programmer.client import Programmer
    from hil.programmer.core import Result
    from hil.replay import Outcome, Script

EPILOG = """\b
Examples:
  pumpemu replay visit.jsonl --port /dev/pts/7 --keys pump.keys
  pumpemu replay visit.jsonl --port socket://127.0.0.1:5555 --keys pump.keys --json
  pumpemu replay visit.jsonl --port /dev/pts/7 --keys pump.keys --control
        (a serve --clock manual --control: pump time and faults follow the recording)

\b
Exit status: 0 every recorded answer was given again, 1 some differ (or the pump did not
answer), 2 a usage error (a bad capture, key file or option).
"""

POLICY_SETTINGS = {"reply_timeout_ms": 2_000, "attempts": 3, "reopen_attempts": 2}
"""The programmer's RetryPolicy (built on use: the programmer loads the codec)."""


class LinkTarget:
    """A pump behind a pyserial URL (``hil.replay.ReplayTarget``), with an optional control
    API for the bench."""

    def __init__(self, link: Link, keys: PumpKeys, control: ControlClient | None) -> None:
        self._link = link
        self._keys = keys
        self._control = control
        self._programmer: Programmer | None = None

    @property
    def has_bench(self) -> bool:
        return self._control is not None

    def open_session(self, role: Role) -> Callable[[Message], Result]:
        from hil.programmer.client import Programmer  # noqa: PLC0415
        from hil.programmer.core import RetryPolicy  # noqa: PLC0415

        self._programmer = Programmer(
            self._link,
            self._keys.serial,
            role,
            self._keys.key_for(role),
            policy=RetryPolicy(**POLICY_SETTINGS),
        )
        return self._programmer.request

    def close_session(self) -> None:
        if self._programmer is not None:
            self._programmer.close()
            self._programmer = None

    def advance(self, ms: int) -> None:
        assert self._control is not None
        self._control.request("advance", ms=ms)

    def inject(self, name: str, params: Mapping[str, Any]) -> None:
        assert self._control is not None
        self._control.fault(name, **params)


def _control_client(control: str | None, token_file: Path | None) -> ControlClient | None:
    from hil.control import (  # noqa: PLC0415
        ControlClient,
        default_token_file,
        parse_control_address,
        read_token_file,
    )

    if control is None:
        return None
    address = parse_control_address(control)
    token = None
    if token_file is not None:
        token = read_token_file(token_file)
    elif address.port is not None:
        default = default_token_file(address.port)
        if not default.exists():
            raise UsageError(
                f"--control {address} is a TCP port and needs the token pumpemu serve wrote: "
                "give --control-token FILE"
            )
        token = read_token_file(default)
    return ControlClient(control, token=token)


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    from hil.capture import plain  # noqa: PLC0415

    exchange = outcome.exchange
    return {
        "id": exchange.line,  # the request's line in the capture: unique, stable
        "line": exchange.line,
        "session": outcome.session,
        "role": outcome.role.name,
        "request": plain(exchange.request),
        "status": outcome.status,
        "recorded_line": exchange.recorded_line,
        "recorded": plain(exchange.recorded) if exchange.recorded is not None else None,
        "replayed": plain(outcome.replayed) if outcome.replayed is not None else None,
        "differences": [
            {"path": d.path, "recorded": d.recorded, "replayed": d.replayed}
            for d in outcome.differences
        ],
        "detail": outcome.detail,
    }


def _progress(outcome: Outcome, rows: bool, log: LogConfig) -> None:
    """One replayed request: its table row on stdout, and a debug log line (-v)."""
    if rows:
        click.echo(_row(outcome))
    exchange = outcome.exchange
    log(f"line {exchange.line}: {type(exchange.request).__name__} {outcome.status}", "debug")


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def _row(outcome: Outcome) -> str:
    exchange = outcome.exchange
    request = type(exchange.request).__name__
    answer = type(outcome.replayed).__name__ if outcome.replayed is not None else "-"
    head = (
        f"{exchange.line:>6}  {outcome.session:>3} {outcome.role.name[:9]:<9}  "
        f"{request:<21} {answer:<19} {outcome.status}"
    )
    if outcome.detail:
        head += f" ({outcome.detail})"
    lines = [head]
    for d in outcome.differences:
        lines.append(
            f"{'':>8}{d.path}: recorded {_short(d.recorded)}, replayed {_short(d.replayed)}"
        )
    return "\n".join(lines)


@click.command(epilog=EPILOG)
@click.argument("capture", metavar="CAPTURE")
@click.option(
    "--port", "url", required=True, metavar="URL", help="The pump: a device path or pyserial URL."
)
@click.option(
    "--keys",
    "keys_file",
    required=True,
    metavar="FILE",
    help="The pump's key file: opens the recorded sealed requests and the new sessions.",
)
@click.option(
    "--control",
    "control",
    is_flag=False,
    flag_value=DEFAULT_CONTROL,
    default=None,
    metavar="[unix:PATH|HOST:PORT]",
    help="The pump's control API (serve --clock manual --control): advance pump time and "
    "inject faults as the recording did. Alone: serve's default socket.",
)
@click.option(
    "--control-token",
    "token_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="The token file of a TCP control API.",
)
@click.option(
    "--exact-times",
    is_flag=True,
    help="Compare instants on the pump clock too (normalised away by default).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document at the end (exchanges: one object per request, id its line).",
)
@log_options
def replay(  # noqa: PLR0917 (click passes every option as an argument)
    capture: str,
    url: str,
    keys_file: str,
    control: str | None,
    token_file: Path | None,
    exact_times: bool,
    as_json: bool,
    verbose: int,
    quiet: int,
    log_level: str | None,
    log_format: str,
) -> None:
    """Play the programmer side of CAPTURE against the pump at URL and compare its answers.

    Each recorded session is opened again (new nonces, new counters) in its role, and each
    request the programmer sent in it is sent again, with the same command ids. Each answer
    is compared with the recorded one field by field, after the normalisations of
    docs/capture.md: instants on the pump clock (unless --exact-times) and session-dependent
    NAK limits. Handshakes and CLOSE_SESSION are the new programmer's own.

    -q prints only the summary line (no row per request); -v logs a line per request on
    stderr (with --json too); --log-format json writes the log lines as JSON lines.
    """
    log = LogConfig.from_options("replay", verbose, quiet, log_level, log_format)
    rows = not as_json and log.shows("info")
    from hil.key_files import load_keys  # noqa: PLC0415
    from hil.links import open_link  # noqa: PLC0415
    from hil.replay import play  # noqa: PLC0415

    keys = load_keys(keys_file)
    script = _script(capture, keys)
    if not any(session.exchanges for session in script.sessions):
        raise UsageError(
            f"{capture}: no request to replay (no opened session: is {keys_file} this pump's "
            "key file, and does the capture hold the handshakes?)"
        )
    client = _control_client(control, token_file)
    link = open_link(url)
    outcomes: list[Outcome] = []
    sessions = sum(1 for session in script.sessions if session.exchanges)
    log(f"replaying {sessions} session(s) of {capture} against {url}", "debug")
    if rows:
        click.echo(f"{'line':>6}  {'ses':>3} {'role':<9}  {'request':<21} {'answer':<19} result")
    try:
        target = LinkTarget(link, keys, client)
        outcomes = play(
            script,
            target,
            exact_times=exact_times,
            on_outcome=lambda o: _progress(o, rows, log),
        )
    except HilError as error:
        raise HilError(f"replay stopped: {error}") from None
    finally:
        link.close()
        if client is not None:
            client.close()
    differing = [o for o in outcomes if o.status == "differs" or o.replayed is None]
    counts = {
        "requests": len(outcomes),
        "same": sum(1 for o in outcomes if o.status == "same"),
        "differ": sum(1 for o in outcomes if o.status == "differs"),
        "unrecorded": sum(1 for o in outcomes if o.status == "unrecorded"),
        "unanswered": sum(1 for o in outcomes if o.replayed is None),
    }
    if as_json:
        document = {
            "capture": capture,
            "target": url,
            "exact_times": exact_times,
            "bench": client is not None,
            "sessions": len([s for s in script.sessions if not s.bench_only]),
            "unopened": script.unopened,
            "exchanges": [_outcome_json(o) for o in outcomes],
            **counts,
        }
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(
            f"{capture}: {counts['requests']} requests replayed, {counts['same']} same, "
            f"{counts['differ']} differ, {counts['unrecorded']} with no recorded answer, "
            f"{counts['unanswered']} unanswered"
        )
    if differing:
        sys.exit(1)


def _script(capture: str, keys: PumpKeys) -> Script:
    # Every line is checked before anything is sent (read_capture raises on the first bad one).
    from hil.capture import read_capture  # noqa: PLC0415
    from hil.replay import recorded_script  # noqa: PLC0415

    for _ in read_capture(capture):
        pass
    return recorded_script(read_capture(capture), keys)

"""``pumpemu fault``, ``pumpemu time`` and ``pumpemu truth``: the control API on the command line.

Each command connects to a running ``pumpemu serve --control [ADDRESS]`` (``--control`` or the
``PUMPEMU_CONTROL`` environment variable; neither: the default Unix socket), sends one request
and prints the answer as lines and tables, or as the raw JSON response with ``--json``. A TCP
address needs the token serve wrote: ``--control-token FILE``, ``PUMPEMU_CONTROL_TOKEN_FILE``,
or else the default token file for that port. Errors are one line, exit code 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hil.control_catalogue import DEFAULT_CONTROL, FAULT_TEXTS, MAX_CAP_NL
from hil.errors import HilError, UsageError

if TYPE_CHECKING:
    from hil.control import (
        ControlClient,
    )

__all__ = ["fault", "time_group", "truth"]

CONTROL_ENV = "PUMPEMU_CONTROL"
TOKEN_FILE_ENV = "PUMPEMU_CONTROL_TOKEN_FILE"  # noqa: S105 (a variable name, no secret)


class _CommandError(click.ClickException):
    """One line on stderr, exit code 2 (hil/cli.py's convention for user errors)."""

    exit_code = 2


def _control_option(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--control-token",
        "token_file",
        envvar=TOKEN_FILE_ENV,
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        help="The token file serve wrote for a TCP control API; or set "
        f"{TOKEN_FILE_ENV}. Default: the one serve writes by default for that port.",
    )(f)
    return click.option(
        "--control",
        "control",
        envvar=CONTROL_ENV,
        default=DEFAULT_CONTROL,
        metavar="unix:PATH|HOST:PORT",
        help=f"The emulator's control API (pumpemu serve --control); or set {CONTROL_ENV}. "
        "Default: the socket pumpemu serve --control (alone) opens.",
    )(f)


def _json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print the JSON response.")(f)


def _token_for(control: str, token_file: Path | None) -> str | None:
    """The token to send: from ``token_file`` if given; for a TCP address, else from the
    default token file for its port (an error if there is none)."""
    from hil.control import default_token_file, parse_control_address, read_token_file  # noqa: PLC0415

    address = parse_control_address(control)
    if token_file is not None:
        return read_token_file(token_file)
    if address.port is None:
        return None  # a Unix socket: its 0600 mode is the lock
    default = default_token_file(address.port)
    if not default.exists():
        raise UsageError(
            f"--control {address} is a TCP port and needs the token pumpemu serve wrote: "
            f"give --control-token FILE or set {TOKEN_FILE_ENV} (serve prints the file's "
            f"path; there is no {default})"
        )
    return read_token_file(default)


def _call(
    control: str, token_file: Path | None, action: Callable[[ControlClient], dict[str, Any]]
) -> dict[str, Any]:
    from hil.control import ControlClient  # noqa: PLC0415

    try:
        token = _token_for(control, token_file)
        with ControlClient(control, token=token) as client:
            return action(client)
    except HilError as exc:
        raise _CommandError(str(exc)) from None


def _echo_json(response: dict[str, Any]) -> None:
    click.echo(json.dumps(response, indent=2))


def _number(value: Any) -> str:
    if value is None:
        return "(not sensed)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# -- pumpemu fault ----------------------------------------------------------------------------

FAULT_EPILOG = """\b
Examples:
  pumpemu fault stall                   (serve --control: the default Unix socket)
  pumpemu fault stall --control 127.0.0.1:7001
  pumpemu fault stall --recover-after-s 3600 --control 127.0.0.1:7001 \\
      --control-token /tmp/pe.token      (the token file serve --control-token wrote)
  pumpemu fault leak --ppm 250000 --control unix:/tmp/pump.sock
  pumpemu fault magnet --scan-s 1800 --recovery-s 7200
  pumpemu fault repair catheter
  pumpemu fault inflammatory-mass --grow-s 3628800
  pumpemu fault cap-aspirate --volume-nl 1000000
  pumpemu fault cap-inject --volume-nl 2000000 --concentration-ug-per-ml 10000
  pumpemu fault list
"""


@click.group("fault", epilog=FAULT_EPILOG)
def fault() -> None:
    """Inject a plant fault into a running emulator (through its control API).

    Faults act on the physical plant; the firmware learns of them only through its
    sensors. Compare the two with pumpemu truth. See docs/serve.md for each fault.
    """


@fault.command("list", epilog="\b\nExample:\n  pumpemu fault list")
def fault_list() -> None:
    """List the faults and their parameters (no emulator needed)."""
    for name, (summary, params) in FAULT_TEXTS.items():
        click.echo(f"{name:<18} {summary}")
        for param, (required, text) in params.items():
            flag = param if param == "part" else f"--{param.replace('_', '-')}"
            click.echo(f"{'':<18}   {flag}: {text}{' (required)' if required else ''}")
    click.echo(f"{'cap-aspirate':<18} {CAP_ASPIRATE_SUMMARY}")
    click.echo(f"{'':<18}   --volume-nl: volume aspirated, nL (required)")


FAULT_INT_BOUND = 10**12
"""No fault parameter is larger than this (emulator/faults.py: MAX_DRAIN_NAH is the largest)."""

EXAMPLE_VALUES = {
    "recover_after_s": "3600",
    "ppm": "250000",
    "scan_s": "1800",
    "recovery_s": "7200",
    "nah": "100000000",
    "volume_nl": "2000000",
    "bit": "17",
    "delivered_ppm": "250000",
    "grow_s": "3628800",
    "period_s": "86400",
    "closed_s": "43200",
    "concentration_ug_per_ml": "10000",
}
"""Plausible values for each fault parameter, for the generated --help examples."""


def _fault_example(name: str, params: Mapping[str, tuple[bool, str]]) -> str:
    words = ["pumpemu", "fault", name]
    for param, (required, _text) in params.items():
        if param == "part":
            words.append("catheter")
        elif required or param in EXAMPLE_VALUES:
            words += [f"--{param.replace('_', '-')}", EXAMPLE_VALUES.get(param, "1")]
    return "\b\nExample:\n  " + " ".join([*words, "--control", "127.0.0.1:7001"])


def _make_fault_command(
    name: str, summary: str, fault_params: Mapping[str, tuple[bool, str]]
) -> click.Command:
    # From hil/control_catalogue.py, so the commands are declared without the emulator.
    params: list[click.Parameter] = []
    for param, (required, text) in fault_params.items():
        if param == "part":
            params.append(
                click.Argument(["part"], type=click.Choice(["motor", "catheter"]), required=True)
            )
        else:
            params.append(
                click.Option(
                    [f"--{param.replace('_', '-')}", param],
                    # The pump checks each fault's own range (emulator/faults.py) and says
                    # which; this bound only keeps absurd digit strings off the control API.
                    type=click.IntRange(-FAULT_INT_BOUND, FAULT_INT_BOUND),
                    required=required,
                    help=text,
                )
            )

    def callback(control: str, token_file: Path | None, as_json: bool, **values: Any) -> None:
        given = {k: v for k, v in values.items() if v is not None}
        response = _call(control, token_file, lambda client: client.fault(name, **given))
        if as_json:
            _echo_json(response)
            return
        applied = dict(response["applied"])
        kind = applied.pop("type")
        detail = " ".join(f"{k}={v}" for k, v in applied.items())
        click.echo(
            f"injected {name} ({kind}{' ' + detail if detail else ''}) at pump time "
            f"{response['now_ms']} ms"
        )

    command = click.Command(
        name,
        callback=callback,
        params=params,
        help=f"{summary[0].upper()}{summary[1:]}.",
        epilog=_fault_example(name, fault_params),
    )
    _control_option(command)
    _json_option(command)
    return command


for _name, (_summary, _params) in FAULT_TEXTS.items():
    fault.add_command(_make_fault_command(_name, _summary, _params))

CAP_ASPIRATE_SUMMARY = "aspirate through the catheter access port: does CSF return? (H2, H13)"


@fault.command(
    "cap-aspirate",
    epilog="\b\nExample:\n"
    "  pumpemu fault cap-aspirate --volume-nl 1000000 --control 127.0.0.1:7001",
)
@click.option(
    "--volume-nl",
    "volume_nl",
    type=click.IntRange(0, MAX_CAP_NL),
    required=True,
    help="Volume aspirated, nL.",
)
@_control_option
@_json_option
def cap_aspirate(volume_nl: int, control: str, token_file: Path | None, as_json: bool) -> None:
    """Aspirate through the catheter access port, as a clinician checks patency.

    CSF returns if the catheter is patent; nothing if it is blocked (occlusion, closed
    kink, grown mass) or the port is missed (flipped pump); fluid without CSF if the tip
    migrated or the catheter is off the pump. Drug solution drawn back leaves the catheter.
    The firmware is not told. Not a fault, but a plant operation (docs/serve.md).
    """
    response = _call(control, token_file, lambda client: client.cap_aspirate(volume_nl))
    if as_json:
        _echo_json(response)
        return
    click.echo(
        f"CAP aspiration at pump time {response['now_ms']} ms: {response['result']}; "
        f"drug solution {response['drug_nl']:,} nL ({response['drug_pg']:,} pg), "
        f"CSF {response['csf_nl']:,} nL"
    )


# -- pumpemu time ---------------------------------------------------------------------------

TIME_EPILOG = """\b
Examples:
  pumpemu time advance 30d --control 127.0.0.1:7001
  pumpemu time advance 1d12h
  pumpemu time advance 90        (seconds)
  pumpemu time show --control unix:/tmp/pump.sock
"""


@click.group("time", epilog=TIME_EPILOG)
def time_group() -> None:
    """Read or advance a running emulator's pump time (advance needs --clock manual)."""


@time_group.command(
    "advance",
    epilog="\b\nExamples:\n  pumpemu time advance 30d --control 127.0.0.1:7001\n"
    "  pumpemu time advance 6h --control unix:/tmp/pump.sock",
)
@click.argument("duration")
@_control_option
@_json_option
def time_advance(duration: str, control: str, token_file: Path | None, as_json: bool) -> None:
    """Advance a manual clock by DURATION: seconds, or units ms s m h d w (30d, 6h, 1d12h).

    Every pump event on the way happens in order (strokes, alarms, timeouts), event by
    event, so 30 days take milliseconds.
    """
    from hil.control import parse_duration  # noqa: PLC0415

    try:
        parse_duration(duration)
    except ValueError as exc:
        raise _CommandError(str(exc)) from None
    response = _call(control, token_file, lambda client: client.advance(duration))
    if as_json:
        _echo_json(response)
        return
    click.echo(
        f"advanced {duration} ({response['advanced_ms']:,} ms): pump time now {response['now']}"
    )


@time_group.command("show", epilog="\b\nExample:\n  pumpemu time show --control 127.0.0.1:7001")
@_control_option
@_json_option
def time_show(control: str, token_file: Path | None, as_json: bool) -> None:
    """Print the pump's time and clock."""
    response = _call(control, token_file, lambda client: client.info())
    if as_json:
        _echo_json(response)
        return
    click.echo(f"pump time {response['now']} ({response['now_ms']} ms), clock {response['clock']}")


# -- pumpemu truth --------------------------------------------------------------------------

TRUTH_EPILOG = """\b
Examples:
  pumpemu truth --control 127.0.0.1:7001
  pumpemu truth --json --control unix:/tmp/pump.sock
"""


@click.command("truth", epilog=TRUTH_EPILOG)
@_control_option
@_json_option
def truth(control: str, token_file: Path | None, as_json: bool) -> None:
    """Print the plant's physical truth beside what the firmware believes."""
    response = _call(control, token_file, lambda client: client.truth())
    if as_json:
        _echo_json(response)
        return
    firmware = response["firmware"]
    plant = response["plant"]
    alarms = ", ".join(a["kind"] for a in firmware["alarms"]) or "none"
    click.echo(f"pump time {response['now']}")
    click.echo(f"therapy state {firmware['state']}; alarms: {alarms}")
    rows = [("quantity", "firmware believes", "plant truth")]
    for row in response["compare"]:
        unit = f" ({row['unit']})" if row["unit"] else ""
        rows.append((f"{row['quantity']}{unit}", _number(row["firmware"]), _number(row["plant"])))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for i, row in enumerate(rows):
        click.echo(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}")
        if i == 0:
            click.echo(f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * widths[2]}")
    click.echo(f"fluid balance (in - out, should be 0): {plant['balance_nl']} nL")
    click.echo(f"drug balance (in - out, should be 0): {plant['balance_pg']} pg")

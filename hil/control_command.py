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

from hil import quantities as q
from hil.command_error import CommandError
from hil.control_catalogue import (
    CONTROL_ENV,
    DEFAULT_CONTROL,
    FAULT_TEXTS,
    MAX_CAP_NL,
    TOKEN_FILE_ENV,
    FaultText,
    parse_fault_param,
)
from hil.errors import HilError
from hil.json_output import echo_json, json_option

if TYPE_CHECKING:
    from hil.control import (
        ControlClient,
    )

__all__ = ["fault", "time_group", "truth"]


def control_options(
    *, default: str | None = DEFAULT_CONTROL, what: str | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--control ADDR`` and ``--control-token FILE`` with their environment variables: the
    same options, grammar and token rule (hil/control.py ``control_token``) wherever pumpemu
    reaches a control API. ``default`` None makes the control API optional."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        # click lists a function's options top down but appends to a built Command's in
        # call order: --control comes first in --help either way.
        return _token(_control(f)) if isinstance(f, click.Command) else _control(_token(f))

    def _token(f: Callable[..., Any]) -> Callable[..., Any]:
        return click.option(
            "--control-token",
            "token_file",
            envvar=TOKEN_FILE_ENV,
            type=click.Path(dir_okay=False, path_type=Path),
            metavar="FILE",
            help="The token file serve wrote for a TCP control API; or set "
            f"{TOKEN_FILE_ENV}. Default: the one serve writes by default for that port.",
        )(f)

    def _control(f: Callable[..., Any]) -> Callable[..., Any]:
        return click.option(
            "--control",
            "control",
            envvar=CONTROL_ENV,
            default=default,
            metavar="unix:PATH|HOST:PORT",
            help=what
            or f"The emulator's control API (pumpemu serve --control); or set {CONTROL_ENV}. "
            "Default: the socket pumpemu serve --control (alone) opens.",
        )(f)

    return decorate


_control_option = control_options()


def _json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print the JSON response.")(f)


def _call(
    control: str, token_file: Path | None, action: Callable[[ControlClient], dict[str, Any]]
) -> dict[str, Any]:
    from hil.control import connect_control  # noqa: PLC0415

    try:
        with connect_control(control, token_file) as client:
            return action(client)
    except HilError as exc:
        raise CommandError(str(exc)) from None


def _echo_json(response: dict[str, Any]) -> None:
    click.echo(json.dumps(response, indent=2))


def _number(value: Any, unit: str = "") -> str:
    """A truth-table cell in the one display style (docs/quantities.md): volumes in mL and
    masses in mg or µg, exactly; counts with thousands separators."""
    if value is None:
        return "(not sensed)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        if unit == "nL":
            return q.volume(value)
        if unit == "pg":
            return q.mass(value)
        return f"{value:,}{' ' + unit if unit else ''}"
    return str(value)


def _when(response: dict[str, Any]) -> str:
    """The instant a response names, as every command prints one: the pump clock (ISO
    8601) and the elapsed emulator time."""
    return q.instant(response["pump_clock_ms"], response["now_ms"])


def _show_param(name: str, value: Any) -> str:
    """A fault parameter's applied value in its unit (docs/quantities.md, "Display")."""
    if value is None:
        return "none"
    if isinstance(value, bool) or not isinstance(value, int):
        return str(value)
    if name.endswith("_s"):
        return q.duration(value)
    if name == "ppm" or name.endswith("_ppm"):
        return q.fraction(value)
    if name.endswith("_nl"):
        return q.volume(value)
    if name.endswith("_ug_per_ml"):
        return q.concentration(value)
    return f"{value:,}"


# -- pumpemu fault ----------------------------------------------------------------------------

FAULT_EPILOG = """\b
Examples:
  pumpemu fault stall                   (serve --control: the default Unix socket)
  pumpemu fault stall --control 127.0.0.1:7001
  pumpemu fault stall --recover-after 1h --control 127.0.0.1:7001 \\
      --control-token /tmp/pe.token      (the token file serve --control-token wrote)
  pumpemu fault leak --ppm 25% --control unix:/tmp/pump.sock
  pumpemu fault leak --ppm 250000        (a bare number keeps the old unit: ppm)
  pumpemu fault magnet --scan 30min --recovery 2h
  pumpemu fault repair catheter
  pumpemu fault inflammatory-mass --grow 6w
  pumpemu fault cap-aspirate --volume 1mL
  pumpemu fault cap-inject --volume 2mL --concentration 10mg/mL
  pumpemu fault list

Values take units in the one grammar (docs/quantities.md): durations 90s, 2 min, 1h30m,
3d; fractions 5%, 250000 ppm; volumes 2 mL, 50 uL; concentrations 10 mg/mL. A bare
number is in the unit the option's long name ends with (--scan-s 1800 is seconds).
"""


@click.group("fault", epilog=FAULT_EPILOG)
def fault() -> None:
    """Inject a plant fault into a running emulator (through its control API).

    Faults act on the physical plant; the firmware learns of them only through its
    sensors. Compare the two with pumpemu truth. See docs/serve.md for each fault.
    """


@fault.command("list", epilog="\b\nExamples:\n  pumpemu fault list\n  pumpemu fault list --json")
@json_option(
    'one JSON object: {"faults": [{"id", "summary", "parameters": [{"id", "flags", '
    '"help", "required"}, ...]}, ...]}'
)
def fault_list(as_json: bool) -> None:
    """List the faults and their parameters (no emulator needed)."""
    if as_json:
        echo_json({"faults": _fault_rows()})
        return
    for name, spec in FAULT_TEXTS.items():
        click.echo(f"{name:<18} {spec.summary}")
        for param, (required, text) in spec.params.items():
            flag = param if param == "part" else "/".join(_flags(param))
            click.echo(f"{'':<18}   {flag}: {text}{' (required)' if required else ''}")
    click.echo(f"{'cap-aspirate':<18} {CAP_ASPIRATE_SUMMARY}")
    click.echo(f"{'':<18}   --volume/--volume-nl: volume aspirated, nL (required)")


def _fault_rows() -> list[dict[str, Any]]:
    """fault list --json: each fault (``id`` its command name) and its parameters."""
    rows: list[dict[str, Any]] = [
        {
            "id": name,
            "summary": spec.summary,
            "parameters": [
                {
                    "id": param,
                    "flags": [param] if param == "part" else _flags(param),
                    "help": text,
                    "required": required,
                }
                for param, (required, text) in spec.params.items()
            ],
        }
        for name, spec in FAULT_TEXTS.items()
    ]
    volume = {
        "id": "volume",
        "flags": ["--volume", "--volume-nl"],
        "help": "volume aspirated, nL",
        "required": True,
    }
    rows.append({"id": "cap-aspirate", "summary": CAP_ASPIRATE_SUMMARY, "parameters": [volume]})
    return rows


FAULT_INT_BOUND = 10**12
"""No fault parameter is larger than this (emulator/faults.py: MAX_DRAIN_NAH is the largest)."""

EXAMPLE_VALUES = {
    "recover_after_s": "1h",
    "ppm": "25%",
    "scan_s": "30min",
    "recovery_s": "2h",
    "nah": "100000000",
    "volume_nl": "2mL",
    "bit": "17",
    "delivered_ppm": "25%",
    "grow_s": "6w",
    "period_s": "1d",
    "closed_s": "12h",
    "concentration_ug_per_ml": "10mg/mL",
}

_UNIT_SUFFIXES = ("_s", "_nl", "_ug_per_ml", "_ppm")


def _flags(param: str) -> list[str]:
    """A fault parameter's option names: the short one without its unit (``--scan``,
    ``--volume``), then the long one that names the unit a bare number is in."""
    long = f"--{param.replace('_', '-')}"
    for suffix in _UNIT_SUFFIXES:
        if param.endswith(suffix):
            return [f"--{param.removesuffix(suffix).replace('_', '-')}", long]
    return [long]


_METAVARS = {"_s": "DURATION", "_nl": "VOLUME", "_ug_per_ml": "CONCENTRATION", "ppm": "FRACTION"}


def _metavar(param: str) -> str:
    return next((m for end, m in _METAVARS.items() if param.endswith(end)), "N")


_UNIT_NOTES = {
    "DURATION": "a duration such as 90s, 2 min, 1h30m or 3d; a bare number is seconds",
    "VOLUME": "a volume such as 2 mL or 50 uL; a bare number is nL",
    "CONCENTRATION": "a concentration such as 10 mg/mL; a bare number is ug/mL",
    "FRACTION": "a fraction such as 5% or 250000 ppm; a bare number is ppm",
}
"""Plausible values for each fault parameter, for the generated --help examples."""


def _fault_example(name: str, params: Mapping[str, tuple[bool, str]]) -> str:
    words = ["pumpemu", "fault", name]
    for param, (required, _text) in params.items():
        if param == "part":
            words.append("catheter")
        elif required or param in EXAMPLE_VALUES:
            words += [_flags(param)[0], EXAMPLE_VALUES.get(param, "1")]
    return "\b\nExample:\n  " + " ".join([*words, "--control", "127.0.0.1:7001"])


def _make_fault_command(name: str, spec: FaultText) -> click.Command:
    # From hil/control_catalogue.py, so the commands are declared without the emulator.
    params: list[click.Parameter] = []
    for param, (required, text) in spec.params.items():
        if param == "part":
            params.append(
                click.Argument(["part"], type=click.Choice(["motor", "catheter"]), required=True)
            )
        else:
            metavar = _metavar(param)
            note = _UNIT_NOTES.get(metavar)
            params.append(
                click.Option(
                    [*_flags(param), param],
                    metavar=metavar,
                    required=required,
                    help=f"{text}{f' ({note})' if note else ''}",
                )
            )

    def callback(control: str, token_file: Path | None, as_json: bool, **values: Any) -> None:
        given = {
            k: v if k == "part" else _fault_value(k, v, signed=k in spec.signed)
            for k, v in values.items()
            if v is not None
        }
        response = _call(control, token_file, lambda client: client.fault(name, **given))
        if as_json:
            _echo_json(response)
            return
        applied = dict(response["applied"])
        kind = applied.pop("type")
        detail = ", ".join(
            f"{_flags(k)[0].removeprefix('--')} {_show_param(k, v)}" for k, v in applied.items()
        )
        click.echo(f"injected {name} ({kind}{' ' + detail if detail else ''}) at {_when(response)}")

    command = click.Command(
        name,
        callback=callback,
        params=params,
        help=f"{spec.summary[0].upper()}{spec.summary[1:]}.",
        epilog=_fault_example(name, spec.params),
    )
    _control_option(command)
    _json_option(command)
    return command


def _fault_value(param: str, text: str, *, signed: bool = False) -> int:
    """An option's value in the one grammar, as the integer the control API takes; one line
    and exit 2 if it is not one (the pump then checks the fault's own range)."""
    flag = "/".join(_flags(param))  # whichever the user typed, the line names it
    try:
        value = parse_fault_param(param, text, signed=signed)
    except ValueError as exc:
        raise CommandError(f"{flag}: {exc}") from None
    # This bound only keeps absurd numbers off the control API; emulator/faults.py checks
    # each fault's real range and says which.
    if not -FAULT_INT_BOUND <= value <= FAULT_INT_BOUND:
        raise CommandError(f"{flag}: {text!r} is out of range (at most {FAULT_INT_BOUND:,})")
    return value


for _name, _spec in FAULT_TEXTS.items():
    fault.add_command(_make_fault_command(_name, _spec))

CAP_ASPIRATE_SUMMARY = "aspirate through the catheter access port: does CSF return? (H2, H13)"


@fault.command(
    "cap-aspirate",
    epilog="\b\nExample:\n  pumpemu fault cap-aspirate --volume 1mL --control 127.0.0.1:7001",
)
@click.option(
    "--volume",
    "--volume-nl",
    "volume_text",
    metavar="VOLUME",
    required=True,
    help=f"Volume aspirated ({_UNIT_NOTES['VOLUME']}), at most {q.volume(MAX_CAP_NL)}.",
)
@_control_option
@_json_option
def cap_aspirate(volume_text: str, control: str, token_file: Path | None, as_json: bool) -> None:
    """Aspirate through the catheter access port, as a clinician checks patency.

    CSF returns if the catheter is patent; nothing if it is blocked (occlusion, closed
    kink, grown mass) or the port is missed (flipped pump); fluid without CSF if the tip
    migrated or the catheter is off the pump. Drug solution drawn back leaves the catheter.
    The firmware is not told. Not a fault, but a plant operation (docs/serve.md).
    """
    volume_nl = _fault_value("volume_nl", volume_text)
    if not 0 <= volume_nl <= MAX_CAP_NL:
        raise CommandError(
            f"--volume/--volume-nl: {volume_text!r} is more than {q.volume(MAX_CAP_NL)}"
        )
    response = _call(control, token_file, lambda client: client.cap_aspirate(volume_nl))
    if as_json:
        _echo_json(response)
        return
    click.echo(
        f"CAP aspiration at {_when(response)}: {response['result']}; "
        f"drug solution {q.volume(response['drug_nl'])} ({q.mass(response['drug_pg'])}), "
        f"CSF {q.volume(response['csf_nl'])}"
    )


# -- pumpemu time ---------------------------------------------------------------------------

TIME_EPILOG = """\b
Examples:
  pumpemu time advance 30d --control 127.0.0.1:7001
  pumpemu time advance 1d12h
  pumpemu time advance "2 min"
  pumpemu time advance "2d 08:00"
  pumpemu time advance 90        (seconds)
  pumpemu time show --control unix:/tmp/pump.sock
"""


@click.group("time", epilog=TIME_EPILOG)
def time_group() -> None:
    """Read or advance a running emulator's pump time (advance needs --clock manual)."""


@time_group.command(
    "advance",
    # "-5 min" reaches the grammar, which says a duration has no sign, rather than being
    # taken for an unknown option with a usage screen.
    context_settings={"ignore_unknown_options": True},
    epilog="\b\nExamples:\n  pumpemu time advance 30d --control 127.0.0.1:7001\n"
    "  pumpemu time advance 6h --control unix:/tmp/pump.sock\n"
    "  pumpemu time advance 1h30m\n"
    '  pumpemu time advance "2 min"\n'
    "  pumpemu time advance 250ms\n"
    "  pumpemu time advance 90        (a bare number is seconds)",
)
@click.argument("duration")
@_control_option
@_json_option
def time_advance(duration: str, control: str, token_file: Path | None, as_json: bool) -> None:
    """Advance a manual clock by DURATION: 90s, 2 min, 1h30m, 1.5h, 3d, 2d 08:00, 250ms
    (docs/quantities.md); a bare number is seconds.

    Every pump event on the way happens in order (strokes, alarms, timeouts), event by
    event, so 30 days take milliseconds.
    """

    try:
        ms = q.parse_duration_ms(duration, bare="s")
    except q.QuantityError as exc:
        raise CommandError(str(exc)) from None
    response = _call(control, token_file, lambda client: client.request("advance", ms=ms))
    if as_json:
        _echo_json(response)
        return
    click.echo(
        f"advanced {q.duration_ms(response['advanced_ms'])} "
        f"({response['advanced_ms']:,} ms): now {_when(response)}"
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
    click.echo(f"now {_when(response)}, clock {response['clock']}")


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
    click.echo(f"now {_when(response)}")
    click.echo(f"therapy state {firmware['state']}; alarms: {alarms}")
    rows = [("quantity", "firmware believes", "plant truth")]
    for row in response["compare"]:
        unit = row["unit"]
        rows.append((row["quantity"], _number(row["firmware"], unit), _number(row["plant"], unit)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for i, row in enumerate(rows):
        click.echo(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}")
        if i == 0:
            click.echo(f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * widths[2]}")
    click.echo(f"fluid balance (in - out, should be 0): {q.volume(plant['balance_nl'])}")
    click.echo(f"drug balance (in - out, should be 0): {q.mass(plant['balance_pg'])}")

"""The ``pumpemu`` command.

Every subcommand lives in its own module and is attached here by name, lazily: a command's
module (and the emulator, construct and rich behind it) is imported only when that command
runs or shows its help, so ``pumpemu --help`` answers at once. User errors end as one clear
line on stderr and exit code 2 (``UsageError``), never a traceback.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from hil.errors import HilError, UsageError

COMMANDS: dict[str, tuple[str, str, str]] = {
    "accuracy": (
        "hil.accuracy_command",
        "accuracy",
        "Draw the IEC 60601-2-24 trumpet curve of a simulated continuous delivery.",
    ),
    "campaign": (
        "hil.campaign.command",
        "campaign",
        "Run scenario sweeps many at a time, on local cores or a Dask cluster.",
    ),
    "capture": (
        "hil.capture_command",
        "capture",
        "Work on JSONL traffic captures (docs/capture.md).",
    ),
    "ctl": ("hil.ctl.command", "ctl", "Program and interrogate a pump: the reference programmer."),
    "decode": (
        "hil.decode_command",
        "decode",
        "Find and decode every frame in SOURCE, reporting noise between frames.",
    ),
    "demo": (
        "hil.demo.command",
        "demo",
        "Play a clinic visit against an emulated pump over a real pty, and summarise it.",
    ),
    "fault": (
        "hil.control_command",
        "fault",
        "Inject a plant fault into a running emulator (through its control API).",
    ),
    "hazards": (
        "hil.hazards_command",
        "hazards",
        "The hazard catalogue and its traceability to tests (a safety case's evidence).",
    ),
    "keys": ("hil.keys_command", "keys", "Provision and inspect per-pump role keys."),
    "proxy": (
        "hil.proxy.command",
        "proxy",
        "Inject link faults, frame by frame, between two serial links A and B.",
    ),
    "replay": (
        "hil.replay_command",
        "replay",
        "Play the programmer side of CAPTURE against the pump at URL and compare its answers.",
    ),
    "scenario": (
        "hil.scenario.command",
        "scenario",
        "Fault scenarios: months of pump time in seconds, each ending in a verdict.",
    ),
    "serve": (
        "hil.serve_command",
        "serve",
        "Serve one emulated pump to a programmer over a pty, a serial port or TCP.",
    ),
    "time": (
        "hil.control_command",
        "time_group",
        "Read or advance a running emulator's pump time (advance needs --clock manual).",
    ),
    "watch": (
        "hil.watch.command",
        "watch",
        "A live terminal dashboard of one running pump.",
    ),
    "wireshark": (
        "hil.wireshark.command",
        "wireshark",
        "The Wireshark dissector for pumpemu's protocol (docs/wireshark.md).",
    ),
    "truth": (
        "hil.control_command",
        "truth",
        "Print the plant's physical truth beside what the firmware believes.",
    ),
}
"""Command name -> (module, attribute, the one-line summary ``pumpemu --help`` lists). The
summary is the command's own (tests/hil/test_cli_help.py checks they agree)."""

EPILOG = """\b
Examples:
  pumpemu demo                                       a clinic visit over a real pty, in seconds
  pumpemu keys new --serial PE-000123 --out pump.keys
  pumpemu serve --pty --link ./pump.tty --keys pump.keys --clock manual --control
  pumpemu ctl --port ./pump.tty --keys pump.keys status
  pumpemu time advance 30d                           through serve's control socket
  pumpemu watch                                      a live dashboard: belief, truth, alarms
  pumpemu proxy --a pty --b ./pump.tty --drop 5% --corrupt 2%
  pumpemu decode capture.jsonl --keys pump.keys      every frame, sealed ones opened
  pumpemu scenario run --builtin                     the hazard scenario library, verdicts
  pumpemu accuracy --plot trumpet.svg                IEC 60601-2-24 trumpet curve, simulated

\b
Every subcommand has --help with its own examples. docs/ in the source tree documents the
protocol (protocol.md, security.md) and each command (serve.md, ctl.md, proxy.md, capture.md).
"""


def load_command(name: str) -> click.Command:
    """Import the command ``name`` (a key of COMMANDS) from its module."""
    module, attribute, _summary = COMMANDS[name]
    command = getattr(importlib.import_module(module), attribute)
    assert isinstance(command, click.Command)
    return command


class PumpemuGroup(click.Group):
    """Ends every subcommand's own errors as one line and an exit code, never a traceback:
    2 for the user's input (``UsageError``), 1 for the world failing (``HilError``).
    Subcommands load lazily (COMMANDS)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            return load_command(cmd_name)
        return self.commands.get(cmd_name)  # one attached with add_command (eagerly)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The summaries come from COMMANDS, so listing the commands imports none of them.
        rows = [
            (
                name,
                COMMANDS[name][2]
                if name in COMMANDS
                else self.commands[name].get_short_help_str(80),
            )
            for name in self.list_commands(ctx)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(2)
        except HilError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)


@click.group(
    cls=PumpemuGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EPILOG,
)
@click.version_option(package_name="pumpemu")
def main() -> None:
    """pumpemu: an emulator and test harness for implanted programmable drug pumps.

    It speaks the documented binary programming protocol (docs/protocol.md), so
    clinician-programmer software, serial test rigs and CI pipelines can test against a
    pump that behaves like an implanted one.
    """

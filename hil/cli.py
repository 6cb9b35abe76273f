"""The ``pumpemu`` command.

Every subcommand lives in its own module and is attached here. User errors end as one clear
line on stderr and exit code 2 (``UsageError``), never a traceback.
"""

from __future__ import annotations

from typing import Any

import click

from hil import control_command, decode_command, keys_command, serve_command
from hil.campaign import command as campaign_command
from hil.ctl import command as ctl_command
from hil.demo import command as demo_command
from hil.errors import HilError, UsageError
from hil.proxy import command as proxy_command
from hil.scenario import command as scenario_command

EPILOG = """\b
Examples:
  pumpemu demo                                       a clinic visit over a real pty, in seconds
  pumpemu keys new --serial PE-000123 --out pump.keys
  pumpemu serve --pty --keys pump.keys --clock manual --control
  pumpemu ctl --port /dev/pts/5 --keys pump.keys status
  pumpemu time advance 30d                           through serve's control socket
  pumpemu proxy --a pty --b /dev/pts/5 --drop 5% --corrupt 2%
  pumpemu decode capture.jsonl --keys pump.keys      every frame, sealed ones opened
  pumpemu scenario run --builtin                     the hazard scenario library, verdicts

\b
Every subcommand has --help with its own examples. docs/ in the source tree documents the
protocol (protocol.md, security.md) and each command (serve.md, ctl.md, proxy.md, capture.md).
"""


class PumpemuGroup(click.Group):
    """Ends every subcommand's own errors as one line and an exit code, never a traceback:
    2 for the user's input (``UsageError``), 1 for the world failing (``HilError``)."""

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


main.add_command(demo_command.demo)
main.add_command(keys_command.keys)
main.add_command(decode_command.decode)
main.add_command(proxy_command.proxy)
main.add_command(serve_command.serve)
main.add_command(control_command.fault)
main.add_command(control_command.time_group)
main.add_command(control_command.truth)
main.add_command(ctl_command.ctl)
main.add_command(scenario_command.scenario)
main.add_command(campaign_command.campaign)

"""The ``pumpemu`` command.

Every subcommand lives in its own module and is attached here. User errors end as one clear
line on stderr and exit code 2 (``UsageError``), never a traceback.
"""

from __future__ import annotations

import click

from hil import decode_command, keys_command
from hil.proxy import command as proxy_command

EPILOG = """\b
Examples:
  pumpemu decode a55a0101...        decode frames given as hex
  pumpemu decode capture.bin --json  decode a binary capture for a machine
"""


@click.group(
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


main.add_command(keys_command.keys)
main.add_command(decode_command.decode)
main.add_command(proxy_command.proxy)

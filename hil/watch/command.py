"""``pumpemu watch``: a live terminal dashboard of one running pump (docs/watch.md).

It subscribes to the control API of ``pumpemu serve --control`` (docs/serve.md,
"subscribe") with the same address and token rules as ``pumpemu fault``, ``time`` and
``truth``, and fails in one line (exit code 2) before drawing anything if it cannot.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from hil.command_error import CommandError
from hil.control_command import control_options
from hil.errors import HilError
from hil.watch.keys import KEY_ACTIONS, QUIT_KEY

if TYPE_CHECKING:
    from hil.control import ControlClient

__all__ = ["watch"]

_KEY_LINES = "\n".join(f"  {a.key}  {a.label}" for a in KEY_ACTIONS)

WATCH_EPILOG = f"""\b
Keys:
{_KEY_LINES}
  {QUIT_KEY}  quit

\b
Examples:
  pumpemu serve --pty --keys pe.keys --clock manual --control
  pumpemu watch                              (the default Unix socket)
  pumpemu watch --control unix:/tmp/pump.sock
  pumpemu watch --control 127.0.0.1:7001 --control-token /tmp/pe.token
"""


@click.command("watch", epilog=WATCH_EPILOG)
@control_options()
def watch(control: str, token_file: Path | None) -> None:
    """A live terminal dashboard of one running pump.

    Shows therapy state, the reservoir and the other quantities the firmware believes beside
    the plant's truth, alarms with the tone each sounds, the plant faults in force, the
    programmer's session and role, the last frames, conformance violations as they happen
    and the pump's events. Keys inject common faults and advance a manual clock (serve
    --clock manual). Everything comes from the control API's subscribe op (docs/serve.md).

    An interactive screen, so it has no --json: a script subscribes to the same events with
    the control API's subscribe op, one JSON object per line (docs/serve.md).
    """
    # The control client, the emulator's names and textual load here, so --help stays quick
    # (docs/architecture.md, "Layers and imports").
    from hil.control import ControlClient, EventStream, control_token  # noqa: PLC0415
    from hil.watch.app import WatchApp  # noqa: PLC0415

    try:
        token = control_token(control, token_file)
        stream = EventStream(control, token=token, timeout_s=10.0)
    except HilError as exc:
        raise CommandError(str(exc)) from None

    def client() -> ControlClient:
        return ControlClient(control, token=token, timeout_s=10.0)

    WatchApp(stream, control, client).run()

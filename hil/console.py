"""The one way pumpemu's commands print rich output (tables, panels).

On a terminal, rich formats for the terminal's width with colour. Anywhere else (a pipe, a
file, CI's log) the output is for a program or a later reader: never wrapped at 80 columns
(a hex value or a follow-up command split across lines cannot be copied), never styled
with escape codes. Every command builds its console here, so they all behave alike.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console

__all__ = ["PIPE_WIDTH", "make_console"]

PIPE_WIDTH = 10_000
"""The width rich formats for when the output is not a terminal: wider than any line
pumpemu prints, so nothing wraps; tables keep their natural width."""


def make_console(file: TextIO | None = None) -> Console:
    """A console on ``file`` (default stdout): terminal-formatted on a tty, else plain."""
    out = sys.stdout if file is None else file
    if out.isatty():
        return Console(file=out, highlight=False, soft_wrap=False)
    return Console(
        file=out,
        width=PIPE_WIDTH,
        highlight=False,
        soft_wrap=True,
        no_color=True,
        color_system=None,
        force_terminal=False,
    )

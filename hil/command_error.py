"""The one way a command reports a user's mistake: one line on stderr and exit code 2
(hil/cli.py's convention; docs/architecture.md, principle 8, "Errors split by blame")."""

from __future__ import annotations

import click

__all__ = ["CommandError"]


class CommandError(click.ClickException):
    """One line on stderr, exit code 2: bad input, nothing done."""

    exit_code = 2

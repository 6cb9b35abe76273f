"""The one way a command prints machine-readable output: ``--json`` (docs/architecture.md,
"Command output").

Every command that prints something a script would want takes ``--json`` (issue 16, item 5;
tests/hil/test_json_everywhere.py walks the click tree and enforces it). With it, stdout
carries exactly one JSON document on one line (``--json`` help says when a command streams
JSON lines instead), keys are stable and documented on the command's page in docs/, and
every list of things is a list of objects each with an ``id``. Errors stay one line on
stderr with exit code 2 (hil/command_error.py): a script reads stdout only on success.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["echo_json", "json_option"]

_F = TypeVar("_F", bound=Callable[..., Any])


def json_option(what: str) -> Callable[[_F], _F]:
    """``--json`` (passed as ``as_json``): ``what`` completes "Print ..." in its help."""

    def decorate(command: _F) -> _F:
        return click.option("--json", "as_json", is_flag=True, help=f"Print {what}.")(command)

    return decorate


def echo_json(document: object) -> None:
    """``document`` on stdout as one line of JSON (non-ASCII kept as is, UTF-8)."""
    click.echo(json.dumps(document, ensure_ascii=False))

"""The ``--conformance`` and ``--conformance-report`` options, shared by ``pumpemu serve``
and ``pumpemu proxy`` (docs/conformance.md): one definition, so the two commands take the
same values with the same defaults."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["conformance_options"]

DEFAULT_REPORT_DIR = Path("pumpemu-conformance")
"""hil.conformance.recorder.DEFAULT_REPORT_DIR, copied so that declaring these options loads
no recorder, codec or emulator (``pumpemu serve --help``; tests/hil/test_cli_lazy_imports.py
checks the copy)."""

_F = TypeVar("_F", bound=Callable[..., Any])


def conformance_options(judged: str) -> Callable[[_F], _F]:
    """The two options, ``judged`` saying whom the command judges and when it reports."""

    def decorate(command: _F) -> _F:
        command = click.option(
            "--conformance-report",
            "conformance_report",
            type=click.Path(file_okay=False, path_type=Path),
            metavar="DIR",
            help=f"Where --conformance writes its reports (default: ./{DEFAULT_REPORT_DIR}).",
        )(command)
        return click.option(
            "--conformance",
            "conformance",
            is_flag=False,
            flag_value="report",
            type=click.Choice(["report", "strict"]),
            metavar="[report|strict]",
            help=f"{judged} strict: exit 1 if any rule was broken.",
        )(command)

    return decorate

"""How the long-running commands (``pumpemu serve``, ``proxy``, ``campaign run``, ``scenario
run``, ``demo``, ``replay``) log: one line per event on stderr, filtered by level, as text or
JSON lines (docs/serve.md, "Logs"). Their result on stdout is never affected.

The batch commands follow the same levels: ``-q`` drops the progress bar and the info lines,
leaving the result or summary; ``-v`` adds one debug line per run or request.

Levels, quietest last: ``debug``, ``info`` (sessions, security events, alarms: the default),
``warning`` (a state not saved, a link lost, the summary at stop), ``error`` (the serve loop
failed). ``-q`` shows warnings and errors, ``-qq`` errors only, ``-v`` debug too;
``--log-level`` sets it outright. ``--log-format json`` writes each line as a JSON object
(``time`` UTC ISO 8601, ``program``, ``level``, ``message``, and for a line stamped with a
pump instant ``pump_clock_ms``, ``pump_clock``, ``internal_ms`` and ``elapsed``) for a log
collector.

The level of a line is read from what it says (``LEVEL_OF``): the emitters stay plain
``Callable[[str], None]`` hooks (hil/serve.py's ``Log``), so the sans-IO parts never learn
about logging.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

__all__ = ["LEVELS", "LogConfig", "instant_fields", "level_of", "log_options"]

LEVELS = ("debug", "info", "warning", "error")

LEVEL_OF: tuple[tuple[str, str], ...] = (
    ("serve loop failed", "error"),
    ("state not saved", "warning"),
    ("cannot be reopened", "warning"),
    ("reopening", "warning"),
    ("link back", "warning"),
    ("stopped (", "warning"),
    ("state not stored", "warning"),
)
"""A line containing the first text is logged at the second level; any other: info."""


def level_of(line: str) -> str:
    for text, level in LEVEL_OF:
        if text in line:
            return level
    return "info"


def instant_fields(line: str) -> dict[str, Any]:
    """A stamped line's instant as JSON fields (hil/pump_text.py ``StampedLine``): the pump
    clock in ms and ISO 8601, the internal timeline in ms and as elapsed time; {} for a
    line that names no instant. Read by attribute so this module loads nothing heavy."""
    pump_clock_ms = getattr(line, "pump_clock_ms", None)
    internal_ms = getattr(line, "internal_ms", None)
    if not isinstance(pump_clock_ms, int) or not isinstance(internal_ms, int):
        return {}
    from hil import quantities as q  # noqa: PLC0415

    return {
        "pump_clock_ms": pump_clock_ms,
        "pump_clock": q.pump_time(pump_clock_ms),
        "internal_ms": internal_ms,
        "elapsed": q.elapsed(internal_ms),
    }


class LogConfig:
    """Where and how one command logs."""

    def __init__(self, program: str, level: str = "info", fmt: str = "text") -> None:
        if level not in LEVELS:
            raise ValueError(f"log level {level!r}: one of {', '.join(LEVELS)}")
        if fmt not in ("text", "json"):
            raise ValueError(f"log format {fmt!r}: text or json")
        self.program = program
        self.threshold = LEVELS.index(level)
        self.fmt = fmt

    def shows(self, level: str) -> bool:
        """Whether a line at ``level`` is logged (a progress bar is drawn at info)."""
        return LEVELS.index(level) >= self.threshold

    def __call__(self, line: str, level: str | None = None) -> None:
        """Log ``line`` at ``level`` (None: the level its text says, ``LEVEL_OF``)."""
        level = level_of(line) if level is None else level
        if not self.shows(level):
            return
        if self.fmt == "json":
            now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            record: dict[str, Any] = {
                "time": now,
                "program": self.program,
                "level": level,
                "message": str(line),
            }
            record.update(instant_fields(line))
            text = json.dumps(record)
        else:
            text = f"pumpemu {self.program}: {line}"
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    @classmethod
    def from_options(
        cls, program: str, verbose: int, quiet: int, level: str | None, fmt: str
    ) -> LogConfig:
        if level is None:
            index = LEVELS.index("info") - verbose + quiet
            level = LEVELS[max(0, min(index, len(LEVELS) - 1))]
        return cls(program, level, fmt)


_F = TypeVar("_F", bound=Callable[..., Any])


def log_options(command: _F) -> _F:
    """-v/-q/--log-level/--log-format for a long-running command."""
    options = [
        click.option("-v", "--verbose", count=True, help="More log lines (-v: debug)."),
        click.option(
            "-q", "--quiet", count=True, help="Fewer log lines (-q: warnings, -qq: errors)."
        ),
        click.option(
            "--log-level",
            type=click.Choice(LEVELS),
            default=None,
            help="The least severe level logged (overrides -v/-q; default info).",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            help=(
                "json: one JSON object per line (time, program, level, message; stamped "
                "lines add pump_clock_ms, pump_clock, internal_ms, elapsed)."
            ),
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command

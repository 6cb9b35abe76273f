"""hil/console.py: output that is not a terminal is never wrapped or styled."""

from __future__ import annotations

import io

from rich.table import Table

from hil.console import make_console

LONG = "pumpemu decode capture.jsonl --keys pump.keys " + "a5 5a 01 " * 40


def test_a_pipe_gets_whole_lines_and_no_escape_codes() -> None:
    out = io.StringIO()
    console = make_console(out)
    table = Table("step", "detail")
    table.add_row("follow up", LONG)
    console.print(table)
    console.print(LONG)
    text = out.getvalue()
    assert "\x1b[" not in text
    assert sum(1 for line in text.splitlines() if LONG in line) == 2  # neither line wrapped

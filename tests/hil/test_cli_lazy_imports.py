"""``pumpemu <cmd> --help`` loads only the command's declaration (issue 15, item 3).

Each command module declares its click options with light imports at its top and imports
the heavy stack (the emulator, the codec's construct layouts, rich's consoles, matplotlib)
inside its callbacks (docs/architecture.md, "Layers and imports"). Each command path of
the click tree, found by walking it so a new command is covered without editing this
file, shows its help in a fresh interpreter, which then reports which of those packages
it imported: none may be.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hil.cli import main
from hil.cli_tree import command_paths

HEAVY = ("emulator", "construct", "rich", "matplotlib")

PROBE = f"""
import json, sys
from hil.cli import main
try:
    main(sys.argv[1:] + ["--help"], prog_name="pumpemu")
except SystemExit as end:
    code = end.code
else:
    code = 0
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
print(json.dumps({{"code": code, "heavy": heavy}}), file=sys.stderr)
"""


PATHS = command_paths(main)


def test_the_walk_reaches_nested_commands() -> None:
    # Without the leaves, the table below would pass vacuously.
    for path in (
        ("ctl", "program"),
        ("ctl", "trial", "record"),
        ("scenario", "run"),
        ("fault", "stall"),
    ):
        assert path in PATHS


@pytest.mark.e2e
@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) or "pumpemu" for p in PATHS])
def test_help_imports_none_of_the_heavy_stack(path: tuple[str, ...]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr
    assert "Usage:" in done.stdout
    assert report["heavy"] == [], f"pumpemu {' '.join(path)} --help imported {report['heavy']}"


def _copies() -> list[tuple[str, object, object]]:
    """(what, the light copy a command declares with, the value it copies)."""
    from emulator.accuracy import DEFAULT_SCALE  # noqa: PLC0415
    from emulator.trial import TrialOutcome  # noqa: PLC0415
    from hil import (  # noqa: PLC0415
        accuracy_command,
        control,
        control_catalogue,
        decode_command,
        links,
        serve_command,
    )
    from hil.capture import NOISE_RECORD_MAX  # noqa: PLC0415
    from hil.conformance import options, recorder  # noqa: PLC0415
    from hil.ctl import trial_command  # noqa: PLC0415
    from hil.proxy import command as proxy_command  # noqa: PLC0415
    from hil.proxy import engine, faults  # noqa: PLC0415

    return [
        ("accuracy --scale default", accuracy_command.DEFAULT_SCALE, DEFAULT_SCALE),
        ("decode noise item", decode_command.NOISE_ITEM_MAX, NOISE_RECORD_MAX),
        ("CAP bound", control_catalogue.MAX_CAP_NL, control.MAX_CAP_NL),
        ("conformance report dir", options.DEFAULT_REPORT_DIR, recorder.DEFAULT_REPORT_DIR),
        ("trial outcomes", trial_command.TRIAL_OUTCOMES, tuple(o.value for o in TrialOutcome)),
        ("proxy seed bound", proxy_command.MAX_SEED, faults.MAX_SEED),
        ("proxy baud bound", proxy_command.MAX_BAUD, links.MAX_BAUD),
        ("serve baud bound", serve_command.MAX_BAUD, links.MAX_BAUD),
        ("proxy idle default", proxy_command.DEFAULT_IDLE_MS, engine.DEFAULT_IDLE_MS),
        ("proxy idle bound", proxy_command.MAX_IDLE_MS, engine.MAX_IDLE_MS),
        (
            "proxy fault options",
            list(proxy_command._FAULT_HELP),
            [k.value for k in faults.FaultKind],
        ),
    ]


COPIES = [what for what, _copy, _real in _copies()]


@pytest.mark.parametrize("what", COPIES, ids=COPIES)
def test_each_light_copy_equals_what_it_copies(what: str) -> None:
    """Declaring options without the heavy stack means copying a few of its values; each
    copy must stay what it copies (a changed bound or a new fault fails here)."""
    copies = {name: (copy, real) for name, copy, real in _copies()}
    copy, real = copies[what]
    if what == "proxy fault options":  # one option per FaultKind, in any order
        assert sorted(copy) == sorted(real)  # type: ignore[call-overload]
    else:
        assert copy == real

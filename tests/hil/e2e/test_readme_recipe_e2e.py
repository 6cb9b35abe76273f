"""README.md's hardware-in-the-loop recipe, run verbatim: the commands are read from the
README, and the pty is reached through ``serve --link``, never a hard-coded /dev/pts/N."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
RECIPE_TIMEOUT_S = 180


def recipe() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Hardware in the loop", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the README's hardware-in-the-loop section has no sh block"
    return block.group(1)


def test_the_recipe_names_no_fixed_pty() -> None:
    assert "/dev/pts/" not in recipe()
    assert "--link" in recipe()


@pytest.mark.e2e
def test_the_readme_recipe_runs_verbatim(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "hil" / "examples", tmp_path / "hil" / "examples")
    script = tmp_path / "recipe.sh"
    # The recipe as the README shows it, then the clean-up a user does by hand: stop serve.
    script.write_text(
        "set -euo pipefail\n" + recipe() + "kill -TERM %1\nwait %1 || true\n",
        encoding="utf-8",
    )
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "XDG_RUNTIME_DIR": str(tmp_path),  # this test's own control socket
    }
    run = subprocess.run(
        ["bash", str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=RECIPE_TIMEOUT_S,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert "applied" in run.stdout  # the prescription was committed
    assert "MOTOR_STALL" in output or "motor" in run.stdout.lower()
    # The recipe set the pump clock first (set-clock shows the 1970 it replaced), so
    # nothing after it prints a 1970 date.
    after_set_clock = run.stdout.split("Status", 1)[1]
    # A date, not any "1970": the decode's wall-clock microseconds (12.819700Z) may hold one.
    assert re.search(r"(?<!\d)1970-\d\d-\d\d", after_set_clock) is None, after_set_clock
    assert not (tmp_path / "pump.tty").exists()  # serve removed its link on exit
    assert (tmp_path / "visit.jsonl").stat().st_size > 0

"""The `--report` page renders in a real browser with no console errors (headless Chromium,
the Debian package `chromium`). Skipped where Chromium is not installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from hil.cli import main

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium_without_console_errors(tmp_path: Path) -> None:
    assert CHROMIUM is not None
    out = tmp_path / "report"
    CliRunner().invoke(
        main, ["scenario", "run", "--builtin", "--hazard", "H1", "--report", str(out)]
    )
    page = out / "index.html"
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Scenario report" in done.stdout
    assert "h01-pocket-fill-found-at-next-refill" in done.stdout
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == []

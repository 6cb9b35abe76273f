"""The `--report` pages (scenario and campaign) render in a real browser with no console
errors (headless Chromium, the Debian package `chromium`, which .ci/run installs). Skipped
where Chromium is not installed, except in CI (CI=true), where a missing browser fails the
test."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from hil.cli import main
from tests.hil.campaign.leak_sweep import write_leak_sweep

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _dump_dom(page: Path, tmp_path: Path) -> str:
    """The page as Chromium rendered it; fails on a console message (an error, a blocked
    load)."""
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == []
    return done.stdout


def test_report_renders_in_headless_chromium_without_console_errors(tmp_path: Path) -> None:
    out = tmp_path / "report"
    CliRunner().invoke(
        main, ["scenario", "run", "--builtin", "--hazard", "H1", "--report", str(out)]
    )
    dom = _dump_dom(out / "index.html", tmp_path)
    assert "Scenario report" in dom
    assert "h01-pocket-fill-found-at-next-refill" in dom


def test_campaign_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    # A real campaign: a spawned process pool, the JSONL, then the page from its lines.
    out = tmp_path / "report"
    leaks = write_leak_sweep(tmp_path)
    result = CliRunner().invoke(
        main,
        ["campaign", "run", str(leaks), "--workers", "2", "--out", str(tmp_path / "r.jsonl"),
         "--report", str(out)],
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # two runs fail the dose oracle's bound
    assert f"report: {out / 'index.html'}" in result.output
    dom = _dump_dom(out / "index.html", tmp_path)
    assert "Campaign report" in dom
    assert "4 pass, 2 fail" in dom
    assert dom.count('class="plot histogram"') >= 2
    assert dom.count('class="plot scatter"') >= 2
    assert dom.count("--rerun") == 2

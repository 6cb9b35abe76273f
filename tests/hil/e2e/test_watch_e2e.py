"""``pumpemu watch`` headless (textual's Pilot) against a real ``pumpemu serve`` process.

The acceptance test of issue 16 item 2: the dashboard shows the pump, a fault injected
through its own key binding changes what it shows, manual time moves from its key, and
``q`` quits cleanly (the event stream is closed and serve keeps running).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from hil.control import ControlClient, EventStream
from hil.watch.app import WatchApp
from protocol.keys import PumpKeys
from tests.hil.e2e.conftest import ServeProcess, pumpemu_command

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

Serve = Callable[..., ServeProcess]
SHOW_TIMEOUT_S = 10.0


async def shows(pilot: Pilot[None], app: WatchApp, panel: str, text: str) -> None:
    """Wait (bounded) until ``panel`` shows ``text``."""
    deadline = time.monotonic() + SHOW_TIMEOUT_S
    while text not in app.panel_text(panel):
        assert time.monotonic() < deadline, (
            f"panel {panel!r} never showed {text!r}; it shows:\n{app.panel_text(panel)}"
        )
        await pilot.pause(0.05)


def start_serve(serve: Serve, key_file: Path, control: str) -> ServeProcess:
    pump = serve("--pty", "--keys", str(key_file), "--clock", "manual", "--control", control)
    pump.first_line()
    pump.wait_stderr("control API listening")
    return pump


def test_watch_shows_a_fault_from_its_own_key_and_quits_cleanly(
    serve: Serve, pump_keys: tuple[PumpKeys, Path], tmp_path: Path
) -> None:
    _keys, key_file = pump_keys
    control = f"unix:{tmp_path / 'control.sock'}"
    pump = start_serve(serve, key_file, control)
    app = WatchApp(
        EventStream(control, timeout_s=SHOW_TIMEOUT_S),
        control,
        lambda: ControlClient(control, timeout_s=SHOW_TIMEOUT_S),
    )

    async def drive() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            await shows(pilot, app, "pump", "therapy STOPPED")
            await shows(pilot, app, "alarms", "no alarms")
            assert "PE-000042" in app.panel_text("pump")
            await pilot.press("c")  # memory corruption, through the key binding
            await shows(pilot, app, "events", "fault injected: MemoryCorruption")
            await pilot.press("t")  # +1 h of manual time: the firmware senses it
            await shows(pilot, app, "pump", "therapy SUSPENDED_BY_ALARM")
            await shows(pilot, app, "pump", "1970-01-01T01:00:00 (+0d 01:00)")
            await shows(pilot, app, "events", "1970-01-01T01:00:00 (+0d 01:00) time advanced 1 h")
            await shows(pilot, app, "alarms", "SOUNDING: 3 s two-tone")
            await shows(pilot, app, "alarms", "MEMORY_ERROR (critical)")
            await pilot.press("o")  # a full occlusion: plant truth only
            await shows(pilot, app, "faults", "catheter OCCLUDED")
            await pilot.press("q")
            await pilot.pause()
        assert app.return_code == 0

    asyncio.run(drive())
    assert not app.feeding  # the stream was closed: unsubscribed
    with ControlClient(control) as client:  # serve lives on, with what the keys did
        truth = client.truth()
    assert truth["firmware"]["state"] == "SUSPENDED_BY_ALARM"
    assert truth["plant"]["catheter"] == "OCCLUDED"
    assert pump.proc.poll() is None
    pump.wait_stderr("subscribed to")


def test_watch_shows_the_end_when_serve_stops(
    serve: Serve, pump_keys: tuple[PumpKeys, Path], tmp_path: Path
) -> None:
    _keys, key_file = pump_keys
    control = f"unix:{tmp_path / 'control.sock'}"
    pump = start_serve(serve, key_file, control)
    app = WatchApp(EventStream(control), control, lambda: ControlClient(control))

    async def drive() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            await shows(pilot, app, "pump", "therapy STOPPED")
            assert pump.stop() == 0
            await shows(pilot, app, "pump", "ENDED: serve is stopping")
            await pilot.press("q")
            await pilot.pause()

    asyncio.run(drive())
    assert not app.feeding


def test_watch_refuses_an_unreachable_control_api_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [*pumpemu_command(), "watch", "--control", f"unix:{tmp_path / 'none.sock'}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("Error: cannot reach the control API at unix:")
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_top_level_help_does_not_import_textual() -> None:
    code = (
        "import sys\n"
        "from hil.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('textual' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert "watch" in done.stdout
    assert done.stdout.strip().endswith("False")

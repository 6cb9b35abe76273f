"""``pumpemu replay`` of the demo's capture against a served pump.

The served pump starts where the demo's did (a copy of the ``pumpemu-demo-start.state`` the
demo writes, under the demo's key file), on a manual clock with a control API, so the replay
follows the recorded pump time and the MRI fault. Against that pump no answer differs;
against the same pump built on a profile with another rate limit, the one answer that shows
the limit (DEVICE_INFO) is reported, and the exit status is 1.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from emulator.device import PumpDevice
from hil.demo.command import implanted_pump
from hil.key_files import load_keys
from hil.state_file import seal_state, write_state_file
from tests.hil.e2e.conftest import ServeProcess, pumpemu_command

pytestmark = pytest.mark.e2e

TIMEOUT_S = 300
PROFILES = Path(__file__).resolve().parents[3] / "emulator" / "profiles"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [*pumpemu_command(), "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return out


def serve_demo_pump(
    serve: Callable[..., ServeProcess], demo: Path, tmp_path: Path, profile: str | None
) -> tuple[str, str]:
    """A served pump in the demo's starting state: a copy of the state file the demo wrote,
    or (with ``profile``) the same pump built on that profile; (its pty, its control
    address)."""
    state = tmp_path / "start.state"
    if profile is None:
        shutil.copyfile(demo / "pumpemu-demo-start.state", state)
    else:
        keys = load_keys(demo / "pumpemu-demo.keys")
        device = PumpDevice(implanted_pump(profile), keys, secrets.token_bytes)
        write_state_file(state, seal_state(keys, device.snapshot()))
    control = f"unix:{tmp_path / 'control.sock'}"
    process = serve(
        "--pty",
        "--keys",
        str(demo / "pumpemu-demo.keys"),
        "--state",
        str(state),
        "--clock",
        "manual",
        "--control",
        control,
    )
    return process.first_line(), control


def replay(demo: Path, port: str, control: str, *extra: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [
            *pumpemu_command(),
            "replay",
            str(demo / "pumpemu-demo-capture.jsonl"),
            "--port",
            port,
            "--keys",
            str(demo / "pumpemu-demo.keys"),
            "--control",
            control,
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_the_demo_replays_against_its_starting_pump_without_a_difference(
    serve: Callable[..., ServeProcess], demo: Path, tmp_path: Path
) -> None:
    port, control = serve_demo_pump(serve, demo, tmp_path, None)
    code, report = replay(demo, port, control, "--exact-times")
    differing = [e for e in report["exchanges"] if e["status"] != "same"]
    assert differing == []
    assert code == 0
    assert report["requests"] >= 80  # the visit, 62 patient sessions, the last interrogation
    assert report["same"] == report["requests"]
    assert report["exact_times"] is True  # even the instants: time and the MRI were followed


def test_a_pump_with_another_rate_limit_is_reported(
    serve: Callable[..., ServeProcess], demo: Path, tmp_path: Path
) -> None:
    text = (PROFILES / "peristaltic-20.toml").read_text("utf-8")
    assert "rate_max_nl_per_day = 24_000_000" in text
    profile = tmp_path / "lower-max.toml"
    profile.write_text(
        text.replace("rate_max_nl_per_day = 24_000_000", "rate_max_nl_per_day = 20_000_000"),
        "utf-8",
    )
    port, control = serve_demo_pump(serve, demo, tmp_path, str(profile))
    code, report = replay(demo, port, control)
    differing = [e for e in report["exchanges"] if e["status"] != "same"]
    assert code == 1
    assert [(e["request"]["type"], e["differences"]) for e in differing] == [
        (
            "ReadDeviceInfo",
            [
                {
                    "path": "limits.rate_max_nl_per_day",
                    "recorded": 24_000_000,
                    "replayed": 20_000_000,
                }
            ],
        )
    ]


def _replay_process(
    demo: Path, port: str, control: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *pumpemu_command(), "replay", str(demo / "pumpemu-demo-capture.jsonl"),
            "--port", port, "--keys", str(demo / "pumpemu-demo.keys"), "--control", control,
            *extra,
        ],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )  # fmt: skip


def test_replay_v_logs_a_json_line_per_request_beside_the_json_document(
    serve: Callable[..., ServeProcess], demo: Path, tmp_path: Path
) -> None:
    port, control = serve_demo_pump(serve, demo, tmp_path, None)
    done = _replay_process(demo, port, control, "--json", "-v", "--log-format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # stdout: the document alone, as without -v
    records = [json.loads(line) for line in done.stderr.splitlines()]
    per_request = [
        r for r in records if r["program"] == "replay" and r["message"].startswith("line ")
    ]
    assert [r["message"].split(":")[0] for r in per_request] == [
        f"line {e['id']}" for e in report["exchanges"]
    ]


def test_replay_q_prints_only_the_totals(
    serve: Callable[..., ServeProcess], demo: Path, tmp_path: Path
) -> None:
    port, control = serve_demo_pump(serve, demo, tmp_path, None)
    done = _replay_process(demo, port, control, "-q")
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert "requests replayed" in line
    assert " 0 differ" in line

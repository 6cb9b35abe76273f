"""``pumpemu proxy`` end to end: a subprocess between two real ptys, and its user errors.

Every wait is bounded: reads have deadlines, the process is killed if it outlives one.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial
from click.testing import CliRunner

from hil.cli import main
from hil.links import PtyLink
from protocol.codec import encode
from protocol.messages import ReadStatus, StartTherapy

DEADLINE_S = 10.0
PUMPEMU = Path(sys.executable).with_name("pumpemu")


def frame(n: int) -> bytes:
    return encode(ReadStatus(), seq=n)


def read_line(stream: object, deadline: float) -> str:
    """One line from a pipe, or AssertionError at the deadline (never a hang)."""
    fd = stream.fileno()  # type: ignore[attr-defined]
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no complete line before the deadline; got {line!r}"
        if select.select([fd], [], [], remaining)[0]:
            byte = os.read(fd, 1)
            assert byte, f"stream ended; got {line!r}"
            line += byte
    return line.decode().rstrip("\n")


def read_exactly(port: serial.Serial, size: int, deadline_s: float = DEADLINE_S) -> bytes:
    data = b""
    end = time.monotonic() + deadline_s
    while len(data) < size and time.monotonic() < end:
        data += port.read(size - len(data))
    return data


@pytest.fixture
def proxy_process() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes started by a test; killed at the end if still running."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(DEADLINE_S)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def start(processes: list[subprocess.Popen[bytes]], *args: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [str(PUMPEMU), "proxy", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    processes.append(process)
    return process


@pytest.mark.e2e
@pytest.mark.hazard("C2")
def test_proxy_between_two_ptys_drops_the_chosen_frame_and_stops_cleanly_on_sigterm(
    proxy_process: list[subprocess.Popen[bytes]],
) -> None:
    process = start(
        proxy_process, "--a", "pty", "--b", "pty", "--seed", "3", "--drop", "@2,dir=a2b"
    )
    deadline = time.monotonic() + DEADLINE_S
    assert process.stdout is not None
    first, second = read_line(process.stdout, deadline), read_line(process.stdout, deadline)
    assert first.startswith("a=/dev/")
    assert second.startswith("b=/dev/")
    with (
        serial.Serial(first[2:], timeout=0.2) as programmer,
        serial.Serial(second[2:], timeout=0.2) as pump,
    ):
        for n in (1, 2, 3):
            programmer.write(frame(n))
        expected = frame(1) + frame(3)
        assert read_exactly(pump, len(expected)) == expected
        reply = encode(StartTherapy(command_id=5), seq=1)
        pump.write(b"\x00\xff" + reply)
        assert read_exactly(programmer, len(reply) + 2) == b"\x00\xff" + reply
        assert pump.read(64) == b""  # frame 2 never came

    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=DEADLINE_S)
    stderr = err.decode()
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "seed=3" in stderr
    assert "a->b frame 2: drop" in stderr
    assert "a->b: 3 frames in, 2 forwarded" in stderr
    assert "b->a: 1 frames in, 1 forwarded, 2 noise bytes" in stderr
    assert "faults: drop 1 (total 1)" in stderr


@pytest.mark.e2e
def test_sigint_also_gives_the_summary_without_a_traceback(
    proxy_process: list[subprocess.Popen[bytes]],
) -> None:
    process = start(proxy_process, "--a", "pty", "--b", "pty", "--delay", "0.5,by=20ms")
    assert process.stdout is not None
    deadline = time.monotonic() + DEADLINE_S
    read_line(process.stdout, deadline)
    read_line(process.stdout, deadline)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=DEADLINE_S)
    assert process.returncode == 0
    assert "Traceback" not in err.decode()
    assert "faults: none" in err.decode()


@pytest.mark.e2e
def test_a_busy_port_is_one_line_and_exit_code_2(
    proxy_process: list[subprocess.Popen[bytes]],
) -> None:
    pty = PtyLink()
    try:
        with serial.Serial(pty.path, exclusive=True):
            process = start(proxy_process, "--a", pty.path, "--b", "pty")
            out, err = process.communicate(timeout=DEADLINE_S)
    finally:
        pty.close()
    assert process.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: --a: cannot open")
    assert "busy" in lines[0]
    assert out == b""  # no pty path printed for a proxy that never ran


# -- user errors through click (no subprocess needed) ------------------------------------------


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["proxy", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ("--a", "/dev/does-not-exist", "--b", "pty"),
            "Error: --a: cannot open '/dev/does-not-exist'",
            id="missing-device",
        ),
        pytest.param(
            ("--a", "pty", "--b", "nosuchscheme://x"),
            "Error: --b: cannot open 'nosuchscheme://x'",
            id="bad-url",
        ),
        pytest.param(
            ("--a", "pty", "--b", "pty", "--drop", "0.5x"),
            "Error: --drop '0.5x': '0.5x' is not a trigger",
            id="bad-spec",
        ),
        pytest.param(
            ("--a", "pty", "--b", "pty", "--delay", "@1,by=5"),
            "Error: --delay '@1,by=5': '5' is not a duration",
            id="duration-without-unit",
        ),
        pytest.param(
            ("--a", "pty", "--b", "pty", "--faults", "/nonexistent/f.toml"),
            "Error: fault file /nonexistent/f.toml: no such file",
            id="missing-fault-file",
        ),
    ],
)
def test_user_errors_are_one_line_and_exit_code_2(args: tuple[str, ...], message: str) -> None:
    code, out, err = invoke(*args)
    assert code == 2
    assert err.strip().splitlines() == [err.strip()]
    assert err.strip().startswith(message), err
    assert out == ""


def test_bad_toml_file_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    path = tmp_path / "faults.toml"
    path.write_text("[[drop]]\nwhen = 'sometimes'\n", encoding="utf-8")
    code, _, err = invoke("--a", "pty", "--b", "pty", "--faults", str(path))
    assert code == 2
    assert err.strip() == (
        f"Error: fault file {path}: [[drop]] #1: 'sometimes' is not a trigger: "
        "give a rate (0.05, 5% or 50000 ppm), @N, or a window (2s..5s)"
    )


def test_help_explains_every_fault_with_an_example() -> None:
    code, out, _ = invoke("--help")
    assert code == 0
    out = " ".join(out.split())  # help text wraps to the terminal width
    for option in (
        "--drop 0.05",
        "--corrupt @3,bits=2",
        "--duplicate",
        "--delay @2,by=1s",
        "--truncate",
        "--split",
        "--junk",
        "--disconnect @10,for=2s",
        "--seed",
        "--faults",
        "2s..5s",
    ):
        assert option in out, option


@pytest.mark.e2e
def test_capture_shows_each_frame_before_and_after_its_fault(
    proxy_process: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    capture = tmp_path / "proxy.jsonl"
    process = start(
        proxy_process, "--a", "pty", "--b", "pty", "--corrupt", "@1,dir=a2b,bits=1",
        "--capture", str(capture),
    )  # fmt: skip
    deadline = time.monotonic() + DEADLINE_S
    assert process.stdout is not None
    first, second = read_line(process.stdout, deadline), read_line(process.stdout, deadline)
    with (
        serial.Serial(first[2:], timeout=0.2) as programmer,
        serial.Serial(second[2:], timeout=0.2) as pump,
    ):
        programmer.write(frame(1) + frame(2))
        assert len(read_exactly(pump, 2 * len(frame(1)))) == 2 * len(frame(1))
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=DEADLINE_S)
    assert process.returncode == 0

    records = [json.loads(line) for line in capture.read_text().splitlines()]
    frames_in = [r for r in records if r["kind"] == "frame" and r["direction"] == "a->b in"]
    assert [r["hex"] for r in frames_in] == [frame(1).hex(), frame(2).hex()]
    out = [r for r in records if r.get("direction") == "a->b out"]
    # Frame 1 left with one bit flipped, so it is no longer a frame; frame 2 left intact.
    assert [r["kind"] for r in out] == ["noise", "frame"]
    assert out[1]["hex"] == frame(2).hex()
    assert any(r["kind"] == "note" and "corrupt" in r["text"] for r in records)

"""Issue 11 part 3 over a real ``pumpemu serve``: the control API only its owner reaches.

A TCP control port refuses requests without serve's token (and logs it on stderr without the
token); the pumpemu commands read the token file as a user would; a bare ``--control`` is a
0600 socket in a private directory; a key file others can read stops serve with exit code 2.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from protocol.keys import PumpKeys
from tests.hil.e2e.conftest import ServeProcess, pumpemu_command

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

Serve = Callable[..., ServeProcess]
KeyFile = tuple[PumpKeys, Path]
CLI_TIMEOUT_S = 20


def pumpemu(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*pumpemu_command(), *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
        env=dict(os.environ, **(env or {})),
    )


def raw_request(address: str, line: bytes) -> dict[str, object]:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(line + b"\n")
        with sock.makefile("rb") as reader:
            answer = json.loads(reader.readline())
    assert isinstance(answer, dict)
    return answer


def test_tcp_control_needs_the_token(serve: Serve, pump_keys: KeyFile, tmp_path: Path) -> None:
    _, key_file = pump_keys
    token_file = tmp_path / "control.token"
    pump = serve("--pty", "--keys", str(key_file), "--clock", "manual",
                 "--control", "127.0.0.1:0", "--control-token", str(token_file))  # fmt: skip
    pump.first_line()
    line = pump.wait_stderr("control API listening on 127.0.0.1:")
    address = line.split("listening on ")[1].split(";")[0]
    assert f"token in {token_file} (mode 0600" in line
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) == 64

    # An intruder without the token: refused, logged, nothing done.
    refused = raw_request(address, b'{"op": "advance", "duration": "30d"}')
    assert refused["ok"] is False
    assert "needs a token" in str(refused["error"])
    assert pump.wait_stderr("control: refused a request from 127.0.0.1:").endswith(": no token")
    wrong = raw_request(address, b'{"op": "fault", "fault": "memory-corruption", "token": "00"}')
    assert wrong["ok"] is False
    assert pump.wait_stderr(": wrong token")
    nothing = pumpemu("truth", "--json", "--control", address, "--control-token", str(token_file))
    assert nothing.returncode == 0, nothing.stderr
    assert json.loads(nothing.stdout)["now_ms"] == 0

    # The owner, as a user would: the token file through the environment.
    env = {"PUMPEMU_CONTROL": address, "PUMPEMU_CONTROL_TOKEN_FILE": str(token_file)}
    advanced = pumpemu("time", "advance", "1h", env=env)
    assert advanced.returncode == 0, advanced.stderr
    assert "now 1970-01-01T01:00:00 (+0d 01:00)" in advanced.stdout
    stalled = pumpemu("fault", "stall", env=env)
    assert stalled.returncode == 0, stalled.stderr
    pump.wait_stderr("control: fault injected")

    # Without the token file, the command says what to do, in one line.
    missing = pumpemu("truth", "--control", address, env={"XDG_RUNTIME_DIR": str(tmp_path)})
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1
    assert "needs the token pumpemu serve wrote" in missing.stderr

    assert pump.stop() == 0
    assert token not in pump.stderr
    assert not token_file.exists()  # removed at a clean stop: the token dies with the run


def test_bare_control_is_a_private_socket(
    serve: Serve, pump_keys: KeyFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key_file = pump_keys
    runtime = tmp_path / "rt"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))  # serve and the commands inherit it
    monkeypatch.delenv("PUMPEMU_CONTROL", raising=False)
    pump = serve("--pty", "--keys", str(key_file), "--clock", "manual", "--control")
    pump.first_line()
    sock = runtime / "pumpemu" / "control.sock"
    assert f"listening on unix:{sock} (mode 0600" in pump.wait_stderr("control API listening")
    assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o600
    assert stat.S_IMODE(os.lstat(sock.parent).st_mode) == 0o700
    shown = pumpemu("time", "show")  # no --control: the default socket
    assert shown.returncode == 0, shown.stderr
    assert "clock manual" in shown.stdout
    assert pump.stop() == 0
    assert not sock.exists()


def test_serve_refuses_a_world_readable_key_file(pump_keys: KeyFile, tmp_path: Path) -> None:
    _, key_file = pump_keys
    key_file.chmod(0o644)
    result = subprocess.run(
        [*pumpemu_command(), "serve", "--pty", "--keys", str(key_file)],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"Error: key file {key_file} has mode 0644: group or others can access it; "
        f"run: chmod 600 {key_file}"
    ]

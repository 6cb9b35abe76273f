"""Issue 11 part 3: a control API only its owner reaches.

TCP requests need the token (refused and logged without it), Unix sockets are 0600 from the
moment they exist, the default socket lives in a private per-user directory, token files are
0600, and serve refuses a key file that group or others can access.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import hil.control
from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.pump import Pump
from hil.cli import main
from hil.control import (
    DEFAULT_CONTROL,
    ControlClient,
    ControlError,
    ControlServer,
    control_dir,
    default_token_file,
    ensure_control_dir,
    parse_control_address,
    read_token_file,
    remove_token_file,
    write_token_file,
)
from hil.errors import UsageError
from hil.key_files import write_key_file
from hil.links import memory_pair
from hil.serve import PumpServer
from protocol.keys import generate_keys

KEYS = generate_keys("PE-000011", bytes(range(64)))


class Lines:
    """A log that keeps its lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)


@pytest.fixture
def pump_server() -> Iterator[PumpServer]:
    pump_end, _programmer_end = memory_pair()
    device = PumpDevice(Pump("peristaltic-20"), KEYS, secrets.token_bytes)
    with PumpServer(device, pump_end, ManualClock(), log=lambda _line: None) as server:
        yield server


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """XDG_RUNTIME_DIR pointed at a fresh private directory: default paths land there."""
    path = tmp_path / "rt"
    path.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    return path


def exchange(address: str, *lines: bytes) -> list[dict[str, object] | None]:
    """Send each line on one TCP connection; each answer, or None once the server hung up."""
    host, port = address.rsplit(":", 1)
    answers: list[dict[str, object] | None] = []
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        reader = sock.makefile("rb")
        for line in lines:
            try:
                sock.sendall(line + b"\n")
                answer = reader.readline()
            except OSError:
                answer = b""
            answers.append(json.loads(answer) if answer else None)
        reader.close()
    return answers


# -- TCP: the token ---------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_tcp_request_without_the_token_is_refused_logged_and_cut_off(
    pump_server: PumpServer,
) -> None:
    log = Lines()
    with ControlServer(pump_server, "127.0.0.1:0", log=log) as control:
        assert control.token is not None
        assert len(control.token) == 64
        int(control.token, 16)  # hex
        no_token, after = exchange(
            control.address, b'{"op": "advance", "duration": "30d"}', b'{"op": "ping"}'
        )
    assert no_token is not None
    assert no_token["ok"] is False
    assert "needs a token" in str(no_token["error"])
    assert after is None  # the connection was closed after the refusal
    assert pump_server.view().now_ms == 0  # nothing happened
    assert len(log.lines) == 1
    assert log.lines[0].startswith("control: refused a request from 127.0.0.1:")
    assert log.lines[0].endswith(": no token")


@pytest.mark.e2e
@pytest.mark.parametrize("wrong", ["0" * 64, "", 12345, None])
def test_a_tcp_request_with_a_wrong_token_is_refused_and_not_echoed(
    pump_server: PumpServer, wrong: object
) -> None:
    log = Lines()
    with ControlServer(pump_server, "127.0.0.1:0", log=log) as control:
        request = {"op": "fault", "fault": "stall", "token": wrong}
        (answer,) = exchange(control.address, json.dumps(request).encode())
        token = control.token
    assert token is not None
    assert answer is not None
    assert answer["ok"] is False
    expected = "no token" if wrong is None else "wrong token"
    assert log.lines[-1].endswith(f": {expected}")
    assert str(answer["error"]).startswith("refused: ")
    assert token not in json.dumps(answer)
    assert token not in "\n".join(log.lines)
    assert pump_server.view().truth.motor.name == "OK"  # the stall was not injected


@pytest.mark.e2e
def test_a_tcp_request_with_the_token_is_answered(pump_server: PumpServer) -> None:
    with ControlServer(pump_server, "127.0.0.1:0") as control:
        with ControlClient(control.address, token=control.token) as client:
            assert client.ping()["pong"] is True
            # The token is not a fault parameter, and advance accepts it beside its field.
            assert client.fault("stall", recover_after_s=60)["applied"]["recover_after_s"] == 60
            assert client.advance("1h")["now_ms"] == 3_600_000
        with ControlClient(control.address) as client, pytest.raises(ControlError, match="token"):
            client.ping()


@pytest.mark.e2e
def test_handle_checks_the_token_too(pump_server: PumpServer) -> None:
    with ControlServer(pump_server, "127.0.0.1:0", token="s3cret") as control:
        assert control.token == "s3cret"
        assert control.handle({"op": "ping"})["ok"] is False
        assert control.handle({"op": "ping", "token": "s3cre"})["ok"] is False
        assert control.handle({"op": "ping", "token": "s3cret"}) == {"ok": True, "pong": True}
        assert control.handle_line(b'{"op": "ping", "token": "s3cret"}')["ok"] is True
        assert control.handle_line(b'{"op": "ping"}')["ok"] is False


@pytest.mark.e2e
def test_a_unix_socket_needs_no_token_and_ignores_one(
    pump_server: PumpServer, tmp_path: Path
) -> None:
    with ControlServer(pump_server, f"unix:{tmp_path / 'c.sock'}") as control:
        assert control.token is None
        with ControlClient(control.address) as client:
            assert client.ping()["pong"] is True
        with ControlClient(control.address, token="anything") as client:
            assert client.fault("occlusion")["applied"] == {
                "type": "CatheterOcclusion",
                "delivered_ppm": 0,
            }


# -- Unix sockets -----------------------------------------------------------------------------


@pytest.mark.e2e
def test_the_unix_socket_is_0600_whatever_the_umask(
    pump_server: PumpServer, tmp_path: Path
) -> None:
    path = tmp_path / "c.sock"
    previous = os.umask(0)
    try:
        control = ControlServer(pump_server, f"unix:{path}")
    finally:
        os.umask(previous)
    try:
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        assert os.umask(previous) == previous  # the umask was restored
    finally:
        control.stop()


@pytest.mark.e2e
def test_the_socket_is_created_0600_by_bind_itself(
    pump_server: PumpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No window between bind and chmod: the umask at bind time already makes it 0600."""
    umasks: list[int] = []
    real_bind = socket.socket.bind

    def spy(self: socket.socket, address: object) -> None:
        current = os.umask(0o022)
        os.umask(current)
        umasks.append(current)
        real_bind(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "bind", spy)
    ControlServer(pump_server, f"unix:{tmp_path / 'c.sock'}").stop()
    assert umasks == [0o177]


@pytest.mark.e2e
def test_default_control_is_a_private_socket_in_a_private_directory(
    pump_server: PumpServer, runtime: Path
) -> None:
    assert control_dir() == runtime / "pumpemu"
    with ControlServer(pump_server, DEFAULT_CONTROL) as control:
        sock = runtime / "pumpemu" / "control.sock"
        assert control.address == f"unix:{sock}"
        assert stat.S_IMODE(os.lstat(runtime / "pumpemu").st_mode) == 0o700
        assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o600
        assert control.token is None
        with ControlClient(DEFAULT_CONTROL) as client:
            assert client.ping()["pong"] is True
    assert not sock.exists()


def test_without_xdg_runtime_dir_the_directory_is_per_user_in_tmp(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    assert control_dir() == tmp_path / f"pumpemu-{os.getuid()}"
    assert parse_control_address(DEFAULT_CONTROL).path == str(control_dir() / "control.sock")


@pytest.mark.parametrize("kind", ["open", "symlink", "file"])
def test_a_control_directory_that_is_not_private_is_refused(runtime: Path, kind: str) -> None:
    path = runtime / "pumpemu"
    if kind == "open":
        path.mkdir(mode=0o700)
        path.chmod(0o755)
    elif kind == "symlink":
        (runtime / "elsewhere").mkdir(mode=0o700)
        path.symlink_to(runtime / "elsewhere")
    else:
        path.write_text("x")
    with pytest.raises(UsageError, match="is not a private directory of this user"):
        ensure_control_dir()


@pytest.mark.e2e
def test_a_peer_of_another_uid_is_refused(
    pump_server: PumpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hil.control, "_peer_uid", lambda _conn: 4242)
    log = Lines()
    with (
        ControlServer(pump_server, f"unix:{tmp_path / 'c.sock'}", log=log) as control,
        ControlClient(control.address) as client,
        pytest.raises(ControlError, match="another user"),
    ):
        client.advance("30d")
    assert pump_server.view().now_ms == 0
    assert log.lines == [
        "control: refused a request from a local process of uid 4242: another user"
    ]


@pytest.mark.e2e
def test_the_real_peer_uid_is_ours(pump_server: PumpServer, tmp_path: Path) -> None:
    if not hasattr(socket, "SO_PEERCRED"):
        pytest.skip("no SO_PEERCRED on this platform")
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert hil.control._peer_uid(left) == os.getuid()


@pytest.mark.e2e
def test_a_stale_socket_of_another_user_is_not_replaced(
    pump_server: PumpServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    real_uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)  # the file now looks foreign
    with pytest.raises(UsageError, match="belongs to another user"):
        ControlServer(pump_server, f"unix:{path}")
    assert path.exists()


@pytest.mark.e2e
def test_a_symlink_at_the_socket_path_is_refused(pump_server: PumpServer, tmp_path: Path) -> None:
    target = tmp_path / "target.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(target))
    stale.close()
    link = tmp_path / "c.sock"
    link.symlink_to(target)
    with pytest.raises(UsageError, match="exists and is not a socket"):
        ControlServer(pump_server, f"unix:{link}")


@pytest.mark.e2e
def test_stop_leaves_a_successors_socket_alone(pump_server: PumpServer, tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    control = ControlServer(pump_server, f"unix:{path}")
    path.unlink()
    successor = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    successor.bind(str(path))
    try:
        control.stop()
        assert path.exists()
    finally:
        successor.close()


# -- token files ------------------------------------------------------------------------------


def test_a_token_file_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "t.token"
    previous = os.umask(0)
    try:
        write_token_file(path, "ab" * 32)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "ab" * 32 + "\n"
    assert read_token_file(path) == "ab" * 32
    write_token_file(path, "cd" * 32)  # a restart replaces it
    assert read_token_file(path) == "cd" * 32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.token"]


def test_a_token_file_replaces_a_symlink_instead_of_following_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    path = tmp_path / "t.token"
    path.symlink_to(victim)
    write_token_file(path, "ab" * 32)
    assert victim.read_text() == "precious\n"
    assert not path.is_symlink()
    assert read_token_file(path) == "ab" * 32


def test_token_file_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        read_token_file(tmp_path / "none.token")
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    with pytest.raises(UsageError, match="is empty"):
        read_token_file(empty)
    with pytest.raises(UsageError, match="cannot write the control token file"):
        write_token_file(tmp_path / "no-dir" / "t.token", "ab")


def test_remove_token_file_only_removes_its_own_token(tmp_path: Path) -> None:
    path = tmp_path / "t.token"
    write_token_file(path, "newer")
    remove_token_file(path, "older")
    assert path.exists()
    remove_token_file(path, "newer")
    assert not path.exists()
    remove_token_file(path, "newer")  # already gone: nothing to do


# -- the commands -----------------------------------------------------------------------------


@pytest.mark.e2e
def test_commands_read_the_token_file(pump_server: PumpServer, tmp_path: Path) -> None:
    runner = CliRunner()
    with ControlServer(pump_server, "127.0.0.1:0") as control:
        assert control.token is not None
        token_file = tmp_path / "t.token"
        write_token_file(token_file, control.token)
        out = runner.invoke(
            main, ["time", "show", "--control", control.address, "--control-token", str(token_file)]
        )
        assert out.exit_code == 0, out.output
        assert "clock manual" in out.output
        env = {"PUMPEMU_CONTROL": control.address, "PUMPEMU_CONTROL_TOKEN_FILE": str(token_file)}
        out = runner.invoke(main, ["fault", "stall"], env=env)
        assert out.exit_code == 0, out.output
        assert "injected stall" in out.output
        write_token_file(token_file, "0" * 64)
        out = runner.invoke(main, ["time", "advance", "30d"], env=env)
    assert out.exit_code == 2
    assert out.output.strip().splitlines() == [
        "Error: refused: wrong token (pumpemu serve writes a new one each time it starts; "
        "read its token file again)"
    ]
    assert pump_server.view().now_ms == 0


@pytest.mark.e2e
def test_commands_find_the_default_token_file_for_the_port(
    pump_server: PumpServer, runtime: Path
) -> None:
    with ControlServer(pump_server, "127.0.0.1:0") as control:
        port = int(control.address.rsplit(":", 1)[1])
        runner = CliRunner()
        out = runner.invoke(main, ["truth", "--control", control.address])
        assert out.exit_code == 2
        assert out.output.strip().splitlines() == [
            f"Error: --control {control.address} is a TCP port and needs the token pumpemu "
            "serve wrote: give --control-token FILE or set PUMPEMU_CONTROL_TOKEN_FILE (serve "
            f"prints the file's path; there is no {default_token_file(port)})"
        ]
        assert control.token is not None
        ensure_control_dir()
        write_token_file(default_token_file(port), control.token)
        out = runner.invoke(main, ["truth", "--control", control.address])
    assert out.exit_code == 0, out.output
    assert "therapy state STOPPED" in out.output


@pytest.mark.e2e
def test_commands_default_to_the_default_socket(pump_server: PumpServer, runtime: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["time", "show"], env={"PUMPEMU_CONTROL": None})
    assert out.exit_code == 2
    assert f"cannot reach the control API at unix:{runtime / 'pumpemu' / 'control.sock'}" in (
        out.output
    )
    with ControlServer(pump_server, DEFAULT_CONTROL):
        out = runner.invoke(main, ["time", "show"], env={"PUMPEMU_CONTROL": None})
    assert out.exit_code == 0, out.output
    assert "now 1970-01-01T00:00:00 (+0d 00:00)" in out.output


# -- serve ------------------------------------------------------------------------------------


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "pump.keys"
    write_key_file(path, generate_keys("PE-000011", os.urandom(64)))
    return path


@pytest.mark.parametrize("bits", [0o644, 0o640, 0o604, 0o660])
def test_serve_refuses_a_key_file_others_can_access(key_file: Path, bits: int) -> None:
    key_file.chmod(bits)
    result = CliRunner().invoke(main, ["serve", "--pty", "--keys", str(key_file)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: key file {key_file} has mode {bits:04o}: group or others can access it; "
        f"run: chmod 600 {key_file}"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--control-token", "t.token"), "--control-token FILE needs a TCP control API"),
        (
            ("--control", "unix:/tmp/x.sock", "--control-token", "t.token"),
            "--control-token is for a TCP --control HOST:PORT",
        ),
        (("--control-token", "t.token", "--control"), "--control-token is for a TCP"),
    ],
)
def test_serve_control_token_needs_a_tcp_control(
    key_file: Path, args: tuple[str, ...], message: str
) -> None:
    result = CliRunner().invoke(main, ["serve", "--pty", "--keys", str(key_file), *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert message in lines[0]

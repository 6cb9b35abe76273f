"""The link layer: every kind carries bytes both ways, bounds its reads and reports loss."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import serial

from hil.links import (
    MAX_READ,
    LinkClosedError,
    LinkOpenError,
    PtyLink,
    SerialLink,
    memory_pair,
    open_link,
)

TIMEOUT_S = 2.0


def read_exactly(read: object, size: int) -> bytes:
    """Collect ``size`` bytes from a link's read method within a bounded number of tries."""
    assert callable(read)
    data = b""
    for _ in range(200):
        if len(data) >= size:
            break
        data += read(0.05)
    return data


def test_memory_pair_carries_bytes_both_ways() -> None:
    a, b = memory_pair()
    a.write(b"\xa5\x5a hello")
    b.write(b"reply")
    assert b.read(TIMEOUT_S) == b"\xa5\x5a hello"
    assert a.read(TIMEOUT_S) == b"reply"


def test_memory_read_times_out_empty() -> None:
    a, _ = memory_pair()
    assert a.read(0.0) == b""


def test_memory_read_is_bounded() -> None:
    a, b = memory_pair()
    a.write(bytes(MAX_READ + 10))
    assert len(b.read(TIMEOUT_S)) == MAX_READ
    assert len(b.read(TIMEOUT_S)) == 10


def test_memory_close_is_reported_to_the_peer_after_pending_bytes() -> None:
    a, b = memory_pair()
    a.write(b"last words")
    a.close()
    assert b.read(TIMEOUT_S) == b"last words"
    with pytest.raises(LinkClosedError, match="peer closed"):
        b.read(TIMEOUT_S)
    with pytest.raises(LinkClosedError):
        b.write(b"x")


@pytest.fixture
def pty_link() -> Iterator[PtyLink]:
    link = PtyLink()
    yield link
    link.close()


@pytest.mark.e2e
def test_pty_pair_carries_every_byte_value_unmangled(pty_link: PtyLink) -> None:
    # Every byte value, CR, LF and ^C included: the pty must be raw on both ends.
    payload = bytes(range(256)) * 4
    with serial.Serial(pty_link.path, timeout=TIMEOUT_S) as programmer:
        programmer.write(payload)
        assert read_exactly(pty_link.read, len(payload)) == payload
        pty_link.write(payload)
        assert programmer.read(len(payload)) == payload


@pytest.mark.e2e
def test_pty_survives_the_programmer_closing_and_reopening(pty_link: PtyLink) -> None:
    with serial.Serial(pty_link.path, timeout=TIMEOUT_S) as first:
        first.write(b"one")
        assert read_exactly(pty_link.read, 3) == b"one"
    # With nobody on the terminal side, the emulator's read still just times out.
    assert pty_link.read(0.05) == b""
    with serial.Serial(pty_link.path, timeout=TIMEOUT_S) as second:
        second.write(b"two")
        assert read_exactly(pty_link.read, 3) == b"two"


def test_pty_read_after_close_reports_loss() -> None:
    link = PtyLink()
    link.close()
    with pytest.raises(LinkClosedError):
        link.read(0.0)
    link.close()  # closing twice is harmless


def test_loop_url_echoes() -> None:
    link = open_link("loop://")
    try:
        link.write(b"\x00\x01\x02")
        assert read_exactly(link.read, 3) == b"\x00\x01\x02"
    finally:
        link.close()


@pytest.mark.e2e
def test_socket_url_to_a_loopback_server_and_its_disappearance() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []

    def accept() -> None:
        conn, _ = server.accept()
        accepted.append(conn)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    link = SerialLink(f"socket://127.0.0.1:{port}")
    try:
        acceptor.join(TIMEOUT_S)
        assert accepted, "the server never saw the connection"
        conn = accepted[0]
        link.write(b"ping")
        assert conn.recv(16) == b"ping"
        conn.sendall(b"pong")
        assert read_exactly(link.read, 4) == b"pong"
        conn.close()
        server.close()

        def read_until_lost() -> None:
            for _ in range(100):
                link.read(0.05)

        with pytest.raises(LinkClosedError, match="link lost"):
            read_until_lost()
    finally:
        link.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("", "no port given", id="empty"),
        pytest.param("/dev/ttyDOES-NOT-EXIST", "cannot open", id="missing-device"),
        pytest.param("nosuchscheme://x", "cannot open", id="unknown-scheme"),
        pytest.param("socket://127.0.0.1:notaport", "cannot open", id="bad-port-number"),
    ],
)
def test_bad_urls_get_one_clear_line(url: str, message: str) -> None:
    with pytest.raises(LinkOpenError, match=message) as info:
        open_link(url)
    assert "\n" not in str(info.value)


@pytest.mark.e2e
def test_second_opener_of_a_device_is_refused_as_busy(pty_link: PtyLink) -> None:
    first = SerialLink(pty_link.path)
    try:
        with pytest.raises(LinkOpenError, match="busy"):
            SerialLink(pty_link.path)
    finally:
        first.close()

"""``SerialLink`` on a POSIX device reads and writes its descriptor itself (docs/serve.md "The
serve loop's cost"): every byte both ways, what has arrived in one read, no read timeout set
on the port, and a vanished device reported as lost. Real ptys, so the e2e layer."""

from __future__ import annotations

import select
from collections.abc import Iterator

import pytest

from hil.links import LinkClosedError, PtyLink, SerialLink

TIMEOUT_S = 2.0


@pytest.fixture
def pty_link() -> Iterator[PtyLink]:
    link = PtyLink()
    yield link
    link.close()


def wait_until_readable(link: SerialLink, size: int) -> None:
    """Bounded: until ``size`` bytes wait on the programmer's side of the pty."""
    port = link._port
    for _ in range(200):
        if port.in_waiting >= size:
            return
        select.select([], [], [], 0.01)
    raise AssertionError(f"{size} bytes never arrived ({port.in_waiting} did)")


@pytest.mark.e2e
def test_every_byte_value_crosses_both_ways(pty_link: PtyLink) -> None:
    payload = bytes(range(256)) * 4
    link = SerialLink(pty_link.path)
    try:
        link.write(payload)
        got = b""
        for _ in range(200):
            if len(got) >= len(payload):
                break
            got += pty_link.read(0.05)
        assert got == payload
        pty_link.write(payload)
        wait_until_readable(link, len(payload))
        assert link.read(TIMEOUT_S) == payload  # everything that arrived, in one read
    finally:
        link.close()


@pytest.mark.e2e
def test_a_read_is_bounded_and_never_reconfigures_the_port(pty_link: PtyLink) -> None:
    link = SerialLink(pty_link.path)
    try:
        assert link._fd is not None  # a POSIX device: its descriptor is used directly
        for timeout_s in (0.0, 0.01, 0.02, 0.0):
            assert link.read(timeout_s) == b""
        assert link._port.timeout == 0  # as opened: no termios call per read
        pty_link.write(bytes(range(200)) * 15)  # less than a pty's 4095-byte input queue
        wait_until_readable(link, 3_000)
        assert link.read(TIMEOUT_S) == bytes(range(200)) * 15  # one read takes it all
        assert link.read(0.0) == b""
    finally:
        link.close()


@pytest.mark.e2e
def test_a_vanished_device_is_reported_as_lost() -> None:
    pty_link = PtyLink()
    link = SerialLink(pty_link.path)
    try:
        pty_link.close()  # the far side is gone: the terminal side now reads EIO

        def read_until_lost() -> None:
            for _ in range(100):
                link.read(0.05)

        with pytest.raises(LinkClosedError, match="link lost"):
            read_until_lost()
        with pytest.raises(LinkClosedError, match="link lost while writing"):
            link.write(b"x" * 65_536)
    finally:
        link.close()


@pytest.mark.e2e
def test_a_closed_link_is_reported_as_lost(pty_link: PtyLink) -> None:
    link = SerialLink(pty_link.path)
    link.close()
    with pytest.raises(LinkClosedError):
        link.read(0.0)
    with pytest.raises(LinkClosedError):
        link.write(b"x")

"""``SerialLink`` on a POSIX device reads and writes its descriptor itself (docs/serve.md "The
serve loop's cost"): every byte both ways, what has arrived in one read, no read timeout set
on the port, and a vanished device reported as lost. Real ptys, so the e2e layer."""

from __future__ import annotations

import contextlib
import os
import select
import tty
from collections.abc import Iterator

import pytest

from hil import links
from hil.links import LinkClosedError, PtyLink, SerialLink
from hil.spin import DEFAULT_SPIN_US

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


class ForeignPty:
    """A raw pty pair that is no ``PtyLink`` of this process: what a programmer sees of a
    ``pumpemu serve`` running elsewhere. ``peer`` is the server's end."""

    def __init__(self) -> None:
        self.peer, self._terminal = os.openpty()
        tty.setraw(self.peer)
        tty.setraw(self._terminal)
        self.path = os.ttyname(self._terminal)

    def close(self) -> None:
        for fd in (self.peer, self._terminal):
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def foreign_pty() -> Iterator[ForeignPty]:
    pty = ForeignPty()
    yield pty
    pty.close()


class CountingPolls:
    def __init__(self, link: SerialLink) -> None:
        self.count = 0
        self._read_now = link.read_now
        link.read_now = self  # type: ignore[method-assign]

    def __call__(self) -> bytes:
        self.count += 1
        return self._read_now()


@pytest.mark.e2e
def test_a_programmer_spins_on_the_read_after_a_write_and_only_then(
    foreign_pty: ForeignPty,
) -> None:
    """hil/spin.py: the reply to a request is taken by a poll; a read with no request
    before it blocks at once."""
    link = SerialLink(foreign_pty.path)
    try:
        assert link._spinner.spin_ns == DEFAULT_SPIN_US * 1_000
        polls = CountingPolls(link)
        link.write(b"request")
        assert os.read(foreign_pty.peer, 100) == b"request"
        os.write(foreign_pty.peer, b"reply")
        assert read_all(link, 5) == b"reply"
        assert polls.count >= 1
        polls.count = 0
        assert link.read(0.01) == b""  # nothing was sent since: no spin
        assert polls.count == 0
    finally:
        link.close()


def read_all(link: SerialLink, size: int) -> bytes:
    got = b""
    for _ in range(100):
        got += link.read(0.05)
        if len(got) >= size:
            break
    return got


@pytest.mark.e2e
def test_read_now_returns_what_has_arrived_without_waiting(foreign_pty: ForeignPty) -> None:
    link = SerialLink(foreign_pty.path)
    try:
        assert link.read_now() == b""
        os.write(foreign_pty.peer, b"bytes")
        got = b""
        for _ in range(200):
            got += link.read_now()
            if got == b"bytes":
                break
            select.select([], [], [], 0.005)
        assert got == b"bytes"
    finally:
        link.close()


@pytest.mark.e2e
def test_a_spinning_read_reports_a_vanished_device(foreign_pty: ForeignPty) -> None:
    link = SerialLink(foreign_pty.path)
    try:
        link.write(b"request")
        os.close(foreign_pty.peer)  # the server's end is gone: the terminal reads EIO
        with pytest.raises(LinkClosedError, match="link lost"):
            read_all(link, 1_000_000)
    finally:
        link.close()


@pytest.mark.e2e
def test_a_link_to_a_pty_of_this_process_does_not_spin() -> None:
    """A server in this interpreter (the pytest plugin's pump_target, a benchmark's
    in-process server): spinning against it would contend for the interpreter lock."""
    pty_link = PtyLink()
    path = pty_link.path
    try:
        for spin_us in (DEFAULT_SPIN_US, 500):
            link = SerialLink(path, spin_us=spin_us)
            assert link._spinner.spin_ns == 0
            link.close()
    finally:
        pty_link.close()
    assert os.path.realpath(path) not in links._LOCAL_PTYS  # forgotten once closed

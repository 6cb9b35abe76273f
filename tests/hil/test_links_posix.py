"""``SerialLink`` on a POSIX device reads and writes its descriptor itself (docs/serve.md "The
serve loop's cost"): every byte both ways, what has arrived in one read, no read timeout set
on the port, and a vanished device reported as lost. It spins before the read after a write
(hil/spin.py), within the read's timeout, and not against a server of its own process nor
where it is not a programmer's link. Real ptys, so the e2e layer."""

from __future__ import annotations

import contextlib
import os
import select
import tty
from array import array
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil import links
from hil.key_files import write_key_file
from hil.links import LinkClosedError, PtyLink, SerialLink
from hil.proxy.command import _open_side
from hil.serve_command import ServeOptions, _Serve
from hil.spin import DEFAULT_SPIN_US, Spinner
from protocol.keys import generate_keys

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


class RecordingSpinner(Spinner):
    """Stands in for a link's spinner: records the limit it is given, finds nothing and
    reports the whole limit spent."""

    def __init__(self) -> None:
        super().__init__(0)
        self.limits: list[int] = []

    def spin(self, read_now: object, limit_ns: int) -> tuple[bytes, int]:
        self.limits.append(limit_ns)
        return b"", limit_ns

    def reset(self) -> None:
        self.limits.append(-1)


@pytest.mark.e2e
def test_a_spin_and_the_read_after_it_keep_to_the_reads_timeout(
    foreign_pty: ForeignPty,
) -> None:
    link = SerialLink(foreign_pty.path)
    spinner = RecordingSpinner()
    link._spinner = spinner
    waits: list[float] = []
    read_fd = link._read_fd

    def recording_read_fd(fd: int, timeout_s: float) -> bytes:
        waits.append(timeout_s)
        return read_fd(fd, timeout_s)

    link._read_fd = recording_read_fd  # type: ignore[method-assign]
    try:
        link.write(b"request")
        assert link.read(0.02) == b""
        assert spinner.limits == [20_000_000]  # the spin is bounded by the read's timeout
        assert waits == [pytest.approx(0.0)]  # and the spin's time is taken off the wait
    finally:
        link.close()


@pytest.mark.e2e
def test_read_now_reports_a_descriptor_gone_under_it(foreign_pty: ForeignPty) -> None:
    """An OS error on the poll is a lost link, as on a blocking read. (A pty whose server
    end closed reads b"" here, not EIO, as "nothing yet": the next blocking read reports
    it, test_a_spinning_read_reports_a_vanished_device.)"""
    link = SerialLink(foreign_pty.path)
    fd = link._fd
    try:
        link._fd = -1  # a descriptor that is gone
        with pytest.raises(LinkClosedError, match=r"link lost: file descriptor cannot"):
            link.read_now()
    finally:
        link._fd = fd
        link.close()


@pytest.mark.e2e
def test_a_reopened_link_starts_the_spin_afresh(foreign_pty: ForeignPty) -> None:
    link = SerialLink(foreign_pty.path)
    spinner = RecordingSpinner()
    link._spinner = spinner
    try:
        link.write(b"request")
        link.reopen()
        assert spinner.limits == [-1]  # reset
        assert link.read(0.0) == b""
        assert spinner.limits == [-1]  # no reply is due on the reopened port: no spin
    finally:
        link.close()


@pytest.mark.e2e
def test_links_that_are_not_a_programmers_do_not_spin(
    foreign_pty: ForeignPty, tmp_path: Path
) -> None:
    """serve --port (its loop spins itself) and the proxy's sides (threads of one
    interpreter)."""
    proxy_side = _open_side("pump", foreign_pty.path, 115_200)
    try:
        assert isinstance(proxy_side, SerialLink)
        assert proxy_side._spinner.spin_ns == 0
    finally:
        proxy_side.close()
    keys = generate_keys("PE-000001", bytes(range(64)))
    write_key_file(tmp_path / "k.keys", keys)
    run = _Serve(
        ServeOptions(
            use_pty=False,
            port_url=foreign_pty.path,
            tcp=None,
            allow_remote=False,
            profile="peristaltic-20",
            keys_file=str(tmp_path / "k.keys"),
            clock_text="real",
            baud=None,
            capture_file=None,
            control_address=None,
            start_time=None,
        )
    )
    serve_link, _announce = run._open_link()
    try:
        assert isinstance(serve_link, SerialLink)
        assert serve_link._spinner.spin_ns == 0
    finally:
        serve_link.close()


@pytest.mark.e2e
def test_bytes_waiting_counts_what_a_read_would_return_without_reading_it(
    foreign_pty: ForeignPty,
) -> None:
    """The spin's poll (FIONREAD): it counts, it never consumes, and it never waits."""
    link = SerialLink(foreign_pty.path)
    count = array("i", [0])
    try:
        assert link._fd is not None
        assert links._bytes_waiting(link._fd, count) == 0
        os.write(foreign_pty.peer, b"12345")
        for _ in range(200):
            if links._bytes_waiting(link._fd, count) == 5:
                break
            select.select([], [], [], 0.005)
        assert links._bytes_waiting(link._fd, count) == 5  # asked twice: nothing consumed
        assert link.read_now() == b"12345"
        assert links._bytes_waiting(link._fd, count) == 0
    finally:
        link.close()

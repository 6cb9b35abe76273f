"""Byte links between a programmer and a pump: pyserial URLs, pty pairs, in-memory pairs.

One small interface (``Link``) with three kinds behind it, so the serve loop, the programmer
and the proxy never care what carries their bytes:

- ``SerialLink``: anything ``serial.serial_for_url`` opens, so a real ``/dev/tty*`` device,
  ``loop://``, ``socket://host:port`` or ``rfc2217://``;
- ``PtyLink``: the emulator's end of a pseudo-terminal pair made with Python's pty module,
  so no socat is needed. A programmer opens ``PtyLink.path`` as if it were a serial device;
- ``memory_pair()``: two connected in-memory ends, for tests and in-process use.

Reads are bounded (``MAX_READ`` bytes, a timeout) and return whatever has arrived, so a
frame may come back split across reads: the framer reassembles it. A vanished port (a USB
adapter pulled, a socket closed) raises ``LinkClosedError`` with a clear message. The caller
decides whether to reopen; the pump's state lives elsewhere and is not lost.

Field notes behind the choices (docs/field-notes.md, "pyserial 3.5"): pyserial's
``inter_byte_timeout`` does nothing useful on Linux, so reads take ``in_waiting or 1`` bytes; a
fresh pty mangles CR, LF and ^C unless both ends are raw; pyserial flushes input when it opens a
port.

A POSIX device (a tty, a pty's path) is opened and configured by pyserial, then read and
written on its descriptor directly: one ``select`` and one ``os.read`` of whatever has arrived
per read, one ``os.write`` per write, and no read timeout set on the port at all. pyserial's
own ``read`` costs an ioctl, a ``select`` and a read per call and ``write`` a ``select`` after
every write: three times the system calls of a round trip (docs/serve.md "The serve loop's
cost"). URL handlers (``socket://``, ``loop://``, ``rfc2217://``) have no such descriptor and
keep pyserial's path.

On such a descriptor a ``SerialLink`` spins before it blocks on the first read after each
write (hil/spin.py, ``spin_us``): the programmer has just sent a request and a pump's reply
over a pty is microseconds away. Not when the path is a ``PtyLink`` of this same process (a
server in a test's own interpreter): two threads of one interpreter spinning and answering
each other are slower than two that block.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import select
import termios
import threading
import tty
from array import array
from collections import deque
from functools import partial
from typing import Protocol, cast

import serial

from hil.errors import HilError, UsageError
from hil.spin import DEFAULT_SPIN_US, Spinner

MAX_BAUD = 4_000_000
"""The fastest baud rate a serial side accepts (serve --baud, proxy --baud): what common
USB serial adapters reach."""

MAX_READ = 4096
"""The most bytes one read returns. Bounds memory per read whatever the peer sends."""

WRITE_TIMEOUT_S = 5.0
"""How long a serial write waits for the device to take more bytes before the link is
called lost: a device that stops draining must not hang its writer."""


_LOCAL_PTYS: set[str] = set()
"""The terminal paths of the open ``PtyLink`` objects of this process: a ``SerialLink`` opening one
talks to a server in its own interpreter and does not spin."""


class LinkClosedError(HilError):
    """The link went away: the port vanished, the peer closed, or the link was closed."""


class LinkOpenError(UsageError):
    """The link could not be opened: a bad URL, a missing device, a busy port."""


class Link(Protocol):
    """A bidirectional byte stream with bounded, timed reads."""

    @property
    def name(self) -> str:
        """What to show a person: a URL or a device path."""
        ...

    def read(self, timeout_s: float) -> bytes:
        """Return up to MAX_READ bytes, or b"" if none arrived within ``timeout_s``."""
        ...

    def write(self, data: bytes) -> None:
        """Send all of ``data``."""
        ...

    def close(self) -> None:
        """Release the link. Closing twice is harmless."""
        ...


class _Port(Protocol):
    """The part of a pyserial port object this module uses (its stubs type URL ports loosely)."""

    timeout: float | None

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...


class SerialLink:
    """A pyserial port opened from a URL or a device path."""

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 115_200,
        exclusive: bool = True,
        spin_us: int = DEFAULT_SPIN_US,
    ) -> None:
        self._url = url
        self._baudrate = baudrate
        self._exclusive = exclusive
        local = os.path.realpath(url) in _LOCAL_PTYS
        self._spinner = Spinner(0 if local else spin_us)
        """Polls the descriptor on the first read after a write (POSIX devices only)."""
        self._reply_due = False
        """A write went out since the last read: the next read spins first."""
        self._count = array("i", [0])
        self._timeout: float | None = 0.0
        """The read timeout the port is configured with now (pyserial's path only)."""
        self._fd: int | None = None
        """The POSIX device's descriptor, read and written directly; None for a URL handler."""
        self._port = self._open()

    def _open(self) -> _Port:
        try:
            port = serial.serial_for_url(self._url, baudrate=self._baudrate, do_not_open=True)
            # A real device must not be shared: a second programmer on the same port would
            # interleave frames. URL handlers (socket://, loop://) have no such notion.
            if isinstance(port, serial.Serial) and self._exclusive:
                port.exclusive = True
            port.timeout = 0
            port.write_timeout = WRITE_TIMEOUT_S
            port.open()
            self._fd = _device_fd(port)
        except ValueError as exc:
            raise LinkOpenError(f"cannot open {self._url!r}: {exc}") from exc
        except (serial.SerialException, OSError) as exc:
            raise LinkOpenError(f"cannot open {self._url!r}: {_reason(exc)}") from exc
        return cast(_Port, port)

    @property
    def name(self) -> str:
        return self._url

    def reopen(self) -> None:
        """Open the same URL again after the port vanished (raises LinkOpenError if still gone)."""
        self.close()
        self._port = self._open()
        self._timeout = 0.0
        self._reply_due = False
        self._spinner.reset()

    def read(self, timeout_s: float) -> bytes:
        fd = self._fd
        if fd is not None:
            if self._reply_due:
                self._reply_due = False
                return self._spinner.read(self.read_now, partial(self._read_fd, fd), timeout_s)
            return self._read_fd(fd, timeout_s)
        port = self._port
        try:
            waiting = port.in_waiting
            # Whole milliseconds, rounded up: a wait ends at most 1 ms late, and the same
            # wait asked again reuses the port's setting instead of reconfiguring it.
            timeout_s = math.ceil(timeout_s * 1000) / 1000
            if not waiting and self._timeout != timeout_s:
                # Setting pyserial's timeout reconfigures the port (termios calls): only
                # when it changes, and never when bytes are already waiting, since a read
                # of what is waiting returns at once whatever the timeout.
                port.timeout = timeout_s
                self._timeout = timeout_s
            first = port.read(min(waiting or 1, MAX_READ))
            if not first:
                return b""
            waiting = port.in_waiting
            if waiting and len(first) < MAX_READ:
                return first + port.read(min(waiting, MAX_READ - len(first)))
            return first
        except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
            # pyserial raises TypeError/AttributeError from a port closed under it.
            raise LinkClosedError(f"{self._url}: link lost: {_reason(exc)}") from exc

    def _read_fd(self, fd: int, timeout_s: float) -> bytes:
        """One wait and one read of whatever has arrived (at most MAX_READ bytes)."""
        try:
            if not select.select([fd], [], [], max(timeout_s, 0.0))[0]:
                return b""
            data = os.read(fd, MAX_READ)
        except BlockingIOError:
            return b""
        except (OSError, ValueError) as exc:
            # ValueError: the descriptor was closed under us (select on -1).
            raise LinkClosedError(f"{self._url}: link lost: {_reason(exc)}") from exc
        if not data:
            # A vanished device (a USB adapter pulled) is always readable and reads nothing.
            raise LinkClosedError(
                f"{self._url}: link lost: the device reports data but returns none (disconnected?)"
            )
        return data

    def read_now(self) -> bytes:
        """What has arrived, without waiting (b"" if nothing). A POSIX device: a
        ``FIONREAD`` (``_bytes_waiting``), then an ``os.read`` only if bytes are there; a URL
        handler: ``read(0)``."""
        fd = self._fd
        if fd is None:
            return self.read(0.0)
        # A vanished device reads b"" here, as "nothing yet": the next blocking read tells
        # the two apart (its select says readable).
        return _read_waiting(fd, self._count, self._url)

    def write(self, data: bytes) -> None:
        fd = self._fd
        if fd is not None:
            self._write_fd(fd, data)
            self._reply_due = True
            return
        try:
            self._port.write(data)
        except (serial.SerialException, OSError) as exc:
            raise LinkClosedError(f"{self._url}: link lost while writing: {_reason(exc)}") from exc

    def _write_fd(self, fd: int, data: bytes) -> None:
        """Write everything, waiting for room at most ``WRITE_TIMEOUT_S`` at a time."""
        try:
            left = _write_all(fd, data, WRITE_TIMEOUT_S)
        except (OSError, ValueError) as exc:
            # ValueError: the descriptor was closed under us.
            raise LinkClosedError(f"{self._url}: link lost while writing: {_reason(exc)}") from exc
        if left:
            raise LinkClosedError(
                f"{self._url}: write timed out: the device took no bytes for "
                f"{WRITE_TIMEOUT_S:g} s; {left} bytes dropped"
            )

    def close(self) -> None:
        self._fd = None
        # Closing a port that already vanished has nothing left to release.
        with contextlib.suppress(serial.SerialException, OSError):
            self._port.close()


class PtyLink:
    """The emulator's end of a pseudo-terminal pair; a programmer opens ``path``.

    The emulator keeps its own descriptor on the terminal side open as well. A programmer
    can then close and reopen the path as often as it likes, and the emulator's reads never
    see the EIO that a pty master reports when nobody holds the other side.
    """

    def __init__(self) -> None:
        master, slave = os.openpty()
        # Raw at once on both ends, before anyone opens the path (docs/field-notes.md "pyserial
        # 3.5": a fresh pty mangles CR, LF and ^C, which are ordinary bytes in our frames).
        tty.setraw(master)
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master: int | None = master
        self._slave: int | None = slave
        self._path = os.ttyname(slave)
        _LOCAL_PTYS.add(os.path.realpath(self._path))
        self._count = array("i", [0])
        self._write_timeout_s = 2.0

    @property
    def name(self) -> str:
        return self._path

    @property
    def path(self) -> str:
        """The device path a programmer opens, e.g. /dev/pts/7."""
        return self._path

    def _fd(self) -> int:
        if self._master is None:
            raise LinkClosedError(f"{self._path}: link closed")
        return self._master

    def read(self, timeout_s: float) -> bytes:
        fd = self._fd()
        readable, _, _ = select.select([fd], [], [], max(timeout_s, 0.0))
        if not readable:
            return b""
        try:
            return os.read(fd, MAX_READ)
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise LinkClosedError(f"{self._path}: link lost: {_reason(exc)}") from exc

    def read_now(self) -> bytes:
        """What has arrived, without waiting (b"" if nothing): a ``FIONREAD``
        (``_bytes_waiting``), then an ``os.read`` only if bytes are there. The serve loop's
        spin polls with it."""
        return _read_waiting(self._fd(), self._count, self._path)

    def write(self, data: bytes) -> None:
        """Write everything, waiting for room; give up if the programmer stops reading.

        A pty buffers a few kilobytes. A programmer that stopped reading must not hang the
        pump, so after ``_write_timeout_s`` without room the rest is dropped and reported.
        """
        fd = self._fd()
        try:
            left = _write_all(fd, data, self._write_timeout_s)
        except OSError as exc:
            raise LinkClosedError(f"{self._path}: link lost while writing: {exc}") from exc
        if left:
            raise LinkClosedError(
                f"{self._path}: the programmer is not reading; {left} bytes dropped"
            )

    def close(self) -> None:
        if self._master is not None:
            _LOCAL_PTYS.discard(os.path.realpath(self._path))
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None


class MemoryLink:
    """One end of an in-memory pair made by ``memory_pair``. Thread-safe."""

    def __init__(
        self,
        name: str,
        inbox: deque[bytes],
        outbox: deque[bytes],
        cond: threading.Condition,
        closed: list[bool],
    ) -> None:
        self._name = name
        self._inbox = inbox
        self._outbox = outbox
        self._cond = cond
        self._closed = closed

    @property
    def name(self) -> str:
        return self._name

    def read(self, timeout_s: float) -> bytes:
        with self._cond:
            if not self._inbox and not self._closed[0]:
                self._cond.wait_for(lambda: bool(self._inbox) or self._closed[0], timeout_s)
            if not self._inbox:
                if self._closed[0]:
                    raise LinkClosedError(f"{self._name}: peer closed the link")
                return b""
            chunks: list[bytes] = []
            size = 0
            while self._inbox and size < MAX_READ:
                chunk = self._inbox.popleft()
                if size + len(chunk) > MAX_READ:
                    keep = MAX_READ - size
                    self._inbox.appendleft(chunk[keep:])
                    chunk = chunk[:keep]
                chunks.append(chunk)
                size += len(chunk)
            return b"".join(chunks)

    def write(self, data: bytes) -> None:
        with self._cond:
            if self._closed[0]:
                raise LinkClosedError(f"{self._name}: link closed")
            if data:
                self._outbox.append(bytes(data))
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed[0] = True
            self._cond.notify_all()


def memory_pair(name: str = "memory") -> tuple[MemoryLink, MemoryLink]:
    """Two connected in-memory link ends: what one writes, the other reads."""
    a_to_b: deque[bytes] = deque()
    b_to_a: deque[bytes] = deque()
    cond = threading.Condition()
    closed = [False]
    return (
        MemoryLink(f"{name}:a", b_to_a, a_to_b, cond, closed),
        MemoryLink(f"{name}:b", a_to_b, b_to_a, cond, closed),
    )


def open_link(url: str, *, baudrate: int = 115_200, spin_us: int = DEFAULT_SPIN_US) -> SerialLink:
    """Open a pyserial URL or device path, with a one-line error if it cannot be opened.
    ``spin_us``: ``SerialLink``'s; 0 for a link that is not a programmer's (serve's, which
    spins in its own loop, and the proxy's, whose reader threads share one interpreter)."""
    if not url:
        raise LinkOpenError("no port given: pass a device path or a pyserial URL")
    return SerialLink(url, baudrate=baudrate, spin_us=spin_us)


def _bytes_waiting(fd: int, count: array[int]) -> int:
    """How many bytes the terminal ``fd`` holds ready to read (``FIONREAD``), into ``count``
    (a one-int array the link keeps: no allocation per poll).

    The spin's poll. ``read`` and ``select`` on a tty first wait for the kernel worker that
    moves a write's bytes to finish (n_tty's ``tty_buffer_flush_work``): the poller sleeps,
    its CPU may halt, and a wake-up the spin was meant to save is paid after all. This asks
    without waiting (docs/field-notes.md, "pyserial 3.5")."""
    fcntl.ioctl(fd, termios.FIONREAD, count, True)
    return count[0]


def _read_waiting(fd: int, count: array[int], name: str) -> bytes:
    """What the terminal ``fd`` holds, without waiting: b"" if ``_bytes_waiting`` counts
    nothing, else one ``os.read``. An OS error is a lost link."""
    try:
        if not _bytes_waiting(fd, count):
            return b""
        return os.read(fd, MAX_READ)
    except BlockingIOError:
        return b""
    except (OSError, ValueError) as exc:
        # ValueError: the descriptor was closed under the caller (-1).
        raise LinkClosedError(f"{name}: link lost: {_reason(exc)}") from exc


def _device_fd(port: object) -> int | None:
    """The descriptor of a POSIX serial device pyserial opened (non-blocking, as pyserial
    opens it), or None for a URL handler or a platform without descriptors."""
    if os.name != "posix" or not isinstance(port, serial.Serial):
        return None
    fd = port.fileno()
    os.set_blocking(fd, False)
    return fd


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno in (errno.EBUSY, errno.EAGAIN):
            return "the port is busy (another program has it open)"
        if exc.errno == errno.ENOENT:
            return "no such device"
        if exc.errno == errno.EACCES:
            return "permission denied"
        return os.strerror(exc.errno)
    text = str(exc).strip()
    return text or type(exc).__name__


def _write_all(fd: int, data: bytes, timeout_s: float) -> int:
    """Write all of ``data`` to the non-blocking ``fd``, waiting at most ``timeout_s`` at a
    time for room: 0 when everything went, else how many bytes no room came for. A lost
    descriptor raises (OSError, or ValueError for one closed under the caller)."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            written = 0
        view = view[written:]
        if view and not select.select([], [fd], [], timeout_s)[1]:
            return len(view)
    return 0

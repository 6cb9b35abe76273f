"""The control API: rigs and CI act on a running emulator (docs/serve.md, "Control API").

Local only, and only for the user who runs the emulator:

- a Unix socket (the default, ``DEFAULT_CONTROL``: ``control.sock`` in a private per-user
  directory), created with mode 0600 and, where the platform tells (``SO_PEERCRED``),
  answering only peers of the same uid (or root);
- a TCP listener on a loopback address (127.0.0.1, ::1). Any local user can connect to a
  TCP port, so every request must carry the server's token (``"token"``, 64 hex digits,
  ``secrets.token_hex(32)``), compared in constant time. A request without it or with a
  wrong one is refused, logged, and its connection closed.

JSON lines both ways: one request object per line, one response object
per line, ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. Requests:

- ``{"op": "ping"}``, ``{"op": "info"}``;
- ``{"op": "fault", "fault": NAME, ...params}``: a plant fault (``FAULTS``), applied through
  ``Pump.inject`` at the current pump time;
- ``{"op": "advance", "duration": "30d"}`` (or ``"seconds": N``, or ``"ms": N``): move a
  manual clock forward, firing every pump event on the way;
- ``{"op": "truth"}``: the plant's physical truth beside the firmware's view;
- ``{"op": "log", "since_seq": 0, "limit": 100}``: the pump's event log;
- ``{"op": "faults"}``: the fault names and their parameters;
- ``{"op": "cap_aspirate", "volume_nl": N}``: aspirate through the catheter access port (a
  patency check): what returned (CSF, nothing, fluid without CSF) and how much drug;
- ``{"op": "cap_inject", "volume_nl": N, "concentration_ug_per_ml": C}``: inject through the
  catheter access port (H2): straight down the catheter, bypassing the pump and its limits.
- ``{"op": "conformance"}``: the conformance verdicts so far (serve --conformance,
  docs/conformance.md), or ``{"enabled": false}``.
- ``{"op": "subscribe", "events": [...], "queue": N}``: one ok line, then this connection
  carries JSON-line events until either side closes it (hil/events.py, docs/serve.md
  "subscribe"); ``EventStream`` is its client.

``ControlServer`` serves a ``PumpServer``; ``ControlClient`` is the Python client used by
``pumpemu fault``, ``pumpemu time advance`` and ``pumpemu truth``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import select
import socket
import stat
import struct
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.faults import MAX_CONCENTRATION_UG_PER_ML, MAX_FAULT_VOLUME_NL
from hil import quantities as q
from hil.capture import fields_of, plain
from hil.control_catalogue import (
    DEFAULT_CONTROL,
    TOKEN_FILE_ENV,
    parse_fault_param,
)
from hil.errors import HilError, UsageError
from hil.events import EVENT_TYPES, Subscription, parse_subscribe
from hil.fault_builders import (
    FAULT_ALIASES,
    FAULTS,
    FaultSpec,
    build_fault,
    int_param,
    optional_int_param,
)
from hil.key_files import create_private_file
from hil.pump_events import clock_fields, log_entry_json
from hil.pump_text import stamp_line
from hil.serve import (
    ClockControlError,
    Log,
    PumpServer,
    PumpView,
    StateNotStoredError,
    format_pump_time,
    parse_tcp_address,
)
from hil.truth_rows import compare_rows, truth_fields
from protocol.documents import DocumentError, parse_json

__all__ = [
    "DEFAULT_CONTROL",
    "FAULTS",
    "FAULT_ALIASES",
    "MAX_CAP_CONCENTRATION",
    "MAX_CAP_NL",
    "MAX_LINE",
    "ControlAddress",
    "ControlClient",
    "ControlError",
    "ControlServer",
    "EventStream",
    "FaultSpec",
    "build_fault",
    "compare_rows",
    "control_dir",
    "default_token_file",
    "ensure_control_dir",
    "parse_control_address",
    "parse_fault_param",
    "plain_json",
    "read_token_file",
    "remove_token_file",
    "write_token_file",
]

MAX_LINE = 64 * 1024
"""The longest request line accepted; a longer one is refused and the connection closed."""


class ControlError(HilError):
    """A control request failed: refused by the server, or the server could not be reached."""


# -- addresses ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ControlAddress:
    """Where the control API listens: TCP ``host:port`` or a Unix socket ``path``."""

    host: str | None
    port: int | None
    path: str | None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"


def control_dir() -> Path:
    """The private per-user directory for the default control socket and token files:
    ``$XDG_RUNTIME_DIR/pumpemu`` if XDG_RUNTIME_DIR is set (an absolute path), else
    ``pumpemu-UID`` in the temporary directory (``$TMPDIR``, else ``/tmp``)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "pumpemu"
    return Path(tempfile.gettempdir()) / f"pumpemu-{os.getuid()}"


def ensure_control_dir() -> Path:
    """``control_dir()``, created with mode 0700 if missing. ``UsageError`` unless it is a
    real directory (not a symlink) owned by this user that group and others cannot enter:
    in a shared /tmp another user could have made it first."""
    path = control_dir()
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise UsageError(f"--control: cannot create {path}: {exc.strerror or exc}") from None
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise UsageError(f"--control: {path}: {exc.strerror or exc}") from None
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.getuid()
        or stat.S_IMODE(info.st_mode) & 0o077
    ):
        raise UsageError(
            f"--control: {path} is not a private directory of this user (a directory owned "
            "by you with mode 0700); remove it, or set XDG_RUNTIME_DIR, or give --control "
            "unix:PATH"
        )
    return path


def default_token_file(port: int) -> Path:
    """Where serve writes a TCP control port's token unless told otherwise
    (``--control-token``), and where the commands look for it: ``control-PORT.token``."""
    return control_dir() / f"control-{port}.token"


def write_token_file(path: Path, token: str) -> None:
    """Write ``token`` (and a newline) to ``path`` with mode 0600, atomically: a temporary
    file created 0600 beside it, renamed over it (a symlink at ``path`` is replaced, never
    followed). ``UsageError`` naming the file if it cannot be written."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        create_private_file(temporary, (token + "\n").encode("ascii"))
        try:
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise UsageError(
            f"cannot write the control token file {path}: {exc.strerror or exc}"
        ) from None


def read_token_file(path: Path) -> str:
    """The token in a token file (surrounding whitespace dropped); ``UsageError`` naming
    the file if it is missing, unreadable or empty."""
    try:
        data = path.read_bytes()[: 4 * 1024]
    except FileNotFoundError:
        raise UsageError(
            f"control token file {path} does not exist (pumpemu serve writes it when it "
            "starts a TCP control API, and removes it when it stops)"
        ) from None
    except OSError as exc:
        raise UsageError(f"control token file {path}: {exc.strerror or exc}") from None
    token = data.decode("ascii", errors="replace").strip()
    if not token:
        raise UsageError(f"control token file {path} is empty")
    return token


def remove_token_file(path: Path, token: str) -> None:
    """Remove ``path`` if it still holds ``token`` (not a later emulator's)."""
    with contextlib.suppress(OSError, UsageError):
        if read_token_file(path) == token:
            path.unlink()


def parse_control_address(text: str) -> ControlAddress:
    """``127.0.0.1:PORT``, ``[::1]:PORT``, ``localhost:PORT``, ``unix:PATH``, or ``default``
    (``DEFAULT_CONTROL``: the Unix socket ``control.sock`` in ``control_dir()``); loopback
    only."""
    if text == DEFAULT_CONTROL:
        return ControlAddress(None, None, str(control_dir() / "control.sock"))
    if text.startswith("unix:"):
        path = text.removeprefix("unix:")
        if not path:
            raise UsageError("--control: unix: needs a path, e.g. unix:/tmp/pump.sock")
        return ControlAddress(None, None, path)
    host, port = parse_tcp_address(text, what="--control")
    return ControlAddress(host, port, None)


def control_token(control: str, token_file: Path | None) -> str | None:
    """The token to send to ``control``: from ``token_file`` if given; for a TCP address,
    else from the default token file for its port (a usage error if there is none); for a
    Unix socket, none (its 0600 mode is the lock). One rule for ``pumpemu fault/time/truth``,
    ``pumpemu scenario run --backend url`` and the pytest plugin's ``--pump-control``."""
    address = parse_control_address(control)
    if token_file is not None:
        return read_token_file(token_file)
    if address.port is None:
        return None
    default = default_token_file(address.port)
    if not default.exists():
        raise UsageError(
            f"--control {address} is a TCP port and needs the token pumpemu serve wrote: "
            f"give --control-token FILE or set {TOKEN_FILE_ENV} (serve prints the file's "
            f"path; there is no {default})"
        )
    return read_token_file(default)


def connect_control(control: str, token_file: Path | None = None) -> ControlClient:
    """A client of the control API at ``control`` with its token (``control_token``)."""
    return ControlClient(control, token=control_token(control, token_file))


# -- the server -----------------------------------------------------------------------------


class ControlServer:
    """Answers control requests for one ``PumpServer``; one thread per connection.

    ``address`` is ``HOST:PORT`` (loopback), ``unix:PATH`` or ``DEFAULT_CONTROL``. With
    ``token``, every request must carry it as ``"token"``; a TCP server always has one
    (``secrets.token_hex(32)`` unless given), since any local user can reach a TCP port.
    A Unix socket is created 0600 and, where ``SO_PEERCRED`` exists, peers of another uid
    (other than root) are refused.
    """

    def __init__(
        self,
        server: PumpServer,
        address: str,
        *,
        log: Log | None = None,
        token: str | None = None,
    ) -> None:
        self._server = server
        self._log = log
        if address == DEFAULT_CONTROL:
            ensure_control_dir()
        parsed = parse_control_address(address)
        self._unix_path = parsed.path
        self._unix_inode: tuple[int, int] | None = None
        if parsed.path is not None:
            listener = self._bind_unix(parsed.path)
            info = os.lstat(parsed.path)
            self._unix_inode = (info.st_dev, info.st_ino)
            self._address = parsed
        else:
            assert parsed.host is not None
            assert parsed.port is not None
            family = socket.AF_INET6 if ":" in parsed.host else socket.AF_INET
            listener = socket.socket(family, socket.SOCK_STREAM)
            try:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind((parsed.host, parsed.port))
            except OSError as exc:
                listener.close()
                raise UsageError(
                    f"--control: cannot listen on {parsed}: {exc.strerror or exc}"
                ) from None
            self._address = ControlAddress(parsed.host, int(listener.getsockname()[1]), None)
            if token is None:
                token = secrets.token_hex(32)
        if token is not None and not token:
            listener.close()
            raise ValueError("a control token cannot be empty")
        self._token = token
        listener.listen(8)
        self._listener = listener
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._streams: set[Subscription] = set()
        self._streams_done = threading.Condition(self._conn_lock)

    @staticmethod
    def _bind_unix(path: str) -> socket.socket:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise UsageError(f"--control: {path}: {exc.strerror or exc}") from None
        else:
            if not stat.S_ISSOCK(info.st_mode):
                raise UsageError(f"--control: {path} exists and is not a socket")
            if info.st_uid != os.getuid():
                raise UsageError(f"--control: {path} exists and belongs to another user")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                pass  # a stale socket left by a process that died: replaced below
            else:
                raise UsageError(f"--control: {path} is in use by another running emulator")
            finally:
                probe.close()
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise UsageError(
                    f"--control: cannot remove the stale socket {path}: {exc.strerror or exc}"
                ) from None
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # The socket file is created 0600 (this user only) by bind itself: no moment when
        # others could connect. The umask is process-wide; it is restored at once.
        old_umask = os.umask(0o177)
        try:
            listener.bind(path)
            os.chmod(path, 0o600)  # exactly 0600 also where bind ignores the umask
        except OSError as exc:
            listener.close()
            raise UsageError(f"--control: cannot listen on {path}: {exc.strerror or exc}") from None
        finally:
            os.umask(old_umask)
        return listener

    @property
    def token(self) -> str | None:
        """The token every request must carry, or None (a Unix socket without one)."""
        return self._token

    @property
    def address(self) -> str:
        """The address clients use (with the real port when 0 was asked for)."""
        return str(self._address)

    def start(self) -> ControlServer:
        # Before the thread exists: a stop() racing the thread's start must find nothing
        # left to do on a socket it already closed.
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept_loop, name="control api")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._end_streams()
        with self._conn_lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(2.0)
        if self._unix_path is not None:
            with contextlib.suppress(OSError):
                info = os.lstat(self._unix_path)
                if (info.st_dev, info.st_ino) == self._unix_inode:  # not a successor's
                    os.unlink(self._unix_path)

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with self._conn_lock:
                self._connections.add(conn)
            thread = threading.Thread(target=self._serve_connection, args=(conn, peer))
            thread.daemon = True
            thread.name = "control connection"
            thread.start()

    def _peer_name(self, conn: socket.socket, peer: Any) -> str:
        if self._unix_path is None and isinstance(peer, tuple) and len(peer) >= 2:
            host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
            return f"{host}:{peer[1]}"
        uid = _peer_uid(conn)
        return "a local process" if uid is None else f"a local process of uid {uid}"

    def _serve_connection(self, conn: socket.socket, peer: Any = None) -> None:
        try:
            with conn, conn.makefile("rb") as reader:
                name = self._peer_name(conn, peer)
                uid = _peer_uid(conn)
                foreign = uid is not None and uid not in (os.getuid(), 0)
                while not self._stop.is_set():
                    line = reader.readline(MAX_LINE + 1)
                    if not line:
                        return
                    if foreign:  # answered at its first line, so the client sees why
                        self._refused(name, "another user")
                        foreign_error = "refused: this emulator's control API is another user's"
                        conn.sendall(_encode({"ok": False, "error": foreign_error}))
                        return
                    if len(line) > MAX_LINE:
                        conn.sendall(_encode({"ok": False, "error": "request line too long"}))
                        return
                    if not line.strip():
                        continue
                    request, bad_line = _parse_line(line)
                    if request is None:
                        conn.sendall(_encode(bad_line))
                        continue
                    refusal = self._authorize(request, name)
                    if refusal is not None:
                        conn.sendall(_encode({"ok": False, "error": refusal}))
                        return  # a refused client is cut off
                    if request.get("op") == "subscribe":
                        answer, subscription = self.subscribe(request)
                        if subscription is None:
                            conn.sendall(_encode(answer))
                            continue
                        self._stream(conn, answer, subscription, name)
                        return
                    conn.sendall(_encode(self._dispatch(request)))
        except OSError:
            return
        finally:
            with self._conn_lock:
                self._connections.discard(conn)

    # -- subscriptions --

    def subscribe(self, request: Mapping[str, Any]) -> tuple[dict[str, Any], Subscription | None]:
        """Answer a ``subscribe`` request whose token was checked: the response, and the
        new subscription if it is ok (the caller streams it, then cancels it)."""
        try:
            parsed = parse_subscribe({k: v for k, v in request.items() if k != "token"})
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}, None
        subscription = self._server.subscribe(parsed.events, parsed.queue)
        answer = {
            "ok": True,
            "format": EVENTS_FORMAT,
            "events": [e for e in EVENT_TYPES if e in parsed.events],
            "queue": parsed.queue,
        }
        return answer, subscription

    def _stream(
        self, conn: socket.socket, answer: dict[str, Any], subscription: Subscription, peer: str
    ) -> None:
        """Send the ``subscribe`` answer, then ``subscription``'s events, to ``conn`` until
        the peer closes it or serve stops (then an ``end`` event is the last line). The
        pump never waits for this thread: while it blocks in a send, the subscription's
        queue fills and drops."""
        with self._conn_lock:  # before the answer: a stop from now on waits for the end
            self._streams.add(subscription)
        if self._log is not None:
            self._log(f"control: {peer} subscribed to {', '.join(sorted(subscription.events))}")
        try:
            conn.sendall(_encode(answer))
            while True:
                event = subscription.get(STREAM_POLL_S)
                if event is not None:
                    conn.sendall(_encode(event))
                    if event["event"] == "end":
                        return
                if _peer_closed(conn) or (event is None and subscription.ended):
                    return
        except OSError:
            return
        finally:
            subscription.cancel()
            with self._conn_lock:
                self._streams.discard(subscription)
                self._streams_done.notify_all()

    def _end_streams(self, timeout_s: float = 2.0) -> None:
        """Serve is stopping: each subscriber gets its last events and ``end``, for at most
        ``timeout_s`` in all, before the connections are cut."""
        self._server.events.close("serve is stopping")
        with self._conn_lock:
            self._streams_done.wait_for(lambda: not self._streams, timeout_s)

    # -- requests --

    def _refused(self, peer: str, reason: str) -> None:
        if self._log is not None:
            self._log(f"control: refused a request from {peer}: {reason}")

    def _authorize(self, request: Mapping[str, Any], peer: str) -> str | None:
        """None if the request may be answered, else the error for the refusal (logged).
        The token itself is never logged or echoed."""
        if self._token is None:
            return None
        given = request.get("token")
        if given is None:
            self._refused(peer, "no token")
            return (
                "refused: this control API needs a token: send the contents of the token "
                'file pumpemu serve wrote as "token" in every request (pumpemu fault, time '
                "and truth: --control-token FILE or PUMPEMU_CONTROL_TOKEN_FILE)"
            )
        if not isinstance(given, str) or not hmac.compare_digest(
            given.encode("utf-8", "surrogatepass"), self._token.encode("utf-8")
        ):
            self._refused(peer, "wrong token")
            return (
                "refused: wrong token (pumpemu serve writes a new one each time it starts; "
                "read its token file again)"
            )
        return None

    def handle_line(self, line: bytes, *, peer: str = "a caller") -> dict[str, Any]:
        """One request line to one response object (never raises)."""
        request, error = _parse_line(line)
        if request is None:
            return error
        return self.handle(request, peer=peer)

    def handle(self, request: Mapping[str, Any], *, peer: str = "a caller") -> dict[str, Any]:
        """Answer one request object (never raises); refused without the right token."""
        refusal = self._authorize(request, peer)
        if refusal is not None:
            return {"ok": False, "error": refusal}
        return self._dispatch(request)

    def _dispatch(self, request: Mapping[str, Any]) -> dict[str, Any]:
        request = {k: v for k, v in request.items() if k != "token"}
        op = request.get("op")
        handler = _OPS.get(op) if isinstance(op, str) else None
        if handler is None:
            return {"ok": False, "error": f"unknown op {op!r}; known: {', '.join(_OPS)}"}
        try:
            return {"ok": True, **handler(self, request)}
        except (ValueError, TypeError, ClockControlError, StateNotStoredError) as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a bug must not kill the connection silently
            return {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}

    def _op_ping(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return {"pong": True}

    def _op_info(self, request: Mapping[str, Any]) -> dict[str, Any]:
        view = self._server.view()
        return {
            "serial": view.serial,
            "profile": view.profile,
            "clock": view.clock,
            "baud": self._server.baud,
            "link": self._server.link.name,
            "now_ms": view.now_ms,
            "now": format_pump_time(view.now_ms),
            **self._clock(view.now_ms, view),
        }

    def _clock(self, now_ms: int, view: PumpView | None = None) -> dict[str, Any]:
        """The instant ``now_ms`` (internal timeline) as every command shows it: the pump
        clock SET_CLOCK set, ISO 8601, and the emulator's elapsed time (docs/quantities.md,
        "Display"). The clock's offset from the internal timeline is read once, so the two
        always name the same instant."""
        if view is None:
            pump_clock_ms = self._server.pump_clock_ms(now_ms)  # no status built for this
        else:
            pump_clock_ms = view.status.local_time_ms - view.now_ms + now_ms
        return clock_fields(pump_clock_ms, now_ms)

    def _log_at(self, clock: Mapping[str, Any], now_ms: int, text: str) -> None:
        """Log a control operation stamped like serve's own lines (``stamp_line``), at the
        instant ``_clock`` gave its answer."""
        if self._log is not None:
            self._log(stamp_line(text, clock["pump_clock_ms"], now_ms))

    def _op_faults(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "faults": {
                name: {
                    "summary": spec.summary,
                    "params": {k: {"required": r, "help": h} for k, (r, h) in spec.params.items()},
                }
                for name, spec in FAULTS.items()
            }
        }

    def _op_fault(self, request: Mapping[str, Any]) -> dict[str, Any]:
        name = request.get("fault")
        if not isinstance(name, str):
            raise ValueError(f"'fault' must name a fault: {', '.join(FAULTS)}")
        params = {k: v for k, v in request.items() if k not in ("op", "fault")}
        fault = build_fault(name, params)
        now = self._server.inject(fault)
        clock = self._clock(now)
        self._log_at(clock, now, f"control: fault injected: {fault!r}")
        return {
            "fault": FAULT_ALIASES.get(name, name),
            "applied": fields_of(fault),
            "now_ms": now,
            **clock,
        }

    def _op_advance(self, request: Mapping[str, Any]) -> dict[str, Any]:
        given = [k for k in ("duration", "seconds", "ms") if k in request]
        if len(given) != 1:
            raise ValueError("advance takes exactly one of 'duration', 'seconds' or 'ms'")
        key = given[0]
        value = request[key]
        if key == "ms":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"'ms' must be a non-negative integer, got {value!r}")
            ms = value
        elif key == "seconds":
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"'seconds' must be a non-negative integer, got {value!r}")
            ms = value * 1_000
        else:
            if not isinstance(value, str):
                raise ValueError(f"'duration' must be a string like 30d or 6h, got {value!r}")
            # The one grammar (docs/quantities.md); a bare number stays seconds, as this
            # documented protocol always took it (docs/serve.md, "Control API").
            ms = q.parse_duration_ms(value, bare="s")
        now = self._server.advance(ms)
        clock = self._clock(now)
        self._log_at(clock, now, f"control: time advanced {ms} ms")
        return {
            "advanced_ms": ms,
            "now_ms": now,
            "now": format_pump_time(now),
            **clock,
        }

    def _op_truth(self, request: Mapping[str, Any]) -> dict[str, Any]:
        view = self._server.view()
        plant, firmware = truth_fields(view.truth, view.status)
        return {
            "now_ms": view.now_ms,
            "now": format_pump_time(view.now_ms),
            **self._clock(view.now_ms, view),
            "plant": plant,
            "firmware": firmware,
            "compare": compare_rows(plant, firmware),
        }

    def _op_cap_aspirate(self, request: Mapping[str, Any]) -> dict[str, Any]:
        _only(request, "cap_aspirate", {"volume_nl"})
        volume = int_param(request, "volume_nl")
        if volume < 0 or volume > MAX_CAP_NL:
            raise ValueError(f"'volume_nl' must be 0..{MAX_CAP_NL}, got {volume}")
        now, got = self._server.plant_operation(
            f"CAP aspiration of {volume} nL", lambda pump: pump.cap_aspirate(volume)
        )
        clock = self._clock(now)
        self._log_at(clock, now, f"control: CAP aspirated: {got!r}")
        return {"now_ms": now, **clock, **_plain_result(got)}

    def _op_cap_inject(self, request: Mapping[str, Any]) -> dict[str, Any]:
        _only(request, "cap_inject", {"volume_nl", "concentration_ug_per_ml"})
        volume = int_param(request, "volume_nl")
        conc = optional_int_param(request, "concentration_ug_per_ml")
        if volume < 0 or volume > MAX_CAP_NL:
            raise ValueError(f"'volume_nl' must be 0..{MAX_CAP_NL}, got {volume}")
        if conc is not None and not 0 <= conc <= MAX_CAP_CONCENTRATION:
            raise ValueError(
                f"'concentration_ug_per_ml' must be 0..{MAX_CAP_CONCENTRATION}, got {conc}"
            )
        now, got = self._server.plant_operation(
            f"CAP injection of {volume} nL", lambda pump: pump.cap_inject(volume, conc)
        )
        clock = self._clock(now)
        self._log_at(clock, now, f"control: CAP injected: {got!r}")
        return {"now_ms": now, **clock, **_plain_result(got)}

    def _op_log(self, request: Mapping[str, Any]) -> dict[str, Any]:
        since = request.get("since_seq", 0)
        limit = request.get("limit")
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise ValueError(f"'since_seq' must be a non-negative integer, got {since!r}")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ValueError(f"'limit' must be a positive integer, got {limit!r}")
        entries = self._server.log_entries(since, limit)
        view_next = self._server.view().status.log_next_seq
        return {"next_seq": view_next, "entries": [log_entry_json(e) for e in entries]}

    def _op_subscribe(self, request: Mapping[str, Any]) -> dict[str, Any]:
        raise ValueError(
            "subscribe streams events on a connection of its own: send it as a line on the "
            "control socket (hil.control.EventStream), not through handle()"
        )

    def _op_conformance(self, request: Mapping[str, Any]) -> dict[str, Any]:
        tap = self._server.conformance
        if tap is None:
            return {"enabled": False}
        return {"enabled": True, **tap.verdicts()}


_OPS: dict[str, Callable[[ControlServer, Mapping[str, Any]], dict[str, Any]]] = {
    "ping": ControlServer._op_ping,
    "info": ControlServer._op_info,
    "faults": ControlServer._op_faults,
    "fault": ControlServer._op_fault,
    "advance": ControlServer._op_advance,
    "truth": ControlServer._op_truth,
    "log": ControlServer._op_log,
    "cap_aspirate": ControlServer._op_cap_aspirate,
    "cap_inject": ControlServer._op_cap_inject,
    "conformance": ControlServer._op_conformance,
    "subscribe": ControlServer._op_subscribe,
}

EVENTS_FORMAT = "pumpemu-events/1"
"""Named in the ``subscribe`` answer; changes only if an existing field changes meaning."""

STREAM_POLL_S = 0.2
"""How often an idle event stream looks whether its subscriber has gone."""

MAX_CAP_NL = MAX_FAULT_VOLUME_NL
"""The most one CAP operation moves (100 mL: above any syringe a clinician would use)."""
MAX_CAP_CONCENTRATION = MAX_CONCENTRATION_UG_PER_ML
"""The strongest solution a CAP injection may carry, ug/mL (1 g/mL: above any drug)."""


def _only(request: Mapping[str, Any], op: str, allowed: set[str]) -> None:
    unknown = sorted(set(request) - allowed - {"op"})
    if unknown:
        raise ValueError(
            f"{op} takes no field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _plain_result(value: Any) -> dict[str, Any]:
    fields = fields_of(value)
    fields.pop("type", None)
    return fields


def _parse_line(line: bytes) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the request object in a line, {}) or (None, the error answer for the line)."""
    try:
        request = parse_json(line.decode("utf-8"), max_bytes=MAX_LINE)
    except UnicodeDecodeError:
        return None, {"ok": False, "error": "not a JSON object: not UTF-8 text"}
    except DocumentError as exc:
        return None, {"ok": False, "error": f"not a JSON object: {exc}"}
    if not isinstance(request, dict):
        return None, {"ok": False, "error": "a request is a JSON object with an 'op' field"}
    return request, {}


def _peer_uid(conn: socket.socket) -> int | None:
    """The uid of a Unix-socket peer where the platform tells (Linux ``SO_PEERCRED``)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None or conn.family != socket.AF_UNIX:
        return None
    try:
        _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, option, 12))
    except OSError:
        return None
    return int(uid)


def _peer_closed(conn: socket.socket) -> bool:
    """Has the subscriber closed its end? Lines it sends after ``subscribe`` are read and
    ignored (docs/serve.md: a stream carries events one way)."""
    try:
        for _ in range(16):  # a peer that keeps sending cannot hold the stream here
            if not select.select([conn], [], [], 0)[0]:
                break
            if not conn.recv(4096):
                return True
    except (OSError, ValueError):
        return True
    return False


def _encode(obj: Mapping[str, Any]) -> bytes:
    return (json.dumps(plain_json(obj), separators=(",", ":")) + "\n").encode("utf-8")


def plain_json(obj: Any) -> Any:
    """Make a response JSON-ready (enums by name, bytes as hex)."""
    if isinstance(obj, Mapping):
        return {str(k): plain_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain_json(v) for v in obj]
    return plain(obj)


# -- the clients ----------------------------------------------------------------------------


def _connect(address: str, timeout_s: float | None) -> tuple[str, socket.socket]:
    """(the address as shown, a socket connected to it); ``ControlError`` if unreachable."""
    parsed = parse_control_address(address)
    shown = str(parsed)
    try:
        if parsed.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout_s)
                sock.connect(parsed.path)
            except OSError:
                sock.close()
                raise
        else:
            assert parsed.host is not None
            assert parsed.port is not None
            sock = socket.create_connection((parsed.host, parsed.port), timeout=timeout_s)
    except OSError as exc:
        raise ControlError(
            f"cannot reach the control API at {shown}: {exc.strerror or exc} "
            "(is pumpemu serve running with --control?)"
        ) from None
    return shown, sock


class ControlClient:
    """A blocking client of the control API:
    ``ControlClient("127.0.0.1:7001", token=read_token_file(path)).truth()``.

    ``token`` is sent in every request (a TCP control API refuses requests without it).
    Every method returns the response object (``ok`` is true) or raises ``ControlError``
    with the server's error message.
    """

    def __init__(self, address: str, *, timeout_s: float = 30.0, token: str | None = None) -> None:
        self._address, sock = _connect(address, timeout_s)
        self._token = token
        self._sock = sock
        self._reader = sock.makefile("rb")

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return its response; ``ControlError`` if it failed."""
        request = {"op": op, **fields}
        if self._token is not None:
            request["token"] = self._token
        line = json.dumps(request, separators=(",", ":")) + "\n"
        try:
            self._sock.sendall(line.encode("utf-8"))
            answer = self._reader.readline(16 * MAX_LINE)
        except OSError as exc:
            raise ControlError(f"control API {self._address}: {exc.strerror or exc}") from None
        if not answer:
            raise ControlError(f"control API {self._address} closed the connection")
        try:
            response = parse_json(answer.decode("utf-8", "replace"), max_bytes=16 * MAX_LINE)
        except DocumentError as exc:
            raise ControlError(f"control API {self._address}: bad response: {exc}") from None
        if not isinstance(response, dict) or not response.get("ok"):
            error = response.get("error") if isinstance(response, dict) else response
            raise ControlError(str(error))
        return response

    def ping(self) -> dict[str, Any]:
        return self.request("ping")

    def info(self) -> dict[str, Any]:
        return self.request("info")

    def faults(self) -> dict[str, Any]:
        return self.request("faults")

    def fault(self, name: str, **params: Any) -> dict[str, Any]:
        """Inject a plant fault: ``fault("stall", recover_after_s=3600)``."""
        return self.request("fault", fault=name, **params)

    def advance(self, duration: str | int) -> dict[str, Any]:
        """Advance a manual clock: ``advance("30d")``, ``advance(90)`` (seconds)."""
        if isinstance(duration, int) and not isinstance(duration, bool):
            return self.request("advance", seconds=duration)
        return self.request("advance", duration=duration)

    def truth(self) -> dict[str, Any]:
        return self.request("truth")

    def cap_aspirate(self, volume_nl: int) -> dict[str, Any]:
        return self.request("cap_aspirate", volume_nl=volume_nl)

    def cap_inject(
        self, volume_nl: int, concentration_ug_per_ml: int | None = None
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {"volume_nl": volume_nl}
        if concentration_ug_per_ml is not None:
            fields["concentration_ug_per_ml"] = concentration_ug_per_ml
        return self.request("cap_inject", **fields)

    def log(self, since_seq: int = 0, limit: int | None = None) -> dict[str, Any]:
        fields: dict[str, Any] = {"since_seq": since_seq}
        if limit is not None:
            fields["limit"] = limit
        return self.request("log", **fields)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._reader.close()
            self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventStream:
    """A subscriber of the control API (docs/serve.md, "subscribe"):

    ``with EventStream(address, ["status", "alarm"], token=t) as stream:
    event = stream.next(timeout_s=1.0)``

    Connects, sends ``subscribe`` and reads its answer (``answer``; ``ControlError`` if it
    was refused). ``next`` returns the next event, or None if none came within
    ``timeout_s``; ``ControlError`` once the stream has ended (serve stopped or closed it).
    Closing it unsubscribes.
    """

    def __init__(
        self,
        address: str,
        events: Sequence[str] | None = None,
        *,
        queue: int | None = None,
        token: str | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._address, self._sock = _connect(address, timeout_s)
        self._buffer = bytearray()
        self._ended = False
        request: dict[str, Any] = {"op": "subscribe"}
        if events is not None:
            request["events"] = list(events)
        if queue is not None:
            request["queue"] = queue
        if token is not None:
            request["token"] = token
        try:
            self._sock.sendall((json.dumps(request, separators=(",", ":")) + "\n").encode())
            answer = self._line(timeout_s)
        except BaseException:
            self.close()
            raise
        if answer is None:
            self.close()
            raise ControlError(f"control API {self._address}: no answer to subscribe")
        if not answer.get("ok"):
            self.close()
            raise ControlError(str(answer.get("error", answer)))
        self.answer = answer
        """The ``subscribe`` answer: ``format``, ``events``, ``queue``."""

    def next(self, timeout_s: float | None = None) -> dict[str, Any] | None:
        """The next event; None if none came within ``timeout_s`` (None: wait for one)."""
        if self._ended:
            raise ControlError(f"control API {self._address}: the event stream has ended")
        return self._line(timeout_s)

    def _line(self, timeout_s: float | None) -> dict[str, Any] | None:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                try:
                    event = parse_json(line.decode("utf-8", "replace"), max_bytes=16 * MAX_LINE)
                except DocumentError as exc:
                    raise ControlError(f"control API {self._address}: bad line: {exc}") from None
                if not isinstance(event, dict):
                    raise ControlError(f"control API {self._address}: not an object: {event!r}")
                return event
            if len(self._buffer) > 16 * MAX_LINE:
                raise ControlError(f"control API {self._address}: line too long")
            try:
                self._sock.settimeout(timeout_s)
                chunk = self._sock.recv(65_536)
            except TimeoutError:
                return None
            except OSError as exc:
                self._ended = True
                raise ControlError(f"control API {self._address}: {exc.strerror or exc}") from None
            if not chunk:
                self._ended = True
                raise ControlError(f"control API {self._address} closed the event stream")
            self._buffer += chunk

    def fileno(self) -> int:
        """The socket's descriptor, for ``select`` beside other sources."""
        return self._sock.fileno()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

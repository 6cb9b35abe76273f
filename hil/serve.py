"""The serve loop: one emulated pump behind one link, the only place it does I/O and reads a clock.

``PumpServer`` joins a sans-IO ``PumpDevice`` to a ``Link`` (a pyserial URL, a pty, a TCP
listener, an in-memory pair) and a ``Clock``. It runs one blocking thread per link
(docs/field-notes.md "pyserial 3.5": that was the fastest way to move serial bytes), and on every
turn:

1. fires the device's timers that are due on either timeline (``get_pump_timer``,
   ``get_link_timer``, ``handle_timer``), and writes what the device has to send;
2. reads the link, blocking no longer than until the next thing is due: a pump timer
   (converted from pump time to a real wait by the clock), a paced byte, or ``poll_s``. On
   the turn after bytes arrived it first polls the link for up to ``spin_us`` (hil/spin.py;
   0 unless asked, 200 us in ``pumpemu serve``): the next request is usually microseconds
   behind the reply;
3. hands what arrived to ``device.receive_data(data, now, link)``, notes the device's next
   timers, and writes the reply last, so the thread blocks again at once.

The device's timers are remembered between turns, so a turn with nothing due costs a clock
read and a comparison before its read; a control-API call that holds the lock makes the
next turn ask the device again (docs/serve.md "The serve loop's cost").

Time: two timelines (docs/serve.md "Two timelines"). Pump time comes only from the clock
given. A ``ScaledClock``/``SystemClock`` converts a pump-time deadline to a real wait
(``real_ns_until``). A ``ManualClock`` never moves by itself: only ``advance`` (the control
API) moves it, and then fires the timers at once. Link time (the session's idle timeout and
maximum length, the opening lockout, the stage lifetime, the give-up on a partial frame)
always follows the monotonic source in real milliseconds, whatever the pump clock does: a
programmer that vanishes frees the pump after the idle timeout in real time under
``--clock manual``, and one that keeps its session between commands is not expired in
milliseconds under ``--clock x1000``.

Locking. One lock guards the device: the serve thread holds it around each call into the
device, and the control API thread takes it to inject faults, advance time and read truth.

Pacing (``baud``). A pty or a socket moves a frame in microseconds; a serial wire at 115200
baud takes 87 us per byte (start bit, 8 data bits, stop bit). With ``baud`` set the server
models the wire in both directions, so a programmer's timeouts behave as on hardware:

- received bytes become visible to the device no earlier than their wire time: each chunk
  occupies the wire for ``len * 10 / baud`` seconds after the later of its arrival and the
  end of the previous chunk (bytes are serialized back to back);
- replies are written no faster than the wire rate: cut into slices of about a millisecond
  of wire time, each written when its last byte would have left a real UART that started on
  the reply when its request became visible (the emulated pump answers in no time; the
  host's compute time hides inside the reply's wire time).

Waits are scheduled against absolute deadlines, so a late wake-up never accumulates.

A vanished port (``LinkClosedError``) is logged to stderr and, if the link can ``reopen()``
(``SerialLink``), retried with backoff; the pump and its state live on meanwhile. Sessions,
security events and alarms are logged one line each as they appear in the pump's event log.
Every chunk, both ways, goes to the capture (``CaptureWriter``) with its pump time.

Subscribers of the control API's ``subscribe`` op (docs/serve.md) get events through
``PumpEvents`` (hil/pump_events.py): published from the same points, never waiting for a
subscriber, and built only for the types someone wants.
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from emulator.clock import Clock, ManualClock
from emulator.device import PumpDevice
from emulator.faults import Fault
from emulator.firmware.firmware import FirmwareStatus
from emulator.plant import PlantTruth
from emulator.pump import Pump
from hil import quantities as q
from hil.capture import CaptureWriter
from hil.errors import HilError, UsageError
from hil.events import EventHub, Subscription
from hil.links import MAX_READ, Link, LinkClosedError, LinkOpenError
from hil.pump_events import PumpEvents, status_body
from hil.pump_text import describe_event, format_pump_time, stamp_line
from hil.spin import Spinner
from hil.state_file import write_state_file
from hil.timer_slack import PACED_SLACK_NS, set_timer_slack_ns
from protocol.device_state import EventKind, LogEntry

_T = TypeVar("_T")

__all__ = [
    "ADVANCE_SLICE_MS",
    "DEFAULT_POLL_S",
    "MAX_ADVANCE_MS",
    "REOPEN_DELAYS_S",
    "ClockControlError",
    "ConformanceTap",
    "Log",
    "PumpServer",
    "PumpView",
    "ServeStats",
    "StateNotStoredError",
    "TcpListenerLink",
    "WireModel",
    "describe_event",
    "format_pump_time",
    "internal_times",
    "parse_tcp_address",
    "stderr_log",
    "write_state_file",
]

MAX_ADVANCE_MS = 36_500 * 86_400_000
"""The most one ``advance`` moves a manual clock: 100 years, far past a pump's battery life
(docs/domain.md section 1), and far inside the range a saved pump may reach
(docs/state-file.md). A longer run is advanced in steps."""

ADVANCE_SLICE_MS = 7 * 86_400_000
"""An advance moves the clock a week at a time, releasing the device lock in between: a week
of pump events takes well under a millisecond, so a programmer waits no longer than that."""

DEFAULT_POLL_S = 0.05
"""The longest one read blocks: bounds how fast ``stop`` takes effect, never latency."""


REOPEN_DELAYS_S = (0.05, 0.1, 0.2, 0.5, 1.0)
"""Backoff between attempts to reopen a vanished port; the last value repeats."""

BITS_PER_BYTE = 10
"""On the wire: a start bit, 8 data bits and a stop bit (8N1)."""

TX_SLICE_NS = 1_000_000
"""Paced replies are written in slices of about this much wire time (1 ms)."""

Log = Callable[[str], None]
"""Receives one human-readable line at a time (no newline)."""


def stderr_log(line: str) -> None:
    """The default log: one line on stderr, flushed at once."""
    sys.stderr.write(f"pumpemu serve: {line}\n")
    sys.stderr.flush()


class StateNotStoredError(HilError):
    """The control API moved the pump, but its state could not be stored (docs/serve.md)."""


class ClockControlError(HilError):
    """Time cannot be moved by hand: the server runs on a real-time clock."""


@runtime_checkable
class RealTimeClock(Protocol):
    """A clock that can say how long to wait in real time for a pump-time instant."""

    def now_ms(self) -> int: ...

    def real_ns_until(self, pump_ms: int) -> int: ...


class ConformanceTap(Protocol):
    """What the serve loop hands every chunk to when a conformance monitor watches the link
    (hil/conformance/recorder.py): ``to_pump`` chunks as received, ``to_programmer`` as
    written, with the link time. Called only when one is given: no cost otherwise."""

    def feed(self, direction: str, data: bytes, link_ms: int) -> None: ...

    def verdicts(self) -> dict[str, Any]: ...

    def violations_since(self, index: int) -> list[dict[str, Any]]: ...


@runtime_checkable
class Reopenable(Protocol):
    """A link that can be opened again after it vanished (``SerialLink``)."""

    def reopen(self) -> None: ...


# -- the wire model -------------------------------------------------------------------------


class WireModel:
    """When bytes cross a serial wire at ``baud`` (8N1), in integer nanoseconds.

    Pure arithmetic, so it is tested without a clock. ``rx_visible`` and ``tx_schedule``
    each keep their own direction's wire busy until the last byte they scheduled.
    """

    __slots__ = ("_baud", "_rx_free_ns", "_slice_bytes", "_tx_free_ns")

    def __init__(self, baud: int) -> None:
        if isinstance(baud, bool) or not isinstance(baud, int) or baud < 1:
            raise ValueError(f"baud must be an int >= 1, got {baud!r}")
        self._baud = baud
        self._rx_free_ns = 0
        self._tx_free_ns = 0
        self._slice_bytes = max(1, TX_SLICE_NS * baud // (BITS_PER_BYTE * 1_000_000_000))

    @property
    def baud(self) -> int:
        return self._baud

    def wire_ns(self, n_bytes: int) -> int:
        """How long ``n_bytes`` occupy the wire, rounded up to a whole nanosecond."""
        return -(-n_bytes * BITS_PER_BYTE * 1_000_000_000 // self._baud)

    def rx_visible(self, n_bytes: int, arrival_ns: int) -> int:
        """When the last of ``n_bytes`` that reached us at ``arrival_ns`` is on our side of
        the wire: they start when they arrived or when the previous bytes finished."""
        start = max(arrival_ns, self._rx_free_ns)
        self._rx_free_ns = start + self.wire_ns(n_bytes)
        return self._rx_free_ns

    def tx_schedule(self, data: bytes, now_ns: int) -> list[tuple[int, bytes]]:
        """Slices of ``data`` with the instant each may be written: when its last byte would
        have left a UART that started sending at ``now_ns`` or when it was next free."""
        start = max(now_ns, self._tx_free_ns)
        out: list[tuple[int, bytes]] = []
        sent = 0
        for offset in range(0, len(data), self._slice_bytes):
            piece = data[offset : offset + self._slice_bytes]
            sent += len(piece)
            out.append((start + self.wire_ns(sent), piece))
        if out:
            self._tx_free_ns = out[-1][0]
        return out

    def reset(self) -> None:
        """The wire was lost: nothing is in flight any more."""
        self._rx_free_ns = 0
        self._tx_free_ns = 0


# -- what the control API reads -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PumpView:
    """Plant truth beside the firmware's view, read at one instant under the device lock."""

    now_ms: int
    serial: str
    profile: str
    clock: str
    truth: PlantTruth
    status: FirmwareStatus


@dataclass(frozen=True, slots=True)
class ServeStats:
    rx_bytes: int
    tx_bytes: int
    sessions_opened: int
    security_events: int
    alarms_raised: int
    link_losses: int
    reconnects: int


def internal_times(entries: Sequence[LogEntry], clock_offset_ms: int) -> list[int]:
    """Where consecutive log entries fall on the internal timeline.

    Stamps are on the pump clock as it read when each entry was written (docs/protocol.md
    section 11); ``clock_offset_ms`` is the offset now (``status.local_time_ms -
    status.time_ms``). Walking back from the newest entry, the offset before a CLOCK_SET was
    smaller by the jump it made (``value_a``, the clock set, minus its own stamp, the clock
    before), which is exact as long as no entry between them was dropped.
    """
    offset = clock_offset_ms
    out: list[int] = []
    for entry in reversed(entries):
        if entry.kind is EventKind.CLOCK_SET:
            offset -= entry.value_a - entry.time_ms
        out.append(entry.time_ms - offset)
    out.reverse()
    return out


# -- the server -----------------------------------------------------------------------------


class PumpServer:
    """Serves one ``PumpDevice`` on one ``Link``, in its own thread or in the caller's.

    ``with PumpServer(device, link, clock) as server: ...`` starts it and stops it. The
    server owns the link from then on and closes it when it stops (``close_link``).
    """

    def __init__(
        self,
        device: PumpDevice,
        link: Link,
        clock: Clock,
        *,
        capture: CaptureWriter | None = None,
        baud: int | None = None,
        log: Log = stderr_log,
        poll_s: float = DEFAULT_POLL_S,
        reopen_delays_s: Sequence[float] = REOPEN_DELAYS_S,
        close_link: bool = True,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        conformance: ConformanceTap | None = None,
        spin_us: int = 0,
    ) -> None:
        if clock.now_ms() < device.now_ms:
            raise ValueError(
                f"the clock ({clock.now_ms()} ms) is behind the pump ({device.now_ms} ms): "
                "pump time never runs backwards"
            )
        if poll_s <= 0:
            raise ValueError("poll_s must be > 0")
        if spin_us < 0:
            raise ValueError("spin_us must be >= 0")
        if not reopen_delays_s or min(reopen_delays_s) < 0:
            raise ValueError("reopen_delays_s must be non-empty and non-negative")
        self._device = device
        self._link = link
        self._clock = clock
        self._capture = capture
        self._conformance = conformance
        self._wire = WireModel(baud) if baud is not None else None
        self._log = log
        self._poll_s = poll_s
        self._reopen_delays = tuple(reopen_delays_s)
        self._close_link = close_link
        self._mono = monotonic_ns
        self._link_origin_ns = monotonic_ns()
        self._link_base_ms = device.link_ms
        self._lock = threading.Lock()
        self._advancing = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._rx_pending: deque[tuple[int, bytes]] = deque()
        self._tx_pending: deque[tuple[int, bytes]] = deque()
        self._log_seq = device.pump.status().log_next_seq
        self._rx_bytes = 0
        self._tx_bytes = 0
        self._sessions = 0
        self._security = 0
        self._alarms = 0
        self._losses = 0
        self._reconnects = 0
        self._saved_key = self._memory_key()
        self._hub = EventHub()
        self._events = PumpEvents(self._hub)
        self._poll_ns = int(poll_s * 1e9)
        self._spinner = Spinner(0 if self._wire is not None else spin_us, monotonic_ns=monotonic_ns)
        """Polls the link after bytes arrived (never while paced: a paced loop sleeps to wire
        instants, and a spin would only burn the CPU)."""
        self._spin_next = False
        """Whether the next read spins first: bytes arrived on the turn before."""
        self._realtime = clock if isinstance(clock, RealTimeClock) else None
        """The clock, if it can convert a pump-time deadline to a real wait (checked once:
        a runtime protocol check costs microseconds on every turn)."""
        self._timers: tuple[int | None, int | None] | None = None
        """The device's (pump, link) timers as of the serve thread's last call into it;
        None when a control-API call may have changed them (``_control``)."""

    # -- life cycle --

    def start(self) -> PumpServer:
        """Run the serve loop in a daemon thread; returns at once."""
        if self._thread is not None:
            raise RuntimeError("the server was already started")
        self._thread = threading.Thread(target=self.run, name=f"serve {self._link.name}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the loop to end and wait for it (at most ``timeout_s``). Idempotent."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait until the loop has ended (stopped, or failed: see ``error``)."""
        return self._done.wait(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    @property
    def error(self) -> BaseException | None:
        """Why the loop ended by itself (a link that cannot come back), or None."""
        return self._error

    def __enter__(self) -> PumpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what it serves --

    @property
    def device(self) -> PumpDevice:
        """The device. Touch it only inside ``locked()`` while the server runs."""
        return self._device

    @property
    def link(self) -> Link:
        return self._link

    @property
    def conformance(self) -> ConformanceTap | None:
        """The conformance monitor watching this link (serve --conformance), or None."""
        return self._conformance

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def events(self) -> EventHub:
        """The subscribers of the control API's ``subscribe`` op (docs/serve.md)."""
        return self._hub

    def subscribe(self, events: Collection[str], capacity: int) -> Subscription:
        """A new subscriber of ``events`` (``hil.events.EVENT_TYPES``), holding at most
        ``capacity`` unread events. One that wants ``status`` is sent the status now first,
        before any event published after it (both happen under the device lock)."""
        with self._lock:
            subscription = self._hub.subscribe(events, capacity)
            if "status" in subscription.events:
                self._bring_up_to_date()
                subscription.offer(
                    "status", status_body(self._device, self.clock_name(), self.link_ms())
                )
            return subscription

    def _status_changed(self) -> None:
        """Publish state and status if they changed (caller holds the lock)."""
        self._events.status_changed(self._device, self.clock_name(), self.link_ms())

    @property
    def spin_us(self) -> int:
        """How long a read after received bytes polls first (0: never; always 0 paced)."""
        return self._spinner.spin_ns // 1_000

    @property
    def baud(self) -> int | None:
        return self._wire.baud if self._wire is not None else None

    @property
    def manual_clock(self) -> bool:
        return isinstance(self._clock, ManualClock)

    @contextlib.contextmanager
    def locked(self) -> Iterator[PumpDevice]:
        """Hold the device lock: ``with server.locked() as device: ...``."""
        with self._control():
            yield self._device
            self._scan_log()

    @contextlib.contextmanager
    def _control(self) -> Iterator[None]:
        """The device lock for anything but the serve loop's own turn: whatever it does to
        the device (a fault, an advance, a timer fired), the loop asks the device for its
        timers again on its next turn."""
        with self._lock:
            try:
                yield
            finally:
                self._timers = None

    def stats(self) -> ServeStats:
        return ServeStats(
            self._rx_bytes,
            self._tx_bytes,
            self._sessions,
            self._security,
            self._alarms,
            self._losses,
            self._reconnects,
        )

    # -- the control API's operations (thread-safe) --

    def now_ms(self) -> int:
        with self._control():
            return self._device.now_ms

    def pump_clock_ms(self, internal_ms: int) -> int:
        """The pump clock at ``internal_ms`` (the clock as SET_CLOCK left it), without a status."""
        with self._control():
            return self._device.pump.clock_ms(internal_ms)

    def _instant(self, internal_ms: int) -> str:
        """``internal_ms`` as every command shows an instant (caller holds the lock)."""
        return q.instant(self._device.pump.clock_ms(internal_ms), internal_ms)

    def link_ms(self) -> int:
        """Now on the link timeline: real milliseconds, whatever the pump clock does."""
        return self._link_base_ms + (self._mono() - self._link_origin_ns) // 1_000_000

    def inject(self, fault: Fault) -> int:
        """Apply a plant fault at the current pump time; returns that time."""
        with self._control():
            now = self._bring_up_to_date()
            self._device.pump.inject(fault)
            self._device.handle_timer(now, self.link_ms())
            self._note(f"fault injected: {fault!r}", now)
            self._events.fault(fault, now)
            self._scan_log()
            self._status_changed()
            self._store_before_answer(f"fault injected at {self._instant(now)}", always=True)
            return now

    def plant_operation(self, what: str, operation: Callable[[Pump], _T]) -> tuple[int, _T]:
        """Apply a plant operation the firmware never sees (a catheter access port aspiration
        or injection, H2) at the current pump time, stored like a fault; returns that time
        and the operation's result."""
        with self._control():
            now = self._bring_up_to_date()
            result = operation(self._device.pump)
            self._device.handle_timer(now, self.link_ms())
            self._note(what, now)
            self._events.operation(what, now)
            self._scan_log()
            self._status_changed()
            self._store_before_answer(f"{what} at {self._instant(now)}", always=True)
            return now, result

    def advance(self, ms: int) -> int:
        """Move a manual clock forward by ``ms`` and fire every timer on the way; returns
        the new pump time. ``ClockControlError`` on a real-time clock.

        At most ``MAX_ADVANCE_MS`` (100 years) per call. The clock moves in slices of
        ``ADVANCE_SLICE_MS`` (one week), each under the device lock on its own, so a
        programmer is served between slices however long the advance (docs/serve.md).
        """
        if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
            raise ValueError(f"time only moves forward by a whole number of ms, got {ms!r}")
        if ms > MAX_ADVANCE_MS:
            raise ValueError(
                f"one advance moves at most {MAX_ADVANCE_MS // 86_400_000} days "
                f"({MAX_ADVANCE_MS} ms), got {ms} ms: advance in steps"
            )
        clock = self._clock
        if not isinstance(clock, ManualClock):
            raise ClockControlError(
                "time advance needs a manual clock (pumpemu serve --clock manual); "
                "this pump's time follows a real-time clock"
            )
        with self._advancing:  # one advance at a time: slices of two never interleave
            with self._control():
                before = clock.now_ms()
            left = ms
            while left:
                step = min(left, ADVANCE_SLICE_MS)
                with self._control():
                    now = clock.advance(step)
                    self._device.handle_timer(now, self.link_ms())
                    self._scan_log()
                left -= step
                time.sleep(0)  # let a waiting serve thread take the lock between slices
            with self._control():
                now = clock.now_ms()
                self._note(
                    f"time advanced {ms} ms: {self._instant(before)} -> {self._instant(now)}",
                    now,
                )
                self._events.time(before, now, self._device.pump.clock_ms(now))
                self._scan_log()
                self._status_changed()
                self._store_before_answer(f"time advanced to {self._instant(now)}")
                return now

    def view(self) -> PumpView:
        """Plant truth and the firmware's status, at the same instant."""
        with self._control():
            self._bring_up_to_date()
            pump = self._device.pump
            return PumpView(
                now_ms=pump.now_ms,
                serial=self._device.session.serial,
                profile=pump.profile.name,
                clock=self.clock_name(),
                truth=pump.plant_truth(),
                status=pump.status(),
            )

    def log_entries(self, since_seq: int = 0, limit: int | None = None) -> tuple[LogEntry, ...]:
        with self._control():
            self._bring_up_to_date()
            entries = self._device.pump.log(since_seq)
        return entries if limit is None else entries[:limit]

    def clock_name(self) -> str:
        clock = self._clock
        if isinstance(clock, ManualClock):
            return "manual"
        factor = getattr(clock, "factor", None)
        if factor == 1:
            return "real"
        if isinstance(factor, int):
            return f"x{factor}"
        return type(clock).__name__

    # -- persistence (the device's own ``persist``, docs/serve.md) --

    def save(self) -> None:
        """Bring the pump up to the clock and store its state now (a clean shutdown).
        Errors propagate: the caller reports a state that could not be saved."""
        with self._control():
            self._bring_up_to_date()
            # Counted security events are written as their summaries before the last save,
            # so a restart from this state loses none (docs/protocol.md section 11.3).
            self._device.end_security_runs()
            self._scan_log()
            self._device.save()
            self._saved_key = self._memory_key()

    def _memory_key(self) -> tuple[int, int, int | None]:
        """What must never be lost: the ledger and the failed openings and lockout."""
        session = self._device.session
        return (self._device.ledger.recorded, session.failed_openings, session.lockout_until_ms)

    def _store_before_answer(self, what: str, *, always: bool = False) -> None:
        """A control client is told of a pump time or fault only once it is stored, so a
        restart is never behind what it saw (caller holds the lock). ``always``: a fault
        changes the plant without moving time or the ledger, so store it regardless."""
        device = self._device
        if always:
            try:
                device.save()
                return
            except Exception as exc:  # any failure means: not stored
                error: str | None = f"{type(exc).__name__}: {exc}"
        elif device.save_if_changed():
            return
        else:
            error = device.pop_persist_error()
        self._log(f"state not saved: {error}")
        raise StateNotStoredError(f"{what}, but the state could not be stored: {error}")

    def _save_if_changed(self) -> None:
        """Store a change to the ledger, the failed openings or the lockout that a timer
        made, and log a failed store the device met (caller holds the lock). The device
        itself stores before every reply; this is the retry when no reply follows."""
        key = self._memory_key()
        if key != self._saved_key and self._device.save_if_changed():
            self._saved_key = key
        error = self._device.pop_persist_error()
        if error is not None:
            self._log(f"state not saved: {error}")

    # -- the loop --

    def run(self) -> None:
        """Serve until ``stop`` (or until the link is lost for good). Blocks."""
        if self._wire is not None:
            # Paced: this thread sleeps until each slice's wire instant, and Linux's default
            # 50 us timer slack would be added to every reply (docs/serve.md "Pacing").
            set_timer_slack_ns(PACED_SLACK_NS)
        try:
            while not self._stop.is_set():
                try:
                    self._turn()
                except LinkClosedError as lost:
                    if not self._recover(lost):
                        break
        except BaseException as exc:  # reported by the owner through ``error``
            self._error = exc
            self._log(f"serve loop failed: {type(exc).__name__}: {exc}")
        finally:
            if self._close_link:
                with contextlib.suppress(HilError, OSError):
                    self._link.close()
            self._done.set()

    def _turn(self) -> None:
        """One pass of the loop: feed what is due, fire what is due, then block in one read.

        The common turn after a reply costs a clock read and a comparison before the read:
        the device's timers are remembered from the last call into it (``_timers``), and
        only a timer that is due, or a control-API call that touched the device, makes the
        turn take the lock and ask the device again (docs/serve.md "The serve loop's cost").
        """
        wire = self._wire
        if wire is not None:
            self._feed_due_rx()
        timers = self._timers
        link = self.link_ms()
        if timers is None or self._due(timers, link):
            timers = self._service()
            link = self.link_ms()
        if wire is not None:
            self._write_due_tx()
        wait_s = self._wait_s(timers[0], timers[1], link)
        data = self._spin(wait_s) if self._spin_next else self._link.read(wait_s)
        self._spin_next = bool(data) and self._spinner.spin_ns > 0
        if not data:
            return
        self._rx_bytes += len(data)
        if wire is None:
            self._feed(data, None)
        else:
            self._rx_pending.append((wire.rx_visible(len(data), self._mono()), data))

    def _spin(self, wait_s: float) -> bytes:
        """The turn after bytes arrived: poll the link first (hil/spin.py), then block for
        the rest of ``wait_s``. A programmer in a conversation sends its next request within
        microseconds of reading a reply; caught while this thread still runs, it costs no
        wake-up. An idle link costs nothing: no bytes, no spin."""
        link = self._link
        read_now = getattr(link, "read_now", None) or self._read_at_once
        return self._spinner.read(read_now, link.read, wait_s)

    def _read_at_once(self) -> bytes:
        return self._link.read(0.0)

    def _due(self, timers: tuple[int | None, int | None], link: int) -> bool:
        timer, link_timer = timers
        return (link_timer is not None and link >= link_timer) or (
            timer is not None and self._clock.now_ms() >= timer
        )

    def _service(self) -> tuple[int | None, int | None]:
        """Fire the device's due timers, send what it has to send and note its next timers
        (``_timers``); returns them."""
        with self._lock:
            now = self._clock.now_ms()
            link = self.link_ms()
            device = self._device
            timer, link_timer = device.get_pump_timer(), device.get_link_timer()
            if (timer is not None and now >= timer) or (
                link_timer is not None and link >= link_timer
            ):
                device.handle_timer(now, link)
                timer, link_timer = device.get_pump_timer(), device.get_link_timer()
                self._save_if_changed()
            out = device.data_to_send()
            self._scan_log()
            if self._events.status_due(link):
                self._status_changed()
            timers = self._timers = (timer, link_timer)
        if out:
            self._send(out, now, None)
        return timers

    def _wait_s(self, timer: int | None, link_timer: int | None, link: int) -> float:
        """How long the next read may block: until a pump timer, a link timer, a paced
        byte, or ``poll_s``."""
        wait_ns = self._poll_ns
        realtime = self._realtime
        if timer is not None and realtime is not None:
            wait_ns = min(wait_ns, realtime.real_ns_until(timer))
        if link_timer is not None:
            wait_ns = min(wait_ns, (link_timer - link) * 1_000_000)
        if self._rx_pending or self._tx_pending:
            now_ns = self._mono()
            for queue in (self._rx_pending, self._tx_pending):
                if queue:
                    wait_ns = min(wait_ns, queue[0][0] - now_ns)
        return max(wait_ns, 0) / 1e9

    def _feed(self, data: bytes, visible_ns: int | None) -> None:
        """Hand received bytes to the device and send its reply at once.

        Everything the loop needs before its next read (the device's next timers, the log
        scan, the retry of a failed store) is done before the reply is written, so the
        reply is the last thing this thread does before it blocks again: the programmer,
        woken by it, does not wait for this thread to let go of the interpreter.
        ``visible_ns``: when a paced request became visible (its reply starts on the wire
        then); None unpaced.
        """
        with self._lock:
            now = self._clock.now_ms()
            link = self.link_ms()
            device = self._device
            device.receive_data(data, now, link)
            self._events.chunk("rx", data, now, link)
            if self._conformance is not None:
                self._conformance.feed("to_pump", data, link)
                self._events.conformance(self._conformance.violations_since)
            out = device.data_to_send()
            self._timers = (device.get_pump_timer(), device.get_link_timer())
            self._save_if_changed()
            self._scan_log()
            self._events.status_after_chunk(self._device, self.clock_name(), link)
        if self._capture is not None:
            self._capture.record("rx", data, now)
        if out:
            self._send(out, now, visible_ns)
            if self._wire is not None:
                self._write_due_tx()

    def _feed_due_rx(self) -> None:
        pending = self._rx_pending
        while pending and pending[0][0] <= self._mono():
            visible_ns, data = pending.popleft()
            self._feed(data, visible_ns)

    def _send(self, data: bytes, now: int, start_ns: int | None) -> None:
        """Write ``data`` now, or paced: queued on the wire model from ``start_ns`` (the
        instant the request it answers became visible) or from now (a timer's output)."""
        wire = self._wire
        if wire is None:
            self._write(data, now)
        else:
            start = self._mono() if start_ns is None else start_ns
            self._tx_pending.extend(wire.tx_schedule(data, start))

    def _write_due_tx(self) -> None:
        pending = self._tx_pending
        while pending and pending[0][0] <= self._mono():
            self._write(pending.popleft()[1], self._clock.now_ms())

    def _write(self, data: bytes, now: int) -> None:
        self._link.write(data)
        self._tx_bytes += len(data)
        link = self.link_ms()
        self._events.chunk("tx", data, now, link)
        if self._conformance is not None:
            self._conformance.feed("to_programmer", data, link)
            self._events.conformance(self._conformance.violations_since)
        if self._capture is not None:
            self._capture.record("tx", data, now)

    def _recover(self, lost: LinkClosedError) -> bool:
        """Reopen a vanished port with backoff, keeping the pump; False if it cannot be."""
        self._losses += 1
        self._rx_pending.clear()
        self._tx_pending.clear()
        self._spin_next = False
        self._spinner.reset()  # the programmer that comes back may be another
        if self._wire is not None:
            self._wire.reset()
        link = self._link
        if not isinstance(link, Reopenable):
            self._log(f"{lost}; this kind of link cannot be reopened: stopping")
            self._error = lost
            return False
        self._log(f"{lost}; reopening (pump state kept)")
        self._note(f"link lost: {lost}", self._clock.now_ms())
        attempt = 0
        reported = ""
        while not self._stop.is_set():
            delay = self._reopen_delays[min(attempt, len(self._reopen_delays) - 1)]
            if self._stop.wait(delay):
                return False
            attempt += 1
            self._tick()
            try:
                link.reopen()
            except LinkOpenError as exc:
                if str(exc) != reported:
                    reported = str(exc)
                    self._log(f"still gone: {exc}; retrying every {self._reopen_delays[-1]:g} s")
                continue
            self._reconnects += 1
            self._log(f"{link.name}: link back after {attempt} attempt(s)")
            self._note(f"link back: {link.name}", self._clock.now_ms())
            return True
        return False

    def _tick(self) -> None:
        """Fire due timers while the link is away, so alarms are still logged on time."""
        with self._control():
            self._bring_up_to_date()
            self._device.data_to_send()  # nobody to send it to
            self._scan_log()

    def _bring_up_to_date(self) -> int:
        """Let the pump reach the clock's time (caller holds the lock); returns it."""
        now = max(self._clock.now_ms(), self._device.now_ms)
        self._device.handle_timer(now, self.link_ms())
        return now

    # -- observability --

    def _scan_log(self) -> None:
        """Log sessions, security events and alarms as they appear (caller holds the lock)."""
        pump = self._device.pump
        if pump.log_next_seq == self._log_seq:
            return  # the common turn: nothing new, and no status built to find out
        status = pump.status()
        entries = pump.log(self._log_seq)
        # Stamps are on the pump clock; this log and the capture run on the internal one.
        offset = status.local_time_ms - status.time_ms
        times = internal_times(entries, offset)
        self._events.log_entries(entries, times)
        for entry, sim_ms in zip(entries, times, strict=True):
            self._log_seq = entry.seq + 1
            if entry.kind is EventKind.SESSION_OPENED:
                self._sessions += 1
            elif entry.kind is EventKind.SECURITY_EVENT:
                self._security += 1
            elif entry.kind is EventKind.SECURITY_SUMMARY:
                self._security += entry.value_a  # events a run counted (protocol.md 11.3)
            elif entry.kind is EventKind.ALARM_RAISED:
                self._alarms += 1
            text = describe_event(entry)
            if text is not None:
                # The entry's own stamp is the pump clock as it read then (protocol.md 11).
                self._log(stamp_line(text, entry.time_ms, sim_ms))
                self._note(text, sim_ms)
        self._log_seq = max(self._log_seq, status.log_next_seq)

    def _note(self, text: str, sim_ms: int) -> None:
        if self._capture is not None and not self._capture.closed:
            self._capture.note(text, sim_ms)


# -- a TCP listener as a link ---------------------------------------------------------------


def parse_tcp_address(text: str, *, what: str, allow_remote: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as (host, port). Only loopback hosts unless
    ``allow_remote``: a pump's programming port must not be reachable from the network by
    accident. Raises ``UsageError`` naming ``what`` (the option)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise UsageError(f"{what}: expected HOST:PORT such as 127.0.0.1:5555, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise UsageError(f"{what}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65_535:
        raise UsageError(f"{what}: port {port} is out of range 0..65535")
    if allow_remote:
        return host, port
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"{what}: cannot resolve {host!r}: {exc.strerror}") from None
    addresses = {info[4][0] for info in infos}
    if not all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses):
        raise UsageError(
            f"{what}: refusing to listen on {host}: only loopback addresses (127.0.0.1, ::1) "
            "are allowed, so the pump is not reachable from the network"
        )
    return host, port


class TcpListenerLink:
    """A TCP listener that serves one programmer at a time (``socket://HOST:PORT``).

    A programmer that disconnects is forgotten, and the next one to connect takes its
    place; until then, replies have nobody to go to and are dropped. TCP_NODELAY is set on
    every connection (docs/field-notes.md "pyserial 3.5": without it a two-write reply costs 44 ms).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        log: Log | None = None,
        write_timeout_s: float = 2.0,
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(4)
        except OSError as exc:
            listener.close()
            raise LinkOpenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self._listener: socket.socket | None = listener
        self._host = host
        self._port = int(listener.getsockname()[1])
        self._client: socket.socket | None = None
        self._log = log
        self._write_timeout_s = write_timeout_s
        self.dropped_bytes = 0
        """Reply bytes that had no programmer to go to."""

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"socket://{host}:{self._port}"

    @property
    def address(self) -> tuple[str, int]:
        """The host and the port actually bound (useful with port 0)."""
        return self._host, self._port

    @property
    def connected(self) -> bool:
        return self._client is not None

    def read(self, timeout_s: float) -> bytes:
        listener = self._listener
        if listener is None:
            raise LinkClosedError(f"{self.name}: link closed")
        client = self._client
        if client is None:
            ready, _, _ = select.select([listener], [], [], max(timeout_s, 0.0))
            if ready:
                self._accept(listener)
            return b""
        ready, _, _ = select.select([client], [], [], max(timeout_s, 0.0))
        if not ready:
            return b""
        try:
            data = client.recv(MAX_READ)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:
            self._drop(f"connection lost: {exc.strerror or exc}")
            return b""
        if not data:
            self._drop("programmer disconnected")
        return data

    def _accept(self, listener: socket.socket) -> None:
        try:
            client, peer = listener.accept()
        except OSError:
            return
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.settimeout(self._write_timeout_s)
        self._client = client
        if self._log is not None:
            self._log(f"programmer connected from {peer[0]}:{peer[1]}")

    def _drop(self, why: str) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(OSError):
                client.close()
            if self._log is not None:
                self._log(f"{self.name}: {why}; waiting for the next programmer")

    def write(self, data: bytes) -> None:
        client = self._client
        if client is None:
            self.dropped_bytes += len(data)
            return
        try:
            client.sendall(data)
        except OSError as exc:
            self.dropped_bytes += len(data)
            self._drop(f"connection lost while writing: {exc.strerror or exc}")

    def close(self) -> None:
        client, self._client = self._client, None
        for sock in (client, self._listener):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        self._listener = None

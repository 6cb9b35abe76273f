"""The conformance monitor as a proxy listener (``pumpemu proxy --conformance``).

The monitor judges the programmer by what it sent and received, so it listens on the
programmer's side of the faults (docs/conformance.md, "Where the monitor listens"): the bytes
read from that side (``Received``, before any fault) and the bytes written to it (``Sent``,
after the faults).
"""

from __future__ import annotations

from hil.conformance.monitor import TO_PROGRAMMER, TO_PUMP
from hil.conformance.recorder import ConformanceRecorder
from hil.proxy.engine import Listener, ProxyEvent, Received, Sent
from hil.proxy.faults import Direction

__all__ = ["conformance_listener"]


def conformance_listener(recorder: ConformanceRecorder, programmer_side: str = "a") -> Listener:
    """A listener feeding ``recorder`` with the programmer's side ``programmer_side``
    (``a`` or ``b``) of the proxy; link time is the proxy's elapsed time."""
    if programmer_side not in ("a", "b"):
        raise ValueError(f"programmer_side must be 'a' or 'b', got {programmer_side!r}")
    sent_by_programmer = Direction.A2B if programmer_side == "a" else Direction.B2A

    def listen(event: ProxyEvent) -> None:
        if isinstance(event, Received) and event.direction is sent_by_programmer:
            recorder.feed(TO_PUMP, event.data, event.elapsed_ms)
        elif isinstance(event, Sent) and event.direction is sent_by_programmer.reverse:
            recorder.feed(TO_PROGRAMMER, event.data, event.elapsed_ms)

    return listen

"""A JSONL capture of what the proxy saw and did (docs/capture.md), for ``--capture``.

Each side of each direction is its own stream in the capture. ``a->b in`` holds the bytes
as read from A, and ``a->b out`` the bytes as written to B after the faults, so the capture
shows a frame before and after its corruption. Every fault applied is a note. The proxy
has no pump time, so records carry wall time only.
"""

from __future__ import annotations

from hil.capture import CaptureWriter
from hil.proxy.engine import FaultApplied, FrameLost, Listener, ProxyEvent, Received, Sent


def capture_listener(capture: CaptureWriter) -> Listener:
    """A proxy listener that writes every event to ``capture``."""

    def record(event: ProxyEvent) -> None:
        if isinstance(event, Received):
            capture.record(f"{event.direction} in", event.data, sim_ms=None)
        elif isinstance(event, Sent):
            capture.record(f"{event.direction} out", event.data, sim_ms=None)
        elif isinstance(event, FaultApplied | FrameLost):
            capture.note(event.describe(), sim_ms=None)

    return record

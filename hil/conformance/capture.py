"""Judge a recorded capture (docs/capture.md) after the fact: the same monitor, fed from the
frame and noise records of one writer's end of a link.

``judge_capture(read_capture(path), keys)`` replays the records of a capture written by the
pump's end (``pumpemu serve --capture``, ``pumpemu demo``): ``rx`` is what the programmer
sent, ``tx`` what it received. Link time is the records' wall-clock time, from the first.
"""

from __future__ import annotations

from collections.abc import Iterable

from hil.capture import CaptureRecord
from hil.conformance.monitor import TO_PROGRAMMER, TO_PUMP, ConformanceMonitor
from hil.conformance.rules import Violation
from protocol.keys import PumpKeys

__all__ = ["judge_capture"]


def judge_capture(
    records: Iterable[CaptureRecord],
    keys: PumpKeys | None,
    *,
    to_pump: str = "rx",
    to_programmer: str = "tx",
) -> tuple[Violation, ...]:
    """The violations in a capture whose ``to_pump``/``to_programmer`` directions are the
    programmer's sent and received bytes (serve's ``rx``/``tx`` by default)."""
    monitor = ConformanceMonitor(keys)
    directions = {to_pump: TO_PUMP, to_programmer: TO_PROGRAMMER}
    origin: int | None = None
    link_ms = 0
    for record in records:
        if record.kind not in ("frame", "noise") or record.direction not in directions:
            continue
        origin = record.wall_ns if origin is None else origin
        link_ms = max(link_ms, (record.wall_ns - origin) // 1_000_000)
        monitor.feed(directions[record.direction], record.data, link_ms)
    return monitor.finish(link_ms)

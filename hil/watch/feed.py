"""The thread that reads a pump's event stream for the dashboard (docs/watch.md).

The stream is read with a short timeout so that ``stop`` takes effect within
``POLL_S``; every event, and a final ``end`` if the stream closes without one, goes to the
``deliver`` callback (the app hands it to its own thread).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from hil.control import ControlError, EventStream

__all__ = ["POLL_S", "EventFeed"]

POLL_S = 0.2
"""The longest the reader waits before it looks whether it should stop."""


class EventFeed:
    """Reads ``stream`` in a daemon thread until ``stop`` or the stream's end."""

    def __init__(self, stream: EventStream, deliver: Callable[[dict[str, Any]], object]) -> None:
        self._stream = stream
        self._deliver = deliver
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pumpemu watch feed", daemon=True)

    def start(self) -> EventFeed:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    event = self._stream.next(POLL_S)
                except ControlError as exc:
                    if not self._stop.is_set():
                        self._deliver({"event": "end", "reason": str(exc)})
                    return
                if event is not None:
                    self._deliver(event)
                    if event.get("event") == "end":
                        return
        finally:
            self._stream.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop reading and close the stream (unsubscribes); True if the thread ended."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

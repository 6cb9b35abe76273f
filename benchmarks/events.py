"""What the control API's subscribers cost the serve loop per round trip (docs/serve.md,
"subscribe").

Run: ``.venv/bin/python benchmarks/events.py`` (a table) or ``... --json``.

The READ_STATUS session of benchmarks/conformance.py is recorded once; its requests are then
fed, chunk by chunk, to a fresh ``PumpServer`` (same keys, same entropy, so the recorded
frames open) through the serve loop's own receive path, which also writes each reply to an
in-memory link. Four runs, each timed on the same bytes in the same process:

- ``none``: nobody subscribed (every publishing point is one set lookup);
- ``status``: one subscriber of ``status`` and ``state`` (a status is built after every
  chunk to look for a change);
- ``frames``: one subscriber of ``frame`` (both directions framed and decoded);
- ``all``: one subscriber of every type.

The figures are microseconds per round trip and each run's ratio to ``none``. The
subscriber's queue is large enough for the whole run and is read after the timing: its
thread's own work (encoding, sending) is not the serve loop's.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

# Run as a script, this directory comes first on sys.path, and benchmarks/serial.py would
# shadow pyserial for hil.links: drop it.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from benchmarks.conformance import ROUND_TRIPS, record  # noqa: E402
from emulator.clock import ManualClock  # noqa: E402
from emulator.device import PumpDevice  # noqa: E402
from emulator.pump import Pump  # noqa: E402
from hil.conformance import TO_PUMP  # noqa: E402
from hil.events import EVENT_TYPES, MAX_QUEUE  # noqa: E402
from hil.links import memory_pair  # noqa: E402
from hil.serve import PumpServer  # noqa: E402
from protocol.keys import generate_keys  # noqa: E402

KEYS = generate_keys("PE-000999", bytes(range(64)))
RUNS: dict[str, tuple[str, ...]] = {
    "none": (),
    "status": ("status", "state"),
    "frames": ("frame",),
    "all": EVENT_TYPES,
}


def silent(_line: str) -> None:
    """Serve's log, dropped: only the loop's work is timed."""


def timed(requests: list[bytes], events: tuple[str, ...]) -> tuple[float, int]:
    """Seconds per round trip with a subscriber of ``events`` (none if empty), and how many
    events it was offered."""
    device = PumpDevice(Pump("peristaltic-20"), KEYS, random.Random(1).randbytes)
    pump_end, _programmer_end = memory_pair()
    server = PumpServer(device, pump_end, ManualClock(), log=silent)
    subscription = server.subscribe(events, MAX_QUEUE) if events else None
    feed = server._feed  # the serve loop's receive path, without its thread
    began = time.perf_counter()
    for chunk in requests:
        feed(chunk, None)  # unpaced: the reply is written at once
    elapsed = time.perf_counter() - began
    offered = 0
    if subscription is not None:
        offered = subscription.next_seq - 1
        assert subscription.dropped_total == 0, "the queue was too small for the run"
        subscription.cancel()
    return elapsed / ROUND_TRIPS, offered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    chunks, _device_s = record()
    requests = [data for direction, data in chunks if direction == TO_PUMP]
    best: dict[str, float] = {}
    offered: dict[str, int] = {}
    for _ in range(3):  # interleaved, best of three: a loaded machine slows all alike
        for name, events in RUNS.items():
            seconds, count = timed(requests, events)
            best[name] = min(best.get(name, float("inf")), seconds)
            offered[name] = count
    assert offered["frames"] >= 2 * ROUND_TRIPS, offered  # every request and reply framed
    figures: dict[str, object] = {"round_trips": ROUND_TRIPS}
    for name in RUNS:
        figures[f"{name}_us_per_round_trip"] = round(best[name] * 1e6, 1)
    for name in RUNS:
        if name != "none":
            figures[f"{name}_vs_none_ratio"] = round(best[name] / best["none"], 2)
            figures[f"{name}_events_offered"] = offered[name]
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:32} {value}")


if __name__ == "__main__":
    main()

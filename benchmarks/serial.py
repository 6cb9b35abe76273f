"""Serial round trips through the real serve loop: a pty, unpaced and paced at 115200 baud.

Run: ``.venv/bin/python benchmarks/serial.py`` (a table) or ``... --json`` (one object).
Targets (issue 15 item 4): ``sealed_pty_rt_per_s`` >= 6,000 and ``paced_vs_wire_ratio``
<= 1.05.

Set-up, all in one process but over a real pseudo-terminal: ``PumpServer`` serves a
``PumpDevice`` on a ``PtyLink`` in its thread; the reference ``Programmer`` opens the pty's
path with ``SerialLink`` (pyserial) and sends READ_STATUS over an open, sealed session, one
request at a time, waiting for each reply.

- ``protocol_cpu_rt_us``: the baseline, measured first in the same run. The same sealed
  READ_STATUS round trip through the same ``Programmer`` and ``PumpDevice``, over an
  in-memory ``DeviceLink`` (hil/device_link.py) on a manual clock: no pty, no thread, no
  system call. What a round trip cannot cost less than in this interpreter on this machine.
- ``sealed_pty_rt_per_s`` (alias ``pty_rt_per_s``, its name before issue 15): sealed
  request/response round trips per second over the pty, unpaced.
- ``pty_rt_process_cpu_us``: the CPU time (user and system, both threads) this process
  spent per unpaced pty round trip: the protocol CPU as it runs after each wake-up, plus
  the serve loop and the system calls. Against ``pty_rt_mean_us`` it shows how much of a
  round trip is waiting, which is what a loaded or an idle machine changes.
- ``sealed_pty_low_latency_rt_per_s`` / ``pty_low_latency_process_cpu_us``: the same
  unpaced round trips while this process holds a CPU wake-up latency request of 0 us
  (hil/cpu_latency.py, what ``pumpemu serve --low-latency`` holds): idle CPUs poll instead
  of halting, so neither wake-up of a round trip starts from a halted vCPU. ``null``, with
  ``low_latency_unavailable`` saying why, where the request cannot be made (not Linux, not
  root). The request ends with the measurement.
- ``pty_vs_protocol_cpu_ratio``: the mean pty round trip divided by the protocol-CPU one:
  how much the serve loop, the link, the system calls and two thread wake-ups add.
- ``paced_vs_wire_ratio``: with the server pacing at ``--baud`` (115200), the mean measured
  round trip divided by the wire-time floor, (request frame bytes + reply frame bytes) x 10
  / baud: the time the bytes alone take on a real 8N1 wire. 1.0 would be a perfect wire with
  a pump that answers in no time.

The machine is shared: each figure is a mean over many round trips, and the ratios compare
figures measured in this one run.

Measured on the 2-vCPU machine of issue 15 (2026-12-07 00:27-00:42 UTC). Other engineers'
jobs were running; each run started only when the 1-minute load was under 0.8, and was
paired back to back with a run of the code before issue 15 item 4's second pass
(``--json --paced-requests 100``). Over 20
pairs, medians: ``protocol_cpu_rt_us`` 36.8 against 69.1 (ratio 0.53);
``sealed_pty_rt_per_s`` 5,561 against 3,994 (ratio 1.38 pair by pair). The 6,000 target
was reached in 8 of 20 runs against 5 of 20, and ``paced_vs_wire_ratio`` was 1.043
against 1.047. The pty figure has two regimes, and the machine, not the code, picks one.
Warm (``pty_rt_process_cpu_us`` 74-101): 8,558-12,339 a second. Cold (137-213 us of CPU
for the same round trip, whose in-memory protocol CPU measured a moment before was
unchanged): 3,741-6,227 a second.
docs/serve.md, "The serve loop's cost", says why and what is left.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file is named like
# pyserial's package: drop the folder so ``import serial`` finds pyserial.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from emulator.clock import ManualClock  # noqa: E402
from emulator.device import PumpDevice  # noqa: E402
from emulator.pump import Pump  # noqa: E402
from hil.clock import SystemClock  # noqa: E402
from hil.cpu_latency import CpuLatencyError, CpuLatencyRequest  # noqa: E402
from hil.device_link import DeviceLink  # noqa: E402
from hil.links import PtyLink, SerialLink  # noqa: E402
from hil.programmer.client import Programmer  # noqa: E402
from hil.programmer.core import Outcome  # noqa: E402
from hil.serve import PumpServer  # noqa: E402
from protocol.device_state import Role  # noqa: E402
from protocol.keys import generate_keys  # noqa: E402


def _quiet(_line: str) -> None:
    """The server's log is not part of the measurement."""


def measure_protocol_cpu(requests: int) -> dict[str, float]:
    """The same sealed READ_STATUS round trips with no pty and no thread: the programmer
    writes into a ``DeviceLink``, which hands the bytes to the device at once."""
    keys = generate_keys("PE-BENCH", secrets.token_bytes(64))
    device = PumpDevice(Pump("peristaltic-20"), keys, secrets.token_bytes)
    link = DeviceLink(device, ManualClock())
    programmer = Programmer(link, keys.serial, Role.CLINICIAN, keys.clinician, clock=ManualClock())
    for _ in range(5):  # open the session and warm up
        assert programmer.status().outcome is Outcome.ANSWERED
    times: list[float] = []
    for _ in range(requests):
        started = time.perf_counter()
        result = programmer.status()
        times.append(time.perf_counter() - started)
        assert result.outcome is Outcome.ANSWERED, result
    programmer.close()
    return {"mean_s": statistics.fmean(times), "median_s": statistics.median(times)}


def measure(requests: int, baud: int | None) -> dict[str, float]:
    """Round trips of READ_STATUS through a PumpServer on a pty; per-request bytes and time."""
    keys = generate_keys("PE-BENCH", secrets.token_bytes(64))
    clock = SystemClock()
    device = PumpDevice(Pump("peristaltic-20"), keys, secrets.token_bytes)
    pty_link = PtyLink()
    counts = {"tx": 0, "rx": 0}

    def count(direction: str, data: bytes) -> None:
        counts[direction] += len(data)

    with PumpServer(device, pty_link, clock, baud=baud, log=_quiet):
        link = SerialLink(pty_link.path)
        try:
            programmer = Programmer(
                link, keys.serial, Role.CLINICIAN, keys.clinician, on_traffic=count
            )
            for _ in range(5):  # open the session and warm up
                assert programmer.status().outcome is Outcome.ANSWERED
            counts.update(tx=0, rx=0)
            times: list[float] = []
            cpu_started = time.process_time()
            for _ in range(requests):
                started = time.perf_counter()
                result = programmer.status()
                times.append(time.perf_counter() - started)
                assert result.outcome is Outcome.ANSWERED, result
            cpu_s = time.process_time() - cpu_started
            sent, received = counts["tx"], counts["rx"]
            programmer.close()
        finally:
            link.close()
    return {
        "mean_s": statistics.fmean(times),
        "median_s": statistics.median(times),
        "request_bytes": sent / requests,
        "reply_bytes": received / requests,
        "total_s": sum(times),
        "cpu_s": cpu_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=2_000, help="round trips in memory and unpaced"
    )
    parser.add_argument("--paced-requests", type=int, default=200, help="paced round trips")
    parser.add_argument("--baud", type=int, default=115_200, help="pacing rate, 8N1")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    cpu = measure_protocol_cpu(args.requests)
    unpaced = measure(args.requests, None)
    low_latency: dict[str, float] | None = None
    why_not = None
    try:
        with CpuLatencyRequest(0):
            low_latency = measure(args.requests, None)
    except CpuLatencyError as exc:
        why_not = str(exc)
    paced = measure(args.paced_requests, args.baud)
    frame_bytes = paced["request_bytes"] + paced["reply_bytes"]
    wire_floor_s = frame_bytes * 10 / args.baud
    sealed_per_s = round(args.requests / unpaced["total_s"], 1)
    result = {
        "protocol_cpu_rt_us": round(cpu["mean_s"] * 1e6, 1),
        "protocol_cpu_rt_median_us": round(cpu["median_s"] * 1e6, 1),
        "protocol_cpu_rt_per_s": round(1 / cpu["mean_s"], 1),
        "sealed_pty_rt_per_s": sealed_per_s,
        "pty_rt_per_s": sealed_per_s,
        "pty_rt_mean_us": round(unpaced["mean_s"] * 1e6, 1),
        "pty_rt_median_us": round(unpaced["median_s"] * 1e6, 1),
        "pty_rt_process_cpu_us": round(unpaced["cpu_s"] / args.requests * 1e6, 1),
        "sealed_pty_low_latency_rt_per_s": (
            None if low_latency is None else round(args.requests / low_latency["total_s"], 1)
        ),
        "pty_low_latency_process_cpu_us": (
            None if low_latency is None else round(low_latency["cpu_s"] / args.requests * 1e6, 1)
        ),
        "low_latency_unavailable": why_not,
        "pty_vs_protocol_cpu_ratio": round(unpaced["mean_s"] / cpu["mean_s"], 3),
        "pty_vs_protocol_cpu_ratio_median": round(unpaced["median_s"] / cpu["median_s"], 3),
        "baud": args.baud,
        "request_frame_bytes": paced["request_bytes"],
        "reply_frame_bytes": paced["reply_bytes"],
        "wire_floor_us": round(wire_floor_s * 1e6, 1),
        "paced_rt_mean_us": round(paced["mean_s"] * 1e6, 1),
        "paced_rt_median_us": round(paced["median_s"] * 1e6, 1),
        "paced_vs_wire_ratio": round(paced["mean_s"] / wire_floor_s, 3),
        "paced_vs_wire_ratio_median": round(paced["median_s"] / wire_floor_s, 3),
        "target_sealed_pty_rt_per_s_min": 6_000,
        "target_paced_vs_wire_ratio_max": 1.05,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"READ_STATUS round trips, sealed session ({args.requests} in memory, "
        f"{args.requests} over a pty unpaced, {args.paced_requests} paced)"
    )
    for key, value in result.items():
        print(f"  {key:<32} {value}")


if __name__ == "__main__":
    main()

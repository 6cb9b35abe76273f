"""Serial round trips over a pty: ``pumpemu serve`` as a rig runs it, the in-process server a
test runs, and the server paced at 115200 baud.

Run: ``.venv/bin/python benchmarks/serial.py`` (a table) or ``... --json`` (one object).
Targets (issue 15 item 4): ``sealed_pty_rt_per_s`` >= 6,000 and ``paced_vs_wire_ratio``
<= 1.05.

Every round trip is a sealed READ_STATUS over an open session: the reference ``Programmer``
opens the pty's path with ``SerialLink`` (pyserial), sends one request and waits for the
reply. Three set-ups, each measured ``--repeats`` times, interleaved (serve, serve with no
spin, in-process, serve, ...), each figure the median of its repeats, so a drift
of the shared machine touches all three alike:

- ``sealed_pty_rt_per_s`` (alias ``pty_rt_per_s``): against ``pumpemu serve --pty`` in its
  own process, serve and programmer with their defaults: each spins up to 200 us when it
  expects bytes before it blocks (hil/spin.py; docs/serve.md, "The serve loop's cost").
- ``no_spin_rt_per_s``: the same with neither spinning (``serve --spin-us 0``,
  ``SerialLink(spin_us=0)``); ``spin_speedup`` is the ratio of the two.
  ``serve_cpu_per_rt_us`` / ``no_spin_serve_cpu_per_rt_us``: the CPU the serve process spent
  per round trip (all its threads, from ``/proc/PID/task/*/schedstat``; ``null`` elsewhere),
  and ``programmer_cpu_per_rt_us`` / ``no_spin_programmer_cpu_per_rt_us`` the programmer's:
  what the spins cost.
- ``in_process_pty_rt_per_s``: ``PumpServer`` in a thread of this process (what the pytest
  plugin's ``pump_target`` does). Neither spins there: ``PumpServer`` defaults to 0, and a
  ``SerialLink`` on a pty of its own process does not spin.
  ``in_process_cpu_per_rt_us``: this process's CPU per round trip, both threads.
- ``protocol_cpu_rt_us``: the baseline, measured first in the same run. The same sealed
  READ_STATUS round trip through the same ``Programmer`` and ``PumpDevice`` over an
  in-memory ``DeviceLink`` (hil/device_link.py) on a manual clock: no pty, no thread, no
  system call. What a round trip cannot cost less than in this interpreter on this machine.
  ``pty_vs_protocol_cpu_ratio``: a serve round trip's mean over it.
- ``sealed_pty_low_latency_rt_per_s``: against ``pumpemu serve --low-latency``, which holds a
  CPU wake-up latency request of 0 us (hil/cpu_latency.py): idle CPUs poll instead of
  halting. ``null``, with ``low_latency_unavailable`` saying why, where serve cannot make
  the request (not Linux, not root).
- ``paced_vs_wire_ratio``: with the in-process server pacing at ``--baud`` (115200), the mean
  measured round trip divided by the wire-time floor, (request frame bytes + reply frame
  bytes) x 10 / baud: the time the bytes alone take on a real 8N1 wire. 1.0 would be a
  perfect wire with a pump that answers in no time.

Why serve's own process: on an idle virtual machine the four wake-ups of a pty round trip
(the server, the programmer, and the kernel worker that moves a pty's bytes, each way) start
from halted CPUs and set its pace. The spins take the two threads' wake-ups away and keep
the CPUs from halting, and each spin competes with nobody for an interpreter lock only when
server and programmer run in separate processes, as a rig runs them.
docs/serve.md, "The serve loop's cost", gives the measurements.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file is named like
# pyserial's package: drop the folder so ``import serial`` finds pyserial.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from emulator.clock import ManualClock  # noqa: E402
from emulator.device import PumpDevice  # noqa: E402
from emulator.pump import Pump  # noqa: E402
from hil.clock import SystemClock  # noqa: E402
from hil.device_link import DeviceLink  # noqa: E402
from hil.key_files import write_key_file  # noqa: E402
from hil.links import PtyLink, SerialLink  # noqa: E402
from hil.programmer.client import Programmer  # noqa: E402
from hil.programmer.core import Outcome  # noqa: E402
from hil.serve import PumpServer  # noqa: E402
from hil.spin import DEFAULT_SPIN_US  # noqa: E402
from protocol.device_state import Role  # noqa: E402
from protocol.keys import PumpKeys, generate_keys  # noqa: E402

PUMPEMU = [sys.executable, "-c", "from hil.cli import main; main()"]
START_TIMEOUT_S = 30.0
"""How long serve may take to print its pty's path."""

Figures = dict[str, float]


def _quiet(_line: str) -> None:
    """The server's log is not part of the measurement."""


def measure_protocol_cpu(requests: int) -> Figures:
    """The same sealed READ_STATUS round trips with no pty and no thread: the programmer
    writes into a ``DeviceLink``, which hands the bytes to the device at once."""
    keys = generate_keys("PE-BENCH", secrets.token_bytes(64))
    device = PumpDevice(Pump("peristaltic-20"), keys, secrets.token_bytes)
    link = DeviceLink(device, ManualClock())
    programmer = Programmer(link, keys.serial, Role.CLINICIAN, keys.clinician, clock=ManualClock())
    warm_up(programmer)
    times = timed_status(programmer, requests)
    programmer.close()
    return {"mean_s": statistics.fmean(times), "median_s": statistics.median(times)}


def warm_up(programmer: Programmer) -> None:
    """Open the session and warm up: five READ_STATUS round trips, not timed."""
    for _ in range(5):
        assert programmer.status().outcome is Outcome.ANSWERED


def timed_status(programmer: Programmer, requests: int) -> list[float]:
    """``requests`` READ_STATUS round trips, one at a time: each one's seconds."""
    times: list[float] = []
    for _ in range(requests):
        started = time.perf_counter()
        result = programmer.status()
        times.append(time.perf_counter() - started)
        assert result.outcome is Outcome.ANSWERED, result
    return times


def round_trips(
    path: str, keys: PumpKeys, requests: int, spin_us: int = DEFAULT_SPIN_US
) -> Figures:
    """``requests`` sealed READ_STATUS round trips from a ``Programmer`` on ``path``, its
    ``SerialLink`` spinning ``spin_us`` (the default: a programmer's as it comes)."""
    counts = {"tx": 0, "rx": 0}

    def count(direction: str, data: bytes) -> None:
        counts[direction] += len(data)

    link = SerialLink(path, spin_us=spin_us)
    try:
        programmer = Programmer(link, keys.serial, Role.CLINICIAN, keys.clinician, on_traffic=count)
        warm_up(programmer)
        counts.update(tx=0, rx=0)
        cpu_started = time.process_time()
        times = timed_status(programmer, requests)
        cpu_s = time.process_time() - cpu_started
        programmer.close()
    finally:
        link.close()
    return {
        "mean_s": statistics.fmean(times),
        "median_s": statistics.median(times),
        "request_bytes": counts["tx"] / requests,
        "reply_bytes": counts["rx"] / requests,
        "total_s": sum(times),
        "cpu_s": cpu_s,
    }


def measure_in_process(requests: int, baud: int | None) -> Figures:
    """Round trips through a ``PumpServer`` in a thread of this process."""
    keys = generate_keys("PE-BENCH", secrets.token_bytes(64))
    device = PumpDevice(Pump("peristaltic-20"), keys, secrets.token_bytes)
    pty_link = PtyLink()
    with PumpServer(device, pty_link, SystemClock(), baud=baud, log=_quiet):
        return round_trips(pty_link.path, keys, requests)


def task_cpu_ns(pid: int) -> int | None:
    """CPU time a process's threads spent so far (Linux schedstat), None where unknown."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                total += int((task / "schedstat").read_text().split()[0])
    except OSError:
        return None
    return total


@contextlib.contextmanager
def serve_process(work: Path, keys: PumpKeys, *options: str) -> Iterator[tuple[int, str]]:
    """``pumpemu serve --pty`` with ``options``: yields its pid and pty path; raises
    RuntimeError with serve's stderr if it does not start."""
    key_file = work / "bench.keys"
    if not key_file.exists():
        write_key_file(key_file, keys)
    err = (work / "serve.err").open("w+")
    proc = subprocess.Popen(
        [*PUMPEMU, "serve", "--pty", "--keys", str(key_file), "-qq", *options],
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
    )
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        if not path:
            proc.wait(START_TIMEOUT_S)
            err.seek(0)
            raise RuntimeError(err.read().strip() or f"serve exited {proc.returncode}")
        yield proc.pid, path
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        err.close()


def measure_serve(
    work: Path, keys: PumpKeys, requests: int, *options: str, spin_us: int = DEFAULT_SPIN_US
) -> Figures:
    """Round trips against ``pumpemu serve`` in its own process, and its CPU per trip."""
    with serve_process(work, keys, *options) as (pid, path):
        before = task_cpu_ns(pid)
        figures = round_trips(path, keys, requests, spin_us)
        after = task_cpu_ns(pid)
    # Session opening and warm-up round trips are inside the serve window: 5 + 2 extra
    # exchanges out of thousands.
    if before is not None and after is not None:
        figures["serve_cpu_s"] = (after - before) / 1e9
    return figures


def per_s(figures: Figures, requests: int) -> float:
    return round(requests / figures["total_s"], 1)


def median_of(runs: list[Figures]) -> Figures:
    """The run with the median rate (an odd count; the lower middle otherwise)."""
    ranked = sorted(runs, key=lambda f: f["total_s"])
    return ranked[(len(ranked) - 1) // 2]


def per_rt_us(figures: Figures, key: str, requests: int) -> float | None:
    value = figures.get(key)
    return None if value is None else round(value / requests * 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=2_000, help="round trips per measurement (unpaced)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each set-up")
    parser.add_argument("--paced-requests", type=int, default=200, help="paced round trips")
    parser.add_argument("--baud", type=int, default=115_200, help="pacing rate, 8N1")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    n = args.requests

    cpu = measure_protocol_cpu(n)
    keys = generate_keys("PE-BENCH", secrets.token_bytes(64))
    served: list[Figures] = []
    no_spin: list[Figures] = []
    in_process: list[Figures] = []
    low_latency: Figures | None = None
    why_not = None
    with tempfile.TemporaryDirectory(prefix="pumpemu-bench-") as tmp:
        work = Path(tmp)
        for _ in range(args.repeats):
            served.append(measure_serve(work, keys, n))
            no_spin.append(measure_serve(work, keys, n, "--spin-us", "0", spin_us=0))
            in_process.append(measure_in_process(n, None))
        try:
            low_latency = measure_serve(work, keys, n, "--low-latency")
        except RuntimeError as exc:
            why_not = str(exc).splitlines()[-1]
    paced = measure_in_process(args.paced_requests, args.baud)
    serve = median_of(served)
    off = median_of(no_spin)
    inproc = median_of(in_process)
    frame_bytes = paced["request_bytes"] + paced["reply_bytes"]
    wire_floor_s = frame_bytes * 10 / args.baud
    sealed_per_s = per_s(serve, n)
    result = {
        "protocol_cpu_rt_us": round(cpu["mean_s"] * 1e6, 1),
        "protocol_cpu_rt_median_us": round(cpu["median_s"] * 1e6, 1),
        "protocol_cpu_rt_per_s": round(1 / cpu["mean_s"], 1),
        "sealed_pty_rt_per_s": sealed_per_s,
        "pty_rt_per_s": sealed_per_s,
        "sealed_pty_rt_per_s_runs": [per_s(f, n) for f in served],
        "pty_rt_mean_us": round(serve["mean_s"] * 1e6, 1),
        "pty_rt_median_us": round(serve["median_s"] * 1e6, 1),
        "serve_cpu_per_rt_us": per_rt_us(serve, "serve_cpu_s", n),
        "programmer_cpu_per_rt_us": per_rt_us(serve, "cpu_s", n),
        "no_spin_rt_per_s": per_s(off, n),
        "no_spin_rt_per_s_runs": [per_s(f, n) for f in no_spin],
        "no_spin_serve_cpu_per_rt_us": per_rt_us(off, "serve_cpu_s", n),
        "no_spin_programmer_cpu_per_rt_us": per_rt_us(off, "cpu_s", n),
        "spin_speedup": round(off["total_s"] / serve["total_s"], 3),
        "in_process_pty_rt_per_s": per_s(inproc, n),
        "in_process_pty_rt_per_s_runs": [per_s(f, n) for f in in_process],
        "in_process_cpu_per_rt_us": per_rt_us(inproc, "cpu_s", n),
        "sealed_pty_low_latency_rt_per_s": None if low_latency is None else per_s(low_latency, n),
        "low_latency_unavailable": why_not,
        "pty_vs_protocol_cpu_ratio": round(serve["mean_s"] / cpu["mean_s"], 3),
        "pty_vs_protocol_cpu_ratio_median": round(serve["median_s"] / cpu["median_s"], 3),
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
        f"READ_STATUS round trips, sealed session ({n} in memory; {n} x {args.repeats} per "
        f"pty set-up, interleaved, medians; {args.paced_requests} paced)"
    )
    for key, value in result.items():
        print(f"  {key:<36} {value}")


if __name__ == "__main__":
    main()

"""Sealed round trips per second through the in-memory pair, and what sealing costs.

Run: ``.venv/bin/python benchmarks/session.py`` (a table) or ``... --json`` (one object).
Target (issue 4): sealing_cost_ratio <= 2.

What is measured, in one run:

- **sealed round trip**: a ``ProgrammerCore`` and a ``PumpDevice`` joined by ``TwoPeer``
  over ``PerfectLink(latency_ms=0)`` on a manual clock, one session open, doing READ_STATUS
  again and again. Each round trip is everything a real exchange does in-process: the
  programmer encodes and seals the request and frames it, the device resynchronises, checks
  the CRC, opens the frame (tag and counter), checks the role, runs the pump up to ``now``,
  builds STATUS, seals and frames the reply, and the programmer opens and decodes it.
- **sealing work**: the four AEAD operations of one round trip, alone and on the same
  sizes: the programmer seals the request, the pump opens it, the pump seals the reply, the
  programmer opens it (``protocol.crypto.seal``/``open`` with AES-256-GCM, header as
  associated data), each with a fresh key object as the session code builds one.
- **unsealed round trip** (the baseline): the sealed round trip's time minus the sealing
  work, i.e. the same exchange with the AEAD calls taken out. Building a second, unsealed
  code path just for the benchmark would measure code that never runs in the product.

``sealing_cost_ratio`` = sealed round-trip time / unsealed round-trip time.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from emulator.clock import ManualClock
from emulator.device import PumpDevice
from emulator.pump import Pump
from hil.programmer.core import Outcome, ProgrammerCore
from hil.two_peer import PerfectLink, TwoPeer
from protocol import codec, crypto, wire
from protocol.device_state import Role
from protocol.keys import generate_keys
from protocol.messages import ReadStatus

KEYS = generate_keys("PE-BENCH-1", bytes(range(64)))


def build_pair() -> TwoPeer:
    rng = random.Random(1)
    pump = Pump("peristaltic-20", start_ms=0)
    device = PumpDevice(pump, KEYS, rng.randbytes)
    programmer = ProgrammerCore(KEYS.serial, Role.CLINICIAN, KEYS.clinician, rng.randbytes)
    return TwoPeer(device, programmer, ManualClock(0), PerfectLink(latency_ms=0))


def sealed_round_trips(n: int) -> float:
    """Seconds per sealed READ_STATUS round trip."""
    pair = build_pair()
    assert pair.request(ReadStatus()).outcome is Outcome.ANSWERED  # opens the session
    start = time.perf_counter()
    for _ in range(n):
        result = pair.request(ReadStatus())
    elapsed = time.perf_counter() - start
    assert result.outcome is Outcome.ANSWERED
    assert result.attempts == 1
    return elapsed / n


def sealing_work(n: int) -> float:
    """Seconds of AEAD work in one READ_STATUS round trip (seal and open, both ways)."""
    pair = build_pair()
    status = pair.request(ReadStatus()).reply
    assert status is not None
    to_pump, to_programmer = bytes(range(32)), bytes(range(32, 64))
    _, request = codec.encode_payload(ReadStatus())
    _, reply = codec.encode_payload(status)
    sealed = wire.FLAG_SEALED
    request_header = codec.header_bytes(sealed, 3, 0, ReadStatus.OPCODE, len(request) + 16)
    reply_header = codec.header_bytes(
        sealed | wire.FLAG_REPLY, 3, 3, status.OPCODE, len(reply) + 16
    )
    start = time.perf_counter()
    for _ in range(n):
        body = crypto.seal(to_pump, request_header, request)
        crypto.open(to_pump, request_header, body)
        body = crypto.seal(to_programmer, reply_header, reply)
        crypto.open(to_programmer, reply_header, body)
    return (time.perf_counter() - start) / n


def measure(n: int, repeats: int) -> dict[str, float | int]:
    sealed = min(sealed_round_trips(n) for _ in range(repeats))
    crypto_s = min(sealing_work(n) for _ in range(repeats))
    unsealed = sealed - crypto_s
    return {
        "round_trips": n,
        "repeats": repeats,
        "sealed_rt_per_s": round(1 / sealed),
        "unsealed_rt_per_s": round(1 / unsealed),
        "sealed_rt_us": round(sealed * 1e6, 1),
        "sealing_us_per_rt": round(crypto_s * 1e6, 1),
        "sealing_cost_ratio": round(sealed / unsealed, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("-n", type=int, default=3_000, help="round trips per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    figures = measure(args.n, args.repeats)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"sealed READ_STATUS round trips:   {figures['sealed_rt_per_s']:>8} /s")
    print(f"  of which AEAD (4 ops):          {figures['sealing_us_per_rt']:>8} us / round trip")
    print(f"same exchange without sealing:    {figures['unsealed_rt_per_s']:>8} /s")
    print(f"sealing_cost_ratio:               {figures['sealing_cost_ratio']:>8} (target <= 2)")


if __name__ == "__main__":
    main()
